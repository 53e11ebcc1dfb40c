"""The memory plan (qwen25/memory_plan.py): parameter counts against transformers' own models, the ZeRO terms against
DeepSpeed's estimators, the other terms against numbers derived by hand, the advice against the plan itself, and the
stages' start-up check stopping before any weights load."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest
import torch
import yaml

from qwen25.memory_plan import (
    GIB,
    Architecture,
    Launch,
    MemoryPlanError,
    Workload,
    check_memory,
    plan,
    workload_from_stage,
)

ROOT = Path(__file__).resolve().parents[2]
SIZES = ["0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b"]


def arch(size: str) -> Architecture:
    return Architecture.from_config(ROOT / "configs" / "model" / f"qwen2.5-{size}.yaml")


@pytest.mark.parametrize("size", SIZES)
def test_parameter_count_matches_transformers(size):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    values = yaml.safe_load((ROOT / "configs" / "model" / f"qwen2.5-{size}.yaml").read_text())
    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(**values))
    assert arch(size).total_params == sum(p.numel() for p in model.parameters())  # tied weights counted once


def test_published_7b_config_json_gives_the_7b_architecture():
    assert Architecture.from_config(ROOT / "tests" / "fixtures" / "qwen2.5-7b") == arch("7b")
    assert arch("7b").total_params == 7_615_616_512  # the released model's count


def test_sft_7b_zero3_terms_by_hand():
    # ZeRO-3, 8 GPUs, no offload (DeepSpeed's formula): 4 x largest layer + 18 P / N, the largest layer being the
    # 152,064 x 3,584 embedding = 544,997,376 parameters: 2,179,989,504 + 18 x 7,615,616,512 / 8 = 19,315,126,656 B.
    # Activations per token per layer in bf16 (b = 2; h 3584, I 18944, kv 4 x 128 = 512, 28 heads):
    #   norms 2 (8h + 2h) = 71,680; attention 2 (2h + 2kv) = 16,384 and 4 x 28 = 112; MLP 4 x 2 x I = 151,552
    #   -> 239,728 B. Checkpointed at 32,768 tokens: 28 x 32,768 x 3,584 x 2 = 6,576,668,672 (layer inputs)
    #   + 32,768 x 239,728 = 7,855,407,104 (one layer recomputed) = 14,432,075,776 B.
    # Fused loss: chunks of 2^26 // 152,064 = 441 tokens: 2 x 4 x 441 x 152,064 = 536,481,792 B.
    cfg = yaml.safe_load((ROOT / "configs" / "sft" / "qwen2.5-7b.yaml").read_text())
    a = arch("7b")
    launch = Launch.from_accelerate_config(ROOT / "configs/accelerate/zero3.yaml")
    pl = plan(a, workload_from_stage("sft", cfg, a), launch, 80)
    got = {t.name: t.bytes for t in pl.terms}
    assert got == {
        "ZeRO-3 model states": 19_315_126_656,
        "activations (checkpointed)": 14_432_075_776,
        "loss head (fused)": 536_481_792,
    }
    assert pl.fits and pl.total == 34_283_684_224  # 31.93 GiB of a 72 GiB budget


@pytest.mark.parametrize("stage, offload, offload_params", [(2, False, False), (2, True, False), (3, False, False),
                                                             (3, True, False), (3, True, True)])  # fmt: skip
def test_zero_terms_are_deepspeeds_estimators(stage, offload, offload_params, monkeypatch):
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    a = arch("14b")
    launch = Launch(f"zero{stage}", gpus=16, gpus_per_node=8, offload_optimizer=offload, offload_params=offload_params)
    work = Workload("sft", 4096)
    if stage == 2:
        expected = estimate_zero2_model_states_mem_needs(a.total_params, 8, 2, cpu_offload=offload)[1]
    else:
        expected = estimate_zero3_model_states_mem_needs(a.total_params, a.largest_layer_params, 8, 2,
                                                         cpu_offload=offload, cpu_offload_params=offload_params)[1]
    assert plan(a, work, launch, 80).terms[0].bytes == expected
    # without DeepSpeed installed (a bare GPU image), the quoted formula gives the same number
    real_import = builtins.__import__

    def no_deepspeed(name, *args, **kwargs):
        if name.startswith("deepspeed"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_deepspeed)
    fallback = plan(a, work, launch, 80).terms[0]
    assert fallback.bytes == expected and "not installed" in fallback.how


def test_launch_from_each_accelerate_config():
    acc = ROOT / "configs" / "accelerate"
    assert Launch.from_accelerate_config(acc / "zero3.yaml").sharding == "zero3"
    assert Launch.from_accelerate_config(acc / "zero2.yaml").sharding == "zero2"
    off = Launch.from_accelerate_config(acc / "zero3_offload.yaml")
    assert off.sharding == "zero3" and off.offload_optimizer
    fsdp = Launch.from_accelerate_config(acc / "fsdp2.yaml", gpus=16)
    assert (fsdp.sharding, fsdp.gpus) == ("fsdp2", 16)
    assert Launch.from_accelerate_config(acc / "ddp.yaml").sharding == "ddp"
    assert Launch.from_accelerate_config(None).sharding == "none"


def test_dpo_and_grpo_workloads():
    a = arch("7b")
    dpo = workload_from_stage("dpo", yaml.safe_load((ROOT / "configs/dpo/qwen2.5-7b.yaml").read_text()), a)
    assert dpo.tokens == 2 * 1 * 8192 and dpo.reference == "cached" and dpo.optimizer == "online_merging"
    assert workload_from_stage("dpo", {"max_length": 1024, "precompute_ref_log_probs": False}, a).reference == "model"
    grpo = workload_from_stage("grpo", yaml.safe_load((ROOT / "configs/grpo/qwen2.5-7b.yaml").read_text()), a)
    assert grpo.kv_cache_sequences == 0  # served by vLLM elsewhere
    local = workload_from_stage("grpo", {"per_device_train_batch_size": 8, "max_prompt_length": 512,
                                         "max_completion_length": 1536, "bf16": True}, a)  # fmt: skip
    kv = plan(a, local, Launch("zero3", 8), 80).terms[-1]
    # 2 (k, v) x 28 layers x 512 x 2 bytes x 8 sequences x 2,048 tokens = 939,524,096 B
    assert (kv.name, kv.bytes) == ("generation KV cache", 939_524_096)


def test_online_merging_under_deepspeed_is_refused():
    a = arch("7b")
    with pytest.raises(ValueError, match="fsdp2"):
        plan(a, Workload("dpo", 4096, optimizer="online_merging"), Launch("zero3", 8), 80)


def test_advice_is_what_the_plan_itself_says_fits():
    """The "more GPUs" advice is a number the plan then accepts, and one GPU fewer it refuses."""
    a = arch("72b")
    work = workload_from_stage("dpo", yaml.safe_load((ROOT / "configs/dpo/qwen2.5-72b.yaml").read_text()), a)
    pl = plan(a, work, Launch("fsdp2", 8), 80)
    assert not pl.fits
    (tip,) = [t for t in pl.advice if t.startswith("more GPUs")]
    n = int(tip.split("at least ")[1].split()[0])
    assert plan(a, work, Launch("fsdp2", n), 80).fits and not plan(a, work, Launch("fsdp2", n - 1), 80).fits
    ddp = plan(arch("7b"), Workload("sft", 32768), Launch("ddp", 8), 80)
    assert not ddp.fits and any("zero3.yaml" in t for t in ddp.advice)
    text = ddp.render()
    assert "DOES NOT FIT" in text and "to fit:" in text and "Adam moments (fp32)" in text
    unfused = plan(arch("7b"), Workload("sft", 32768, fused_loss=False), Launch("zero3", 8), 80)
    assert not unfused.fits and any("fused_linear_ce: true" in t for t in unfused.advice)
    # full logits at 32K: 32,768 x 152,064 x (2 + 8) bytes = 46.4 GiB
    assert [t.bytes for t in unfused.terms if t.name.startswith("loss")] == [32768 * 152064 * 10]


def test_stage_stops_before_loading_weights(micro_base, stage_data, tmp_path, monkeypatch):
    """The SFT stage with a GPU too small for its step: MemoryPlanError (a ConfigError: exit 2, no traceback),
    raised before the model loads; `--skip_memory_check true` goes on."""
    import sft.__main__ as stage

    def no_load(*args, **kwargs):
        raise AssertionError("weights loaded before the memory check")

    monkeypatch.setattr(stage, "load_model", no_load)
    args = ["--config", "configs/sft/tiny.yaml", "--model_name_or_path", str(micro_base), "--dataset_path",
            str(stage_data["sft"]), "--output_dir", str(tmp_path / "out"), "--report_to", "none"]  # fmt: skip
    with pytest.raises(MemoryPlanError, match="DOES NOT FIT") as info:
        stage.main([*args, "--memory_check_gpu_gib", "0.01"])
    assert "to fit:" in str(info.value) and "--skip_memory_check" in str(info.value)
    with pytest.raises(AssertionError, match="weights loaded"):  # the check passed: it went on to load
        stage.main([*args, "--memory_check_gpu_gib", "0.01", "--skip_memory_check", "true"])


def test_no_check_without_cuda_unless_asked(micro_base):
    class Cfg:
        memory_check_gpu_gib = None
        skip_memory_check = False
        max_length = 1024

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the check runs against its memory")
    assert check_memory("sft", Cfg(), micro_base) is None
    Cfg.memory_check_gpu_gib = 80.0
    result = check_memory("sft", Cfg(), micro_base)
    assert result.fits and result.gpu_memory_gib == 80.0 and result.total < GIB


def test_launch_read_from_what_accelerate_launch_exports(monkeypatch):
    from qwen25.memory_plan import _launch_from_env

    for name in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP", "FSDP_VERSION", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert _launch_from_env(1).sharding == "none" and _launch_from_env(8).sharding == "ddp"
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_ZERO_STAGE", "3")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "cpu")
    ds = _launch_from_env(16)
    assert (ds.sharding, ds.gpus, ds.offload_optimizer, ds.offload_params) == ("zero3", 16, True, False)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "false")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    assert _launch_from_env(8).sharding == "fsdp2"
