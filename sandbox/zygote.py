"""A root fork server (the "zygote") that confines and execs each sandboxed program: the fast strong launcher.

Why: confining a run through a chain of util-linux tools (sh → unshare → mount ×2, pivot_root, umount → prlimit →
setpriv, see `isolation.launcher_argv`) costs about ten `exec`s per run, more than the Python start-up it wraps. The
zygote is a small single-threaded `python -I -S` process, started once per parent process, that forks one child per
run; the child does the same confinement with direct system calls (cgroup join, unshare, mounts, the minimal root
and pivot_root, rlimits, setresuid, no_new_privs, parent-death signal) and then `execve`s a fresh program. No
model-written code ever runs in the zygote or shares an interpreter with another run: each run is a new process
image, so isolation is unchanged. A set-up failure (a mount refused, a cgroup gone) comes back through a
close-on-exec pipe and is raised in the parent as a SandboxError, never mistaken for the program failing.

With a PID namespace the zygote unshares CLONE_NEWPID just for the fork (and restores its own namespace for children
with setns), so the child is the new namespace's init (pid 1). As root it joins the cgroups and builds the run's
namespaces and mounts (/proc from its namespace); then it takes on the program's rlimits and uid, makes itself
undumpable and `posix_spawn`s the program (vfork and exec: this interpreter is not copied a second time), closes its
copies of the run's pipes, reaps everything reparented to it and, when the program exits, reports the program's wait
status and exits, which makes the kernel kill whatever is left in the namespace. The program is never the init,
whose signals the kernel filters; where the address-space limit would leave the init no room to spawn (a limit under
its own size plus 64 MB), it forks the program, which sets that limit itself.

Protocol over a SOCK_SEQPACKET socket pair: the parent sends a JSON request with the run's three pipe ends attached
(SCM_RIGHTS); the zygote answers `{"id", "pid"}` once the program has exec'd (or `{"id", "error"}`) and `{"id",
"status", "cpu_s"}` when it has reaped the child (CPU time of everything the child reaped included). Between child
and zygote, the report pipe carries lines: `error TEXT` (set-up failed), `started` (the init's program exec'd;
without an init, EOF with no error means the same) and `status N` (the program's wait status). When the parent closes
the socket (it exited or died), the zygote kills its children, does the parent's cleanup for the runs in flight
(kills everything in their cgroups, removes the cgroups and working directories) and exits. This file runs as a
script in the zygote (standard library only) and is imported by the parent for `Zygote`.
"""

import collections
import ctypes
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

SETUP_FAILED_EXIT = 125
SETUP_MARKER = "qwenpost-sandbox: setup failed"
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWNET, _CLONE_NEWPID = 0x00020000, 0x08000000, 0x40000000, 0x20000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = (
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18)
_MNT_DETACH = 2
# glibc has no pivot_root wrapper; the system call's number per architecture (None: no minimal root via the zygote)
PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}.get(
    os.uname().machine)
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE, _PR_SET_NO_NEW_PRIVS = 1, 4, 38
_SPAWN_HEADROOM = 64 << 20  # address space the init needs beyond what it uses, to spawn the program under its limit
_RLIMITS = {"cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS, "fsize": resource.RLIMIT_FSIZE,
            "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE}
_MAX_MESSAGE = 1 << 20


# ---------------------------------------------------------------- zygote side (runs as root, stdlib only)


def _check(libc_result: int, what: str) -> None:
    if libc_result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(libc, source: str | None, target: str | None, fstype: str | None, flags: int, data: str | None,
           what: str) -> None:
    def enc(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), what)


def _report(fd: int, kind: str, text: str = "") -> None:
    """One line to the zygote ("error TEXT", "started", "status N"), in one write under PIPE_BUF."""
    os.write(fd, f"{kind} {' '.join(text.split())[:1000]}\n".encode(errors="replace"))


