"""Qwen2.5 tokenizers: build a small one offline, or load a real one from a local directory.

No tokenizer can be downloaded here, so the tiny default trains a byte-level BPE with the `tokenizers`
library on text the project makes, using Qwen2's own pre-tokenizer (transformers' `Qwen2Tokenizer`:
digits split one by one, NFC normalisation), then appends Qwen2.5's 22 control tokens after the regular
vocabulary in Qwen2.5's order, so `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, `<tool_call>`... keep the
same relative ids (151,643 + i in the real tokenizer, len(regular vocab) + i here). The chat template is
Qwen2.5's ChatML template byte for byte (`chat_template.jinja`), so TRL recognises it and swaps in its
generation-tagged training variant for assistant-only loss.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Qwen2Tokenizer
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

# Qwen2.5's control tokens in id order (RECIPE.md: ids 151,643 to 151,664).
QWEN25_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
CHAT_TEMPLATE = (Path(__file__).parent / "chat_template.jinja").read_text(encoding="utf-8")
DEFAULT_SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def _bpe_trainer_tokenizer() -> Tokenizer:
    """An empty BPE with exactly the normaliser, pre-tokeniser and decoder of `Qwen2Tokenizer`."""
    tok = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    return tok


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 2048) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE of `vocab_size` regular tokens on `corpus`, with Qwen2.5's specials and template.

    The corpus is extended with the chat scaffolding (role names, default system prompt) so those compress
    as they do in the real tokenizer. Deterministic for a given corpus order.
    """
    if vocab_size < 300:
        raise ValueError(f"vocab_size={vocab_size}: must be at least 300 (256 byte tokens plus merges)")
    scaffolding = [DEFAULT_SYSTEM_PROMPT, "system\n", "user\n", "assistant\n", "The answer is \\boxed{}."] * 50
    tok = _bpe_trainer_tokenizer()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(_chain(scaffolding, corpus), trainer=trainer)
    model_state = tok.model
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = model_state.save(tmp)
        vocab = _read_vocab(vocab_file)
        # control tokens at fixed ids right after the regular vocabulary, in Qwen2.5's order
        vocab.update({token: len(vocab) + i for i, token in enumerate(QWEN25_SPECIAL_TOKENS)})
        tokenizer = Qwen2Tokenizer(
            vocab=vocab,
            merges=_read_merges(merges_file),
            eos_token="<|im_end|>",  # Qwen2.5-Instruct convention: a reply ends at <|im_end|>
            pad_token="<|endoftext|>",
            unk_token=None,
        )
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN25_SPECIAL_TOKENS})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 32768
    return tokenizer


def _chain(*iterables: Iterable[str]) -> Iterable[str]:
    for it in iterables:
        yield from it


def _read_vocab(path: str) -> dict[str, int]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _read_merges(path: str) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#version")]
    return [tuple(line.split(" ")) for line in lines]


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """Load a Qwen2.5 tokenizer (ours or a real one) from a local directory; sets a pad token if missing."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"tokenizer directory not found: {path}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|endoftext|>"
    if tokenizer.chat_template is None:
        raise ValueError(f"tokenizer at {path} has no chat template; Qwen2.5 ChatML is required")
    return tokenizer
