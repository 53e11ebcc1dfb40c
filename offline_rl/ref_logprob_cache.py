"""DPO reference log-probs computed once and kept on disk, reused by every run of a sweep that shares them.

TRL's DPOTrainer already has `precompute_ref_log_probs`: one reference pass in `__init__`, results added to the
dataset as `ref_chosen_logps` / `ref_rejected_logps`, and the reference model never loaded for training. It even
caches them, as an Arrow file next to the dataset's own files, named by a hash of (tokenized dataset fingerprint,
hash of the reference weights in memory). Why we key our own cache instead of relying on that one:
- it keys the wrong things. `max_length` truncates in the collator, after tokenization. With
  `truncation_mode: keep_end` nothing in the fingerprint sees it, so a run with another `max_length` would silently
  read the first run's values; so would a change of `ld_alpha`, of precision (bf16 autocast) or of the
  TRL/transformers/torch version. With the default `keep_start`, the fingerprint goes through TRL's filter whose
  closure holds the whole config (checked with `datasets`' Hasher: changing `beta` changes it), so a beta sweep
  never reuses anything;
- a model loaded under DeepSpeed ZeRO-3's `zero.Init` holds empty parameter partitions, whose hash need not tell
  checkpoints apart;
- nothing checks that a file found is whole and belongs to the dataset it is joined to.

So `CachedRefLogpsDPOTrainer` changes one method, `_precompute_ref_logps`: it looks up
`<ref_logprob_cache_dir>/<key>.safetensors`, where `key` hashes
- the reference checkpoint: sha256 of the *content* of config.json and every weight file. Not the safetensors
  header + sizes + mtimes: two checkpoints of one architecture have identical headers and sizes (they differ only in
  values), and mtimes are copied by `cp -p`/`rsync -a`, so a retrained checkpoint written over the old one, or a
  copy of another, could collide. Hashing 15 GB (7B, bf16) takes tens of seconds, so the digest of each file is
  memoized in `<cache_dir>/file_digests.json` under (real path, inode, size, mtime_ns, ctime_ns): the ctime cannot
  be set from user space, so a file rewritten in place is re-hashed;
- the data: sha256 of the tokenized `prompt_ids`/`chosen_ids`/`rejected_ids` in order (what the model actually sees,
  after the chat template), plus the tokenizer (its serialized vocabulary/merges and chat template);
- the settings that change the numbers: max_length, truncation_mode, ld_alpha, bf16/fp16, the model's dtype and
  attention implementation, and the TRL/transformers/torch versions.
The file holds both tensors (float32, one value per row) and, in its metadata, the key, the row count and a sha256
of the tensor bytes; anything that does not match (truncated file, other key, other length, bad checksum) is
reported and recomputed, never used. It is written to a temporary name and renamed. On a miss the reference pass is
TRL's own per-batch `compute_ref_log_probs`, run here (not through TRL's method) so TRL's weaker cache is never read.
With several processes rank 0 computes the key, every rank reads a hit, and rank 0 writes a miss.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from accelerate.utils import broadcast_object_list
from datasets import Dataset, concatenate_datasets
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from trl import DPOTrainer

from stagekit.atomic import write_atomic

CACHE_FORMAT = "1"
WEIGHT_PATTERNS = ("config.json", "*.safetensors", "*.bin", "*.pt")
TOKEN_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


def file_digest(path: Path, memo: dict) -> str:
    """sha256 of a file's bytes, memoized in `memo` under its (real path, inode, size, mtime_ns, ctime_ns)."""
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"
    if ident not in memo:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                h.update(chunk)
        memo[ident] = h.hexdigest()
    return memo[ident]


