"""Make a base checkpoint: a Qwen2.5 tokenizer plus a randomly initialised model of a preset.

This stands in for the base checkpoint a user brings: on a machine that cannot download weights, the
tiny default is built here (tokenizer trained on the project's own data, then random weights). A user
with a real Qwen2.5 directory skips this and points the SFT config at it.

    python -m qwen25 init --model_config tiny --corpus_path runs/tiny/data/sft --output_dir runs/tiny/base
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from transformers import GenerationConfig

from qwen25.model import build_model, load_preset, make_config
from qwen25.tokenizer import build_tokenizer, load_tokenizer
from stagekit.atomic import staged_dir


@dataclass
class InitConfig:
    output_dir: str = field(default="runs/tiny/base", metadata={"help": "where the base checkpoint is written"})
    model_config: str = field(default="tiny", metadata={"help": "preset name in configs/model/ or a YAML path"})
    corpus_path: str | None = field(
        default=None, metadata={"help": "dataset dir (save_to_disk), .jsonl or .txt to train the tokenizer on"}
    )
    tokenizer_path: str | None = field(
        default=None, metadata={"help": "use this existing tokenizer dir (e.g. a real Qwen2.5) instead of training"}
    )
    tokenizer_vocab_size: int = field(default=2048, metadata={"help": "regular BPE tokens of the offline tokenizer"})
    seed: int = field(default=0, metadata={"help": "seed of the random initialisation"})


def corpus_texts(path: str | os.PathLike) -> Iterator[str]:
    """Texts from a `save_to_disk` dataset (message contents or a `text` column), a .jsonl or a .txt file."""
    path = Path(path)
    if path.is_dir():
        from datasets import load_from_disk

        for row in load_from_disk(str(path)):
            yield from _row_texts(row)
    elif path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from e
                yield from _row_texts(row)
    elif path.is_file():
        yield from path.read_text(encoding="utf-8").splitlines()
    else:
        raise FileNotFoundError(f"corpus not found: {path}")


def _row_texts(row: dict) -> Iterator[str]:
    for key in ("messages", "prompt", "chosen", "rejected"):
        for message in row.get(key) or []:
            yield message["content"]
    if isinstance(row.get("text"), str):
        yield row["text"]


def init_base_checkpoint(
    output_dir: str | os.PathLike,
    *,
    model_config: str = "tiny",
    corpus: Iterable[str] | None = None,
    tokenizer_path: str | os.PathLike | None = None,
    tokenizer_vocab_size: int = 2048,
    seed: int = 0,
    overrides: dict | None = None,
) -> Path:
    """Write tokenizer + random-init model to `output_dir` atomically; returns the directory."""
    preset = load_preset(model_config)  # validate before the slow work
    if tokenizer_path is not None:
        tokenizer = load_tokenizer(tokenizer_path)
    elif corpus is not None:
        tokenizer = build_tokenizer(corpus, vocab_size=tokenizer_vocab_size)
    else:
        raise ValueError("init needs a corpus to train the tokenizer on, or an existing tokenizer_path")
    config = make_config(preset, vocab_size=len(tokenizer), **(overrides or {}))
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    model = build_model(config, seed=seed)
    # Generation stops at <|im_end|> or <|endoftext|>, as Qwen2.5-Instruct's generation_config does.
    stop_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    model.generation_config = GenerationConfig(
        eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )

    output_dir = Path(output_dir)
    with staged_dir(output_dir) as tmp:  # a killed init never leaves half a checkpoint
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return output_dir
