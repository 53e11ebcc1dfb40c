"""Run model-written programs in the sandbox: `run` for one, `run_many` for a batch on a bounded worker pool.

Each run gets an empty temporary working directory (deleted afterwards), a scrubbed environment, the isolation
layers of `isolation.py`, a wall-clock limit that kills every process the program started, and stdout/stderr
captured up to `output_bytes` each. Output past the cap is never buffered: the run is killed at that point and
reported as failed, with `truncated` set. When the program exits, whatever it left running (background or
detached children) is killed: nothing outlives its run. Hand-written because the isolation and the kill-everything
guarantees are what matters, and no library provides them (see `isolation.py`).

Statuses: "passed" (exit 0), "failed" (non-zero exit, or killed for too much output), "timeout" (wall clock, or CPU
time: a process's RLIMIT_CPU, or the run's CPU budget, all its processes together, after which every one of them is
killed and stderr ends with a note saying so), "memory" (the kernel's OOM killer in the run's memory cgroup, or the
runtime's own out-of-memory error), "crashed" (killed by any other signal, e.g. SIGSEGV, or SIGABRT from a failed
C++ `assert`), "compile_error" (the compile step failed; its output, exit code and duration are the result's),
"static_error" (the language's static check refused the program before any of it ran: a syntax checker, or the
compiler where it is the only checker there is, see languages.py; the diagnostic is the result's stderr, the
checker's stdout appended to it, since tsc, php -l and ghc report there; its exit code and duration are the
result's; Python's check is its own compile inside the run step, which refuses with a marker line and exit status
65, so a program that prints that line and exits 65 itself reads as static_error too: it can only make its own
result worse). A check or compile step that hits its limits (`Language.compile_limits`) fails, and its stderr ends
with a note saying which limit. `run(check=False)` skips the static check; a compile step still runs, and so does
a compiler that is the check (`Language.check_builds`), as a compile step whose failure is a compile_error.

A language whose toolchain is not installed raises `LanguageUnavailable` (a SandboxError) naming the package to
install; `unavailable(language)` says so without running anything.
"""

import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import PurePosixPath

from sandbox import isolation, zygote
from sandbox.languages import (
    STATIC_CHECK_EXIT,
    STATIC_CHECK_MARKER,
    Language,
    get_language,
    install_hint,
    missing_executables,
    python_bootstrap,
)

STATUSES = ("passed", "failed", "timeout", "memory", "crashed", "compile_error", "static_error")
_STREAM_CHUNK = 65536
_DRAIN_AFTER_EXIT_S = 1.0  # after the program exits and its group is killed, pipes close almost at once
_OUTPUT_LIMIT_NOTE = "\n[sandbox] output limit of {limit} bytes exceeded on {stream}; the program was killed\n"
_CPU_BUDGET_NOTE = ("\n[sandbox] CPU budget of {limit:g} s (all of the run's processes together) spent; every process "
                    "was killed\n")
_STEP_LIMIT_NOTE = ("\n[sandbox] the {step} step was stopped at its limit ({limit}); see Language.compile_limits\n")
_CPU_POLL_MIN_S = 0.005  # the CPU budget is checked at most this often (it overshoots by at most this times the cores)


@dataclass(frozen=True)
class SandboxLimits:
    """Limits for one run. Address space is per process; the wall clock, process count and (with a memory cgroup)
    memory bound the whole run, and so does CPU time where a cpuacct cgroup exists (isolation "cpu")."""

    cpu_seconds: float = 5.0  # the run's processes together (cpuacct); each one too (RLIMIT_CPU, rounded up)
    wall_seconds: float = 10.0  # the whole run, from launch to exit; then every process of the run is killed
    memory_mb: int = 512
    file_size_mb: int = 16
    open_files: int = 64
    processes: int = 32  # processes and threads together (a cgroup's pids.max counts threads)
    output_bytes: int = 65536  # per stream (stdout, stderr)

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "wall_seconds", "memory_mb", "file_size_mb", "open_files", "processes",
                     "output_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"SandboxLimits.{name} must be a positive number, got {value!r}")
        if self.open_files < 16:
            raise ValueError(f"SandboxLimits.open_files must be at least 16 (runtimes need some), "
                             f"got {self.open_files}")


@dataclass(frozen=True)
class SandboxJob:
    """One program to run: the unit `run_many` takes."""

    source: str
    language: str = "python"
    stdin: str = ""
    extra_files: dict[str, str] | None = None  # relative path -> text, written beside the source
    limits: SandboxLimits | None = None
    check: bool = True  # run the language's static check first (see `run`)


