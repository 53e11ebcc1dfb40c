"""Process isolation for the sandbox: what this machine allows, per-run cgroups, sandbox users and the launchers.

Hand-written because no library gives this combination on a plain Linux host without a container runtime
(bubblewrap/nsjail/firejail are not installed where this runs, and none of them set cgroup v1 limits for us).
There are two launchers that apply the same layers, neither needing `preexec_fn` (unsafe with the threads
`run_many` uses): as root, a fork server (`zygote.py`) that confines each child with direct system calls and
execs it; otherwise, or with the zygote disabled, a chain of `exec`s of standard util-linux tools (`sh` →
`unshare` → `mount` → `prlimit` → `setpriv`) built by `launcher_argv`. The zygote is several times cheaper
(see benchmarks/sandbox_throughput.py); every run is still a fresh process image.

The strong path (root with cgroup v1, what this project's machines and CI have), per run:
- a `pids` cgroup whose `pids.max` is the process limit (RLIMIT_NPROC does not bind for root, nor for a uid mapped
  inside a user namespace created by root) and a `memory` cgroup whose limit is the memory limit plus headroom
  (`cgroup_memory_mb`); both are made under this process's own cgroup, killed through `cgroup.procs` at the end
  and removed; cgroups left by a parent that died mid-run are reaped on the next start;
- new network, mount and IPC namespaces: only a down loopback, so nothing is reachable; fresh size-limited tmpfs on
  /tmp and /dev/shm; the root filesystem read-only except the working directory, which is bind-mounted back;
- a uid/gid of its own (unique among concurrent runs, not in /etc/passwd), so it cannot signal, ptrace or read
  the environment of the parent or of other runs, and cannot write anything root owns;
- rlimits (CPU time, address space where the language allows, file size, open files, no core dumps),
  no_new_privs, and the parent-death signal, set just before the program starts.

Where a piece is missing (not root, cgroupfs read-only, namespaces refused) the launcher degrades piece by piece
and `isolation_summary` says what was used: network "namespace" | "socket-blocked" (Python only, an audit hook) |
"none"; pids "cgroup" | "rlimit-unprivileged" | "rlimit" (shared uid: counts all of this user's processes);
memory "cgroup" | "rlimit" | "runtime-flag" (node's heap cap only); filesystem "mount-namespace" |
"unprivileged-user" | "none"; user "dedicated" | "same".
`QWENPOST_SANDBOX_DISABLE` (comma list of cgroups, netns, mountns, setuid, zygote) forces a degraded or
alternative path, for tests and benchmarks.
"""

import functools
import itertools
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DISABLE_ENV = "QWENPOST_SANDBOX_DISABLE"
DISABLE_CHOICES = ("cgroups", "netns", "mountns", "setuid", "zygote")
SETUP_FAILED_EXIT = 125  # the exec chain exits with this (and SETUP_MARKER on stderr) if its set-up fails
SETUP_MARKER = "qwenpost-sandbox: setup failed"
CGROUP_PREFIX = "qwenpost-sandbox-"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
_UID_BASE = 1_000_000  # sandbox uids: _UID_BASE + (parent pid % 32768) * _UIDS_PER_PROCESS + slot
_UIDS_PER_PROCESS = 1000
_TMPFS_MB = 64  # size of the private /tmp and /dev/shm; their pages are charged to the run's memory cgroup


@dataclass(frozen=True)
class Capabilities:
    """What this machine lets the sandbox use, detected once per process (and per QWENPOST_SANDBOX_DISABLE)."""

    root: bool
    unshare: str | None  # path of util-linux unshare
    setpriv: str | None
    prlimit: str | None
    network_namespace: bool  # `unshare --net` works
    mount_namespace: bool  # `unshare --mount` + tmpfs + read-only remount work
    pids_cgroup: Path | None  # directory under which per-run pids cgroups are created
    memory_cgroup: Path | None  # same for the memory controller
    drop_user: bool  # root (zygote or setpriv available): each run gets a uid of its own
    zygote: bool = False  # root: runs are confined and started by the fork server in zygote.py, not an exec chain

    @property
    def pids_mode(self) -> str:
        if self.pids_cgroup is not None:
            return "cgroup"
        return "rlimit-unprivileged" if self.drop_user else "rlimit"


