"""Verified executions per second through the sandbox (`run_many`), per language, printed as a markdown table.

Each job is the program a code verifier builds: a function `add_digits` followed by three asserts, in the language's
own idiom; every job goes through the whole path: static check (or the compiler, where it is the check), compile step,
run, all fully confined (see sandbox/isolation.py). A run passes only if every assert held. One warm-up job per
language first (it also tells whether the toolchain works); then --jobs jobs (--slow-jobs for languages whose warm-up
took longer than 3 s: the JVM compilers), on --workers concurrent sandboxes. Languages whose toolchain is not
installed get a row saying which package installs it.

    .venv/bin/python benchmarks/sandbox_languages.py                          # ~4 min on 2 shared cores
    .venv/bin/python benchmarks/sandbox_languages.py --languages python c go --jobs 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import LANGUAGES, SandboxJob, SandboxLimits, isolation, run_many, unavailable

# add_digits(n) = sum of n's decimal digits; {n} and {digits} vary per job so no two programs are the same
PROGRAMS = {
    "python": "def add_digits(n):\n    total = 0\n    while n:\n        total += n % 10\n        n //= 10\n"
              "    return total\n\nassert add_digits({n}) == {digits}\nassert add_digits(0) == 0\n"
              "assert add_digits(99) == 18\n",
    "javascript": "const assert = require('assert');\nfunction addDigits(n) { let t = 0; while (n > 0) "
                  "{ t += n % 10; n = Math.floor(n / 10); } return t; }\n"
                  "assert.strictEqual(addDigits({n}), {digits});\nassert.strictEqual(addDigits(0), 0);\n"
                  "assert.strictEqual(addDigits(99), 18);\n",
    "typescript": "const assert = require('assert');\nfunction addDigits(n: number): number { let t = 0; "
                  "while (n > 0) { t += n % 10; n = Math.floor(n / 10); } return t; }\n"
                  "assert.strictEqual(addDigits({n}), {digits});\nassert.strictEqual(addDigits(0), 0);\n"
                  "assert.strictEqual(addDigits(99), 18);\n",
    "c": "#include <assert.h>\nstatic int add_digits(long n) { int t = 0; while (n) { t += n % 10; n /= 10; } "
         "return t; }\nint main(void) { assert(add_digits({n}) == {digits}); assert(add_digits(0) == 0);\n"
         "  assert(add_digits(99) == 18); return 0; }\n",
    "cpp": "#include <cassert>\nstatic int add_digits(long n) { int t = 0; while (n) { t += n % 10; n /= 10; } "
           "return t; }\nint main() { assert(add_digits({n}) == {digits}); assert(add_digits(0) == 0);\n"
           "  assert(add_digits(99) == 18); }\n",
    "java": "public class Main {\n  static int addDigits(long n) { int t = 0; while (n > 0) { t += n % 10; n /= 10; } "
            "return t; }\n  static void check(boolean ok) { if (!ok) throw new AssertionError(); }\n"
            "  public static void main(String[] a) { check(addDigits({n}) == {digits}); check(addDigits(0) == 0);\n"
            "    check(addDigits(99) == 18); } }\n",
    "csharp": "using System.Diagnostics;\nclass Program {\n  static int AddDigits(long n) { int t = 0; "
              "while (n > 0) { t += (int)(n % 10); n /= 10; } return t; }\n"
              "  static void Check(bool ok) { if (!ok) throw new System.Exception(\"assertion failed\"); }\n"
              "  static void Main() { Check(AddDigits({n}) == {digits}); Check(AddDigits(0) == 0);\n"
              "    Check(AddDigits(99) == 18); } }\n",
    "go": "package main\nfunc addDigits(n int) int { t := 0; for n > 0 { t += n % 10; n /= 10 }; return t }\n"
          "func check(ok bool) { if !ok { panic(\"assertion failed\") } }\n"
          "func main() { check(addDigits({n}) == {digits}); check(addDigits(0) == 0); check(addDigits(99) == 18) }\n",
    "rust": "fn add_digits(mut n: u64) -> u64 { let mut t = 0; while n > 0 { t += n % 10; n /= 10; } t }\n"
            "fn main() { assert_eq!(add_digits({n}), {digits}); assert_eq!(add_digits(0), 0);\n"
            "  assert_eq!(add_digits(99), 18); }\n",
    "php": "<?php\nfunction add_digits($n) { $t = 0; while ($n > 0) { $t += $n % 10; $n = intdiv($n, 10); } "
           "return $t; }\nfunction check($ok) { if (!$ok) { fwrite(STDERR, \"assertion failed\\n\"); exit(1); } }\n"
           "check(add_digits({n}) === {digits});\ncheck(add_digits(0) === 0);\ncheck(add_digits(99) === 18);\n",
    "ruby": "def add_digits(n)\n  t = 0\n  while n > 0\n    t += n % 10\n    n /= 10\n  end\n  t\nend\n"
            "raise 'assertion failed' unless add_digits({n}) == {digits}\n"
            "raise 'assertion failed' unless add_digits(0) == 0\n"
            "raise 'assertion failed' unless add_digits(99) == 18\n",
    "perl": "use strict;\nuse warnings;\nsub add_digits { my ($n) = @_; my $t = 0; while ($n > 0) "
            "{ $t += $n % 10; $n = int($n / 10); } return $t; }\n"
            "die 'assertion failed' unless add_digits({n}) == {digits};\n"
            "die 'assertion failed' unless add_digits(0) == 0;\ndie 'assertion failed' unless add_digits(99) == 18;\n",
    "lua": "local function add_digits(n)\n  local t = 0\n  while n > 0 do t = t + n % 10; n = n // 10 end\n"
           "  return t\nend\nassert(add_digits({n}) == {digits})\nassert(add_digits(0) == 0)\n"
           "assert(add_digits(99) == 18)\n",
    "r": "add_digits <- function(n) { t <- 0; while (n > 0) { t <- t + n %% 10; n <- n %/% 10 }; t }\n"
         "stopifnot(add_digits({n}) == {digits})\nstopifnot(add_digits(0) == 0)\nstopifnot(add_digits(99) == 18)\n",
    "scala": "object Main {\n  def addDigits(n0: Long): Long = { var n = n0; var t = 0L; "
             "while (n > 0) { t += n % 10; n /= 10 }; t }\n"
             "  def main(args: Array[String]): Unit = { require(addDigits({n}) == {digits}); "
             "require(addDigits(0) == 0); require(addDigits(99) == 18) } }\n",
    "kotlin": "fun addDigits(n0: Long): Long { var n = n0; var t = 0L; while (n > 0) { t += n % 10; n /= 10 }; "
              "return t }\nfun main() { check(addDigits({n}) == {digits}L); check(addDigits(0) == 0L); "
              "check(addDigits(99) == 18L) }\n",
    "bash": "add_digits() { local n=$1 t=0; while (( n > 0 )); do (( t += n % 10, n /= 10 )); done; echo $t; }\n"
            "set -e\n[[ $(add_digits {n}) == {digits} ]]\n[[ $(add_digits 0) == 0 ]]\n[[ $(add_digits 99) == 18 ]]\n",
    "haskell": "import Control.Exception (assert)\naddDigits :: Int -> Int\naddDigits 0 = 0\n"
               "addDigits n = n `mod` 10 + addDigits (n `div` 10)\n"
               "check :: Bool -> IO ()\ncheck ok = if ok then return () else error \"assertion failed\"\n"
               "main :: IO ()\nmain = do\n  check (addDigits {n} == {digits})\n  check (addDigits 0 == 0)\n"
               "  check (addDigits 99 == 18)\n",
    "ocaml": "let rec add_digits n = if n = 0 then 0 else n mod 10 + add_digits (n / 10)\n"
             "let () = assert (add_digits {n} = {digits}); assert (add_digits 0 = 0); assert (add_digits 99 = 18)\n",
    "racket": "#lang racket/base\n(define (add-digits n) (if (zero? n) 0 (+ (remainder n 10) "
              "(add-digits (quotient n 10)))))\n(unless (= (add-digits {n}) {digits}) (error \"assertion failed\"))\n"
              "(unless (= (add-digits 0) 0) (error \"assertion failed\"))\n"
              "(unless (= (add-digits 99) 18) (error \"assertion failed\"))\n",
}
LIMITS = SandboxLimits(cpu_seconds=5, wall_seconds=15)


def programs(language: str, count: int, offset: int = 0) -> list[str]:
    template = PROGRAMS[language]
    numbers = [1000 + offset + i for i in range(count)]
    return [template.replace("{n}", str(n)).replace("{digits}", str(sum(map(int, str(n))))) for n in numbers]


def describe(command: tuple[str, ...] | None) -> str:
    if command is None:
        return ""
    words = [part for part in command if "{python_bootstrap}" not in part]
    text = " ".join(words).replace("{file}", "FILE").replace("{python}", "python3")
    return text if len(text) <= 60 else text[:57] + "..."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", nargs="+", default=list(LANGUAGES), choices=list(LANGUAGES))
    parser.add_argument("--jobs", type=int, default=16, help="programs per language")
    parser.add_argument("--slow-jobs", type=int, default=4, help="programs for a language whose warm-up took > 3 s")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    caps = isolation.capabilities()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; root={caps.root}, "
          f"pid namespace={caps.pid_namespace}, minimal root={caps.minimal_root is not None}, "
          f"cgroups={caps.pids_cgroup is not None}; {args.workers} workers\n")
    print("| language | toolchain package | static check | run | exec/s | p50 s | passed |")
    print("|---|---|---|---|---:|---:|---:|")
    for name in args.languages:
        lang = LANGUAGES[name]
        package = lang.package.removeprefix("apt:")
        check = "inline (compile before run)" if lang.inline_check else describe(lang.check)
        if lang.compile is not None:
            check = (check + "; then " if check else "compiler: ") + describe(lang.compile)
        run_command = describe(lang.run)
        reason = unavailable(lang)
        if reason is not None:
            print(f"| {name} | {package} | {check} | {run_command} | unavailable | | {reason} |")
            continue
        start = time.perf_counter()
        warm = run_many([SandboxJob(programs(name, 1, offset=500)[0], name, limits=LIMITS)], workers=1)[0]
        warm_s = time.perf_counter() - start
        if warm.status != "passed":
            print(f"| {name} | {package} | {check} | {run_command} | broken | | warm-up {warm.status}: "
                  f"{warm.stderr.strip()[:80]!r} |")
            continue
        count = args.slow_jobs if warm_s > 3 else args.jobs
        jobs = [SandboxJob(source, name, limits=LIMITS) for source in programs(name, count)]
        start = time.perf_counter()
        results = run_many(jobs, workers=args.workers)
        seconds = time.perf_counter() - start
        passed = sum(r.status == "passed" for r in results)
        p50 = statistics.median(r.duration_s for r in results)
        print(f"| {name} | {package} | {check} | {run_command} | {count / seconds:.2f} | {p50:.2f} | "
              f"{passed}/{count} |", flush=True)
    print("\nexec/s = verified programs (check + compile + run, every assert held) per second of wall time on "
          f"{args.workers} workers; p50 s = the median run step alone (the check and compile steps not included).")


if __name__ == "__main__":
    main()
