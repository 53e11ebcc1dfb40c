"""Verification where it can be killed: worker processes bounded in wall time, CPU and memory.

A verifier that runs away on hostile input (sympy on `\\boxed{9^{999999}}`, a backtracking regex, a schema walk)
cannot be stopped inside a thread: the thread holds the GIL, so the event loop beside it stops answering, and it
keeps its memory until it finishes, if ever. `VerifierPool` runs each check in a worker process of pebble's
`ProcessPool`, which kills the worker running a task past its timeout and starts a fresh one, so a killed check
frees its slot for the next request within the fork of one process. `concurrent.futures.ProcessPoolExecutor`
cannot cancel a running task (a hung worker breaks the whole pool); pebble does exactly this and nothing else, so
it is used as is. Each worker is bounded by:
- wall time: the task's `timeout_s`, after which pebble kills the worker (result: `TimeoutError`);
- CPU: a soft RLIMIT_CPU set before each task to the CPU already used plus `timeout_s` (the kernel ends a worker
  that spins in C code that ignores signals; result: `pebble.ProcessExpired`);
- memory: RLIMIT_AS of `memory_mb` (sympy building a huge integer gets MemoryError, reported as an error).

Workers are forked from a `forkserver` process that has the verifiers and math-verify (sympy) imported, so a
replacement worker starts in milliseconds and without the parent's threads (the reward service's parent holds
torch and uvicorn threads; forking it directly is unsafe). Types whose verifier already runs its untrusted part
in a killable process of its own (`code`, `instruction_code`: the sandbox) may stay on threads: see
`reward.app`.

`resolve_verifiers(extra)` is the one place `{type: "module:function"}` extra verifiers are imported, in the
parent (to fail at start-up on a bad target) and again in every worker.
"""

import importlib
import multiprocessing
import resource
from collections.abc import Callable
from concurrent.futures import Future

import pebble

from verifiers import VERIFIERS, verify
from verifiers.result import VerifierResult

VerifyFn = Callable[[str, dict], VerifierResult]
PRELOAD = ["verifiers", "verifiers.pool", "math_verify", "jsonschema"]  # imported once in the fork server

_worker_verify: VerifyFn | None = None  # set in each worker by _init_worker


def resolve_verifiers(extra: dict[str, str] | None) -> tuple[VerifyFn, Callable[[str], bool]]:
    """(verify, knows_type): the registry's `verify` with the extra verifiers ("module:function") looked up first.
    ValueError naming the type and target when one cannot be imported."""
    functions = {}
    for kind, target in (extra or {}).items():
        module_name, _, attr = target.partition(":")
        try:
            functions[kind] = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(f"`extra_verifiers.{kind}`: cannot import {target!r} ({err})") from err

    def verify_any(response: str, reference: dict) -> VerifierResult:
        function = functions.get(reference.get("type"))
        return function(response, reference) if function is not None else verify(response, reference)

    return verify_any, lambda kind: kind in functions or kind in VERIFIERS


def _init_worker(memory_mb: int, extra: dict[str, str]) -> None:
    global _worker_verify
    if memory_mb > 0:
        limit = memory_mb * 2**20
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    _worker_verify, _ = resolve_verifiers(extra)


def _run(response: str, reference: dict, cpu_seconds: float) -> VerifierResult:
    """One check in a worker, its CPU capped at what the worker has used so far plus `cpu_seconds`."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(used + cpu_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    return _worker_verify(response, reference)


class VerifierPool:
    """`submit(response, reference) -> Future[VerifierResult]` on `workers` killable processes.

    The future raises `TimeoutError` when the check ran past `timeout_s` (its worker was killed), `ProcessExpired`
    when the worker died (CPU or memory limit, a crash), or what the verifier raised (ValueError for a bad
    reference, MemoryError past `memory_mb`). Call `close()` when done.
    """

    def __init__(self, workers: int, *, timeout_s: float, memory_mb: int = 2048,
                 extra_verifiers: dict[str, str] | None = None):  # fmt: skip
        if workers < 1 or timeout_s <= 0:
            raise ValueError(f"VerifierPool: need workers >= 1 and timeout_s > 0, got {workers}, {timeout_s}")
        resolve_verifiers(extra_verifiers)  # fail here, naming the target, not in every worker
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self.timeout_s = timeout_s
        self._pool = pebble.ProcessPool(
            max_workers=workers, initializer=_init_worker, initargs=(memory_mb, dict(extra_verifiers or {})),
            context=context,
        )  # fmt: skip

    def submit(self, response: str, reference: dict) -> Future:
        return self._pool.schedule(_run, args=(response, reference, self.timeout_s), timeout=self.timeout_s)

    def close(self) -> None:
        """Stop the workers at once (running checks are killed)."""
        self._pool.stop()
        self._pool.join(timeout=10)


ProcessExpired = pebble.ProcessExpired