@dataclass(frozen=True)
class SandboxResult:
    """What happened to one run."""

    status: str  # one of STATUSES
    exit_code: int | None  # the exit status if the program exited, None if a signal ended it
    signal: str | None  # e.g. "SIGKILL" when a signal ended it
    stdout: str  # at most limits.output_bytes bytes (decoded, invalid UTF-8 replaced)
    stderr: str
    truncated: bool  # some output was cut at the cap
    duration_s: float  # wall time of the run step (the check step for static_error, compile step for compile_error)
    isolation: dict[str, str] = field(default_factory=dict)  # which layers confined it; see isolation.py

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


class SandboxError(RuntimeError):
    """The sandbox itself could not run a job (a runtime is missing, the machine refused to start it)."""


class LanguageUnavailable(SandboxError):
    """The language's toolchain is not installed here; the message names the package that installs it."""

    def __init__(self, language: str, package: str, missing: list[str], message: str) -> None:
        super().__init__(message)
        self.language, self.package, self.missing = language, package, missing


def unavailable(language: str | Language) -> str | None:
    """Why `language` cannot run here (its executables missing from the sandbox's PATH, and the package that installs
    them), or None when it can; ValueError for an unknown language."""
    lang = language if isinstance(language, Language) else get_language(language)
    missing = missing_executables(lang, isolation.SANDBOX_PATH)
    if not missing:
        return None
    return (f"{lang.name}: {', '.join(repr(m) for m in missing)} not found in {isolation.SANDBOX_PATH}; "
            f"{install_hint(lang)}")


def available(language: str | Language) -> bool:
    """Whether `language`'s toolchain is installed here (see `unavailable` for the reason when it is not)."""
    return unavailable(language) is None


def _require_available(lang: Language) -> None:
    reason = unavailable(lang)
    if reason is not None:
        raise LanguageUnavailable(lang.name, lang.package, missing_executables(lang, isolation.SANDBOX_PATH), reason)


@dataclass
class _Outcome:
    """Raw facts about one step, before classification."""

    wait_status: int | None = None
    cpu_s: float = 0.0
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    output_exceeded: str | None = None  # the stream whose cap was exceeded (the run was killed)
    wall_timeout: bool = False
    cpu_exceeded: bool = False  # the run's processes together spent its CPU budget (the run was killed)
    duration_s: float = 0.0
    oom_kills: int = 0

    @property
    def exit_code(self) -> int | None:
        if self.wait_status is not None and os.WIFEXITED(self.wait_status):
            return os.WEXITSTATUS(self.wait_status)
        return None

    @property
    def signal_number(self) -> int | None:
        if self.wait_status is not None and os.WIFSIGNALED(self.wait_status):
            return os.WTERMSIG(self.wait_status)
        return None


