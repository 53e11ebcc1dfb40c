"""Process isolation for the sandbox: what this machine allows, per-run cgroups, sandbox users and the launchers.

Hand-written because no library gives this combination on a plain Linux host without a container runtime
(bubblewrap/nsjail/firejail are not installed where this runs, and none of them set cgroup v1 limits for us).
There are two launchers that apply the same layers, neither needing `preexec_fn` (unsafe with the threads
`run_many` uses): as root, a fork server (`zygote.py`) that confines each child with direct system calls and
execs it; otherwise, or with the zygote disabled, a chain of `exec`s of standard util-linux tools (`sh` →
`unshare` → `mount` → `pivot_root` → `prlimit` → `setpriv`) built by `launcher_argv`. The zygote is cheaper (see
benchmarks/sandbox_throughput.py); every run is still a fresh process image.

The strong path (root with cgroup v1, what this project's machines and CI have), per run:
- a `pids` cgroup whose `pids.max` is the process limit (RLIMIT_NPROC does not bind for root, nor for a uid mapped
  inside a user namespace created by root; the launcher's own processes inside the run, see below, are added), a
  `memory` cgroup whose limit is the memory limit plus headroom (`cgroup_memory_mb`) and a `cpuacct` cgroup whose
  usage the parent watches: when the run's processes together have used the run's CPU seconds, every one of them
  is killed (status "timeout"; RLIMIT_CPU still bounds each process too). All are made under this process's own
  cgroups, killed through `cgroup.procs` at the end and removed; cgroups left by a parent that died mid-run are
  reaped on the next start;
- new PID, network, mount and IPC namespaces: the program sees only its own run's processes, in a fresh /proc;
  only a down loopback, so nothing is reachable over the network;
- a minimal root (`RootPlan`): a skeleton directory made once per process (mount points, the host's /bin, /lib...
  links, a minimal /etc: passwd and group with root and nobody, hosts, nsswitch.conf, ld.so.cache, localtime, the
  /etc/alternatives links the toolchain resolves through, and the configuration directories a language declares in
  `Language.host_paths`, such as /etc/java-17-openjdk or GHC's package database under /var/lib/ghc, read-only;
  a /dev of null, zero, full, random and urandom, no tty),
  bound read-only in each run's mount namespace, with /usr bound read-only into it (interpreters, compilers,
  headers, libraries; /usr/local hidden unless a language lives there), the real install prefix of an interpreter or
  tool that lives elsewhere, a fresh /proc, fresh size-limited tmpfs on /tmp and /dev/shm and the working directory
  bound back at its path, then made the root with pivot_root and the host's tree detached. Nothing else of the host
  exists inside: no /run (nor the unix sockets of host services there: a network namespace does not cover socket
  files), /home, /root, /work, /srv or /var;
- a uid/gid of its own (unique among concurrent runs, not in /etc/passwd), so it cannot signal, ptrace or read
  the environment of the parent or of other runs, and cannot write anything root owns;
- rlimits (CPU time, address space where the language allows, file size, open files, no core dumps),
  no_new_privs, and the parent-death signal, set just before the program starts.

In a PID namespace the first process is the namespace's init, whose exit makes the kernel kill everything left in
it. The program is never that init (the kernel ignores the signals an init sends itself, so abort() or RLIMIT_CPU's
SIGXCPU would not end it). The zygote's init is a fork of the zygote that builds the root as root, then takes on the
program's limits and uid, becomes undumpable (the program can neither trace it nor open its descriptors, and the
kernel drops what the program signals to its init) and spawns the program, reaps and reports the program's wait
status. The exec chain's init is its set-up shell (`unshare --pid --fork`, root), which runs the program as a child
and exits with its status, 128 + N for signal N, which `decode_init_status` turns back into a signal (so on that
path only, a program exiting with 129-159 itself reads as killed by a signal).

Where a piece is missing (not root, cgroupfs read-only, namespaces refused) the launcher degrades piece by piece
and `isolation_summary` says what was used: network "namespace" | "socket-blocked" (Python only, an audit hook) |
"none"; pids "cgroup" | "rlimit-unprivileged" | "rlimit" (shared uid: counts all of this user's processes);
memory "cgroup" | "rlimit" | "runtime-flag" (node's heap cap only); filesystem "mount-namespace" |
"unprivileged-user" | "none"; user "dedicated" | "same"; pid "namespace" | "shared" (needs the mount namespace,
for its /proc); root "minimal" | "host-readonly" (the host's root remounted read-only: every world-readable host
file and socket is reachable) | "host"; cpu "cgroup-budget" | "rlimit-per-process" (a run's total CPU is then
bounded only by its wall clock times the cores).
`QWENPOST_SANDBOX_DISABLE` (comma list of cgroups, netns, mountns, pidns, minroot, setuid, zygote) forces a
degraded or alternative path, for tests and benchmarks.
"""

