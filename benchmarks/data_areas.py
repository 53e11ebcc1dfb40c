"""Samples per second of the data builders II areas and of the filters, offline, on this machine.

    python benchmarks/data_areas.py [--queries 200] [--k 4] [--eval 200]

For each new area (long, structured, logic, cross_lingual, system): make `--queries` procedural queries and run
rejection sampling with the procedural generator through `build_area` (the path `python -m data_builders` takes),
and report candidates verified per second and rows (samples) kept per second. Then the filters on the SFT rows
just built: MinHash near-duplicate removal, and decontamination against `--eval` synthetic evaluation samples
(rows/s), with the bit-parallel LCS timed against the textbook dynamic program on the same pairs (a speed ratio
measured in this process). Peak RSS at the end. One table on stdout.
"""

import argparse
import os
import random
import resource
import time

from data_builders.builders import build_area
from data_builders.config import parse_area
from data_builders.filters import row_text
from data_builders.filters.decontaminate import Decontaminator, lcs_length
from data_builders.filters.dedup import near_duplicates
from data_builders.generators import ProceduralGenerator
from verifiers.tokens import words

AREAS = {"long": {"k": 3}, "structured": {}, "logic": {"k": 5}, "cross_lingual": {"k": 5}, "system": {}}


def lcs_dp(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200, help="procedural queries per area")
    parser.add_argument("--k", type=int, default=4, help="candidates per query (areas with fewer use all)")
    parser.add_argument("--eval", type=int, default=200, help="synthetic evaluation samples for decontamination")
    args = parser.parse_args()
    results, sft = [], []
    for name, extra in AREAS.items():
        area = parse_area(name, {"procedural": args.queries, "k": extra.get("k", args.k)})
        start = time.perf_counter()
        rows, stats = build_area(name, area, ProceduralGenerator(seed=0), seed=0, progress=False)
        seconds = time.perf_counter() - start
        sft += rows.get("sft", [])
        results.append((name, stats.candidates, sum(len(r) for r in rows.values()), seconds))
    texts = [row_text(r) for r in sft]
    start = time.perf_counter()
    near_duplicates(texts)
    results.append(("filter: MinHash dedup", len(texts), len(texts), time.perf_counter() - start))
    rng = random.Random(0)
    vocabulary = sorted({w for t in texts[:200] for w in words(t)})
    tests = [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(30, 120))) for _ in range(args.eval)]
    start = time.perf_counter()
    decon = Decontaminator(tests)
    hits = sum(decon.match(t) is not None for t in texts)
    results.append((f"filter: decontam x{args.eval}", len(texts), len(texts) - hits, time.perf_counter() - start))

    pairs = [(words(texts[i]), words(tests[i % len(tests)])) for i in range(0, min(len(texts), 300), 3)]
    start = time.perf_counter()
    fast = [lcs_length(a, b) for a, b in pairs]
    bit_s = time.perf_counter() - start
    start = time.perf_counter()
    slow = [lcs_dp(a, b) for a, b in pairs]
    dp_s = time.perf_counter() - start
    assert fast == slow

    print(f"queries per area: {args.queries}, k: {args.k}, CPUs: {os.cpu_count()}")
    print(f"| {'stage':<24} | {'candidates':>10} | {'rows':>6} | {'seconds':>7} | {'verified/s':>10} "
          f"| {'rows/s':>8} |")
    print(f"|{'-' * 26}|{'-' * 12}|{'-' * 8}|{'-' * 9}|{'-' * 12}|{'-' * 10}|")
    for name, candidates, rows, seconds in results:
        print(f"| {name:<24} | {candidates:>10} | {rows:>6} | {seconds:>7.2f} | {candidates / seconds:>10.1f} "
              f"| {rows / seconds:>8.1f} |")
    print(f"LCS on {len(pairs)} pairs (mean {sum(len(a) for a, _ in pairs) / len(pairs):.0f} x "
          f"{sum(len(b) for _, b in pairs) / len(pairs):.0f} tokens): bit-parallel {bit_s * 1e3:.1f} ms, "
          f"dynamic program {dp_s * 1e3:.1f} ms, speed-up x{dp_s / bit_s:.1f}")
    print(f"decontamination: {decon.aligned} LCS alignments for {len(texts) * args.eval} pairs "
          "(the overlap bound skipped the rest)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