def _child(request: dict, fds: list[int], libc, report_fd: int, own_size: int) -> None:
    """In the forked child: confine this process as `request` says, then exec the program, or, as the PID
    namespace's init, start it and wait (`_init`). Never returns.

    A set-up failure is written to `report_fd` (close-on-exec, so a successful exec closes it empty and the program
    can never write to it): the zygote tells the parent, which raises instead of blaming the program.
    """
    try:
        for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.setsid()  # own session and process group: killpg reaches everything that does not setsid again
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, report_fd)  # nothing of the zygote's (its socket, other runs' pipes) reaches the program
        os.closerange(report_fd + 1, max(65536, os.sysconf("SC_OPEN_MAX")))
        _check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")  # the init dies with us
        for procs in request["cgroup_procs"]:
            with open(procs, "w") as handle:
                handle.write(str(os.getpid()))  # read in the writer's PID namespace: 1 is this init itself
        flags = _CLONE_NEWNET if request["netns"] else 0
        flags |= _CLONE_NEWNS | _CLONE_NEWIPC if request["mountns"] else 0
        if flags:
            _check(libc.unshare(flags), "unshare")
        workdir = request["cwd"]
        os.chdir(workdir)
        if request["mountns"]:
            _mount(libc, None, "/", None, _MS_REC | _MS_PRIVATE, None, "make / private")  # nothing reaches the host
            if request.get("root") is not None:
                _build_root(libc, request["root"], workdir, int(request["tmpfs_mb"]))
            else:
                size = f"size={int(request['tmpfs_mb'])}m,mode=1777"
                _mount(libc, "tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, size, "tmpfs /tmp")
                _mount(libc, "tmpfs", "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, size, "tmpfs /dev/shm")
                os.makedirs(workdir, exist_ok=True)
                _mount(libc, ".", workdir, None, _MS_BIND, None, "bind the working directory")  # the hidden original
                if request.get("pidns"):
                    _mount(libc, "proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None, "mount /proc")
                _mount(libc, None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None, "read-only /")
            os.chdir(workdir)
        if not request.get("pidns"):
            _confine_and_exec(request, libc)
    except BaseException as exc:
        try:
            _report(report_fd, "error", f"{SETUP_MARKER}: {exc}")
        finally:
            os._exit(SETUP_FAILED_EXIT)
    _init(request, libc, report_fd, own_size)


def _take_limits_and_identity(rlimits: dict, uid: int | None) -> None:
    """Set `rlimits` ({name: (soft, hard)}) and become `uid` (and its gid, no supplementary groups)."""
    for name, (soft, hard) in rlimits.items():
        resource.setrlimit(_RLIMITS[name], (soft, hard))
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)


def _confine_and_exec(request: dict, libc) -> None:
    """The program's own limits and identity, then exec. Raises if any step fails."""
    _take_limits_and_identity(request["rlimits"], request["uid"])
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")  # after setresuid, which clears it
    os.execve(request["argv"][0], request["argv"], request["env"])


def _init(request: dict, libc, report_fd: int, own_size: int) -> None:
    """The PID namespace's init: start the program, report its start, reap everything, report the program's wait
    status and exit (the kernel then kills whatever is left in the namespace). Never returns."""
    try:
        program = _start_program(request, libc, own_size)
    except BaseException as exc:
        _report(report_fd, "error", f"{SETUP_MARKER}: {exc}")
        os._exit(SETUP_FAILED_EXIT)
    for fd in (0, 1, 2):  # only the program holds the run's pipes: its output ends when it and its children do
        os.close(fd)
    _report(report_fd, "started")
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(SETUP_FAILED_EXIT)
        if pid == program:
            _report(report_fd, "status", str(status))
            os._exit(0)


def _start_program(request: dict, libc, own_size: int) -> int:
    """Start the program as the init's child; its pid. The init takes on the program's limits and identity itself
    and spawns it (vfork and exec: no copy of this interpreter is made or touched), then is as unprivileged as the
    program: the same uid, no capabilities, not dumpable (the program cannot ptrace it or open its descriptors, and
    a namespace's init ignores the signals sent from inside it). Where the address-space limit would not leave this
    interpreter (`own_size`, the zygote's address space) room to spawn, the program is forked instead and sets that
    limit itself."""
    limits = dict(request["rlimits"])
    address_space = limits.pop("as", None)
    fork = address_space is not None and address_space[0] < own_size + _SPAWN_HEADROOM
    if not fork and address_space is not None:
        limits["as"] = address_space
    _take_limits_and_identity(limits, request["uid"])
    _check(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")  # after setresuid, which clears it
    if not fork:
        return os.posix_spawn(request["argv"][0], request["argv"], request["env"])
    exec_r, exec_w = os.pipe2(os.O_CLOEXEC)
    program = os.fork()
    if program == 0:
        try:
            resource.setrlimit(resource.RLIMIT_AS, tuple(address_space))
            os.execve(request["argv"][0], request["argv"], request["env"])
        except BaseException as exc:
            os.write(exec_w, f"{exc}"[:1000].encode())
        finally:
            os._exit(SETUP_FAILED_EXIT)
    os.close(exec_w)
    error = b""
    while chunk := os.read(exec_r, 4096):  # EOF: the program exec'd (or failed and said why)
        error += chunk
    os.close(exec_r)
    if error:
        raise OSError(error.decode(errors="replace"))
    return program


def _address_space_used() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _build_root(libc, root: dict, workdir: str, tmpfs_mb: int) -> None:
    """The minimal root (isolation.RootPlan) on its skeleton, then pivot_root into it and the host's tree detached;
    the same steps as isolation._root_mounts, as system calls."""
    r = root["skeleton"]

    def bind_read_only(source: str, target: str) -> None:  # not nodev: the skeleton's device nodes
        _mount(libc, source, target, None, _MS_BIND, None, f"bind {source}")
        _mount(libc, None, target, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID, None, f"read-only {target}")

    bind_read_only(r, r)  # a mount point, for pivot_root
    for path in root["binds"]:
        bind_read_only(path, r + path)
    for path in root["masks"]:
        _mount(libc, "tmpfs", r + path, "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "size=4k,mode=755",
               f"hide {path}")
    for path in root["scratch"]:
        _mount(libc, "tmpfs", r + path, "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={tmpfs_mb}m,mode=1777",
               f"tmpfs {path}")
    _mount(libc, "proc", r + "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None, "mount /proc")
    os.makedirs(r + workdir, mode=0o755, exist_ok=True)  # in a scratch tmpfs, never in the skeleton
    _mount(libc, workdir, r + workdir, None, _MS_BIND, None, "bind the working directory")
    os.chdir(r)
    _check(libc.syscall(PIVOT_ROOT_SYSCALL, b".", root["old_root"].encode()), "pivot_root")
    _check(libc.umount2(f"/{root['old_root']}".encode(), _MNT_DETACH), "detach the host's root")


def _clean_up(requests: list[dict]) -> None:
    """The parent died: kill what is left of these runs, remove their cgroups and working directories."""
    for request in requests:
        for _ in range(500):
            pids = []
            for procs in request["cgroup_procs"]:
                try:
                    with open(procs) as handle:
                        pids += [int(line) for line in handle.read().split()]
                except (OSError, ValueError):
                    pass
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.002)
        for procs in request["cgroup_procs"]:
            for _ in range(100):
                try:
                    os.rmdir(os.path.dirname(procs))
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
        shutil.rmtree(request["cwd"], ignore_errors=True)


def serve(sock: socket.socket) -> None:
    """The zygote's loop: fork a confined child per request, report each program's pid and exit status."""
    libc = ctypes.CDLL(None, use_errno=True)
    own_pid_namespace = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    own_size = _address_space_used()  # about a child's too: the init's room under an address-space limit
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, dict] = {}  # pid -> its state ("request", "report", "buffer", "started", "failed", "status")
    reports: dict[int, int] = {}  # report pipe (read end) -> pid, until it is closed
    recent: collections.deque[dict] = collections.deque(maxlen=256)  # reaped; the parent may not have cleaned up yet
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)

    def send(message: dict) -> None:
        sock.send(json.dumps(message).encode())

    def started(state: dict) -> None:
        if not state["started"] and not state["failed"]:
            state["started"] = True
            send({"id": state["request"]["id"], "pid": state["pid"]})

    def failed(state: dict, error: str) -> None:
        if not state["started"] and not state["failed"]:
            state["failed"] = True
            send({"id": state["request"]["id"], "error": error})

    def read_report(report: int, child_gone: bool = False) -> None:
        """Read what the child said (see the module docstring); at EOF close the pipe."""
        state = children[reports[report]]
        eof = False
        while True:
            try:
                chunk = os.read(report, 65536)
            except BlockingIOError:
                break  # more may come (or a stale event: the descriptor number was reused within one batch)
            if not chunk:
                eof = True
                break
            state["buffer"] += chunk
        *lines, state["buffer"] = state["buffer"].split(b"\n")
        for line in lines:
            kind, _, text = line.decode(errors="replace").partition(" ")
            if kind == "started":
                started(state)
            elif kind == "status" and text.isdigit():
                state["status"] = int(text)
            else:
                failed(state, text if kind == "error" else f"{SETUP_MARKER}: unreadable report {line[:200]!r}")
        if eof or child_gone:
            del reports[report]
            state["report"] = None  # the descriptor number may be reused by the next run's pipe before we reap
            selector.unregister(report)
            os.close(report)
            if state["request"].get("pidns"):
                failed(state, f"{SETUP_MARKER}: the sandbox's init exited before the program started")
            else:
                started(state)  # exec'd: the close-on-exec pipe closed with nothing in it

    def reap() -> None:
        while children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            state = children.get(pid)
            if state is None:
                continue
            if state["report"] is not None:  # its start (or set-up error) must reach the parent before its exit
                read_report(state["report"], child_gone=True)
            del children[pid]
            recent.append(state["request"])
            if not state["failed"]:
                status = state["status"] if state["status"] is not None else status  # the init's: the program's
                send({"id": state["request"]["id"], "status": status, "cpu_s": usage.ru_utime + usage.ru_stime})

    def fork(request: dict) -> int:
        """Fork the run's child: with a PID namespace, as the init of a new one (ours is restored for the next)."""
        if not request.get("pidns"):
            return os.fork()
        _check(libc.unshare(_CLONE_NEWPID), "unshare(CLONE_NEWPID)")
        pid = None
        try:
            pid = os.fork()
        finally:
            if pid != 0:
                _check(libc.setns(own_pid_namespace, _CLONE_NEWPID), "setns back to our PID namespace")
        return pid

    while True:
        for key, _ in selector.select():
            if key.fileobj == wake_r:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                reap()
                continue
            if key.fileobj in reports:
                read_report(key.fileobj)
                continue
            if key.fileobj is not sock:
                continue  # a report pipe already handled (and closed) earlier in this batch
            try:
                data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 3)
            except OSError:
                data, fds = b"", []
            if not data:  # the parent is gone: take every run with us, as its cleanup would have
                for pid in children:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass
                _clean_up([*(state["request"] for state in children.values()), *recent])
                os._exit(0)
            request = json.loads(data)
            report_r, report_w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(report_r, False)
            try:
                pid = fork(request)
            except OSError as exc:
                os.close(report_r)
                send({"id": request["id"], "error": f"fork failed: {exc}"})
            else:
                if pid == 0:
                    try:
                        _child(request, fds, libc, report_w, own_size)
                    finally:
                        os._exit(SETUP_FAILED_EXIT)  # never back into this loop, whatever happened
                children[pid] = {"request": request, "pid": pid, "report": report_r, "buffer": b"",
                                 "started": False, "failed": False, "status": None}
                reports[report_r] = pid
                selector.register(report_r, selectors.EVENT_READ)
            finally:
                os.close(report_w)
                for fd in fds:
                    os.close(fd)
            reap()


