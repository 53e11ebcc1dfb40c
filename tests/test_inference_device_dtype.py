"""Every model loaded outside a trainer honours a device and dtype override, observed on the loaded model.

The paths: held-out evaluation (the pipeline's table), `qwenpost eval`'s suites, GRPO's scoring pass, the reward
model scorer behind the service and `reward eval`, and the data builders' HF generator. Each is run on the micro
checkpoint with `dtype: bfloat16` and `device: cpu` (this machine has no GPU; `stagekit.device`'s own tests cover
"auto" and the CUDA answers), and the model each one actually generated or scored with is inspected.
"""

from __future__ import annotations

import json

import pytest
import torch

SEEN: list[tuple[torch.device, torch.dtype]] = []


def _recording_generate(model, tokenizer, prompts, **kwargs):
    SEEN.append((model.device, model.dtype))
    n = len(prompts) * max(kwargs.get("samples", 0), 1)
    return ["The answer is \\boxed{1}."] * n


@pytest.fixture(autouse=True)
def _clear():
    SEEN.clear()


def test_heldout_evaluation(micro_base, monkeypatch):
    from evals import heldout

    monkeypatch.setattr(heldout, "generate", _recording_generate)
    rows = [{"prompt": [{"role": "user", "content": "1?"}], "reference": json.dumps({"type": "math", "answer": "1"})}]
    result = heldout.evaluate_checkpoint(micro_base, rows, device="cpu", dtype="bfloat16")
    assert SEEN == [(torch.device("cpu"), torch.bfloat16)] and result.accuracy == 1.0
    heldout.evaluate_checkpoint(micro_base, rows)  # auto on this machine: cpu, fp32
    assert SEEN[-1] == (torch.device("cpu"), torch.float32)


def test_qwenpost_eval_suite(micro_base, monkeypatch, tmp_path):
    from evals import suites

    monkeypatch.setattr(suites, "generate", _recording_generate)
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": "1?", "answer": "so #### 1"}) + "\n")
    code = suites.main(["--model", str(micro_base), "--suite", "gsm8k", "--data", str(data), "--out",
                        str(tmp_path), "--report_to", "none", "--device", "cpu", "--dtype", "bfloat16"])  # fmt: skip
    assert code == 0 and SEEN == [(torch.device("cpu"), torch.bfloat16)]


def test_qwenpost_eval_refuses_a_device_that_is_not_here(micro_base, capsys):
    from evals import suites

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    code = suites.main(["--model", str(micro_base), "--suite", "gsm8k", "--data", "x.jsonl", "--report_to", "none",
                        "--device", "cuda"])  # fmt: skip
    assert code == 2 and "no CUDA device" in capsys.readouterr().err


def test_grpo_scoring_pass(micro_base, stage_data, monkeypatch, tmp_path):
    from online_rl import ordering

    class Stop(Exception):
        pass

    def recording_sample(model, *args, **kwargs):
        SEEN.append((model.device, model.dtype))
        raise Stop  # the model is what this test is about; scoring needs a service

    monkeypatch.setattr(ordering, "connect", lambda cfg: None)
    monkeypatch.setattr(ordering, "sample_responses", recording_sample)
    with pytest.raises(Stop):
        ordering.main(["--config", "configs/grpo/tiny.yaml", "--model_name_or_path", str(micro_base),
                       "--dataset_path", str(stage_data["rl_queries"]), "--output_dir", str(tmp_path),
                       "--score_device", "cpu", "--score_dtype", "bfloat16"])  # fmt: skip
    assert SEEN == [(torch.device("cpu"), torch.bfloat16)]


def test_reward_model_scorer(micro_base):
    from reward.model_scorer import RewardModelScorer

    scorer = RewardModelScorer.from_pretrained(str(micro_base), device="cpu", dtype="bfloat16", max_length=64)
    assert (scorer.model.device, scorer.model.dtype) == (torch.device("cpu"), torch.bfloat16)
    scores = scorer([([{"role": "user", "content": "1?"}], "1")])
    assert len(scores) == 1 and isinstance(scores[0], float)


def test_reward_configs_refuse_a_bad_dtype():
    from reward.config import RewardEvalConfig, ServeConfig
    from stagekit.config import ConfigError

    with pytest.raises(ConfigError, match="dtype"):
        ServeConfig(weights={"rm": 0.0, "verifier": 1.0}, dtype="fp8")
    with pytest.raises(ConfigError, match="dtype"):
        RewardEvalConfig(model="x", dtype="int4")


def test_hf_generator(micro_base):
    from data_builders.generators import HFGenerator

    gen = HFGenerator(str(micro_base), device="cpu", dtype="bfloat16", max_new_tokens=2, batch_size=2)
    assert (gen.model.device, gen.model.dtype) == (torch.device("cpu"), torch.bfloat16)