def run(source: str, language: str = "python", *, stdin: str = "", extra_files: dict[str, str] | None = None,
        limits: SandboxLimits | None = None, check: bool = True) -> SandboxResult:
    """Run `source` in the sandbox and report what happened: its static check first (unless `check` is False),
    then its compile step, then the program. Raises ValueError for an unknown language or bad file names,
    LanguageUnavailable if its toolchain is not installed, SandboxError if the sandbox cannot start it. Never raises
    for anything the program does."""
    lang = get_language(language)
    limits = limits or SandboxLimits()
    if not isinstance(limits, SandboxLimits):
        raise ValueError(f"limits must be a SandboxLimits, got {type(limits).__name__}")
    files = _checked_files(lang, source, stdin, extra_files)
    _require_available(lang)
    caps = isolation.capabilities()
    python = isolation.sandbox_python(caps.drop_user)
    if python is None:
        raise SandboxError(f"no python3 the sandbox user can execute (looked in {isolation.SANDBOX_PATH} and "
                           f"{sys.executable})")
    uid = isolation.uid_pool.acquire() if caps.drop_user else None
    workdir = tempfile.mkdtemp(prefix=f"qwenpost-sandbox-{os.getpid()}-", dir=isolation.workdir_base(caps))
    try:
        _populate(workdir, files, uid)
        summary = isolation.isolation_summary(caps, blocks_sockets=lang.socket_guard,
                                              address_space_limit=lang.address_space_limit)
        values = {
            "{file}": lang.file_name,
            "{memory_mb}": str(int(limits.memory_mb)),
            "{heap_mb}": str(max(16, int(limits.memory_mb) // 2)),
            "{python}": python,
            "{python_bootstrap}": python_bootstrap(block_sockets=not caps.network_namespace, static_check=check),
        }
        env = _environment(workdir, [(name, _substitute(value, values)) for name, value in lang.env])
        build_limits = SandboxLimits(
            cpu_seconds=lang.compile_limits.cpu_seconds, wall_seconds=lang.compile_limits.wall_seconds,
            memory_mb=lang.compile_limits.memory_mb, file_size_mb=max(limits.file_size_mb, 64),
            open_files=max(limits.open_files, lang.compile_limits.open_files),
            processes=lang.compile_limits.processes, output_bytes=limits.output_bytes,
        )
        steps = [("check", lang.check, "static_error") if check else
                 ("compile", lang.check if lang.check_builds else None, "compile_error"),
                 ("compile", lang.compile, "compile_error")]
        for step, command, status in steps:
            if command is None:
                continue
            built = _step(caps, _command(command, values), workdir, uid, build_limits, b"", False, env)
            if built.wait_status != 0:
                return _result(status, built, summary, build_limits, step=step)
        run_limits = replace(limits, processes=limits.processes + lang.extra_processes,
                             open_files=max(limits.open_files, lang.min_open_files))
        outcome = _step(caps, _command(lang.run, values), workdir, uid, run_limits, stdin.encode(),
                        lang.address_space_limit, env)
        status = _classify(outcome, lang, limits)
        if (status == "failed" and lang.inline_check and check and outcome.exit_code == STATIC_CHECK_EXIT
                and STATIC_CHECK_MARKER in bytes(outcome.stderr[-256:]).decode("utf-8", "replace")):
            status = "static_error"
        return _result(status, outcome, summary, limits)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if uid is not None:
            isolation.uid_pool.release(uid)


def run_many(jobs: Sequence[SandboxJob], *, workers: int | None = None, progress: bool = False) -> list[SandboxResult]:
    """Run `jobs` on at most `workers` concurrent sandboxes (default: twice the CPU count, since part of each run is
    spent waiting on process start-up and exit); results in job order.

    A job the sandbox cannot run at all (ValueError, SandboxError) raises here, as `run` would.
    """
    jobs = list(jobs)
    for index, job in enumerate(jobs):
        if not isinstance(job, SandboxJob):
            raise ValueError(f"jobs[{index}] must be a SandboxJob, got {type(job).__name__}")
        get_language(job.language)
    if not jobs:
        return []
    workers = workers or min(32, 2 * (os.cpu_count() or 1))
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="sandbox", unit="run")

    for name in dict.fromkeys(get_language(job.language).name for job in jobs):  # before any job starts
        _require_available(get_language(name))

    def one(job: SandboxJob) -> SandboxResult:
        result = run(job.source, job.language, stdin=job.stdin, extra_files=job.extra_files, limits=job.limits,
                     check=job.check)
        if bar is not None:
            bar.update(1)
        return result

    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="sandbox") as pool:
            return list(pool.map(one, jobs))
    finally:
        if bar is not None:
            bar.close()


def _checked_files(lang: Language, source: str, stdin: str, extra_files: dict[str, str] | None) -> dict[str, str]:
    if not isinstance(source, str):
        raise ValueError(f"source must be a str, got {type(source).__name__}")
    if not isinstance(stdin, str):
        raise ValueError(f"stdin must be a str, got {type(stdin).__name__}")
    files = {lang.file_name: source, **dict(lang.support_files)}
    for name, text in (extra_files or {}).items():
        path = PurePosixPath(name) if isinstance(name, str) else None
        if path is None or not name or path.is_absolute() or ".." in path.parts or str(path) in (".", ""):
            raise ValueError(f"extra_files name {name!r} must be a relative path inside the working directory")
        if str(path) == lang.file_name or str(path) in dict(lang.support_files):
            raise ValueError(f"extra_files name {name!r} collides with the program's own file")
        if not isinstance(text, str):
            raise ValueError(f"extra_files[{name!r}] must be a str, got {type(text).__name__}")
        files[str(path)] = text
    return files


