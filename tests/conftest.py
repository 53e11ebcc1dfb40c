"""Shared fixtures: a micro Qwen2.5-architecture base checkpoint built offline (random weights), and small record
datasets in the DESIGN.md schema (SFT, preference, RL-query rows) made by hand for the stage tests."""

from __future__ import annotations

import json
import os

if "TRITON_INTERPRET" not in os.environ:
    import torch

    # without CUDA, Triton kernels run on CPU tensors in the interpreter, which must be chosen before triton loads
    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

import pytest
from datasets import Dataset

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# hidden 64, 2 layers, GQA 4/2, head_dim 16: the architecture of Qwen2.5 at a size tests run in seconds
MICRO_OVERRIDES = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 512,
}


def micro_corpus() -> list[str]:
    texts = []
    for a in range(10):
        for b in range(10):
            total = a + b
            texts.append(f"Sam has {a} apples and gets {b} more, so {a} + {b} = {total}. "
                         f"The answer is \\boxed{{{total}}}.")
            texts.append(f"Mia had {total} pens and gave away {b}, so {total} - {b} = {a}. "
                         f"The answer is \\boxed{{{a}}}.")
    return texts


@pytest.fixture(scope="session")
def micro_base(tmp_path_factory):
    """Path of a base checkpoint (tokenizer + random-init micro model), built once per session."""
    from qwen25.init import init_base_checkpoint

    out = tmp_path_factory.mktemp("micro") / "base"
    return init_base_checkpoint(
        out, model_config="tiny", corpus=micro_corpus(), tokenizer_vocab_size=400, seed=0, overrides=MICRO_OVERRIDES
    )


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
