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


def check_lora_run(base_dir, out, model_cls, *, r: int, **load_kwargs) -> dict:
    """What every LoRA stage run must leave (stagekit/lora.py): a plain-PEFT adapter in <out>/adapter that trained
    (some lora_B moved off zero) and, in <out>, a merged checkpoint computing the same function as base + adapter
    loaded by plain PEFT (and not the base's). `load_kwargs` go to the base's from_pretrained (a reward model's
    num_labels=1). Returns the adapter's tensors."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    adapter = out / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == r and config["peft_type"] == "LORA"
    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in tensors.items())  # B starts at zero: it trained
    assert not any(k.endswith(("q_proj.weight", "embed_tokens.weight")) for k in tensors)  # no base weights in it

    ids = torch.tensor([[3, 17, 41, 5, 99, 12, 7, 64]])
    torch.manual_seed(0)
    base = model_cls.from_pretrained(base_dir, attn_implementation="sdpa", **load_kwargs).eval()
    with torch.no_grad():
        base_logits = base(input_ids=ids).logits
        peft_logits = PeftModel.from_pretrained(base, adapter).eval()(input_ids=ids).logits
        merged = model_cls.from_pretrained(out, attn_implementation="sdpa").eval()
        merged_logits = merged(input_ids=ids).logits
    # the merged checkpoint is the trained model (W + scale * B A); plain PEFT on the base computes the same function
    torch.testing.assert_close(peft_logits, merged_logits, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(peft_logits, base_logits, atol=1e-4)
    return tensors


def assert_same_grads(got: dict, want: dict, **tol) -> float:
    """Every parameter's gradient in `got` equals `want`'s within `tol` (torch.testing); the worst relative
    difference. The packed-vs-padded tests of GRPO and DPO share it."""
    import torch

    assert got.keys() == want.keys() and len(got) > 10
    worst = 0.0
    for name, grad in want.items():
        torch.testing.assert_close(got[name], grad, **tol, msg=lambda m, name=name: f"{name}: {m}")
        worst = max(worst, ((got[name] - grad).abs().max() / grad.abs().max().clamp(min=1e-12)).item())
    return worst


@pytest.fixture(scope="session")
def same_grads():
    """`assert_same_grads` as a fixture."""
    return assert_same_grads


@pytest.fixture(scope="session")
def lora_checks():
    """`check_lora_run` as a fixture, for the LoRA tests of every stage."""
    return check_lora_run