import atexit
import dataclasses
import functools
import itertools
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox import zygote
from sandbox.languages import LANGUAGES

DISABLE_ENV = "QWENPOST_SANDBOX_DISABLE"
DISABLE_CHOICES = ("cgroups", "netns", "mountns", "pidns", "minroot", "setuid", "zygote")
SETUP_FAILED_EXIT = 125  # the exec chain exits with this (and SETUP_MARKER on stderr) if its set-up fails
SETUP_MARKER = "qwenpost-sandbox: setup failed"
CGROUP_PREFIX = "qwenpost-sandbox-"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
_UID_BASE = 1_000_000  # sandbox uids: _UID_BASE + (parent pid % 32768) * _UIDS_PER_PROCESS + slot
_UIDS_PER_PROCESS = 1000
_TMPFS_MB = 64  # size of the private /tmp and /dev/shm; their pages are charged to the run's memory cgroup
_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # links into /usr (merged /usr) or bound as well
_DEVICES = ("null", "zero", "full", "random", "urandom")
_DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
              "stderr": "/proc/self/fd/2"}
_ETC_FILES = {
    "passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
}
_ETC_COPIED = ("ld.so.cache", "localtime")  # copied (or, for a link into /usr, linked) when the host has them
_OLD_ROOT = ".old-root"  # pivot_root's put_old in the skeleton: the host's tree is detached from it, left empty


@dataclass(frozen=True)
class RootPlan:
    """The minimal root, prepared once per process: each run binds `skeleton` (mount points, links, device nodes,
    /etc) onto itself in its own mount namespace, binds `binds` read-only at the same paths inside, hides `masks`
    under empty read-only tmpfs, mounts a fresh tmpfs on each of `scratch` (/tmp, /dev/shm and the working
    directories' base, where the working directory is bound back), pivots into it and mounts /proc. The skeleton is
    owned by root inside a root-only (0700) directory on the host, and nothing is ever written to it by a run."""

    skeleton: str
    binds: tuple[str, ...]
    masks: tuple[str, ...]
    scratch: tuple[str, ...]
    pivot_root: str  # util-linux pivot_root, for the exec chain (not on the sandbox's PATH: it lives in sbin)


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
    pid_namespace: bool = False  # `unshare --pid --fork` works (and the mount namespace, for a fresh /proc)
    cpu_cgroup: Path | None = None  # directory under which per-run cpuacct cgroups are created
    minimal_root: RootPlan | None = None  # needs the mount namespace; None: the host's root, read-only

    @property
    def pids_mode(self) -> str:
        if self.pids_cgroup is not None:
            return "cgroup"
        return "rlimit-unprivileged" if self.drop_user else "rlimit"


def capabilities() -> Capabilities:
    """Detect (once) what isolation this machine allows; see the module docstring."""
    with _detect_lock:  # concurrent first runs (run_many's threads) detect once, and make one root skeleton
        return _detect(os.environ.get(DISABLE_ENV, ""), os.getpid())


_detect_lock = threading.Lock()


def _new_detect_lock() -> None:
    global _detect_lock
    _detect_lock = threading.Lock()  # a child forked while another thread was detecting must not inherit it held


os.register_at_fork(after_in_child=_new_detect_lock)


