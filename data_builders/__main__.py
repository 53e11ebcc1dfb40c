"""Build the verified datasets: `python -m data_builders --config configs/data/tiny.yaml [--output_dir DIR]`.

Parse config → build every split (the arithmetic word problems of the flat keys, then each verified area of
`areas`: math, code, instruction, instruction_code, by rejection sampling through the configured generator) →
write them atomically with a manifest → print a summary: rows per split, and per area the candidates kept and
rejected, by reason. Progress bars (one per area) go to stderr. Any flat config key can be overridden on the
command line; unknown keys and bad values stop the run before anything is written (exit status 2).

In-process: `main(argv)`; `from data_builders.builders import build_areas`; `from data_builders.writer import write`.
"""

import sys
import time
from dataclasses import asdict

from data_builders.arithmetic import build_with_stats
from data_builders.config import DataConfig, parse_config
from data_builders.writer import write

BUILDER = "arithmetic"
SHOWN_REASONS = 8  # rejection reasons printed per area; the manifest keeps them all
SPLIT_ORDER = ("sft", "preference", "preference_eval", "rl_queries", "heldout")


def summary(
    config: DataConfig, splits: dict[str, list[dict]], stats: dict[str, dict[str, int]], seconds: float,
    areas: dict[str, dict] | None = None,
) -> str:
    """A few lines: rows per split, how many arithmetic candidates passed, and each area's kept/rejected counts."""
    total = sum(s["candidates"] for s in stats.values())
    passed = sum(s["passed"] for s in stats.values())
    rate = f"{passed / total:.1%}" if total else "n/a"
    builder = BUILDER if not areas else f"{BUILDER} + {', '.join(areas)}"
    lines = [
        f"data_builders: wrote {config.output_dir} ({builder}, seed {config.seed}) in {seconds:.1f} s",
        "  rows: " + ", ".join(f"{split} {len(rows)}" for split, rows in splits.items()),
    ]
    if total or not areas:
        lines.append(f"  candidates: {passed}/{total} passed the math verifier ({rate}); "
                     + ", ".join(f"{kind} {s['passed']}/{s['candidates']}" for kind, s in stats.items()))
    for name, area in (areas or {}).items():
        rows = ", ".join(f"{split} {count}" for split, count in area["rows"].items()) or "none"
        lines.append(f"  {name}: {area['queries']} queries, {area['passed']}/{area['candidates']} candidates passed; "
                     f"kept {rows}")
        if area["dropped"]:
            lines.append("    queries dropped: " + ", ".join(f"{r} {n}" for r, n in area["dropped"].items()))
        if area["failures"]:
            top = sorted(area["failures"].items(), key=lambda item: (-item[1], item[0]))
            shown = [f"{reason} {count}" for reason, count in top[:SHOWN_REASONS]]
            if len(top) > SHOWN_REASONS:
                shown.append(f"{len(top) - SHOWN_REASONS} other reasons {sum(n for _, n in top[SHOWN_REASONS:])}")
            lines.append("    candidates rejected: " + ", ".join(shown))
    return "\n".join(lines)


def build_all(config: DataConfig, progress: bool = True) -> tuple[dict[str, list[dict]], dict, dict[str, dict]]:
    """(splits, arithmetic candidate stats, per-area stats): the arithmetic splits, then every area's rows."""
    splits, stats = build_with_stats(config)
    if not config.areas:
        return splits, stats, {}
    from data_builders.builders import build_areas

    area_rows, area_stats = build_areas(config, progress=progress)
    for split, rows in area_rows.items():
        splits.setdefault(split, []).extend(rows)
    splits = {split: splits[split] for split in SPLIT_ORDER if split in splits}
    return splits, stats, {name: s.as_dict() for name, s in area_stats.items()}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    try:
        config = parse_config(argv)
        splits, stats, areas = build_all(config)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # output_dir is left out: the manifest sits inside it, and a build copied elsewhere should stay byte-identical.
    # areas/generator only appear when areas are built, so arithmetic-only manifests keep their bytes.
    settings = {key: value for key, value in asdict(config).items() if key != "output_dir"}
    manifest = {"builder": BUILDER, "config": settings, "seed": config.seed, "candidates": stats}
    if areas:
        manifest["areas"] = areas
    else:
        settings.pop("areas")
        settings.pop("generator")
    try:
        write(splits, config.output_dir, jsonl=config.jsonl, manifest=manifest)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(config, splits, stats, time.perf_counter() - start, areas))
    return 0


if __name__ == "__main__":
    sys.exit(main())