def capabilities() -> Capabilities:
    """Detect (once) what isolation this machine allows; see the module docstring."""
    return _detect(os.environ.get(DISABLE_ENV, ""))


@functools.cache
def _detect(disable_spec: str) -> Capabilities:
    disabled = {part.strip() for part in disable_spec.split(",") if part.strip()}
    unknown = disabled - set(DISABLE_CHOICES)
    if unknown:
        raise ValueError(f"{DISABLE_ENV} has unknown entries {sorted(unknown)}; choose from {list(DISABLE_CHOICES)}")
    root = os.geteuid() == 0
    unshare, setpriv, prlimit = (shutil.which(tool, path=SANDBOX_PATH) for tool in ("unshare", "setpriv", "prlimit"))
    netns = mountns = False
    if root and unshare:
        netns = "netns" not in disabled and _probe([unshare, "--net", "--", "/bin/true"])
        mount_script = "mount -t tmpfs -o size=1m tmpfs /tmp && mount -o remount,bind,ro /"
        mountns = "mountns" not in disabled and _probe([unshare, "--mount", "--", "/bin/sh", "-c", mount_script])
    pids_cgroup = memory_cgroup = None
    if root and "cgroups" not in disabled:
        pids_cgroup = _own_cgroup_dir("pids", "pids.max")
        memory_cgroup = _own_cgroup_dir("memory", "memory.limit_in_bytes")
        for parent in (pids_cgroup, memory_cgroup):
            if parent is not None:
                _reap_stale_cgroups(parent)
    for base in {"/dev/shm", tempfile.gettempdir()}:
        _remove_stale_workdirs(base)
    zygote = root and "zygote" not in disabled
    drop_user = root and (zygote or setpriv is not None) and "setuid" not in disabled
    return Capabilities(root, unshare, setpriv, prlimit, netns, mountns, pids_cgroup, memory_cgroup, drop_user,
                        zygote)


def _probe(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _own_cgroup_dir(controller: str, limit_file: str) -> Path | None:
    """This process's own cgroup v1 directory for `controller`, if we can create children with limits in it."""
    mount_point = None
    try:
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) >= 4 and fields[2] == "cgroup" and controller in fields[3].split(","):
                    mount_point = Path(fields[1])
                    break
        own = "/"
        with open("/proc/self/cgroup") as groups:
            for line in groups:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controller in controllers.split(","):
                    own = path
    except OSError:
        return None
    if mount_point is None:
        return None
    parent = mount_point / own.lstrip("/")
    if not parent.is_dir():
        parent = mount_point
    probe = parent / f"{CGROUP_PREFIX}probe-{os.getpid()}-{threading.get_ident()}"
    try:
        probe.mkdir()
    except OSError:
        return None
    try:
        ok = (probe / limit_file).exists() and os.access(probe / limit_file, os.W_OK)
    finally:
        _rmdir_quietly(probe)
    return parent if ok else None


def _reap_stale_cgroups(parent: Path) -> None:
    """Kill and remove cgroups left by sandbox parents that died mid-run (their pid is no longer alive)."""
    for stale in parent.glob(f"{CGROUP_PREFIX}*"):
        owner = stale.name.removeprefix(CGROUP_PREFIX).split("-")[0]
        if not owner.isdigit() or Path(f"/proc/{owner}").exists():
            continue
        _kill_cgroup_procs([stale / "cgroup.procs"])
        _rmdir_quietly(stale)


def _remove_stale_workdirs(base: str) -> None:
    """Remove working directories left by sandbox parents that died mid-run (named after the parent's pid)."""
    for stale in Path(base).glob("qwenpost-sandbox-*"):
        owner = stale.name.removeprefix("qwenpost-sandbox-").split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists() and stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def _read_pids(procs_file: Path) -> list[int]:
    try:
        return [int(line) for line in procs_file.read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_cgroup_procs(procs_files: list[Path], timeout: float = 5.0) -> bool:
    """SIGKILL every process in the cgroups until they are empty; True when they are.

    A process being killed cannot fork any more, and pids.max bounds how many exist, so a fork bomb is emptied in a
    few rounds.
    """
    deadline = time.monotonic() + timeout
    while True:
        pids = {pid for procs in procs_files for pid in _read_pids(procs)}
        if not pids:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.002)


