"""The Online Merging Optimizer under FSDP2: 2 CPU processes on gloo end with the weights of one unsharded process
after 5 steps (fp32, 1e-6), for OnDARE, OnTIES (its k-th largest magnitude gathered across ranks), L1 rescaling (an
all-reduce) and real data parallelism (each rank its own rows, gradients averaged by FSDP2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from offline_rl.online_merging import _mix32, stream_key, uniform_for

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("sharded_om_worker.py")


def test_counter_based_draw_is_shard_invariant_and_uniform():
    key = stream_key(3, 5, 7)
    whole = uniform_for(key, 0, 10_000)
    # any shard draws exactly its slice of the whole draw, wherever it starts
    for lo, hi in ((0, 3_333), (3_333, 10_000), (4_999, 5_001)):
        torch.testing.assert_close(uniform_for(key, lo, hi - lo), whole[lo:hi], rtol=0, atol=0)
    assert 0.0 <= whole.min() and whole.max() < 1.0
    assert abs(whole.mean().item() - 0.5) < 0.01  # sd of the mean: 0.0029
    assert abs((whole < 0.3).float().mean().item() - 0.3) < 0.015  # binomial sd 0.0046
    assert not torch.equal(uniform_for(stream_key(3, 5, 8), 0, 100), whole[:100])  # the next step draws afresh
    # entries past 2^32 (tensors of the 72B's size) still get their own draws
    far = uniform_for(key, 2**32 - 2, 4)
    assert len(set(far.tolist())) == 4


def test_mix32_matches_the_reference_integer_hash():
    """lowbias32 in plain Python integers (Chris Wellons' published constants) against our overflow-free torch
    version, on edge values and random 32-bit integers."""

    def lowbias32(x: int) -> int:
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    values = [0, 1, 2, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
    values += torch.randint(0, 2**32, (200,), generator=torch.Generator().manual_seed(0), dtype=torch.int64).tolist()
    got = _mix32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [lowbias32(v) for v in values]
    assert lowbias32(1) != lowbias32(2)


@pytest.mark.e2e
def test_fsdp2_two_processes_match_one_unsharded_process(tmp_path):
    sys.path.insert(0, str(WORKER.parent))
    import sharded_om_worker as worker

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "MASTER_ADDR": "127.0.0.1"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(worker.WORLD),
         str(WORKER), str(tmp_path)],
        check=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    moved = 0
    for case in worker.CASES:
        sharded = torch.load(tmp_path / f"{case}.pt")
        whole = worker.train(case, tmp_path / f"base_ref_{case}", shard=False)
        assert sharded.keys() == whole.keys()
        for name, w in whole.items():
            torch.testing.assert_close(sharded[name], w, rtol=0, atol=1e-6, msg=f"{case}: {name}")
        start = worker.build(tmp_path / "scratch")
        moved += sum(not torch.allclose(p, whole[n], atol=1e-4) for n, p in start.named_parameters())
    assert moved > 20  # the runs trained: most tensors moved well past the tolerance
