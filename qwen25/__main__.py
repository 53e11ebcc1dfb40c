"""`python -m qwen25 init --model_config tiny --corpus_path DIR --output_dir DIR`: make a base checkpoint."""

from __future__ import annotations

import sys

from qwen25.init import InitConfig, corpus_texts, init_base_checkpoint
from stagekit.config import parse_config, run_cli


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "init":
        sys.exit("usage: python -m qwen25 init [--config YAML] [--output_dir DIR] [--model_config tiny] ...")
    run_cli(init, argv[1:])


def init(argv: list[str]) -> None:
    cfg = parse_config(InitConfig, argv)
    corpus = corpus_texts(cfg.corpus_path) if cfg.corpus_path else None
    out = init_base_checkpoint(
        cfg.output_dir,
        model_config=cfg.model_config,
        corpus=corpus,
        tokenizer_path=cfg.tokenizer_path,
        tokenizer_vocab_size=cfg.tokenizer_vocab_size,
        seed=cfg.seed,
    )
    print(f"base checkpoint ({cfg.model_config}) written to {out}")


if __name__ == "__main__":
    main()