# ---------------------------------------------------------------- parent side


class ZygoteError(RuntimeError):
    """The zygote is not running or could not start a run."""


class Spawned:
    """A program started by the zygote: its pid, a descriptor that becomes readable when it has exited, and then
    its wait status and CPU time."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.error: str | None = None
        self.status: int | None = None
        self.cpu_s = 0.0
        self.started = threading.Event()
        self.finished = threading.Event()
        self.exit_r, self._exit_w = os.pipe2(os.O_CLOEXEC)
        self._finish_lock = threading.Lock()

    def _finish(self, status: int | None, cpu_s: float) -> None:
        with self._finish_lock:
            if self.finished.is_set():
                return
            self.status, self.cpu_s = status, cpu_s
            self.finished.set()
            os.close(self._exit_w)  # EOF on exit_r wakes the supervisor's selector

    def close(self) -> None:
        os.close(self.exit_r)


class Zygote:
    """The parent's handle on one zygote process (see the module docstring)."""

    def __init__(self, python: str) -> None:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = parent_sock
        self._lock = threading.Lock()  # guards _pending and alive; never held while sending (no lock cycle)
        self._send_lock = threading.Lock()
        self._pending: dict[str, Spawned] = {}
        self._counter = 0
        self.owner_pid = os.getpid()
        self.process = subprocess.Popen(
            [python, "-I", "-S", os.path.abspath(__file__), str(child_sock.fileno())],
            pass_fds=[child_sock.fileno()], stdin=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"},
            process_group=0,
        )
        child_sock.close()
        self.alive = True
        self._reader = threading.Thread(target=self._read_replies, name="sandbox-zygote", daemon=True)
        self._reader.start()

    def spawn(self, request: dict, fds: list[int]) -> Spawned:
        """Start `request` with `fds` as its stdin/stdout/stderr; returns once the pid is known."""
        spawned = Spawned()
        try:
            with self._lock:
                if not self.alive:
                    raise ZygoteError("the sandbox zygote is not running")
                self._counter += 1
                run_id = str(self._counter)
                self._pending[run_id] = spawned
            try:
                with self._send_lock:
                    socket.send_fds(self._sock, [json.dumps(dict(request, id=run_id)).encode()], fds)
            except OSError as exc:
                with self._lock:
                    self._pending.pop(run_id, None)
                    self.alive = False  # the next get_zygote starts a new one
                raise ZygoteError(f"cannot reach the sandbox zygote: {exc}") from exc
            spawned.started.wait()
            if spawned.pid is None:
                raise ZygoteError(spawned.error or "the sandbox zygote could not start the run")
        except BaseException:
            if not spawned.finished.is_set():
                spawned._finish(None, 0.0)
            spawned.close()
            raise
        return spawned

    def _read_replies(self) -> None:
        while True:
            try:
                data = self._sock.recv(_MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._lock:
                spawned = self._pending.get(message["id"])
            if spawned is None:
                continue
            if "pid" in message:
                spawned.pid = message["pid"]
                spawned.started.set()
            elif "error" in message:
                spawned.error = message["error"]
                self._pending.pop(message["id"], None)
                spawned.started.set()
            else:
                with self._lock:
                    self._pending.pop(message["id"], None)
                spawned._finish(message["status"], message["cpu_s"])
        with self._lock:  # the zygote died: nothing pending will ever be reported
            self.alive = False
            pending, self._pending = self._pending, {}
        for spawned in pending.values():
            spawned.error = spawned.error or "the sandbox zygote exited"
            spawned.started.set()
            if spawned.status is None:
                spawned._finish(None, 0.0)

    def close(self) -> None:
        self._sock.close()
        self.process.wait(timeout=10)


_zygote: Zygote | None = None
_zygote_lock = threading.Lock()


def get_zygote(python: str) -> Zygote:
    """This process's zygote, started on first use and again if it died or this process was forked."""
    global _zygote
    with _zygote_lock:
        if _zygote is None or not _zygote.alive or _zygote.owner_pid != os.getpid():
            _zygote = Zygote(python)
        return _zygote


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