def _populate(workdir: str, files: dict[str, str], uid: int | None) -> None:
    """Write the files and hand the directory to the sandbox user (mode 700: other runs' users cannot enter)."""
    for name, text in files.items():
        path = os.path.join(workdir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    if uid is not None:
        for root, dirs, names in os.walk(workdir):
            for entry in (root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, n) for n in names)):
                os.chown(entry, uid, uid)
    os.chmod(workdir, 0o700)


def _substitute(part: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        part = part.replace(key, value)
    return part


def _command(template: tuple[str, ...], values: dict[str, str]) -> list[str]:
    argv = [_substitute(part, values) for part in template]
    executable = argv[0]
    if "/" not in executable:
        found = shutil.which(executable, path=isolation.SANDBOX_PATH)
        if found is None:
            raise SandboxError(f"{executable!r} is not installed (looked in {isolation.SANDBOX_PATH})")
        argv[0] = found
    return argv


def _environment(workdir: str, extra: list[tuple[str, str]] = ()) -> dict[str, str]:
    """The program's whole environment: nothing of the parent's (secrets, tokens, PYTHON*) reaches it; `extra` is
    the language's own (Language.env)."""
    return {"PATH": isolation.SANDBOX_PATH, "HOME": workdir, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", **dict(extra)}


def _step(caps: isolation.Capabilities, command: list[str], workdir: str, uid: int | None, limits: SandboxLimits,
          stdin: bytes, address_space_limit: bool, env: dict[str, str] | None = None) -> _Outcome:
    """Launch one confined process tree, supervise it to the end and kill whatever it left behind."""
    rlimits = isolation.Rlimits(
        cpu_seconds=max(1, int(-(-limits.cpu_seconds // 1))),
        address_space_bytes=int(limits.memory_mb * 1024 * 1024) if address_space_limit else None,
        file_size_bytes=int(limits.file_size_mb * 1024 * 1024),
        open_files=int(limits.open_files),
        processes=None if caps.pids_cgroup is not None else int(limits.processes) + _user_process_count(uid),
    )
    cgroups = None
    if caps.pids_cgroup is not None or caps.memory_cgroup is not None or caps.cpu_cgroup is not None:
        try:
            cgroups = isolation.RunCgroups(caps, processes=int(limits.processes) + isolation.launcher_processes(caps),
                                           memory_mb=int(limits.memory_mb))
        except OSError as exc:
            raise SandboxError(f"cannot create the run's cgroups: {exc}") from exc
    env = env if env is not None else _environment(workdir)
    try:
        if caps.zygote:
            request = isolation.zygote_request(caps, command, workdir=workdir, uid=uid, rlimits=rlimits,
                                               cgroups=cgroups, env=env)

            def launch(fds: list[int]) -> _Process:
                for attempt in range(2):  # a zygote found dead is replaced once
                    server = zygote.get_zygote(_zygote_python())
                    try:
                        return _ZygoteProcess(server.spawn(request, fds))
                    except zygote.ZygoteError as exc:
                        if attempt or server.alive:
                            raise SandboxError(str(exc)) from exc
        else:
            argv = isolation.launcher_argv(caps, command, workdir=workdir, uid=uid, rlimits=rlimits, cgroups=cgroups)

            def launch(fds: list[int]) -> _Process:
                return _PopenProcess(argv, fds, workdir, env, init_status=caps.pid_namespace)

        cpu_usage = cgroups.cpu_usage_s if cgroups is not None and cgroups.cpu_dir is not None else None
        outcome = _supervise(launch, stdin, limits, lambda pid: _kill_tree(pid, cgroups, uid), cpu_usage)
        if outcome.wait_status is None:
            raise SandboxError("the sandbox zygote exited during the run; its outcome is unknown")
        if cgroups is not None:
            outcome.oom_kills = cgroups.oom_kills()
        return outcome
    finally:
        if cgroups is not None:
            cgroups.remove()


def _zygote_python() -> str:
    """The zygote runs as root, so the parent's own interpreter will do (its stdlib is all it imports)."""
    return sys.executable


class _Process:
    """A launched program: its pid, a descriptor readable once it has exited, then its wait status."""

    pid: int
    exit_fd: int

    def wait(self) -> tuple[int | None, float]:
        """(wait status, CPU seconds), blocking until the program has exited."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _PopenProcess(_Process):
    """Started through the exec chain as our own child: a pidfd tells when it exits, wait4 collects it. With a PID
    namespace, the program's status comes through its init shell's exit code (`isolation.decode_init_status`)."""

    def __init__(self, argv: list[str], fds: list[int], workdir: str, env: dict[str, str], *,
                 init_status: bool = False) -> None:
        self._init_status = init_status
        try:
            self._proc = subprocess.Popen(argv, stdin=fds[0], stdout=fds[1], stderr=fds[2], cwd=workdir, env=env,
                                          process_group=0, close_fds=True)
        except OSError as exc:
            raise SandboxError(f"could not start the sandbox launcher {argv[0]!r}: {exc}") from exc
        self.pid = self._proc.pid
        self.exit_fd = os.pidfd_open(self.pid)

    def wait(self) -> tuple[int | None, float]:
        _, status, usage = os.wait4(self.pid, 0)
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        if self._init_status:
            status = isolation.decode_init_status(status)
        return status, usage.ru_utime + usage.ru_stime

    def close(self) -> None:
        os.close(self.exit_fd)


class _ZygoteProcess(_Process):
    """Started by the fork server, which reaps it and reports its status."""

    def __init__(self, spawned: "zygote.Spawned") -> None:
        self._spawned = spawned
        self.pid = spawned.pid
        self.exit_fd = spawned.exit_r

    def wait(self) -> tuple[int | None, float]:
        self._spawned.finished.wait()
        return self._spawned.status, self._spawned.cpu_s

    def close(self) -> None:
        self._spawned.close()


def _user_process_count(uid: int | None) -> int:
    """Processes this user already has: RLIMIT_NPROC counts them all when the run shares our uid."""
    if uid is not None:
        return 0
    own = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == own
            except OSError:
                pass
    return count


def _kill_tree(pid: int, cgroups: "isolation.RunCgroups | None", uid: int | None) -> None:
    """Kill every process of the run: by cgroup where there is one (exact, and immune to pid reuse), else its
    process group and then every process of the run's own uid."""
    if cgroups is not None:
        cgroups.kill_all()
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if uid is None:
        return  # without a uid of its own, a child that called setsid can survive: isolation "user": "same"
    for _ in range(100):
        victims = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        victims.append(int(entry.name))
                except OSError:
                    pass
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.002)


def _supervise(launch, stdin: bytes, limits: SandboxLimits, kill_tree, cpu_usage=None) -> _Outcome:
    """Feed stdin, collect capped output, enforce the wall clock and (given `cpu_usage`, the run's CPU seconds so
    far) the CPU budget; after the program exits, kill what it left.

    The budget is read when it could first have been spent: the run cannot use more than one CPU-second per second
    per core, so the next check is the budget left divided by the cores (at least `_CPU_POLL_MIN_S`) away, and a
    short run is never checked at all."""
    outcome = _Outcome()
    cap = int(limits.output_bytes)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    start = time.monotonic()
    try:
        process = launch([in_r, out_w, err_w])
    except BaseException:
        for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    deadline = start + float(limits.wall_seconds)
    budget = float(limits.cpu_seconds)
    cores = max(1, os.cpu_count() or 1)  # all online CPUs: the run may set its affinity beyond ours
    next_cpu_check = start + budget / cores if cpu_usage is not None else float("inf")

    def kill_all() -> None:
        kill_tree(process.pid)

    selector = selectors.DefaultSelector()
    buffers = {out_r: outcome.stdout, err_r: outcome.stderr}
    names = {out_r: "stdout", err_r: "stderr"}
    open_fds = {in_w, out_r, err_r}

    def close(fd: int) -> None:
        if fd in open_fds:
            open_fds.discard(fd)
            try:
                selector.unregister(fd)
            except KeyError:
                pass
            os.close(fd)

    for fd in (out_r, err_r):
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(in_w, False)
        selector.register(in_w, selectors.EVENT_WRITE)
    else:
        close(in_w)
    selector.register(process.exit_fd, selectors.EVENT_READ)
    exited = False
    drain_deadline = 0.0
    try:
        while True:
            if exited and out_r not in open_fds and err_r not in open_fds:
                break
            now = time.monotonic()
            if exited:
                if now > drain_deadline:
                    break
                timeout = drain_deadline - now
            else:
                if now >= deadline:  # past the wall clock: kill (again) until the exit is seen
                    outcome.wall_timeout = True
                    kill_all()
                    timeout = 0.1
                else:
                    timeout = deadline - now
                if now >= next_cpu_check:
                    used = cpu_usage()
                    if used is not None and used >= budget:  # spent: kill (again) until the exit is seen
                        outcome.cpu_exceeded = True
                        kill_all()
                        next_cpu_check = now + 0.1
                    else:
                        next_cpu_check = now + max(_CPU_POLL_MIN_S, (budget - (used or 0.0)) / cores)
                timeout = min(timeout, next_cpu_check - now)
            for key, _ in selector.select(timeout):
                fd = key.fd
                if fd == process.exit_fd:
                    selector.unregister(fd)
                    outcome.wait_status, outcome.cpu_s = process.wait()
                    outcome.duration_s = time.monotonic() - start
                    exited = True
                    kill_all()  # nothing outlives the program: detached children, background sleepers
                    drain_deadline = time.monotonic() + _DRAIN_AFTER_EXIT_S
                elif fd == in_w:
                    try:
                        pending = pending[os.write(in_w, pending[:_STREAM_CHUNK]):]
                    except BlockingIOError:
                        continue
                    except (BrokenPipeError, OSError):
                        pending = pending[:0]
                    if not pending:
                        close(in_w)
                else:
                    chunk = os.read(fd, _STREAM_CHUNK)
                    if not chunk:
                        close(fd)
                        continue
                    buffer = buffers[fd]
                    room = cap - len(buffer)
                    buffer += chunk[: max(room, 0)]
                    if len(chunk) > room:
                        outcome.truncated = True
                        if outcome.output_exceeded is None and not exited:
                            outcome.output_exceeded = names[fd]
                            kill_all()  # stop reading here: the rest of the output is never buffered
                            close(fd)
    finally:
        selector.close()
        for fd in list(open_fds):
            close(fd)
        if not exited:
            kill_all()
            outcome.wait_status, outcome.cpu_s = process.wait()
            outcome.duration_s = time.monotonic() - start
        process.close()
    return outcome


def _classify(outcome: _Outcome, lang: Language, limits: SandboxLimits) -> str:
    sig = outcome.signal_number
    if outcome.oom_kills > 0 and outcome.wait_status != 0:
        return "memory"
    if outcome.wall_timeout or outcome.cpu_exceeded:
        return "timeout"
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and outcome.cpu_s >= limits.cpu_seconds):
        return "timeout"
    if outcome.wait_status != 0 and _says_out_of_memory(outcome.stderr, lang):
        return "memory"
    if outcome.output_exceeded is not None:
        return "failed"
    if sig is not None:
        return "crashed"
    return "passed" if outcome.exit_code == 0 else "failed"


def _says_out_of_memory(stderr: bytes, lang: Language) -> bool:
    """The runtime's own out-of-memory report, looked for at the end of stderr only (node prints a native stack
    trace after its message, hence a few kilobytes)."""
    tail = bytes(stderr[-4096:]).decode("utf-8", "replace")
    return any(marker in tail for marker in lang.memory_error_markers)


def _result(status: str, outcome: _Outcome, summary: dict[str, str], limits: SandboxLimits,
            step: str | None = None) -> SandboxResult:
    """The result of the run step, or of a failed check/compile `step` (whose stderr notes a limit it hit; a
    check's stdout is appended to its stderr, and the result's stdout is empty)."""
    stderr = bytes(outcome.stderr).decode("utf-8", "replace")
    stdout = bytes(outcome.stdout).decode("utf-8", "replace")
    if step == "check":
        stderr, stdout = stderr + stdout, ""
    if outcome.output_exceeded is not None:
        stderr += _OUTPUT_LIMIT_NOTE.format(limit=limits.output_bytes, stream=outcome.output_exceeded)
    if outcome.cpu_exceeded:
        stderr += _CPU_BUDGET_NOTE.format(limit=float(limits.cpu_seconds))
    sig = outcome.signal_number
    if step is not None:
        limit = None
        if outcome.wall_timeout:
            limit = f"wall clock {float(limits.wall_seconds):g} s"
        elif outcome.cpu_exceeded or sig == signal.SIGXCPU:
            limit = f"CPU {float(limits.cpu_seconds):g} s"
        elif outcome.oom_kills > 0:
            limit = f"memory {int(limits.memory_mb)} MB"
        if limit is not None:
            stderr += _STEP_LIMIT_NOTE.format(step=step, limit=limit)
    return SandboxResult(
        status=status,
        exit_code=outcome.exit_code,
        signal=signal.Signals(sig).name if sig is not None else None,
        stdout=stdout,
        stderr=stderr,
        truncated=outcome.truncated,
        duration_s=round(outcome.duration_s, 4),
        isolation=dict(summary),
    )
