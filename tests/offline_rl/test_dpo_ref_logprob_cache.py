"""The DPO reference log-prob cache: a second run reads it (no reference forward), its values equal a plain
transformers forward, every key component misses when changed, and a damaged file is recomputed, never used."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from offline_rl.config import DPOStageConfig
from offline_rl.ref_logprob_cache import (
    CachedRefLogpsDPOTrainer,
    checkpoint_digest,
    dataset_digest,
    load_ref_logps,
    save_ref_logps,
    tokenizer_digest,
)
from qwen25.model import load_model
from qwen25.tokenizer import load_tokenizer
from stagekit.stage_io import load_records

ROWS = 12  # of the 36 pairs: enough for several batches, cheap on a loaded CPU


@pytest.fixture()
def count_ref_forwards(monkeypatch):
    """Counts the reference forwards (TRL's per-batch `compute_ref_log_probs`) the trainer runs."""
    calls = []
    original = CachedRefLogpsDPOTrainer.compute_ref_log_probs

    def counted(self, model, inputs):
        calls.append(inputs["input_ids"].shape[0] // 2)  # rows in the batch (chosen + rejected halves)
        return original(self, model, inputs)

    monkeypatch.setattr(CachedRefLogpsDPOTrainer, "compute_ref_log_probs", counted)
    return calls


def _trainer(checkpoint, data, cache_dir, out, **overrides) -> CachedRefLogpsDPOTrainer:
    settings = {"max_length": 256, "per_device_train_batch_size": 12, **overrides}
    args = DPOStageConfig(
        output_dir=str(out), bf16=False, report_to="none", precompute_ref_log_probs=True, **settings
    )  # fmt: skip
    ds = load_records(data, key="dataset_path", columns=["prompt", "chosen", "rejected"]).select(range(ROWS))
    return CachedRefLogpsDPOTrainer(
        model=load_model(checkpoint), args=args, train_dataset=ds, processing_class=load_tokenizer(checkpoint),
        ref_checkpoint=checkpoint, ref_logprob_cache_dir=cache_dir,
    )  # fmt: skip


def _ref(trainer) -> torch.Tensor:
    ds = trainer.train_dataset
    return torch.stack([torch.tensor(ds["ref_chosen_logps"]), torch.tensor(ds["ref_rejected_logps"])])


def _plain_reference(checkpoint, trainer, max_length: int) -> torch.Tensor:
    """Sum of log p(completion token) under plain transformers (sdpa), row by row, truncated like the collator."""
    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="sdpa", dtype=torch.float32).eval()
    out = torch.zeros(2, len(trainer.train_dataset), dtype=torch.float64)
    for i, row in enumerate(trainer.train_dataset):
        for j, completion in enumerate((row["chosen_ids"], row["rejected_ids"])):
            ids = (row["prompt_ids"] + completion)[:max_length]  # keep_start truncation
            start = len(row["prompt_ids"])
            with torch.no_grad():
                logp = model(torch.tensor([ids])).logits[0].double().log_softmax(-1)  # (len, vocab)
            out[j, i] = sum(logp[t - 1, ids[t]] for t in range(start, len(ids)))
    return out


@pytest.fixture(scope="module")
def first_run(micro_base, stage_data, tmp_path_factory):
    """One run into an empty cache: (trainer, cache dir, reference forwards counted)."""
    calls = []
    original = CachedRefLogpsDPOTrainer.compute_ref_log_probs

    def counted(self, model, inputs):
        calls.append(inputs["input_ids"].shape[0] // 2)
        return original(self, model, inputs)

    root = tmp_path_factory.mktemp("ref_cache")
    CachedRefLogpsDPOTrainer.compute_ref_log_probs = counted
    try:
        trainer = _trainer(micro_base, stage_data["preference"], root / "cache", root / "a")
    finally:
        CachedRefLogpsDPOTrainer.compute_ref_log_probs = original
    return trainer, root / "cache", sum(calls)


def _copy_cache(first_run, tmp_path):
    shutil.copytree(first_run[1], tmp_path / "cache")
    return tmp_path / "cache"


@pytest.mark.e2e  # reference forward passes of the micro model
def test_second_run_reads_the_cache_and_equals_a_fresh_forward(
    micro_base, stage_data, tmp_path, first_run, count_ref_forwards
):
    first, cache, forwards = first_run
    rows = len(first.train_dataset)
    assert forwards == rows and first.ref_logprob_cache_events == [("train", "miss")]
    files = sorted(p.name for p in cache.iterdir())
    assert len(files) == 2 and "file_digests.json" in files  # one cache file + the checkpoint digest memo
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary file left behind

    second = _trainer(micro_base, stage_data["preference"], _copy_cache(first_run, tmp_path), tmp_path / "b")
    assert count_ref_forwards == [] and second.ref_logprob_cache_events == [("train", "hit")]
    torch.testing.assert_close(_ref(second), _ref(first), rtol=0, atol=0)
    # the values are the reference model's: equal to a plain transformers forward, row by row
    torch.testing.assert_close(_ref(second).double(), _plain_reference(micro_base, second, 256), rtol=0, atol=2e-4)


def test_changed_max_length_misses_and_truncates(micro_base, stage_data, tmp_path, first_run, count_ref_forwards):
    """max_length acts in the collator (TRL's own cache key misses it): here it is part of the key."""
    full = first_run[0]
    short_len = min(len(r["prompt_ids"]) for r in full.train_dataset) + 3  # 3 completion tokens survive
    cache = _copy_cache(first_run, tmp_path)
    short = _trainer(micro_base, stage_data["preference"], cache, tmp_path / "b", max_length=short_len)
    assert short.ref_logprob_cache_events == [("train", "miss")] and sum(count_ref_forwards) == len(full.train_dataset)
    assert not torch.allclose(_ref(short), _ref(full))
    torch.testing.assert_close(
        _ref(short).double(), _plain_reference(micro_base, short, short_len), rtol=0, atol=2e-4
    )


def test_every_key_component_changes_the_key(micro_base, tmp_path, first_run):
    trainer = first_run[0]
    base = trainer.ref_logprob_cache_components(trainer.train_dataset)

    # reference checkpoint: one weight changed in a copy (same file size, same safetensors header)
    other = tmp_path / "other_ckpt"
    shutil.copytree(micro_base, other)
    weights = load_file(str(other / "model.safetensors"))
    name = next(iter(weights))
    weights[name] = weights[name].clone()
    weights[name].view(-1)[0] += 1.0
    size = (other / "model.safetensors").stat().st_size
    save_file(weights, str(other / "model.safetensors"), metadata={"format": "pt"})
    assert (other / "model.safetensors").stat().st_size == size
    assert checkpoint_digest(other) != checkpoint_digest(micro_base) == base["reference"]

    # the same bytes rewritten in place with the old mtime restored: the memo re-hashes (ctime moved)
    path = other / "model.safetensors"
    before = checkpoint_digest(other, tmp_path / "memo.json")
    st = path.stat()
    weights[name].view(-1)[0] -= 1.0  # other values, same size
    time.sleep(0.01)
    save_file(weights, str(path), metadata={"format": "pt"})
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    assert checkpoint_digest(other, tmp_path / "memo.json") != before
    assert checkpoint_digest(other, tmp_path / "memo.json") == checkpoint_digest(other)  # = a hash without memo

    # data: one row dropped, or two rows swapped
    ds = trainer.train_dataset
    assert dataset_digest(ds.select(range(1, len(ds)))) != base["data"]
    assert dataset_digest(ds.select([1, 0, *range(2, len(ds))])) != base["data"]
    assert dataset_digest(ds) == base["data"]

    # tokenizer: another chat template
    tok = load_tokenizer(micro_base)
    assert tokenizer_digest(tok) == base["tokenizer"]
    tok.chat_template = tok.chat_template.replace("<|im_start|>", "<|im_start|> ")
    assert tokenizer_digest(tok) != base["tokenizer"]

    # settings that change the numbers
    for key, value in (("truncation_mode", "keep_end"), ("ld_alpha", 0.5)):
        old = getattr(trainer.args, key)
        setattr(trainer.args, key, value)
        try:
            assert trainer.ref_logprob_cache_components(ds)["settings"][key] == value
        finally:
            setattr(trainer.args, key, old)


@pytest.mark.e2e  # reference forward passes of the micro model
def test_damaged_cache_file_is_recomputed(micro_base, stage_data, tmp_path, first_run, count_ref_forwards):
    first = first_run[0]
    cache = _copy_cache(first_run, tmp_path)
    rows = len(first.train_dataset)
    (path,) = cache.glob("*.safetensors")
    good = path.read_bytes()
    key = path.stem
    damages = {
        "truncated": good[: len(good) // 2],  # a copy cut short (the writer itself renames whole files)
        "value flipped": None,  # a tensor value changed, metadata kept: the checksum catches it
    }
    for what, data in damages.items():
        if data is None:
            tensors = load_file(str(path))
            tensors["ref_chosen_logps"][3] += 1.0
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata()
            save_file(tensors, str(path), metadata=meta)
        else:
            path.write_bytes(data)
        count_ref_forwards.clear()
        again = _trainer(micro_base, stage_data["preference"], cache, tmp_path / "b")
        assert again.ref_logprob_cache_events == [("train", "miss")], what
        assert sum(count_ref_forwards) == rows, what
        torch.testing.assert_close(_ref(again), _ref(first), rtol=0, atol=0)
        rewritten = load_ref_logps(path, key, rows)  # rewritten whole: valid again, with the fresh values
        assert rewritten is not None, what
        torch.testing.assert_close(torch.stack(rewritten), _ref(first), rtol=0, atol=0)
    # a whole file for another dataset length or key is refused too
    chosen, rejected = load_ref_logps(path, key, rows)
    assert load_ref_logps(path, key, rows - 1) is None
    assert load_ref_logps(path, "0" * 64, rows) is None
    assert load_ref_logps(tmp_path / "missing.safetensors", key, rows) is None
    assert chosen.shape == rejected.shape == (rows,)


def test_cache_file_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "k.safetensors"
    save_ref_logps(path, "k", torch.arange(3.0), -torch.arange(3.0))
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_ref_logps(path, "k", torch.ones(3), torch.ones(3))
    assert path.read_bytes() == before  # the old file is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.safetensors"]  # no temporary left
