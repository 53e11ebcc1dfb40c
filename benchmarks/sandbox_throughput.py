"""Verified Python executions per second through the sandbox (`run_many`), and their latency.

Each job is a small program as the code verifier builds it: a function followed by 3 asserts. Every run execs a
fresh, fully confined `python3 -I -S`: the fork server (zygote.py) only saves the confinement's exec chain, it
never shares an interpreter between runs. Variants, each in this process with `QWENPOST_SANDBOX_DISABLE` set so
the cost of each layer shows:
  full          cgroups (pids + memory + cpuacct, the run's CPU budget), PID + network + mount + IPC namespaces,
                the minimal root (tmpfs + read-only binds + pivot_root), dedicated uid, rlimits, via the zygote
  exec-chain    the same confinement through sh/unshare/mount/cp/pivot_root/prlimit/setpriv execs instead
  no-pidns      as full without the PID namespace (no init process per run; /proc shows the host's processes)
  no-minroot    as full with the host's root remounted read-only instead of the minimal root
  no-netns      as full without the network namespace (Python sockets blocked by an audit hook instead)
  no-ns         no namespaces at all (network blocked in-process, filesystem protected by the uid only)
  no-cgroups    namespaces but RLIMIT_NPROC under a dedicated uid instead of cgroups (and no CPU budget)
  bare          not the sandbox: plain `python3 -I -S main.py` on the same pool, the floor for comparison
A warm-up pass runs first; then --rounds passes of --jobs jobs each, reporting the best round's rate and the
latency percentiles over all rounds.

    .venv/bin/python benchmarks/sandbox_throughput.py                    # a few minutes on 2 shared cores
    .venv/bin/python benchmarks/sandbox_throughput.py --jobs 400 --workers 2 4 8 --variants full
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import SandboxJob, SandboxLimits, isolation, run_many, zygote  # noqa: E402

VARIANTS = {"full": "", "exec-chain": "zygote", "no-pidns": "pidns", "no-minroot": "minroot", "no-netns": "netns",
            "no-ns": "netns,mountns", "no-cgroups": "cgroups", "bare": None}
PROGRAM = """def add_digits(n):
    total = 0
    while n:
        total += n % 10
        n //= 10
    return total

assert add_digits({n}) == {digits}
assert add_digits(0) == 0
assert add_digits(99) == 18
"""


def programs(count: int) -> list[str]:
    return [PROGRAM.format(n=1000 + i, digits=sum(map(int, str(1000 + i)))) for i in range(count)]


def _bare_one(source: str) -> tuple[bool, float]:
    start = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="qwenpost-bench-")
    try:
        Path(workdir, "main.py").write_text(source)
        done = subprocess.run([shutil.which("python3", path=isolation.SANDBOX_PATH), "-I", "-S", "main.py"],
                              cwd=workdir, capture_output=True, timeout=10)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return done.returncode == 0, time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU time of this process, its reaped children and the zygote with the runs it reaped: all the sandbox's
    work, and nothing of the other jobs sharing the machine."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    server = zygote._zygote
    if server is not None and server.alive and server.owner_pid == os.getpid():
        try:
            fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
        except OSError:
            pass
    return total


def one_round(variant: str, sources: list[str], workers: int) -> tuple[float, list[float], int, float]:
    """(seconds, per-run latencies, runs that passed, CPU seconds used) for one pass over `sources`."""
    start, cpu_start = time.perf_counter(), cpu_seconds()
    if VARIANTS[variant] is None:
        with ThreadPoolExecutor(workers) as pool:
            outcomes = list(pool.map(_bare_one, sources))
        return (time.perf_counter() - start, [t for _, t in outcomes], sum(ok for ok, _ in outcomes),
                cpu_seconds() - cpu_start)
    os.environ[isolation.DISABLE_ENV] = VARIANTS[variant]
    try:
        jobs = [SandboxJob(s, "python", limits=SandboxLimits(cpu_seconds=2, wall_seconds=5)) for s in sources]
        results = run_many(jobs, workers=workers)
    finally:
        os.environ.pop(isolation.DISABLE_ENV, None)
    return (time.perf_counter() - start, [r.duration_s for r in results], sum(r.status == "passed" for r in results),
            cpu_seconds() - cpu_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200, help="programs per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    args = parser.parse_args()

    sources = programs(args.jobs)
    caps = isolation.capabilities()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; root={caps.root}, "
          f"netns={caps.network_namespace}, mountns={caps.mount_namespace}, pidns={caps.pid_namespace}, "
          f"minimal root={caps.minimal_root is not None}, pids cgroup={caps.pids_cgroup is not None}, "
          f"memory cgroup={caps.memory_cgroup is not None}, cpuacct cgroup={caps.cpu_cgroup is not None}")
    print(f"{args.jobs} programs (a function + 3 asserts) per round, best of {args.rounds} rounds after a warm-up\n")
    header = (f"{'variant':<11} {'workers':>7} {'exec/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'passed':>9} "
              f"{'CPU ms/run':>10} {'2-core cap/s':>12}")
    print(header)
    print("-" * len(header))
    for variant in args.variants:
        for workers in args.workers:
            one_round(variant, sources[: max(8, workers * 2)], workers)  # warm-up: caches, capability probes
            best, latencies, passed, cpu = float("inf"), [], 0, 0.0
            for _ in range(args.rounds):
                seconds, round_latencies, round_passed, round_cpu = one_round(variant, sources, workers)
                best, passed, cpu = min(best, seconds), passed + round_passed, cpu + round_cpu
                latencies += round_latencies
            cpu_ms = cpu * 1000 / (args.jobs * args.rounds)
            cuts = statistics.quantiles(latencies, n=100)
            p50, p99 = cuts[49] * 1000, cuts[98] * 1000
            print(f"{variant:<11} {workers:>7} {args.jobs / best:>8.1f} {p50:>8.1f} {p99:>8.1f} "
                  f"{passed:>4}/{args.jobs * args.rounds:<4} {cpu_ms:>10.1f} {2000 / cpu_ms:>12.0f}")
    print("\nlatency = one run's wall time from launch to exit (sandbox set-up included, queueing excluded);"
          " bare = no sandbox at all.\nCPU ms/run = all CPU the sandbox used (parent, zygote, programs) per run;"
          " 2-core cap/s = 2000 / that: the rate two idle cores could sustain, independent of other load.")


if __name__ == "__main__":
    main()