_run_counter = itertools.count()


def cgroup_memory_mb(memory_mb: int) -> int:
    """The run's memory cgroup limit: the memory limit plus headroom, so that where RLIMIT_AS is also applied the
    allocation fails inside the program first (a clean MemoryError / bad_alloc) instead of the whole group thrashing
    against the cgroup limit; the cgroup still bounds node, child processes and tmpfs files."""
    return memory_mb + max(64, memory_mb // 4)


class RunCgroups:
    """The pids and memory cgroups of one run (either may be absent where the machine does not allow it)."""

    def __init__(self, caps: Capabilities, *, processes: int, memory_mb: int) -> None:
        name = f"{CGROUP_PREFIX}{os.getpid()}-{next(_run_counter)}"
        self.pids_dir = self.memory_dir = None
        try:
            if caps.pids_cgroup is not None:
                self.pids_dir = caps.pids_cgroup / name
                self.pids_dir.mkdir()
                (self.pids_dir / "pids.max").write_text(str(processes))
            if caps.memory_cgroup is not None:
                self.memory_dir = caps.memory_cgroup / name
                self.memory_dir.mkdir()
                limit = str(cgroup_memory_mb(memory_mb) * 1024 * 1024)
                (self.memory_dir / "memory.limit_in_bytes").write_text(limit)
                memsw = self.memory_dir / "memory.memsw.limit_in_bytes"
                if memsw.exists():  # swap counts too, where the kernel accounts it
                    memsw.write_text(limit)
        except OSError:
            self.remove()
            raise

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in (self.pids_dir, self.memory_dir) if d is not None]

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed in this run's memory cgroup."""
        if self.memory_dir is None:
            return 0
        try:
            for line in (self.memory_dir / "memory.oom_control").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill_all(self) -> bool:
        return _kill_cgroup_procs(self.procs_files)

    def remove(self) -> None:
        """Kill whatever is left and delete the cgroups (rmdir can lag the last exit by a moment)."""
        self.kill_all()
        for directory in (self.pids_dir, self.memory_dir):
            if directory is None:
                continue
            for _ in range(200):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    _kill_cgroup_procs([directory / "cgroup.procs"], timeout=0.5)
                    time.sleep(0.005)


class _UidPool:
    """Hands out sandbox uids so that no two concurrent runs of this process share one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free = threading.Condition(self._lock)
        self._in_use: set[int] = set()

    def acquire(self) -> int:
        with self._free:
            while len(self._in_use) >= _UIDS_PER_PROCESS:
                self._free.wait()
            slot = next(i for i in range(_UIDS_PER_PROCESS) if i not in self._in_use)
            self._in_use.add(slot)
        return _UID_BASE + (os.getpid() % 32768) * _UIDS_PER_PROCESS + slot

    def release(self, uid: int) -> None:
        with self._free:
            self._in_use.discard((uid - _UID_BASE) % _UIDS_PER_PROCESS)
            self._free.notify()


uid_pool = _UidPool()


def workdir_base(caps: Capabilities) -> str | None:
    """Where working directories go: tmpfs (/dev/shm) when a memory cgroup bounds it, so written files count as the
    run's memory and cannot fill the disk; the default temporary directory otherwise."""
    if caps.memory_cgroup is not None and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return None


@dataclass(frozen=True)
class Rlimits:
    """Resource limits applied with prlimit just before the program starts."""

    cpu_seconds: int
    address_space_bytes: int | None  # None: no RLIMIT_AS (node)
    file_size_bytes: int
    open_files: int
    processes: int | None  # RLIMIT_NPROC; None where a pids cgroup does the job


def isolation_summary(caps: Capabilities, *, blocks_sockets: bool, address_space_limit: bool = True) -> dict[str, str]:
    """What a run launched with these capabilities is confined by (stored in every result)."""
    if caps.network_namespace:
        network = "namespace"
    else:
        network = "socket-blocked" if blocks_sockets else "none"
    if caps.memory_cgroup is not None:
        memory = "cgroup"
    else:
        memory = "rlimit" if address_space_limit else "runtime-flag"
    if caps.mount_namespace:
        filesystem = "mount-namespace"
    else:
        filesystem = "unprivileged-user" if caps.drop_user else "none"
    return {
        "network": network,
        "pids": caps.pids_mode,
        "memory": memory,
        "filesystem": filesystem,
        "user": "dedicated" if caps.drop_user else "same",
    }


