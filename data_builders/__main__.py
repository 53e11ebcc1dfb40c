"""Build the verified datasets: `python -m data_builders --config configs/data/tiny.yaml [--output_dir DIR]`.

Parse config → build every split (arithmetic word problems, each candidate checked by the math verifier) → write
them atomically with a manifest → print a summary. Any config key can be overridden on the command line; unknown
keys and bad values stop the run before anything is written (exit status 2).

In-process: `from data_builders.arithmetic import build` and `from data_builders.writer import write`.
"""

import sys
import time
from dataclasses import asdict

from data_builders.arithmetic import build_with_stats
from data_builders.config import DataConfig, parse_config
from data_builders.writer import write

BUILDER = "arithmetic"


def summary(
    config: DataConfig, splits: dict[str, list[dict]], stats: dict[str, dict[str, int]], seconds: float
) -> str:
    """A few lines: rows per split and how many candidates of each kind passed the verifier."""
    total = sum(s["candidates"] for s in stats.values())
    passed = sum(s["passed"] for s in stats.values())
    rate = f"{passed / total:.1%}" if total else "n/a"
    lines = [
        f"data_builders: wrote {config.output_dir} ({BUILDER}, seed {config.seed}) in {seconds:.1f} s",
        "  rows: " + ", ".join(f"{split} {len(rows)}" for split, rows in splits.items()),
        f"  candidates: {passed}/{total} passed the math verifier ({rate}); "
        + ", ".join(f"{kind} {s['passed']}/{s['candidates']}" for kind, s in stats.items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        config = parse_config(argv)
        splits, stats = build_with_stats(config)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # output_dir is left out: the manifest sits inside it, and a build copied elsewhere should stay byte-identical
    settings = {key: value for key, value in asdict(config).items() if key != "output_dir"}
    manifest = {"builder": BUILDER, "config": settings, "seed": config.seed, "candidates": stats}
    try:
        write(splits, config.output_dir, jsonl=config.jsonl, manifest=manifest)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(config, splits, stats, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
