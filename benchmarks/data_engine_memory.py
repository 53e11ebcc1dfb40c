"""Peak memory of a scaled build as the number of queries grows: flat, because rows are written as they are verified.

    python benchmarks/data_engine_memory.py [--sizes 10000 100000] [--tasks 1]

For each size, `python -m data_builders` runs in a fresh process on a math-area config with that many procedural
queries (procedural backend, k = 4, the engine's default units of 1000 and chunks of 64). The peak resident set of
that process and everything it waited for (`os.wait4`'s ru_maxrss; datatrove workers are its children) is read
when it ends. Printed: queries, rows written, seconds, rows/s, peak RSS, and the peak's ratio to the smallest
size's (the goal: within 1.2 for 10x the queries).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ZERO = {f"{split}_size": 0 for split in ("sft", "preference", "preference_eval", "rl_queries", "heldout")}


def run(size: int, tasks: int, folder: Path) -> tuple[int, float, float]:
    """(rows written, seconds, peak RSS in MiB) of one build of `size` math queries."""
    out = folder / f"out-{size}"
    config = {"output_dir": str(out), "seed": 0, **ZERO, "jsonl": True,
              "areas": {"math": {"procedural": size, "k": 4, "max_operand": 999, "two_step_fraction": 0.5,
                                 "splits": {"sft": 0.6, "preference": 0.3, "rl_queries": 0.1}}},
              "engine": {"tasks": tasks, "workers": 1}}
    path = folder / f"config-{size}.yaml"
    path.write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "data_builders", "--config", str(path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"build of {size} queries failed (wait status {status}); run it by hand: "
                         f"python -m data_builders --config {path}")
    manifest = json.loads((out / "manifest.json").read_text())
    rows = sum(entry["rows"] for entry in manifest["splits"].values())
    return rows, seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--tasks", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [(size, *run(size, args.tasks, Path(tmp))) for size in args.sizes]
    base = results[0][3]
    print(f"scaled build, math area, procedural backend, k=4, {args.tasks} task(s), one process")
    print("| queries | rows written | seconds | rows/s | peak RSS (MiB) | peak vs smallest |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size, rows, seconds, peak in results:
        print(f"| {size} | {rows} | {seconds:.1f} | {rows / seconds:.0f} | {peak:.0f} | {peak / base:.2f}x |")


if __name__ == "__main__":
    main()
