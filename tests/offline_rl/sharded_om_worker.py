"""Worker for tests/offline_rl/test_online_merging_sharded.py: trains a small Qwen2-architecture model a few steps
with the Online Merging Optimizer, unsharded (`train(..., shard=False)`, called in the test's own process) or under
FSDP2 (`python -m torch.distributed.run --nproc_per_node 2 tests/offline_rl/sharded_om_worker.py OUT_DIR`, gloo).

Odd sizes on purpose: hidden 24 over 2 ranks, 3 KV heads' projections of 3 x 8 = 24 rows, a vocabulary of 37 rows
(uneven shards), and a norm weight of 24 entries. The base checkpoint is written to safetensors, so the task vector
is read shard by shard through safetensors' row slices, as in the DPO stage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM

from offline_rl.online_merging import OnlineMergingAdamW, reference_deltas

CASES = {  # name: (optimizer settings, whether every rank sees the same batch)
    "ondare_same_batch": ({"variant": "ondare", "reserve_p": 0.3, "alpha": 0.1}, True),
    "onties_same_batch": ({"variant": "onties", "reserve_p": 0.3, "alpha": 0.1}, True),
    "onties_rescale_same_batch": ({"variant": "onties", "reserve_p": 0.2, "alpha": 0.1, "rescale": True}, True),
    "ondare_data_parallel": ({"variant": "ondare", "reserve_p": 0.5, "alpha": 0.05, "rescale": True}, False),
}
STEPS, WORLD, ROWS, LENGTH = 5, 2, 2, 12
# Adam's eps well above the smallest gradients: with eps ~ 0 the first step's |delta| = lr * |g| / (|g| + eps) is lr
# for almost every entry, so OnTIES' k-th largest magnitude would be decided by 1e-9 rounding (the 2 processes run
# 1 thread, the test 2, so their matmuls round differently) and one flipped entry moves the weights by lr


def build(base_dir: Path) -> Qwen2ForCausalLM:
    """The 'SFT' model (seeded init) and, in base_dir, its 'base' (the same weights minus seeded noise)."""
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=37, hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=3,
        num_key_value_heads=1, head_dim=8, max_position_embeddings=64, tie_word_embeddings=False,
    )  # fmt: skip
    config._attn_implementation = "eager"
    model = Qwen2ForCausalLM(config).float()
    gen = torch.Generator().manual_seed(1)
    base = {n: (p.detach() - 0.02 * torch.randn(p.shape, generator=gen)).contiguous()
            for n, p in model.named_parameters()}  # fmt: skip
    base_dir.mkdir(parents=True, exist_ok=True)
    if not dist.is_initialized() or dist.get_rank() == 0:
        save_file(base, str(base_dir / "model.safetensors"), metadata={"format": "pt"})
    return model


def batches(rank: int, same_batch: bool) -> list[torch.Tensor]:
    """Each step's token rows for `rank` (rank -1: the unsharded run, which sees every rank's rows at once)."""
    gen = torch.Generator().manual_seed(7)
    steps = [torch.randint(0, 37, (WORLD, ROWS, LENGTH), generator=gen) for _ in range(STEPS)]
    if same_batch:
        return [s[0] for s in steps]
    return [s.reshape(WORLD * ROWS, LENGTH) if rank < 0 else s[rank] for s in steps]


def train(case: str, base_dir: Path, *, shard: bool) -> dict[str, torch.Tensor]:
    settings, same_batch = CASES[case]
    model = build(base_dir)
    if shard:
        from torch.distributed.fsdp import fully_shard

        dist.barrier()  # rank 0 has written the base checkpoint
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    rank = dist.get_rank() if shard else -1
    optimizer = OnlineMergingAdamW(
        list(model.parameters()), ref_deltas=reference_deltas(model, base_dir), lr=1e-2, weight_decay=0.01,
        eps=1e-3, seed=3, **settings,
    )  # fmt: skip
    for rows in batches(rank, same_batch):
        loss = model(input_ids=rows, labels=rows).loss  # mean over tokens; FSDP2 averages it over ranks
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return {n: (p.full_tensor() if shard else p).detach().clone() for n, p in model.named_parameters()}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    dist.init_process_group("gloo")
    for name in CASES:
        weights = train(name, out / f"base_{name}", shard=True)
        if dist.get_rank() == 0:
            torch.save(weights, out / f"{name}.pt")
    dist.destroy_process_group()
