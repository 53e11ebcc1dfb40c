"""Verified samples per second of each data builder area, offline (procedural generator), on this machine.

    python benchmarks/data_builders_verified.py [--queries 40] [--k 4] [--workers N]

For each area: build `--queries` procedural queries with k candidates each, through the same code path as
`python -m data_builders` (query making, check-function acceptance for instruction_code, generation, verification,
rows), and report candidates verified per second and rows kept per second. Code and instruction_code run every
candidate in the sandbox; math and instruction verify in-process. Also times the arithmetic builder of the tiny
demo. One table on stdout.
"""

import argparse
import os
import time

from data_builders.arithmetic import build_with_stats
from data_builders.builders import build_area
from data_builders.config import DataConfig, parse_area
from data_builders.generators import ProceduralGenerator


def area_row(name: str, settings: dict) -> tuple[str, int, int, int, float]:
    area = parse_area(name, settings)
    start = time.perf_counter()
    rows, stats = build_area(name, area, ProceduralGenerator(seed=0), seed=0, progress=False)
    seconds = time.perf_counter() - start
    return name, stats.candidates, stats.passed, sum(len(r) for r in rows.values()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=40, help="procedural queries per area")
    parser.add_argument("--k", type=int, default=4, help="candidates per query")
    parser.add_argument("--workers", type=int, default=None, help="sandbox workers (default: CPU count)")
    args = parser.parse_args()
    common = {"procedural": args.queries, "k": args.k}
    results = [
        area_row("math", {**common, "max_operand": 99}),
        area_row("code", {**common, "workers": args.workers}),
        area_row("instruction", common),
        area_row("instruction_code", {**common}),
    ]
    config = DataConfig(sft_size=args.queries, preference_size=0, preference_eval_size=0, rl_queries_size=0,
                        heldout_size=0)
    start = time.perf_counter()
    _, stats = build_with_stats(config)
    seconds = time.perf_counter() - start
    results.append(("arithmetic (tiny)", sum(s["candidates"] for s in stats.values()),
                    sum(s["passed"] for s in stats.values()), args.queries, seconds))

    print(f"queries per area: {args.queries}, k: {args.k}, CPUs: {os.cpu_count()}")
    print(f"| {'area':<18} | {'candidates':>10} | {'passed':>6} | {'rows':>5} | {'seconds':>7} "
          f"| {'verified/s':>10} | {'rows/s':>8} |")
    print(f"|{'-' * 20}|{'-' * 12}|{'-' * 8}|{'-' * 7}|{'-' * 9}|{'-' * 12}|{'-' * 10}|")
    for name, candidates, passed, rows, seconds in results:
        print(f"| {name:<18} | {candidates:>10} | {passed:>6} | {rows:>5} | {seconds:>7.2f} "
              f"| {candidates / seconds:>10.1f} | {rows / seconds:>8.1f} |")


if __name__ == "__main__":
    main()