def zygote_request(
    caps: Capabilities, command: list[str], *, workdir: str, uid: int | None, rlimits: Rlimits,
    cgroups: RunCgroups | None, env: dict[str, str], tmpfs_mb: int = _TMPFS_MB,
) -> dict:
    """The same confinement as `launcher_argv`, as a request for the fork server (zygote.py)."""
    limits = {"cpu": [rlimits.cpu_seconds, rlimits.cpu_seconds + 1], "fsize": [rlimits.file_size_bytes] * 2,
              "nofile": [rlimits.open_files] * 2, "core": [0, 0]}
    if rlimits.address_space_bytes is not None:
        limits["as"] = [rlimits.address_space_bytes] * 2
    if rlimits.processes is not None:
        limits["nproc"] = [rlimits.processes] * 2
    return {
        "argv": command, "env": env, "cwd": workdir, "uid": uid, "rlimits": limits, "tmpfs_mb": tmpfs_mb,
        "cgroup_procs": [str(p) for p in cgroups.procs_files] if cgroups is not None else [],
        "netns": caps.network_namespace, "mountns": caps.mount_namespace,
    }


def launcher_argv(
    caps: Capabilities, command: list[str], *, workdir: str, uid: int | None, rlimits: Rlimits,
    cgroups: RunCgroups | None, tmpfs_mb: int = _TMPFS_MB,
) -> list[str]:
    """The argv that confines `command` and execs it in `workdir` (see the module docstring for the layers)."""
    limits = [f"--cpu={rlimits.cpu_seconds}:{rlimits.cpu_seconds + 1}", f"--fsize={rlimits.file_size_bytes}",
              f"--nofile={rlimits.open_files}", "--core=0"]
    if rlimits.address_space_bytes is not None:
        limits.append(f"--as={rlimits.address_space_bytes}")
    if rlimits.processes is not None:
        limits.append(f"--nproc={rlimits.processes}")
    inner = [caps.prlimit or "prlimit", *limits, "--"]
    if uid is not None:
        inner += [caps.setpriv or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                  "--no-new-privs", "--bounding-set=-all", "--pdeathsig=KILL", "--"]
    inner += command
    fail = f'{{ echo "{SETUP_MARKER}: $0" >&2; exit {SETUP_FAILED_EXIT}; }}'
    script: list[str] = []
    for procs in cgroups.procs_files if cgroups is not None else []:
        script.append(f"echo $$ > {shlex.quote(str(procs))} || {fail}")
    ns_flags = []
    if caps.network_namespace:
        ns_flags.append("--net")
    if caps.mount_namespace:
        ns_flags += ["--mount", "--ipc"]
    if not ns_flags:
        script.append("exec " + shlex.join(inner))
        return ["/bin/sh", "-c", "\n".join(script), "launcher"]
    ns_script = []
    if caps.mount_namespace:
        # The working directory is reached again through "." (the shell's cwd) after the tmpfs hides its old path;
        # --no-canonicalize keeps mount from resolving "." to the (now empty) path first.
        w = shlex.quote(workdir)
        mounts = [
            f"cd {w}",
            f"mount -t tmpfs -o size={tmpfs_mb}m,mode=1777,nosuid,nodev tmpfs /tmp",
            f"mount -t tmpfs -o size={tmpfs_mb}m,mode=1777,nosuid,nodev tmpfs /dev/shm",
            f"mkdir -p {w}",
            f"mount --no-canonicalize --bind . {w}",
            "mount -o remount,bind,ro /",
            f"cd {w}",
        ]
        ns_script.append(" && ".join(mounts) + f" || {fail}")
    ns_script.append("exec " + shlex.join(inner))
    script.append("exec " + shlex.join([caps.unshare or "unshare", *ns_flags, "--", "/bin/sh", "-c",
                                        "\n".join(ns_script), "namespace-setup"]))
    return ["/bin/sh", "-c", "\n".join(script), "launcher"]