@functools.cache
def _detect(disable_spec: str, pid: int) -> Capabilities:
    """Detected once per QWENPOST_SANDBOX_DISABLE value and process (a forked child makes its own root skeleton,
    which outlives it no longer than its own runs)."""
    disabled = {part.strip() for part in disable_spec.split(",") if part.strip()}
    unknown = disabled - set(DISABLE_CHOICES)
    if unknown:
        raise ValueError(f"{DISABLE_ENV} has unknown entries {sorted(unknown)}; choose from {list(DISABLE_CHOICES)}")
    root = os.geteuid() == 0
    unshare, setpriv, prlimit = (shutil.which(tool, path=SANDBOX_PATH) for tool in ("unshare", "setpriv", "prlimit"))
    netns = mountns = pidns = False
    if root and unshare:
        netns = "netns" not in disabled and _probe([unshare, "--net", "--", "/bin/true"])
        mount_script = "mount -t tmpfs -o size=1m tmpfs /tmp && mount -o remount,bind,ro /"
        mountns = "mountns" not in disabled and _probe([unshare, "--mount", "--", "/bin/sh", "-c", mount_script])
        pidns = mountns and "pidns" not in disabled and _probe(
            [unshare, "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--", "/bin/true"])
    pids_cgroup = memory_cgroup = cpu_cgroup = None
    if root and "cgroups" not in disabled:
        pids_cgroup = _own_cgroup_dir("pids", "pids.max")
        memory_cgroup = _own_cgroup_dir("memory", "memory.limit_in_bytes")
        cpu_cgroup = _own_cgroup_dir("cpuacct", "cpuacct.usage")
        for parent in (pids_cgroup, memory_cgroup, cpu_cgroup):
            if parent is not None:
                _reap_stale_cgroups(parent)
    for base in {"/dev/shm", tempfile.gettempdir()}:
        _remove_stale_workdirs(base)
    use_zygote = root and "zygote" not in disabled
    drop_user = root and (use_zygote or setpriv is not None) and "setuid" not in disabled
    caps = Capabilities(root, unshare, setpriv, prlimit, netns, mountns, pids_cgroup, memory_cgroup, drop_user,
                        use_zygote, pidns, cpu_cgroup)
    if mountns and "minroot" not in disabled and (not use_zygote or zygote.PIVOT_ROOT_SYSCALL is not None):
        plan = _root_plan(pid)
        if plan is not None and _probe_root(dataclasses.replace(caps, minimal_root=plan)):
            caps = dataclasses.replace(caps, minimal_root=plan)
    return caps


def _probe(argv: list[str]) -> bool:
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _probe_root(caps: Capabilities) -> bool:
    """Run /bin/true through the exec chain with the minimal root: the whole mount sequence works here."""
    true = shutil.which("true", path=SANDBOX_PATH)
    if true is None:
        return False
    workdir = tempfile.mkdtemp(prefix="qwenpost-sandbox-probe-", dir=workdir_base(caps))
    try:
        rlimits = Rlimits(cpu_seconds=5, address_space_bytes=None, file_size_bytes=1 << 20, open_files=64,
                          processes=None)
        argv = launcher_argv(caps, [true], workdir=workdir, uid=None, rlimits=rlimits, cgroups=None)
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, cwd=workdir,
                              env={"PATH": SANDBOX_PATH})
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return done.returncode == 0


