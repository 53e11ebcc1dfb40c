"""`qwenpost pipeline --dry_run` on the real-size configs and `qwenpost plan`: a directory holding the published
Qwen2.5-7B config.json, tokenizer files made offline and no weights is enough to check every stage's keys and paths,
print each launch command and memory plan, and exit 0 without loading anything."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.cli import main as qwenpost

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def qwen7b_dir(tmp_path_factory):
    from qwen25.tokenizer import build_tokenizer

    out = tmp_path_factory.mktemp("ckpt") / "Qwen2.5-7B"
    out.mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "qwen2.5-7b" / "config.json", out / "config.json")
    corpus = [f"Sam has {a} apples and gets {b} more, so {a} + {b} = {a + b}." for a in range(30) for b in range(30)]
    build_tokenizer(corpus, vocab_size=400).save_pretrained(out)  # made offline: no download
    return out


@pytest.mark.parametrize("size, dpo_launcher", [("7b", "fsdp2.yaml"), ("0.5b", "ddp.yaml")])
def test_real_size_pipeline_dry_run(size, dpo_launcher, qwen7b_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    run_dir = tmp_path / "run"
    base = qwen7b_dir
    if size == "0.5b":  # the same check on the 0.5B config with a 0.5B architecture
        base = tmp_path / "Qwen2.5-0.5B"
        shutil.copytree(qwen7b_dir, base)
        import json

        import yaml

        values = yaml.safe_load((ROOT / "configs/model/qwen2.5-0.5b.yaml").read_text())
        (base / "config.json").write_text(json.dumps({"model_type": "qwen2", **values}))
    rc = qwenpost(["pipeline", "--config", f"configs/pipeline/qwen2.5-{size}.yaml", "--base_checkpoint", str(base),
                   "--run_dir", str(run_dir), "--dry_run", "true"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    for stage in ("data", "sft", "reward", "serve", "dpo", "score", "grpo"):
        assert f"=== {stage} ===" in out
    assert "=== base ===" not in out  # a real base checkpoint: nothing to initialise
    assert f"--config_file configs/accelerate/zero3.yaml -m sft --config configs/sft/qwen2.5-{size}.yaml" in out
    assert f"--config_file configs/accelerate/{dpo_launcher} -m offline_rl" in out
    assert f"--online_merging_base_model {base}" in out
    assert out.count("memory plan:") == 4 and out.count("  fits: budget") == 4
    if size == "7b":
        assert "memory plan: sft, 7.62B parameters (28 layers, hidden 3584, vocabulary 152,064), 32,768 tokens" in out
        assert "task vector (online merging)" in out and "FSDP2 sharded states" in out
    assert "no weight files" in out and "data/seeds/gsm8k_train.jsonl is missing" in out
    assert "trl vllm-serve --model" in out
    assert "serving 'checkpoints/Qwen2.5-72B-Instruct'" in out  # the pipeline's generator override reached the stage
    assert '--generator \'{"backend": "openai"' in out
    assert "nothing was loaded or started" in out
    assert not run_dir.exists()  # nothing written


def test_dry_run_reports_a_plan_that_does_not_fit(qwen7b_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc = qwenpost(["pipeline", "--config", "configs/pipeline/qwen2.5-7b.yaml", "--base_checkpoint", str(qwen7b_dir),
                   "--run_dir", str(tmp_path / "run"), "--dry_run", "true", "--gpu_memory_gib", "24"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 1 and "DOES NOT FIT" in out and "to fit:" in out


def test_dry_run_stops_on_a_wrong_key_or_path(qwen7b_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    common = ["pipeline", "--config", "configs/pipeline/qwen2.5-7b.yaml", "--run_dir", str(tmp_path / "r"),
              "--dry_run", "true"]  # fmt: skip
    assert qwenpost([*common, "--base_checkpoint", str(qwen7b_dir), "--stage_overrides",
                     '{"dpo": {"learning_rte": 1e-6}}']) == 2  # fmt: skip
    assert "learning_rte" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text((qwen7b_dir / "config.json").read_text())
    assert qwenpost([*common, "--base_checkpoint", str(empty)]) == 2
    assert "has no tokenizer" in capsys.readouterr().err
    assert qwenpost([*common, "--base_checkpoint", str(qwen7b_dir), "--stage_accelerate_configs",
                     '{"dpo": "configs/accelerate/nope.yaml"}']) == 2  # fmt: skip
    assert "stage_accelerate_configs.dpo: configs/accelerate/nope.yaml not found" in capsys.readouterr().err


def test_plan_command(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rc = qwenpost(["plan", "--config", "configs/sft/qwen2.5-7b.yaml", "--accelerate_config",
                   "configs/accelerate/zero3.yaml", "--gpus", "8", "--gpu_memory", "80"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "ZeRO-3 model states" in out and "fits" in out  # the architecture: configs/model/qwen2.5-7b
    rc = qwenpost(["plan", "--config", "configs/sft/qwen2.5-7b.yaml", "--gpus", "8"])  # DDP: full copies
    out = capsys.readouterr().out
    assert rc == 1 and "DOES NOT FIT" in out and "zero3.yaml" in out
    assert qwenpost(["plan", "--config", "configs/sft/missing.yaml"]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_tiny_dry_run_plans_the_base_it_would_make(tmp_path, capsys, monkeypatch):
    """No base checkpoint: the plans use the base `qwen25 init` would make, the tiny preset with the tokenizer's
    vocabulary: 2,048 regular tokens + 22 Qwen2.5 control tokens = 2,070, padded up to a multiple of 64: 2,112."""
    monkeypatch.chdir(ROOT)
    rc = qwenpost(["pipeline", "--config", "configs/pipeline/tiny.yaml", "--run_dir", str(tmp_path / "run"),
                   "--dry_run", "true"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "=== base ===" in out and not (tmp_path / "run").exists()
    assert out.count("(4 layers, hidden 256, vocabulary 2,112)") == 4
