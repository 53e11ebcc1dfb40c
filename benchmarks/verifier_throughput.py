"""Verifier speed: calls per second of the math and instruction verifiers on typical, huge and hostile inputs.

    python benchmarks/verifier_throughput.py [--repeat 200]

Not a test (timings are never asserted in tests/): the verifiers run inside the reward service's thread pool and in
every builder's inner loop, so their cost per call is printed here, with the garbage inputs that once made regexes
or sympy run away. A row whose time grows far beyond its input's size points at a super-linear path.
"""

import argparse
import statistics
import time

from verifiers import verify

TWELVE = {"type": "math", "answer": "12"}
CASES = [
    ("math, typical", "Mia has 4 bags with 3 apples in each bag. 4 × 3 = 12. The answer is \\boxed{12}.", TWELVE),
    ("math, symbolic", "So the result is \\boxed{\\frac{24}{2}}.", TWELVE),
    ("math, 1 MB of steps", ("Some words and 1 + 2 = 3. " * 40_000) + "The answer is \\boxed{12}.", TWELVE),
    ("math, 50k open braces", "\\boxed{" * 50_000, TWELVE),
    ("math, power tower", "\\boxed{9^{9^{9}}}", TWELVE),
    ("math, rounded decimal", "So the probability is \\boxed{0.333333}.", {"type": "math", "answer": "\\frac{1}{3}"}),
    ("math, answer in two boxes", "So $x = \\boxed{-2}$ and $x = \\boxed{1}$.", {"type": "math", "answer": "1, -2"}),
    ("math, 20k adjacent boxes", "".join(f"\\boxed{{{i}}}" for i in range(20_000)), TWELVE),
    ("instruction, 3 constraints", "hello world. this is all lower case and short.",
     {"type": "instruction", "constraints": [{"kind": "english_lowercase"}, {"kind": "max_words", "value": 50},
                                             {"kind": "no_comma"}]}),
    ("instruction, 100 KB", "word " * 20_000,
     {"type": "instruction", "constraints": [{"kind": "max_words", "value": 50}, {"kind": "no_comma"}]}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="calls per small case (large ones run 3 times)")
    args = parser.parse_args()
    print("| case | input chars | median ms/call | calls/s |")
    print("|---|---|---|---|")
    for name, response, reference in CASES:
        verify(response, reference)  # warm caches (sympy, langdetect profiles)
        repeat = args.repeat if len(response) < 10_000 else 3
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            verify(response, reference)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"| {name} | {len(response):,} | {median * 1e3:.3f} | {1 / median:,.0f} |")


if __name__ == "__main__":
    main()
