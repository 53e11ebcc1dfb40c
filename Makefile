# Two commands on a fresh clone: `make demo` and `make test`. Each creates .venv and installs on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0   # the local CPU wheel; first, so nothing pulls a CUDA build
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	WANDB_MODE=offline $(BIN)/qwenpost pipeline --config configs/pipeline/tiny.yaml

test: $(STAMP)
	WANDB_MODE=offline $(BIN)/pytest -q

clean:
	rm -rf runs wandb .pytest_cache
