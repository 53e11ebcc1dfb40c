"""Build the verified datasets: `python -m data_builders --config configs/data/tiny.yaml [--output_dir DIR]`.

Parse config → build every split (the arithmetic word problems of the flat keys, then each verified area of
`areas`: math, code, instruction, instruction_code, long, structured, logic, cross_lingual, system, by rejection
sampling through the configured generator) → filter the area rows (`filters`: critic, near-duplicates,
decontamination) → cut the SFT mixture (`mixture`: per-area weights, token-length report, mixture.png) → write
them atomically with a manifest → print a summary: rows per split, and per area the candidates kept and
rejected, by reason. Progress bars (one per area) go to stderr. Any flat config key can be overridden on the
command line; unknown keys and bad values stop the run before anything is written (exit status 2).

With an `engine` section the areas are built by the scaled engine instead (data_builders/engine.py): datatrove
tasks write verified shards as they go, a second job merges, filters and writes the splits plus report.md and
report.json; a killed build resumes when the same command runs again. `--engine '{"tasks": 4, "workers": 2}'`
sets it on the command line. The summary adds tokens generated, tokens/s and DPO pairs per domain.

`--dry_run` checks the config and its files, plans the units and prints per area the queries, candidates and
rows per split it would make (and the preference queries per DPO domain), then stops without generating.

In-process: `main(argv)`; `from data_builders.builders import build_areas`; `from data_builders.writer import write`.
"""

import sys
import time
from dataclasses import asdict
from pathlib import Path

from data_builders.arithmetic import build_with_stats
from data_builders.builders import build_areas
from data_builders.config import DataConfig
from data_builders.engine import build_scaled, dry_run
from data_builders.engine import summary as scaled_summary
from data_builders.filters import apply_filters, parse_filters
from data_builders.filters.decontaminate import read_eval_file
from data_builders.generators import make_generator
from data_builders.mixture import apply_mixture, histogram_png, parse_mixture, summary_table
from data_builders.writer import write
from stagekit.config import parse_config

BUILDER = "arithmetic"
SHOWN_REASONS = 8  # rejection reasons printed per area; the manifest keeps them all
SPLIT_ORDER = ("sft", "preference", "preference_eval", "rl_queries", "heldout")
MIXTURE_PNG = "mixture.png"  # token-length histograms per area, beside the splits


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


def _preflight(config: DataConfig) -> list[str]:
    """Read the evaluation files of `filters.decontaminate` and check that long documents exist, so a wrong path
    stops the build before hours of sampling; returns the evaluation samples."""
    long_area = config.area_configs().get("long")
    for path in getattr(long_area, "documents", []):
        if not Path(path).is_file():
            raise ValueError(f"config key 'areas.long.documents': file not found: {path}")
    if not config.filters:
        return []
    return [text for path in parse_filters(config.filters).eval_files for text in read_eval_file(path)]


def build_all(config: DataConfig, progress: bool = True,
              extras: dict | None = None) -> tuple[dict[str, list[dict]], dict, dict[str, dict]]:
    """(splits, arithmetic candidate stats, per-area stats): the arithmetic splits, then every area's rows, filtered
    (`config.filters`) and mixed (`config.mixture`). `extras`, when given, receives the filter and mixture reports
    ("filters", "mixture") and the files to write beside the splits ("files": {name: bytes})."""
    tests = _preflight(config) if config.areas else []  # files only later steps read, checked before any work
    splits, stats = build_with_stats(config)
    if not config.areas:
        return splits, stats, {}
    generator = make_generator(config.generator, seed=config.seed)
    area_rows, area_stats = build_areas(config, generator=generator, progress=progress)
    extras = {} if extras is None else extras
    if config.filters:
        area_rows, extras["filters"] = apply_filters(area_rows, parse_filters(config.filters), generator,
                                                     tests=tests)
    if config.mixture:
        mixture = parse_mixture(config.mixture, list(config.area_configs()))
        area_rows["sft"], report = apply_mixture(area_rows.get("sft", []), mixture, config.seed)
        extras["files"] = {MIXTURE_PNG: histogram_png(report, approx=mixture.tokenizer is None)}
        for area in report.values():
            area["tokens"].pop("lengths")
        extras["mixture"] = report
    for split, rows in area_rows.items():
        splits.setdefault(split, []).extend(rows)
    splits = {split: splits[split] for split in SPLIT_ORDER if split in splits}
    return splits, stats, {name: s.as_dict() for name, s in area_stats.items()}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    plan_only = "--dry_run" in argv  # a flag of this command, not a config key: the manifest never records it
    argv = [arg for arg in argv if arg != "--dry_run"]
    try:
        config = parse_config(DataConfig, argv)
        if plan_only:
            _preflight(config)
            print(dry_run(config))
            return 0
        if config.engine:  # the scaled engine: sharded, streamed, resumable (data_builders/engine.py)
            _preflight(config)
            report = build_scaled(config)
            if report.get("submitted"):
                print(f"data_builders: build and merge jobs submitted; work in {report['work_dir']}")
            elif report.get("partial"):
                print(f"data_builders: this machine's tasks are done; {report['units_left']} of {report['units']} "
                      f"units are still being built elsewhere (work in {report['work_dir']}); run the same command "
                      "again once they are, and it merges")
            else:
                print(scaled_summary(config, report))
            return 0
        extras: dict = {}
        splits, stats, areas = build_all(config, extras=extras)
    except (ValueError, OSError, RuntimeError) as exc:
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
    for key in ("filters", "mixture"):  # present only when configured, so earlier manifests keep their bytes
        if not settings[key]:
            settings.pop(key)
        if key in extras:
            manifest[key] = extras[key]
    try:
        write(splits, config.output_dir, jsonl=config.jsonl, manifest=manifest, extra_files=extras.get("files"))
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary(config, splits, stats, time.perf_counter() - start, areas))
    if "filters" in extras:
        dropped = {step: sum(v.values()) for step, v in extras["filters"].items() if isinstance(v, dict)}
        print("  filters dropped: " + ", ".join(f"{step} {n}" for step, n in dropped.items())
              + f" (against {extras['filters']['eval_samples']} evaluation samples)")
    if "mixture" in extras:
        print(f"  mixture (token lengths approx. unless mixture.tokenizer is set; histograms in {MIXTURE_PNG}):")
        print(summary_table(extras["mixture"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
