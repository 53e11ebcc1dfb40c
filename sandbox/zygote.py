"""A root fork server (the "zygote") that confines and execs each sandboxed program: the fast strong launcher.

Why: confining a run through a chain of util-linux tools (sh → unshare → mount ×5 → prlimit → setpriv, see
`isolation.launcher_argv`) costs about ten `exec`s per run, more than the Python start-up it wraps. The zygote is
a small single-threaded `python -I -S` process, started once per parent process, that forks one child per run; the
child does the same confinement with direct system calls (cgroup join, unshare, mounts, rlimits, setresuid,
no_new_privs, parent-death signal) and then `execve`s a fresh program. No model-written code ever runs in the
zygote or shares an interpreter with another run: each run is a new process image, so isolation is unchanged.
A set-up failure (a mount refused, a cgroup gone) comes back through a close-on-exec pipe and is raised in the
parent as a SandboxError, never mistaken for the program failing.

Protocol over a SOCK_SEQPACKET socket pair: the parent sends a JSON request with the run's three pipe ends attached
(SCM_RIGHTS); the zygote answers `{"id", "pid"}` once the child has exec'd (or `{"id", "error"}`) and
`{"id", "status", "cpu_s"}` when it has reaped it. When the parent closes the socket (it exited or died), the
zygote kills its children, does the parent's cleanup for the runs in flight (kills everything in their cgroups,
removes the cgroups and working directories) and exits. This file runs as a script in the zygote (standard library
only) and is imported by the parent for `Zygote`.
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
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWNET = 0x00020000, 0x08000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
_PR_SET_PDEATHSIG, _PR_SET_NO_NEW_PRIVS = 1, 38
_RLIMITS = {"cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS, "fsize": resource.RLIMIT_FSIZE,
            "nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC, "core": resource.RLIMIT_CORE}
_MAX_MESSAGE = 1 << 20


# ---------------------------------------------------------------- zygote side (runs as root, stdlib only)


def _child(request: dict, fds: list[int], libc, report_fd: int) -> None:
    """In the forked child: confine this process as `request` says, then exec the program. Never returns.

    A set-up failure is written to `report_fd` (close-on-exec, so a successful exec closes it empty and the program
    can never write to it): the zygote tells the parent, which raises instead of blaming the program.
    """

    def check(result: int, what: str) -> None:
        if result != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")

    def enc(text: str | None) -> bytes | None:
        return text.encode() if text is not None else None

    def mount(source, target, fstype, flags, data, what) -> None:
        check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), what)

    try:
        for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.setsid()  # own session and process group: killpg reaches everything that does not setsid again
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, report_fd)  # nothing of the zygote's (its socket, other runs' pipes) reaches the program
        os.closerange(report_fd + 1, max(65536, os.sysconf("SC_OPEN_MAX")))
        for procs in request["cgroup_procs"]:
            with open(procs, "w") as handle:
                handle.write(str(os.getpid()))
        flags = _CLONE_NEWNET if request["netns"] else 0
        flags |= _CLONE_NEWNS | _CLONE_NEWIPC if request["mountns"] else 0
        if flags:
            check(libc.unshare(flags), "unshare")
        workdir = request["cwd"]
        os.chdir(workdir)
        if request["mountns"]:
            size = f"size={int(request['tmpfs_mb'])}m,mode=1777"
            mount(None, "/", None, _MS_REC | _MS_PRIVATE, None, "make / private")  # nothing propagates to the host
            mount("tmpfs", "/tmp", "tmpfs", _MS_NOSUID | _MS_NODEV, size, "tmpfs /tmp")
            mount("tmpfs", "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, size, "tmpfs /dev/shm")
            os.makedirs(workdir, exist_ok=True)
            mount(".", workdir, None, _MS_BIND, None, "bind the working directory")  # "." is the hidden original
            mount(None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None, "read-only /")
            os.chdir(workdir)
        for name, (soft, hard) in request["rlimits"].items():
            resource.setrlimit(_RLIMITS[name], (soft, hard))
        uid = request["uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
        check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        check(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")  # after setresuid, which clears it
        os.execve(request["argv"][0], request["argv"], request["env"])
    except BaseException as exc:
        try:
            os.write(report_fd, f"{SETUP_MARKER}: {exc}".encode())
        finally:
            os._exit(SETUP_FAILED_EXIT)


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
    """The zygote's loop: fork a confined child per request, report each child's pid and exit status."""
    libc = ctypes.CDLL(None, use_errno=True)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, dict] = {}  # pid -> its request, until reaped
    exec_reports: dict[int, int] = {}  # report pipe (read end) -> pid, until the child has exec'd or failed
    report_of: dict[int, int] = {}  # pid -> its report pipe, while that is open
    recent: collections.deque[dict] = collections.deque(maxlen=256)  # reaped; the parent may not have cleaned up yet
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)

    def send(message: dict) -> None:
        sock.send(json.dumps(message).encode())

    def exec_report(report: int, child_gone: bool = False) -> None:
        """The child exec'd (empty EOF: tell the parent its pid) or failed to set up (tell the parent why)."""
        try:
            message = os.read(report, 65536)  # non-blocking; the child writes its error in one go, then exits
        except BlockingIOError:
            if not child_gone:
                return  # a stale event (the descriptor number was reused within one select batch)
            message = b""
        pid = exec_reports.pop(report)
        del report_of[pid]
        selector.unregister(report)
        os.close(report)
        request = children[pid]
        if message:
            request["setup_failed"] = True
            send({"id": request["id"], "error": message.decode(errors="replace")})
        else:
            send({"id": request["id"], "pid": pid})

    def reap() -> None:
        while children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in report_of:  # its pid (or set-up error) must reach the parent before its exit status
                exec_report(report_of[pid], child_gone=True)
            request = children.pop(pid, None)
            if request is not None:
                recent.append(request)
                if not request.get("setup_failed"):
                    send({"id": request["id"], "status": status, "cpu_s": usage.ru_utime + usage.ru_stime})

    while True:
        for key, _ in selector.select():
            if key.fileobj == wake_r:
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                reap()
                continue
            if key.fileobj in exec_reports:
                exec_report(key.fileobj)
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
                _clean_up([*children.values(), *recent])
                os._exit(0)
            request = json.loads(data)
            report_r, report_w = os.pipe2(os.O_CLOEXEC)
            os.set_blocking(report_r, False)
            try:
                pid = os.fork()
            except OSError as exc:
                os.close(report_r)
                send({"id": request["id"], "error": f"fork failed: {exc}"})
            else:
                if pid == 0:
                    _child(request, fds, libc, report_w)
                children[pid] = request
                exec_reports[report_r], report_of[pid] = pid, report_r
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