def checkpoint_digest(model_dir: str | Path, memo_path: Path | None = None) -> str:
    """Content hash of a checkpoint: config.json and its weight files, by name and bytes."""
    model_dir = Path(model_dir)
    files = sorted({f for pattern in WEIGHT_PATTERNS for f in model_dir.glob(pattern) if f.is_file()})
    if not any(f.name != "config.json" for f in files):
        raise FileNotFoundError(f"{model_dir}: no weight files ({', '.join(WEIGHT_PATTERNS[1:])})")
    memo = {}
    if memo_path is not None and memo_path.is_file():
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}  # a damaged memo only costs re-hashing
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}\0{file_digest(f, memo)}\0".encode())
    if memo_path is not None:
        write_atomic(memo_path, json.dumps(memo, indent=1, sort_keys=True), durable=True)
    return h.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """Hash of what decides tokenization: the fast tokenizer's serialized state and the chat template."""
    tok = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps its tokenizer
    backend = getattr(tok, "backend_tokenizer", None)
    state = backend.to_str() if backend is not None else json.dumps(tok.get_vocab(), sort_keys=True)
    h = hashlib.sha256(state.encode())
    h.update(str(getattr(tok, "chat_template", None)).encode())
    return h.hexdigest()


def dataset_digest(dataset: Dataset, batch_rows: int = 4096) -> str:
    """sha256 of the tokenized rows, in order: per batch of rows, each column's row lengths and token ids.

    Read batch by batch (Arrow, respecting an indices mapping) so 150,000 long pairs never sit in memory at once.
    """
    h = hashlib.sha256(f"rows={len(dataset)}".encode())
    for batch in dataset.select_columns(list(TOKEN_COLUMNS)).with_format("arrow").iter(batch_size=batch_rows):
        for name in TOKEN_COLUMNS:
            column = batch.column(name).combine_chunks()
            h.update(name.encode())
            h.update(column.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64).tobytes())
            h.update(column.flatten().to_numpy(zero_copy_only=False).astype(np.int64).tobytes())
    return h.hexdigest()


def cache_key(components: dict) -> str:
    return hashlib.sha256(json.dumps(components, sort_keys=True).encode()).hexdigest()


def _tensor_checksum(chosen: torch.Tensor, rejected: torch.Tensor) -> str:
    return hashlib.sha256(chosen.numpy().tobytes() + rejected.numpy().tobytes()).hexdigest()


def save_ref_logps(path: Path, key: str, chosen: torch.Tensor, rejected: torch.Tensor) -> None:
    """Write the two (rows,) float32 tensors with key, row count and checksum in the metadata; atomically."""
    from safetensors.torch import save

    chosen, rejected = chosen.float().contiguous().cpu(), rejected.float().contiguous().cpu()
    meta = {
        "format": CACHE_FORMAT,
        "key": key,
        "rows": str(len(chosen)),
        "sha256": _tensor_checksum(chosen, rejected),
    }
    data = save({"ref_chosen_logps": chosen, "ref_rejected_logps": rejected}, metadata=meta)
    write_atomic(path, data, durable=True)


