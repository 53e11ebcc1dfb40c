"""Reward-guided rejection sampling through the real reward service: the scaled engine builds math rows with
`guidance` pointing at a uvicorn serving the micro reward model; the records carry the service's own scores and
the hard negatives differ from the answer-only build's."""

import json
import re

import pytest

from data_builders.builders import build_areas
from data_builders.config import DataConfig
from data_builders.engine import build_scaled
from reward.app import create_app
from reward.client import RewardClient
from reward.config import ServeConfig

ZERO = {f"{split}_size": 0 for split in ("sft", "preference", "preference_eval", "rl_queries", "heldout")}
AREAS = {"math": {"procedural": 48, "k": 5, "max_operand": 20, "splits": {"sft": 0.5, "preference": 0.5}}}
SCORES = re.compile(r"\[reward model: chosen (-?\d+\.\d+), rejected (-?\d+\.\d+)\]$")


def _read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.e2e  # trains the micro RM (session fixture), serves it, builds through it
def test_a_guided_build_keeps_the_services_scores_and_picks_hard_negatives(tmp_path, trained_rm, rm_scorer,
                                                                            live_server):
    config = ServeConfig(model_path=str(trained_rm[0]), max_batch_size=64, max_wait_ms=20, max_length=256)
    with live_server(create_app(config, rm_scorer)) as url:
        guided = DataConfig(output_dir=str(tmp_path / "guided"), **ZERO, areas=AREAS, engine={"chunk": 16},
                            guidance={"url": url, "areas": ["math"]})
        build_scaled(guided, progress=False)
        plain = DataConfig(output_dir=str(tmp_path / "plain"), **ZERO, areas=AREAS, engine={"chunk": 16})
        build_scaled(plain, progress=False)
        pairs = _read(tmp_path / "guided" / "preference.jsonl")
        assert pairs and all(SCORES.search(p["reason"]) for p in pairs)
        client = RewardClient(url)
        again = client.score([{"prompt": p["prompt"], "response": p["rejected"][0]["content"], "reference": None}
                              for p in pairs])
        for pair, result in zip(pairs, again, strict=True):  # the record holds what the service says
            assert float(SCORES.search(pair["reason"]).group(2)) == pytest.approx(result["reward"], abs=2e-4)
        sft = _read(tmp_path / "guided" / "sft.jsonl")
        assert sft and all("reward_model" in json.loads(r["verification"]["details"]) for r in sft)
        # the in-memory builder (no engine) is guided the same way
        in_memory = DataConfig(output_dir=str(tmp_path / "mem"), **ZERO, areas=AREAS,
                               guidance={"url": url, "areas": ["math"]})
        rows, _ = build_areas(in_memory, progress=False)
        assert rows["sft"] and all("reward_model" in json.loads(r["verification"]["details"]) for r in rows["sft"])
        assert all(SCORES.search(p["reason"]) for p in rows["preference"])
    plain_pairs = {p["id"]: p["rejected"][0]["content"] for p in _read(tmp_path / "plain" / "preference.jsonl")}
    changed = sum(plain_pairs.get(p["id"]) not in (None, p["rejected"][0]["content"]) for p in pairs)
    assert changed > 0  # the hard negative is not simply the first failing candidate
