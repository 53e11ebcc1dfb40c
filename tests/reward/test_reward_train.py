"""`python -m reward train`: a 2-step run on the micro model, and the config errors it must give."""

import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from reward.train import PREFERENCE_COLUMNS, RewardTrainConfig, load_preference_dataset, main
from stagekit.config import ConfigError

pytestmark = pytest.mark.e2e


def test_two_step_run_trains_saves_and_reports(trained_rm, micro_base):
    out, summary = trained_rm
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) and 0 < x < 5 for x in losses)
    final = [r for r in records if "eval_accuracy" in r]
    assert len(final) == 1 and 0.0 <= final[0]["eval_accuracy"] <= 1.0
    assert summary["eval_accuracy"] == final[0]["eval_accuracy"]
    assert summary["train_pairs"] == 32 + 8 and summary["eval_pairs"] == 8 + 4  # builders' pairs + local file
    # per category and criterion, from the reloaded checkpoint; overall it matches the trainer's own accuracy
    assert summary["eval_pairwise_accuracy"] == pytest.approx(summary["eval_accuracy"])
    assert {k: v["pairs"] for k, v in summary["eval_by_category"].items()} == {"local-math": 4, "math": 8}
    assert {k: v["pairs"] for k, v in summary["eval_by_criterion"].items()} == {
        "helpfulness": 2, "truthfulness": 2, "unlabelled": 8
    }  # fmt: skip
    by_category = summary["eval_by_category"]
    assert summary["eval_pairwise_accuracy"] == pytest.approx(
        (by_category["math"]["accuracy"] * 8 + by_category["local-math"]["accuracy"] * 4) / 12
    )
    assert json.loads((out / "summary.json").read_text())["eval_accuracy"] == summary["eval_accuracy"]
    assert not (out / ".final.tmp").exists()

    base = load_file(micro_base / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(base[key], trained[key])  # the backbone moved, not only the new head
    assert trained["score.weight"].shape == (1, 64)


def test_checkpoint_loads_in_plain_transformers_with_tokenizer(trained_rm):
    from transformers import AutoTokenizer

    out, _ = trained_rm
    model = AutoModelForSequenceClassification.from_pretrained(out)  # default attention, no qwen25 involved
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config._attn_implementation != "qwen25"
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    assert tokenizer.chat_template is not None
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}], return_dict=True
    )["input_ids"]
    with torch.no_grad():
        logit = model(input_ids=torch.tensor([ids])).logits
    assert logit.shape == (1, 1) and torch.isfinite(logit).all()


def test_preference_dataset_keeps_only_the_trainer_columns(preference_data):
    config = RewardTrainConfig(
        output_dir="unused",
        dataset_path=str(preference_data / "preference"),
        use_cpu=True,
        activation_checkpointing=False,
    )
    dataset = load_preference_dataset(config, "dataset_path")
    assert dataset.column_names == PREFERENCE_COLUMNS and len(dataset) == 32


def test_missing_dataset_is_refused_naming_the_key_before_loading_a_model(micro_base, tmp_path, reward_train_argv):
    argv = reward_train_argv(micro_base, tmp_path, tmp_path / "out")  # tmp_path has no preference/ inside
    with pytest.raises(ConfigError, match=r"dataset_path: .*preference does not exist"):
        main(argv)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_unknown_key_is_refused(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("output_dir: x\nuse_cpu: true\nactivation_checkpointing: false\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        main(["--config", str(config)])


def test_cli_without_a_subcommand_prints_usage_and_exits_2():
    proc = subprocess.run([sys.executable, "-m", "reward", "fit"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "expected subcommand 'train', 'serve' or 'eval', got 'fit'" in proc.stderr


def test_resume_from_last_checkpoint_reproduces_the_losses(micro_base, preference_data, tmp_path, reward_train_argv):
    steps = ["--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2", "--eval_dataset_path", ""]

    def losses(out):
        lines = (out / "metrics.jsonl").read_text().splitlines()
        return {r["step"]: r["loss"] for r in map(json.loads, lines) if "loss" in r}

    full = tmp_path / "full"
    main(reward_train_argv(micro_base, preference_data, full, *steps))
    killed = tmp_path / "killed"  # a run that died after its step-2 checkpoint
    killed.mkdir()
    shutil.copytree(full / "checkpoint-2", killed / "checkpoint-2")
    main(reward_train_argv(micro_base, preference_data, killed, *steps, "--resume_from_checkpoint", "last"))
    assert sorted(losses(killed)) == [3, 4]
    assert losses(killed) == pytest.approx({step: losses(full)[step] for step in (3, 4)}, abs=1e-6)


def test_per_criterion_run_trains_on_that_criterion_only(micro_base, preference_data, tmp_path, reward_train_argv):
    """`criterion: helpfulness` keeps the 4 helpfulness rows of the local file (the builders' pairs carry no label)
    and evaluates on the held-out helpfulness pairs; a JSONL file alone is enough to train on."""
    argv = reward_train_argv(micro_base, preference_data, tmp_path / "out", "--max_steps", "1")
    argv += ["--dataset_path", "", "--preference_files", str(preference_data / "local_train.jsonl")]
    argv += ["--eval_preference_files", str(preference_data / "local_eval.jsonl"), "--criterion", "helpfulness"]
    summary = main(argv)
    assert summary["criterion"] == "helpfulness" and summary["train_pairs"] == 4
    assert summary["eval_pairs"] == 2  # the builders' held-out pairs carry no criterion: only the file's 2 count
    assert set(summary["eval_by_criterion"]) == {"helpfulness"}
    with pytest.raises(ConfigError, match="criterion: no dataset row is labelled 'harmlessness'"):
        main([*argv[:-1], "harmlessness"])


def test_a_malformed_preference_file_is_refused_naming_file_and_line(micro_base, preference_data, tmp_path,
                                                                      reward_train_argv):  # fmt: skip
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "a", "chosen": "b", "rejected": "c"}) + "\n" + '{"prompt": "a"}\n')
    argv = reward_train_argv(micro_base, preference_data, tmp_path / "out", "--preference_files", str(bad))
    with pytest.raises(ConfigError, match=r"bad.jsonl:2: missing key\(s\) \['chosen', 'rejected'\]"):
        main(argv)