@functools.cache
def _root_plan(pid: int) -> RootPlan | None:
    """Build the minimal root's skeleton once per process `pid` (see `RootPlan`); None where it cannot be made."""
    pivot_root = shutil.which("pivot_root", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if pivot_root is None or not os.path.isdir("/usr") or os.path.islink("/usr"):
        return None
    binds, links = ["/usr"], {}
    for name in _TOP_LEVEL:
        host = "/" + name
        if os.path.islink(host):
            links[name] = os.readlink(host)
        elif os.path.isdir(host):
            binds.append(host)
    tools = [sandbox_python(other_user) for other_user in (True, False)]
    for lang in LANGUAGES.values():
        tools += [shutil.which(name, path=SANDBOX_PATH) for name in lang.executables]
        for path in lang.host_paths:  # a toolchain's configuration outside /usr (under /etc, /var/lib)
            if os.path.isdir(path) and not os.path.islink(path) and not _covered(path, binds):
                binds.append(path)
    if os.path.isdir("/etc/alternatives"):  # every alternative (cc, libblas.so.3, java...): links into /usr, public
        for entry in os.scandir("/etc/alternatives"):
            if entry.is_symlink():
                links[f"etc/alternatives/{entry.name}"] = os.readlink(entry.path)
    needed = []  # every path a tool is reached through, links included
    for tool in filter(None, tools):
        for path in _link_chain(tool):
            needed.append(path)
            if path.startswith("/etc/") and os.path.islink(path):
                links[path.lstrip("/")] = os.readlink(path)
        real = os.path.realpath(tool)
        if not _covered(real, binds):
            prefix = os.path.dirname(real)
            binds.append(os.path.dirname(prefix) if os.path.basename(prefix) == "bin" else prefix)
    masks = tuple(p for p in ("/usr/local",) if os.path.isdir(p) and not os.path.islink(p)
                  and not any(_covered(path, [p]) for path in needed))
    scratch = ["/tmp", "/dev/shm"]  # working directories live under one of them, or under the temporary directory
    if not _covered(os.path.realpath(tempfile.gettempdir()), scratch):
        scratch.append(os.path.realpath(tempfile.gettempdir()))
    base = tempfile.mkdtemp(prefix=f"qwenpost-sandbox-root-{pid}-")  # 0700: only root reaches it
    skeleton = os.path.join(base, "skeleton")
    try:
        _make_skeleton(skeleton, [*binds, *masks, *scratch], links)
    except OSError:
        shutil.rmtree(base, ignore_errors=True)
        return None
    atexit.register(lambda: os.getpid() == pid and shutil.rmtree(base, ignore_errors=True))
    return RootPlan(skeleton, tuple(binds), masks, tuple(scratch), pivot_root)


def _covered(path: str, roots: list[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _link_chain(path: str) -> list[str]:
    """`path` and every symbolic link it resolves through (directories resolved), ending at the real file."""
    chain = [path]
    for _ in range(40):
        if not os.path.islink(path):
            break
        path = os.path.join(os.path.realpath(os.path.dirname(path)), os.readlink(path))
        path = os.path.normpath(path)
        chain.append(path)
    return chain


def _make_skeleton(skeleton: str, mount_points: list[str], links: dict[str, str]) -> None:
    """Directories, links, device nodes and /etc files of the minimal root, owned by root."""
    directories = ["proc", "tmp", "dev", "dev/shm", "etc", _OLD_ROOT]
    directories += [path.lstrip("/") for path in mount_points]
    for directory in directories:
        os.makedirs(os.path.join(skeleton, directory), mode=0o755, exist_ok=True)
    for directory, _, _ in os.walk(skeleton):
        os.chmod(directory, 0o755)
    for name, target in {**links, **{f"dev/{n}": t for n, t in _DEV_LINKS.items()}}.items():
        os.makedirs(os.path.dirname(os.path.join(skeleton, name)), mode=0o755, exist_ok=True)
        os.symlink(target, os.path.join(skeleton, name))
    for name in _DEVICES:
        host = os.stat(f"/dev/{name}")
        if stat.S_ISCHR(host.st_mode):
            os.mknod(os.path.join(skeleton, "dev", name), stat.S_IFCHR | 0o666, host.st_rdev)
            os.chmod(os.path.join(skeleton, "dev", name), 0o666)
    for name, text in _ETC_FILES.items():
        Path(skeleton, "etc", name).write_text(text)
    for name in _ETC_COPIED:
        host = f"/etc/{name}"
        if os.path.islink(host) and os.path.realpath(host).startswith("/usr/"):
            os.symlink(os.path.realpath(host), os.path.join(skeleton, "etc", name))
        elif os.path.isfile(host):
            shutil.copyfile(host, os.path.join(skeleton, "etc", name))
    for directory, _, names in os.walk(os.path.join(skeleton, "etc")):
        for name in names:
            if not os.path.islink(os.path.join(directory, name)):
                os.chmod(os.path.join(directory, name), 0o644)


_python_lock = threading.Lock()
_python_cache: dict[bool, str | None] = {}


def sandbox_python(other_user: bool) -> str | None:
    """A python3 the sandbox user can execute, as its real path (the minimal root holds its install prefix, not a
    venv's links): the system one first (a venv under /root is not reachable by others); None if there is none."""
    with _python_lock:
        if other_user not in _python_cache:
            candidates = [shutil.which("python3", path=SANDBOX_PATH), sys.executable]
            usable = [c for c in candidates if c and (not other_user or _world_executable(c))]
            _python_cache[other_user] = os.path.realpath(usable[0]) if usable else None
        return _python_cache[other_user]


def _world_executable(path: str) -> bool:
    real = os.path.realpath(path)
    if not os.stat(real).st_mode & 0o001:
        return False
    parent = os.path.dirname(real)
    while parent != "/":
        if not os.stat(parent).st_mode & 0o001:
            return False
        parent = os.path.dirname(parent)
    return True


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
    """Remove working directories and root skeletons left by sandbox parents that died mid-run (named after the
    parent's pid)."""
    for stale in Path(base).glob("qwenpost-sandbox-*"):
        owner = stale.name.removeprefix("qwenpost-sandbox-").removeprefix("root-").split("-")[0]
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


def launcher_processes(caps: Capabilities) -> int:
    """The launcher's own processes inside a run's cgroups, added to its pids limit: the PID namespace's init and,
    in the exec chain, `unshare --fork` waiting for it outside the namespace."""
    if not caps.pid_namespace:
        return 0
    return 1 if caps.zygote else 2


class RunCgroups:
    """The pids, memory and cpuacct cgroups of one run (any may be absent where the machine does not allow it)."""

    def __init__(self, caps: Capabilities, *, processes: int, memory_mb: int) -> None:
        name = f"{CGROUP_PREFIX}{os.getpid()}-{next(_run_counter)}"
        self.pids_dir = self.memory_dir = self.cpu_dir = None
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
            if caps.cpu_cgroup is not None:
                self.cpu_dir = caps.cpu_cgroup / name
                self.cpu_dir.mkdir()
        except OSError:
            self.remove()
            raise

    @property
    def _dirs(self) -> list[Path]:
        return [d for d in (self.pids_dir, self.memory_dir, self.cpu_dir) if d is not None]

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self._dirs]

    def cpu_usage_s(self) -> float | None:
        """CPU seconds the run's processes have used together, exited ones included (None without cpuacct)."""
        if self.cpu_dir is None:
            return None
        try:
            return int((self.cpu_dir / "cpuacct.usage").read_text()) / 1e9
        except (OSError, ValueError):
            return None

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
        return _kill_cgroup_procs(self.procs_files[:1])  # every process of the run is in each of its cgroups

    def remove(self) -> None:
        """Kill whatever is left and delete the cgroups (rmdir can lag the last exit by a moment)."""
        self.kill_all()
        for directory in self._dirs:
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
    if caps.minimal_root is not None:
        root = "minimal"
    else:
        root = "host-readonly" if caps.mount_namespace else "host"
    return {
        "network": network,
        "pids": caps.pids_mode,
        "memory": memory,
        "filesystem": filesystem,
        "user": "dedicated" if caps.drop_user else "same",
        "pid": "namespace" if caps.pid_namespace else "shared",
        "root": root,
        "cpu": "cgroup-budget" if caps.cpu_cgroup is not None else "rlimit-per-process",
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
        "netns": caps.network_namespace, "mountns": caps.mount_namespace, "pidns": caps.pid_namespace,
        "root": _root_request(caps.minimal_root) if caps.minimal_root is not None else None,
    }


def _root_request(plan: RootPlan) -> dict:
    return {"skeleton": plan.skeleton, "binds": list(plan.binds), "masks": list(plan.masks),
            "scratch": list(plan.scratch), "old_root": _OLD_ROOT}


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
    if caps.pid_namespace:
        ns_flags += ["--pid", "--fork", "--kill-child"]
    if not ns_flags:
        script.append("exec " + shlex.join(inner))
        return ["/bin/sh", "-c", "\n".join(script), "launcher"]
    ns_script = []
    if caps.mount_namespace:
        mounts = _root_mounts(caps.minimal_root, workdir, tmpfs_mb) if caps.minimal_root is not None else [
            # The working directory is reached again through "." (the shell's cwd) after the tmpfs hides its old
            # path; --no-canonicalize keeps mount from resolving "." to the (now empty) path first.
            f"cd {shlex.quote(workdir)}",
            f"mount -t tmpfs -o size={tmpfs_mb}m,mode=1777,nosuid,nodev tmpfs /tmp",
            f"mount -t tmpfs -o size={tmpfs_mb}m,mode=1777,nosuid,nodev tmpfs /dev/shm",
            f"mkdir -p {shlex.quote(workdir)}",
            f"mount --no-canonicalize --bind . {shlex.quote(workdir)}",
            *(["mount -t proc -o nosuid,nodev,noexec proc /proc"] if caps.pid_namespace else []),
            "mount -o remount,bind,ro /",
            f"cd {shlex.quote(workdir)}",
        ]
        ns_script.append(" && ".join(mounts) + f" || {fail}")
    if caps.pid_namespace:
        # this shell is the namespace's init: the program runs as its child, in a foreground subshell that execs it
        # (not the script's last command, which dash would exec itself), so that the kernel's protection of an init
        # never applies to it; the shell's own stderr goes to /dev/null, or it would add "Aborted" and the like
        ns_script += ["exec 9>&2 2>/dev/null", f"(exec {shlex.join(inner)} 2>&9 9>&-)", "exit $?"]
    else:
        ns_script.append("exec " + shlex.join(inner))
    # with a PID namespace the program's parent is the namespace's init, so it no longer dies with us through its
    # own parent-death signal: unshare (which kills the init, --kill-child, and with it the namespace) gets one
    dies_with_us = [caps.setpriv, "--pdeathsig=KILL", "--"] if caps.pid_namespace and caps.setpriv else []
    script.append("exec " + shlex.join([*dies_with_us, caps.unshare or "unshare", *ns_flags, "--", "/bin/sh", "-c",
                                        "\n".join(ns_script), "namespace-setup"]))
    return ["/bin/sh", "-c", "\n".join(script), "launcher"]


def _root_mounts(plan: RootPlan, workdir: str, tmpfs_mb: int) -> list[str]:
    """Shell commands that build the minimal root on the skeleton and pivot into it (the zygote does the same with
    system calls): the mounts that are the same for every run come from one `mount -a` of `_root_fstab`."""
    r, w = plan.skeleton, workdir
    q = shlex.quote
    return [
        f"mount -a -T {q(_root_fstab(plan, tmpfs_mb))}",
        f"mount --bind -o X-mount.mkdir {q(w)} {q(r + w)}",  # created in a scratch tmpfs, never in the skeleton
        f"cd {q(r)}",
        f"{q(plan.pivot_root)} . {_OLD_ROOT}",
        f"umount -l /{_OLD_ROOT}",
        f"cd {q(w)}",
    ]


@functools.cache
def _root_fstab(plan: RootPlan, tmpfs_mb: int) -> str:
    """The minimal root's mounts that are the same for every run, in order, as an fstab written once beside the
    skeleton: the skeleton bound read-only onto itself (a mount point, for pivot_root; not nodev, for its device
    nodes), the read-only binds, the hidden directories, the scratch tmpfs and /proc (mounted by the PID
    namespace's init, so it shows that namespace)."""
    r = plan.skeleton

    def field(path: str) -> str:
        return path.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")

    lines = [f"{field(r)} {field(r)} none bind,ro,nosuid 0 0"]
    lines += [f"{field(path)} {field(r + path)} none bind,ro,nosuid 0 0" for path in plan.binds]
    lines += [f"tmpfs {field(r + path)} tmpfs ro,size=4k,mode=755,nosuid,nodev 0 0" for path in plan.masks]
    lines += [f"tmpfs {field(r + path)} tmpfs size={tmpfs_mb}m,mode=1777,nosuid,nodev 0 0" for path in plan.scratch]
    lines.append(f"proc {field(r + '/proc')} proc nosuid,nodev,noexec 0 0")
    path = os.path.join(os.path.dirname(r), f"fstab-{tmpfs_mb}")
    partial = f"{path}.{threading.get_ident()}"
    Path(partial).write_text("\n".join(lines) + "\n")
    os.replace(partial, path)  # whole, for a run reading it while another thread writes it too
    return path


def decode_init_status(status: int) -> int:
    """The exec chain's wait status with the init shell's 128 + N turned back into "killed by signal N"."""
    if os.WIFEXITED(status) and 128 < os.WEXITSTATUS(status) < 160:
        return os.WEXITSTATUS(status) - 128
    return status
