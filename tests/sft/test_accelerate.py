"""configs/accelerate/*: the tiny SFT stage under `accelerate launch` with 2 CPU processes (DDP on gloo; DeepSpeed
ZeRO-2/3, with and without CPU offload), and the configs' validity.

Each launched process runs `python -m sft` through a small wrapper that, after `trainer.train()`, writes what the
run really was: world size, accelerate's distributed type, the optimizer class and a hash of the trained weights.
Both ranks must agree on the weights (data parallelism kept them in sync) and the weights must have moved.
DeepSpeed on CPU: DeepSpeed picks its CPU accelerator, whose default communication backend (ccl, Intel oneCCL) is
not installed; `--ddp_backend gloo` makes the Trainer's PartialState start gloo, which DeepSpeed then uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACCELERATE = Path(sys.executable).parent / "accelerate"

PROBE = """
import contextlib, hashlib, json, os, runpy, sys
from transformers import Trainer

train = Trainer.train

def probed(self, *args, **kwargs):
    out = train(self, *args, **kwargs)
    digest = hashlib.sha256()
    params = [p for _, p in sorted(self.accelerator.unwrap_model(self.model).named_parameters())]
    gathered = contextlib.nullcontext()
    if self.is_deepspeed_enabled:
        import deepspeed

        gathered = deepspeed.zero.GatheredParameters(params)  # ZeRO-3: full tensors on every rank (else a no-op)
    with gathered:
        for p in params:
            digest.update(p.detach().float().cpu().numpy().tobytes())
    optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
    record = {
        "rank": self.args.process_index, "world": self.args.world_size,
        "distributed_type": str(self.accelerator.distributed_type).split(".")[-1],
        "optimizer": type(optimizer).__name__, "weights": digest.hexdigest(), "steps": self.state.global_step,
    }
    with open(os.path.join(os.environ["PROBE_DIR"], f"rank{record['rank']}.json"), "w") as f:
        json.dump(record, f)
    return out

Trainer.train = probed
sys.argv = [sys.argv[1]] + sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _launch(tmp_path: Path, micro_base, stage_data, config: str, env: dict, extra: tuple = ()) -> list[dict]:
    (tmp_path / "probe.py").write_text(PROBE)
    probes = tmp_path / "probes"
    probes.mkdir()
    cmd = [
        str(ACCELERATE), "launch", "--config_file", f"configs/accelerate/{config}.yaml", "--num_processes", "2",
        "--mixed_precision", "no", str(tmp_path / "probe.py"), "sft", "--config", "configs/sft/tiny.yaml",
        "--model_name_or_path", str(micro_base), "--dataset_path", str(stage_data["sft"]),
        "--output_dir", str(tmp_path / "out"), "--max_steps", "2", "--per_device_train_batch_size", "2",
        "--max_length", "256", "--report_to", "none", "--logging_steps", "1", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PROBE_DIR": str(probes), "PYTHONPATH": str(ROOT), **env}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    records = sorted((json.loads(p.read_text()) for p in probes.glob("rank*.json")), key=lambda r: r["rank"])
    assert [r["rank"] for r in records] == [0, 1] and all(r["world"] == 2 and r["steps"] == 2 for r in records)
    assert records[0]["weights"] == records[1]["weights"]  # replicas in sync
    assert (tmp_path / "out" / "model.safetensors").is_file() and (tmp_path / "out" / "summary.json").is_file()
    return records


@pytest.mark.e2e
@pytest.mark.slow  # two processes plus the launcher: ~25-60 s on 2 shared cores, over the default suite's budget
def test_sft_ddp_two_cpu_processes(micro_base, stage_data, tmp_path):
    # NOTES.md: `--cpu` alone silently starts one process; ACCELERATE_USE_CPU + the MULTI_GPU config gives gloo DDP
    records = _launch(tmp_path, micro_base, stage_data, "ddp", {"ACCELERATE_USE_CPU": "true"})
    assert records[0]["distributed_type"] == "MULTI_CPU" and records[0]["optimizer"] == "AdamW"


@pytest.mark.e2e
@pytest.mark.slow  # DeepSpeed's import and CPU op build take minutes on 2 shared cores
@pytest.mark.parametrize(
    "config, optimizer",
    [("zero2", "DeepSpeedZeroOptimizer"), ("zero3", "DeepSpeedZeroOptimizer_Stage3"),
     ("zero3_offload", "DeepSpeedZeroOptimizer_Stage3")],
)  # fmt: skip
def test_sft_deepspeed_two_cpu_processes(micro_base, stage_data, tmp_path, config, optimizer):
    pytest.importorskip("deepspeed")
    records = _launch(tmp_path, micro_base, stage_data, config, {}, ("--ddp_backend", "gloo"))
    assert records[0]["distributed_type"] == "DEEPSPEED" and records[0]["optimizer"] == optimizer


@pytest.mark.parametrize("name", ["cpu", "ddp", "zero2", "zero3", "zero3_offload"])
def test_accelerate_config_is_valid(name):
    """Loads as accelerate's own config class; DeepSpeed ones leave batch sizes, accumulation and clipping to the
    stage config (accelerate refuses them in two places), and build a DeepSpeed plugin with the intended stage."""
    from accelerate.commands.config.config_args import ClusterConfig

    path = ROOT / "configs" / "accelerate" / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    config = ClusterConfig.from_yaml_file(str(path))
    assert config.distributed_type.value == raw["distributed_type"]
    if raw["distributed_type"] != "DEEPSPEED":
        return
    ds = raw["deepspeed_config"]
    assert not {"gradient_accumulation_steps", "gradient_clipping", "deepspeed_config_file"} & set(ds)
    from accelerate.utils import DeepSpeedPlugin

    plugin = DeepSpeedPlugin(
        zero_stage=ds["zero_stage"], offload_optimizer_device=ds["offload_optimizer_device"],
        offload_param_device=ds["offload_param_device"], zero3_init_flag=ds.get("zero3_init_flag", False),
    )  # fmt: skip
    zero = plugin.deepspeed_config["zero_optimization"]
    assert zero["stage"] == int(name[4])
    offload = "cpu" if name.endswith("offload") else "none"
    assert zero["offload_optimizer"]["device"] == offload and zero["offload_param"]["device"] == offload
    assert plugin.deepspeed_config["train_micro_batch_size_per_gpu"] == "auto"  # from the stage config