def load_ref_logps(path: Path, key: str, rows: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached tensors if `path` is a whole cache file for `key` with `rows` rows, else None (with the reason)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            chosen, rejected = f.get_tensor("ref_chosen_logps"), f.get_tensor("ref_rejected_logps")
    except Exception as e:  # truncated or overwritten file: safetensors raises its own error types
        problem = f"unreadable ({type(e).__name__}: {e})"
    else:
        expected_shape = (rows,)
        if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
            problem = "written for another key or format"
        elif meta.get("rows") != str(rows) or chosen.shape != expected_shape or rejected.shape != expected_shape:
            problem = f"holds {tuple(chosen.shape)}/{tuple(rejected.shape)} values for {rows} rows"
        elif chosen.dtype != torch.float32 or rejected.dtype != torch.float32:
            problem = f"has dtype {chosen.dtype}/{rejected.dtype}"
        elif meta.get("sha256") != _tensor_checksum(chosen, rejected):
            problem = "fails its checksum"
        else:
            return chosen, rejected
    print(f"[ref-logprob cache] {path} {problem}: recomputing", flush=True)
    return None


class CachedRefLogpsDPOTrainer(DPOTrainer):
    """DPOTrainer whose precomputed reference log-probs go through a content-keyed disk cache (one method changed).

    `ref_checkpoint`: the directory the reference weights come from (the SFT checkpoint); `ref_logprob_cache_dir`:
    where cache files live. Requires `precompute_ref_log_probs=True` in the args.
    """

    def __init__(self, *args, ref_checkpoint: str | Path, ref_logprob_cache_dir: str | Path, **kwargs):
        # set before DPOTrainer.__init__, which runs the precompute
        self.ref_checkpoint = Path(ref_checkpoint)
        self.ref_logprob_cache_dir = Path(ref_logprob_cache_dir)
        self._ref_checkpoint_digest = None
        self.ref_logprob_cache_events: list[tuple[str, str]] = []  # (dataset name, "hit" | "miss")
        super().__init__(*args, **kwargs)

    def ref_logprob_cache_components(self, dataset: Dataset) -> dict:
        """Everything the reference log-probs of `dataset` depend on (see the module docstring)."""
        import transformers
        import trl

        if self._ref_checkpoint_digest is None:
            memo = self.ref_logprob_cache_dir / "file_digests.json"
            self._ref_checkpoint_digest = checkpoint_digest(self.ref_checkpoint, memo)
        model = self.ref_model or self.model
        args = self.args
        return {
            "format": CACHE_FORMAT,
            "reference": self._ref_checkpoint_digest,
            "data": dataset_digest(dataset),
            "tokenizer": tokenizer_digest(self.processing_class),
            "settings": {
                "max_length": args.max_length,
                "truncation_mode": args.truncation_mode,
                "ld_alpha": args.ld_alpha,
                "bf16": bool(args.bf16),
                "fp16": bool(args.fp16),
                "dtype": str(getattr(model, "dtype", None)),
                "attn_implementation": getattr(getattr(model, "config", None), "_attn_implementation", None),
            },
            "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__},
        }

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        key = [cache_key(self.ref_logprob_cache_components(dataset)) if self.accelerator.is_main_process else None]
        broadcast_object_list(key, from_process=0)
        path = self.ref_logprob_cache_dir / f"{key[0]}.safetensors"
        cached = load_ref_logps(path, key[0], len(dataset))
        self.ref_logprob_cache_events.append((name, "hit" if cached is not None else "miss"))
        if cached is None:
            cached = self._reference_pass(dataset, name, batch_size)
            if self.accelerator.is_main_process:
                save_ref_logps(path, key[0], *cached)
            self.accelerator.wait_for_everyone()
        chosen, rejected = cached
        columns = Dataset.from_dict(
            {"ref_chosen_logps": chosen.float().numpy(), "ref_rejected_logps": rejected.float().numpy()}
        )
        return concatenate_datasets([dataset, columns], axis=1)

    @torch.no_grad()
    def _reference_pass(self, dataset: Dataset, name: str, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows,) chosen and rejected reference log-probs, in dataset order, by TRL's `compute_ref_log_probs`."""
        from trl.models import prepare_deepspeed

        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            shuffle=False,
        )
        loader = self.accelerator.prepare(loader)
        if self.ref_model is None and self.is_deepspeed_enabled:  # as TRL: the policy is not placed yet
            if self._precompute_engine is None:
                self._precompute_engine = prepare_deepspeed(self.model, self.accelerator)
            model = self._precompute_engine
        else:
            model = self.ref_model or self.model
        chosen, rejected = [], []
        for batch in tqdm(loader, desc=f"Reference log-probs ({name})", disable=not self.accelerator.is_main_process):
            c, r = self.compute_ref_log_probs(model, batch)
            c, r = self.accelerator.gather_for_metrics((c, r))
            chosen.append(c.float().cpu())
            rejected.append(r.float().cpu())
        return torch.cat(chosen), torch.cat(rejected)
