"""Small record datasets in the DESIGN.md schema (SFT, preference, RL-query rows), made by hand for stage tests."""

from __future__ import annotations

import json

import pytest
from datasets import Dataset


def _problem(a: int, b: int) -> tuple[list[dict], str, str]:
    prompt = [{"role": "user", "content": f"Sam has {a} apples and gets {b} more. How many apples does he have?"}]
    right = f"{a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."
    wrong = f"{a} + {b} = {a + b + 1}. The answer is \\boxed{{{a + b + 1}}}."
    return prompt, right, wrong


@pytest.fixture(scope="session")
def stage_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stage_data")
    sft, pref, rl = [], [], []
    for a in range(6):
        for b in range(6):
            prompt, right, wrong = _problem(a, b)
            sft.append({"messages": prompt + [{"role": "assistant", "content": right}]})
            pref.append(
                {
                    "prompt": prompt,
                    "chosen": [{"role": "assistant", "content": right}],
                    "rejected": [{"role": "assistant", "content": wrong}],
                }
            )
            rl.append({"prompt": prompt, "reference": json.dumps({"type": "math", "answer": str(a + b)})})
    paths = {}
    for name, rows in (("sft", sft), ("preference", pref), ("rl_queries", rl)):
        paths[name] = root / name
        Dataset.from_list(rows).save_to_disk(str(paths[name]))
    return paths
