"""Writing built splits to disk: one `datasets` directory per split, optional JSONL, and a manifest.

The whole output directory is written under a temporary name beside it and renamed into place at the end, so a
crash never leaves half-written output and the manifest always describes the splits next to it.

    <output_dir>/<split>/           Dataset.save_to_disk; load with datasets.load_from_disk
    <output_dir>/<split>.jsonl      with jsonl=True, one record per line
    <output_dir>/manifest.json      config, row counts and sha256 of each split's rows
    <output_dir>/<name>             `extra_files`, e.g. mixture.png (the mixture's token-length histograms)
"""

import hashlib
import json
from pathlib import Path

from datasets import Dataset, Features, List, Value
from datasets.utils.tqdm import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from data_builders.records import PREFERENCE_FIELDS, RL_QUERY_FIELDS, SFT_FIELDS
from stagekit.atomic import staged_dir

_MESSAGES = List({"role": Value("string"), "content": Value("string")})
FEATURES = {
    "sft": Features({
        "id": Value("string"),
        "category": Value("string"),
        "messages": _MESSAGES,
        "source": Value("string"),
        "verification": {"verifier": Value("string"), "passed": Value("bool"), "details": Value("string")},
    }),
    "preference": Features({
        "id": Value("string"),
        "category": Value("string"),
        "prompt": _MESSAGES,
        "chosen": _MESSAGES,
        "rejected": _MESSAGES,
        "reason": Value("string"),
    }),
    "rl_query": Features({
        "id": Value("string"),
        "category": Value("string"),
        "prompt": _MESSAGES,
        "reference": Value("string"),
        "reward_variance": Value("float64"),
    }),
}
_FIELDS = {"sft": SFT_FIELDS, "preference": PREFERENCE_FIELDS, "rl_query": RL_QUERY_FIELDS}
SPLIT_SCHEMAS = {"sft": "sft", "preference": "preference", "preference_eval": "preference",
                 "rl_queries": "rl_query", "heldout": "rl_query"}
MANIFEST = "manifest.json"


def schema_of(split: str, rows: list[dict]) -> str:
    """"sft", "preference" or "rl_query": from the split's name, else from its rows' fields."""
    if split in SPLIT_SCHEMAS:
        return SPLIT_SCHEMAS[split]
    for schema, fields in _FIELDS.items():
        if rows and set(rows[0]) == set(fields):
            return schema
    raise ValueError(f"split {split!r}: cannot tell its schema (known splits: {sorted(SPLIT_SCHEMAS)})")


def to_jsonl(rows: list[dict]) -> str:
    """Rows as JSON lines, keys in schema order; the bytes `split_sha256` hashes."""
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def split_sha256(rows: list[dict]) -> str:
    return hashlib.sha256(to_jsonl(rows).encode()).hexdigest()


def to_dataset(split: str, rows: list[dict]) -> Dataset:
    """A `datasets.Dataset` with the split's explicit features (so empty splits keep their schema)."""
    features = FEATURES[schema_of(split, rows)]
    ordered = [{key: row[key] for key in features} for row in rows]
    if not ordered:
        return Dataset.from_dict({key: [] for key in features}, features=features)
    return Dataset.from_list(ordered, features=features)


def write(splits: dict[str, list[dict]], output_dir: str | Path, jsonl: bool = False,
          manifest: dict | None = None, extra_files: dict[str, bytes] | None = None) -> Path:
    """Write every split and `manifest.json` (with `manifest`'s entries added) to `output_dir`, atomically.

    `extra_files` maps plain file names to bytes written beside them (e.g. the mixture's `mixture.png`).

    An existing `output_dir` is replaced only if it holds a previous build (a manifest.json) or is empty, so a
    wrong path never deletes unrelated files. Returns the output path.
    """
    out = Path(output_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise FileExistsError(f"{out} exists and is not a data_builders output (no {MANIFEST}); not replacing it")
    silenced = not are_progress_bars_disabled()
    if silenced:  # one bar per split of a fast save is noise; the CLI prints a summary instead
        disable_progress_bars()
    try:
        with staged_dir(out) as tmp:
            entries = {}
            for split, rows in splits.items():
                dataset = to_dataset(split, rows)
                rows = [{key: row[key] for key in dataset.features} for row in rows]
                dataset.save_to_disk(str(tmp / split))
                if jsonl:
                    (tmp / f"{split}.jsonl").write_text(to_jsonl(rows), encoding="utf-8")
                entries[split] = {"rows": len(rows), "sha256": split_sha256(rows)}
            for name, data in (extra_files or {}).items():
                if Path(name).name != name or name in (MANIFEST, *splits):
                    raise ValueError(
                        f"extra file name {name!r}: expected a plain file name, not a split or {MANIFEST}"
                    )
                (tmp / name).write_bytes(data)
            content = {**(manifest or {}), "splits": entries}
            (tmp / MANIFEST).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    finally:
        if silenced:
            enable_progress_bars()
    return out

