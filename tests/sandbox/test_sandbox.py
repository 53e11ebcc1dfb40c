"""The sandbox: normal runs in each language, the attack corpus (each contained, classified, host unchanged),
parallel `run_many`, the degraded isolation paths and the CLI."""

import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sandbox import LANGUAGES, SandboxJob, SandboxLimits, SandboxResult, isolation, run, run_many, zygote
from sandbox.cli import main as cli_main

QUICK = SandboxLimits(cpu_seconds=1, wall_seconds=2, processes=16)
ROOT = os.geteuid() == 0
# Without root the sandbox shares our uid (isolation "user": "same"): it could signal us or read our /proc entries,
# so these attacks are only run where the strong path exists (as on CI).
needs_root = pytest.mark.skipif(not ROOT, reason="the program would run as our own uid")
REPO = Path(__file__).resolve().parents[2]


def _own_cgroups() -> list[str]:
    caps = isolation.capabilities()
    found = []
    for parent in (caps.pids_cgroup, caps.memory_cgroup):
        if parent is not None:
            found += glob.glob(str(parent / f"{isolation.CGROUP_PREFIX}{os.getpid()}-*"))
    return found


def _workdirs() -> set[str]:
    pattern = f"qwenpost-sandbox-{os.getpid()}-*"
    return set(glob.glob(f"/dev/shm/{pattern}")) | set(glob.glob(os.path.join(tempfile.gettempdir(), pattern)))


def _alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _sandbox_uid_processes() -> list[int]:
    low = isolation._UID_BASE + (os.getpid() % 32768) * isolation._UIDS_PER_PROCESS
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if low <= entry.stat().st_uid < low + isolation._UIDS_PER_PROCESS and _alive(int(entry.name)):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


@pytest.fixture(autouse=True)
def host_unchanged():
    """After every test: no cgroup, working directory or sandbox-user process of ours is left."""
    before = _workdirs()
    yield
    assert _own_cgroups() == []
    assert _workdirs() - before == set()
    assert _sandbox_uid_processes() == []


# ---------------------------------------------------------------- normal runs


def test_python_run_captures_output_stdin_and_exit_code():
    result = run("import sys\nname = input()\nprint('hi', name)\nprint('err', file=sys.stderr)\n", stdin="ada\n")
    assert isinstance(result, SandboxResult)
    assert (result.status, result.exit_code, result.signal) == ("passed", 0, None)
    assert result.stdout == "hi ada\n" and result.stderr == "err\n" and not result.truncated
    assert result.duration_s > 0
    assert result.isolation == isolation.isolation_summary(isolation.capabilities(), blocks_sockets=True)
    assert json.loads(json.dumps(result.to_dict()))["status"] == "passed"


def test_non_zero_exit_is_failed_and_assertion_traceback_is_kept():
    result = run("def f(x):\n    return x + 1\nassert f(1) == 2\nassert f(2) == 4, 'f(2)'\n")
    assert result.status == "failed" and result.exit_code == 1
    assert "AssertionError: f(2)" in result.stderr and 'File "main.py", line 4' in result.stderr
    assert run("import sys; sys.exit(3)").exit_code == 3
    assert run("exit(4)").exit_code == 4  # exit()/quit() exist although site is not imported


@pytest.mark.parametrize("language, good, bad", [
    ("python", "print(sum(range(5)))", "raise ValueError('no')"),
    ("js", "console.log([0,1,2,3,4].reduce((a, b) => a + b))", "throw new Error('no')"),
    ("c++", "#include <iostream>\n"
            "int main() { int s = 0; for (int i = 0; i < 5; ++i) s += i; std::cout << s << '\\n'; }",
     "#include <cstdlib>\nint main() { std::abort(); }"),
])
def test_each_language_runs_and_fails(language, good, bad):
    ok = run(good, language, limits=QUICK)
    assert (ok.status, ok.stdout) == ("passed", "10\n"), ok.stderr
    broken = run(bad, language, limits=QUICK)
    assert broken.status in ("failed", "crashed") and broken.status != "passed"


def test_cpp_compile_error_reports_the_compiler_message():
    result = run("int main() { return undefined_name; }", "cpp")
    assert result.status == "compile_error" and result.exit_code == 1
    assert "undefined_name" in result.stderr


def test_cpp_segfault_is_crashed():
    result = run("int main() { volatile int* p = nullptr; return *p; }", "cpp", limits=QUICK)
    assert (result.status, result.signal, result.exit_code) == ("crashed", "SIGSEGV", None)


def test_unknown_language_names_it_and_the_known_ones():
    with pytest.raises(ValueError, match=r"'cobol'.*python.*javascript.*cpp"):
        run("x", "cobol")
    assert LANGUAGES["js"] is LANGUAGES["javascript"] and "c++" in LANGUAGES
    assert list(LANGUAGES)[:3] == ["python", "javascript", "typescript"] and len(LANGUAGES) == 20


def test_bad_limits_and_file_names_are_refused():
    with pytest.raises(ValueError, match="wall_seconds"):
        SandboxLimits(wall_seconds=0)
    with pytest.raises(ValueError, match="must be a relative path"):
        run("pass", extra_files={"../escape.py": "x"})
    with pytest.raises(ValueError, match="collides"):
        run("pass", extra_files={"main.py": "x"})


def test_extra_files_are_importable_and_working_directory_is_empty_then_deleted():
    source = ("import os, helper\nprint(helper.VALUE)\nprint(sorted(os.listdir('.')))\nprint(os.getcwd())\n"
              "open('scratch.txt', 'w').write('x')\n")
    result = run(source, extra_files={"helper.py": "VALUE = 42\n"})
    assert result.status == "passed", result.stderr
    value, listing, cwd = result.stdout.splitlines()
    assert value == "42" and listing == "['helper.py', 'main.py']"
    assert not os.path.exists(cwd)


@needs_root
def test_environment_is_scrubbed_and_parent_secret_unreachable(monkeypatch, launcher):
    secret = "qwenpost-secret-" + secrets.token_hex(8)
    monkeypatch.setenv("QWENPOST_SANDBOX_TEST_SECRET", secret)
    source = (
        "import os\nprint(sorted(os.environ))\nprint(os.environ.get('QWENPOST_SANDBOX_TEST_SECRET'))\n"
        "found = []\n"
        "for pid in [os.getppid()] + [p for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    try:\n        found.append(open(f'/proc/{pid}/environ', 'rb').read().decode('latin-1'))\n"
        "    except OSError:\n        pass\n"
        "print('\\n'.join(found))\n"
    )
    result = run(source)
    assert result.status == "passed", result.stderr
    assert secret not in result.stdout and secret not in result.stderr
    names = eval(result.stdout.splitlines()[0])  # a list literal printed by the program
    assert set(names) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PWD", "OLDPWD"}


# ---------------------------------------------------------------- attack corpus


_SPIN = """
import sys, time
next_report = 0.0
while True:
    if time.process_time() >= next_report:  # the program's own CPU-time counter, printed as it goes
        print(round(time.process_time(), 2), flush=True)
        next_report += 0.1
"""


@pytest.mark.e2e  # waits for sandboxed programs to hit their limits (seconds)
def test_infinite_loop_hits_cpu_limit():
    # a wall clock far beyond the CPU limit: on any load the CPU limit ends the run, which the program's own CPU
    # counter shows (it never reports past the limit); a broken CPU limit would spin to the wall clock's 30 s
    result = run(_SPIN, limits=SandboxLimits(cpu_seconds=1, wall_seconds=30))
    assert result.status == "timeout" and result.signal in ("SIGXCPU", "SIGKILL")
    assert 0.8 <= float(result.stdout.split()[-1]) <= 1.05


@pytest.mark.e2e  # waits for sandboxed programs to hit their limits (seconds)
def test_sleeping_program_hits_wall_clock():
    result = run("import time\ntime.sleep(60)\n", limits=SandboxLimits(wall_seconds=1))
    assert (result.status, result.signal) == ("timeout", "SIGKILL")  # a sleep spends no CPU: the wall clock did it
    assert result.duration_s >= 1


_SPAWN_PROBE = """
import subprocess
started = refused = 0
for _ in range(200):
    try:
        subprocess.Popen(['sleep', '5'])
        started += 1
    except OSError:
        refused += 1
print(started, refused)
"""


def _pids_limit_binds(limits: SandboxLimits) -> tuple[bool, SandboxResult]:
    """The harmless check before any fork bomb: 200 `sleep 5` may not all start under a limit of `processes`."""
    result = run(_SPAWN_PROBE, limits=limits)
    started, refused = map(int, result.stdout.split())
    return started < limits.processes and refused > 0, result


@pytest.mark.e2e  # waits for sandboxed programs to hit their limits (seconds)
def test_fork_bomb_is_contained_and_leaves_nothing(launcher):
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=1.5, processes=12)
    binds, probe = _pids_limit_binds(limits)
    if not binds:
        pytest.fail(f"pids limit does not bind here ({probe.stdout.strip()}); refusing to run a fork bomb")
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = run(bomb, limits=limits)
    assert result.status == "timeout"
    assert _sandbox_uid_processes() == []


@pytest.mark.e2e  # waits for sandboxed programs to hit their limits (seconds)
def test_eight_gigabyte_allocation_is_memory_in_every_language():
    limits = SandboxLimits(cpu_seconds=5, wall_seconds=8, memory_mb=256)
    python = run("x = bytearray(8 * 1024**3)\nprint(len(x))\n", limits=limits)
    assert python.status == "memory" and "MemoryError" in python.stderr
    cpp = run("#include <vector>\n#include <iostream>\n"
              "int main() { std::vector<char> v(8ull << 30, 1); std::cout << int(v[12345]); }", "cpp", limits=limits)
    assert cpp.status == "memory" and "bad_alloc" in cpp.stderr
    node = run("const a = []; while (true) a.push(Buffer.alloc(64 * 1024 * 1024, 1));", "js", limits=limits)
    assert node.status == "memory"


def test_printing_a_gigabyte_is_truncated_and_stopped():
    source = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n"
    result = run(source, limits=SandboxLimits(wall_seconds=10, output_bytes=4096))
    assert result.truncated and len(result.stdout) == 4096
    assert result.status == "failed" and "output limit" in result.stderr  # killed at the cap, not left to print 1 GB


@needs_root
def test_writes_outside_the_working_directory_do_not_reach_the_host(tmp_path, launcher):
    marker = "qwenpost-sandbox-escape-" + secrets.token_hex(6)
    targets = [REPO / marker, Path.home() / marker, Path("/tmp") / marker, tmp_path / marker]
    source = f"for path in {[str(t) for t in targets]!r}:\n" + (
        "    try:\n        open(path, 'w').write('pwned')\n        print('wrote', path)\n"
        "    except OSError as exc:\n        print('refused', path, exc.strerror)\n")
    result = run(source)
    assert result.status == "passed", result.stderr
    for target in targets:
        assert not target.exists(), f"{target} was created on the host"


def test_tcp_listener_on_loopback_receives_no_connection(launcher):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        source = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'leak')\n"
        result = run(source, limits=QUICK)
        assert result.status == "failed"
        assert "Error" in result.stderr
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()


@pytest.fixture(params=["zygote", "exec-chain"])
def launcher(request, monkeypatch):
    """Run the test through each strong launcher: the fork server and the util-linux exec chain."""
    if request.param == "exec-chain":
        monkeypatch.setenv(isolation.DISABLE_ENV, "zygote")
    return request.param


@needs_root
def test_killing_the_parent_fails_and_parent_survives(launcher):
    source = ("import os\nprint(os.getppid(), flush=True)\n"
              f"for pid in (os.getppid(), {os.getpid()}):\n"
              "    try:\n        os.kill(pid, 9)\n        print('sent', pid)\n"
              "    except PermissionError:\n        print('refused', pid)\n"
              "    except ProcessLookupError:\n        print('absent', pid)\n"
              "print('parent', os.getppid(), os.path.exists(f'/proc/{os.getppid()}'), flush=True)\n"
              "raise SystemExit(3)\n")
    result = run(source, limits=QUICK)
    lines = result.stdout.splitlines()
    parent = int(lines[0])  # its PID namespace's init; without one, us (exec chain) or the zygote
    assert (result.status, result.exit_code) == ("failed", 3), result.stderr  # the run ended its own way
    if result.isolation.get("pid") == "namespace":
        # the exec chain's init is root (refused); the zygote's runs as the program's uid, and the kernel drops a
        # signal sent to a namespace's init from inside it: either way the init lives on, as do we (not even visible)
        assert parent == 1 and lines[1] in ("refused 1", "sent 1")
        assert lines[2:] == [f"absent {os.getpid()}", "parent 1 True"]
        if launcher == "zygote":
            assert _alive(zygote.get_zygote(sys.executable).process.pid)
    else:
        assert lines[1:] == [f"refused {parent}", f"refused {os.getpid()}", f"parent {parent} True"]
        assert _alive(parent) and Path(f"/proc/{parent}").stat().st_uid == 0


@needs_root
def test_the_namespace_init_cannot_be_used_to_fake_a_result(launcher):
    # the init reports the program's exit status to the zygote: a program that could write to that pipe (through
    # /proc/1/fd) or trace its init could turn its own failure into a pass
    source = (
        "import ctypes, os, sys\n"
        "for action in ('fds', 'environ', 'ptrace'):\n"
        "    try:\n"
        "        if action == 'fds':\n"
        "            for fd in os.listdir('/proc/1/fd'):\n"
        "                with open(f'/proc/1/fd/{fd}', 'w') as handle:\n"
        "                    handle.write('{\"status\": 0}\\n{\"started\": true}\\n')\n"
        "        elif action == 'environ':\n"
        "            open('/proc/1/environ', 'rb').read()\n"
        "        elif ctypes.CDLL(None, use_errno=True).ptrace(16, 1, 0, 0) != 0:  # PTRACE_ATTACH\n"
        "            raise OSError(ctypes.get_errno(), 'ptrace')\n"
        "        print(action, 'allowed', flush=True)\n"
        "    except OSError as exc:\n"
        "        print(action, 'refused', exc.errno, flush=True)\n"
        "sys.exit(1)\n")
    result = run(source, limits=QUICK)
    assert (result.status, result.exit_code) == ("failed", 1), (result.stdout, result.stderr)
    assert "allowed" not in result.stdout, result.stdout


@needs_root
def test_detached_setsid_child_is_dead_after_the_run(launcher):
    # a unique sleep duration marks the children: inside a PID namespace their pids mean nothing on the host
    marker = f"{30 + secrets.randbelow(10**6) / 10**7:.7f}"
    source = ("import os, subprocess, time\n"
              f"child = subprocess.Popen(['sleep', '{marker}'], start_new_session=True)\n"
              f"if os.fork() == 0:\n    os.setsid()\n    os.execvp('sleep', ['sleep', '{marker}'])\n"
              "time.sleep(0.2)\n"
              "print(sum(b'sleep' in open(f'/proc/{p}/cmdline', 'rb').read()\n"
              "          for p in os.listdir('/proc') if p.isdigit()), flush=True)\n")
    result = run(source, limits=QUICK)
    assert result.status == "passed", result.stderr
    assert result.stdout.split() == ["2"]  # both were running when the program exited
    deadline = time.monotonic() + 2
    while _host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_processes_with(marker) == []


def _host_processes_with(text: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


@pytest.fixture
def host_dirs():
    """A fresh world-readable directory (0755) in each of the host's /run, /srv, /home and /var/tmp: places a
    sandboxed program could reach on a host-wide read-only root (its /tmp is already private), removed afterwards."""
    made = []
    for base in ("/run", "/srv", "/home", "/var/tmp"):
        if os.path.isdir(base) and os.access(base, os.W_OK):
            path = Path(base) / f"qwenpost-sandbox-test-{os.getpid()}-{secrets.token_hex(4)}"
            path.mkdir()
            path.chmod(0o755)
            made.append(path)
    assert made, "no host directory to put the test's files in"
    try:
        yield made
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@needs_root
def test_host_unix_socket_cannot_be_connected_to(host_dirs, launcher):
    # a world-writable socket file of a host service: a network namespace does not cover the file system's sockets
    path = str(host_dirs[0] / "service.sock")
    python = ("import socket\nclient = socket.socket(socket.AF_UNIX)\n"
              f"client.connect({path!r})\nclient.sendall(b'leak')\nprint('connected')\n")
    node = ("const net = require('net');\n"
            f"const client = net.connect({json.dumps(path)}, () => {{\n"
            "  client.end('leak');\n  console.log('connected');\n});\n"
            "client.on('error', (error) => { console.log('refused', error.code); process.exitCode = 1; });\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        os.chmod(path, 0o777)
        listener.listen(8)
        results = [run(python, limits=QUICK), run(node, "js", limits=QUICK)]
        listener.settimeout(0.3)
        with pytest.raises(TimeoutError):  # connections wait in the backlog: one from the sandbox would be here
            listener.accept()
    for result in results:
        assert result.status == "failed" and "connected" not in result.stdout, (result.stdout, result.stderr)


@needs_root
def test_host_processes_are_invisible(launcher):
    # a host process whose command line holds a secret, as the reward service's --api_token does
    secret = "qwenpost-secret-" + secrets.token_hex(8)
    host = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"--api_token={secret}"])
    source = (
        "import os\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "print(len(pids), os.getpid() in pids)\n"
        f"for pid in pids + [{host.pid}, {os.getpid()}, os.getppid()]:\n"
        "    try:\n"
        "        print(pid, open(f'/proc/{pid}/cmdline', 'rb').read().replace(b'\\0', b' ').decode('latin-1'))\n"
        "    except OSError as exc:\n"
        "        print(pid, type(exc).__name__)\n"
    )
    try:
        result = run(source, limits=QUICK)
    finally:
        host.kill()
        host.wait()
    assert result.status == "passed", result.stderr
    assert secret not in result.stdout and secret not in result.stderr
    count, sees_itself = result.stdout.split()[:2]
    assert sees_itself == "True" and int(count) <= 2, result.stdout  # itself and its namespace's init, nothing else


@needs_root
def test_host_files_are_unreadable_even_through_a_compiler_error(host_dirs, launcher):
    secret = "qwenpost_secret_" + secrets.token_hex(8)
    secrets_paths = []
    for directory in host_dirs:
        (directory / "secret.txt").write_text(secret + "\n")
        (directory / "secret.txt").chmod(0o644)
        secrets_paths.append(str(directory / "secret.txt"))
    source_tree = str(REPO / "sandbox" / "isolation.py")  # a world-readable source tree on the host
    hidden = ["/run", "/home", "/root", "/work", "/srv", "/var"]
    python = run(
        f"import os\nfor path in {[*secrets_paths, source_tree]!r}:\n"
        "    try:\n        print(path, open(path).read())\n"
        "    except OSError as exc:\n        print(path, type(exc).__name__)\n"
        f"for path in {hidden!r}:\n"
        "    try:\n        print(path, sorted(os.listdir(path)))\n"
        "    except OSError as exc:\n        print(path, 'absent' if not os.path.lexists(path) else exc.strerror)\n",
        limits=QUICK)
    assert python.status == "passed", python.stderr
    assert secret not in python.stdout + python.stderr
    assert f"{source_tree} FileNotFoundError" in python.stdout.splitlines()
    for path in hidden:  # absent, or at most an empty mount point, or the way to a toolchain's declared directory
        declared = sorted({p[len(path) + 1:].split("/")[0] for lang in LANGUAGES.values() for p in lang.host_paths
                           if p.startswith(path + "/") and os.path.isdir(p)})
        allowed = (f"{path} absent", f"{path} []", f"{path} {declared}")
        assert any(line in allowed for line in python.stdout.splitlines()), python.stdout
    node = run(f"const fs = require('fs');\nfor (const p of {json.dumps(secrets_paths)}) {{\n"
               "  try { console.log(fs.readFileSync(p, 'utf8')); } catch (e) { console.log(p, e.code); }\n}\n",
               "js", limits=QUICK)
    assert node.status == "passed" and secret not in node.stdout + node.stderr, node.stdout + node.stderr
    # the code verifier returns compiler errors to the caller: an #include must not echo a host file back
    compiled = run(f'#include "{secrets_paths[0]}"\nint main() {{ return 0; }}\n', "cpp", limits=QUICK)
    assert compiled.status == "compile_error" and secret not in compiled.stdout + compiled.stderr, compiled.stderr


_SPIN_MANY = """
import os, time
def spin(index):
    next_report = 0.0
    while True:  # each process prints its own CPU time as it goes, every 10 ms of it
        if time.process_time() >= next_report:
            os.write(1, f"{index} {time.process_time():.3f}\\n".encode())
            next_report += 0.01
children = []
for index in range(30):
    pid = os.fork()
    if pid == 0:
        spin(index)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""


@pytest.mark.e2e  # waits for sandboxed programs to hit their limits (seconds)
def test_cpu_budget_bounds_all_processes_of_a_run_together(launcher, monkeypatch):
    # 30 spinning processes: a per-process CPU limit lets them use wall time x cores between them
    usages = []
    remove = isolation.RunCgroups.remove

    def measured_remove(self):
        usages.append(getattr(self, "cpu_usage_s", lambda: None)())  # the run's cgroup, before it goes
        remove(self)

    monkeypatch.setattr(isolation.RunCgroups, "remove", measured_remove)
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=10, processes=40, output_bytes=1 << 20)
    result = run(_SPIN_MANY, limits=limits)
    last = {}
    for line in result.stdout.splitlines():
        index, spent = line.split()
        last[index] = float(spent)
    total = sum(last.values())
    assert result.status == "timeout"
    assert total <= limits.cpu_seconds + 0.3, f"the run's processes used {total:.2f} CPU-seconds together"
    assert result.duration_s < limits.wall_seconds - 2  # the CPU budget ended it, not the wall clock
    assert usages and usages[0] is not None and usages[0] <= limits.cpu_seconds + 0.3, usages


# ---------------------------------------------------------------- run_many


@pytest.mark.e2e  # waits for sandboxed programs to hit their limits (seconds)
def test_run_many_keeps_order_and_statuses():
    jobs = [SandboxJob(f"print({i})") for i in range(6)]
    jobs += [SandboxJob("raise SystemExit(2)"), SandboxJob("console.log('js')", "javascript"),
             SandboxJob("import time\ntime.sleep(30)", limits=SandboxLimits(wall_seconds=1))]
    results = run_many(jobs, workers=4)
    assert [r.stdout for r in results[:6]] == [f"{i}\n" for i in range(6)]
    assert [r.status for r in results[6:]] == ["failed", "passed", "timeout"]
    assert run_many([]) == []
    with pytest.raises(ValueError, match="'fortran'"):
        run_many([SandboxJob("x", "fortran")])


# ---------------------------------------------------------------- isolation modes


@needs_root
def test_a_killed_zygote_is_replaced():
    assert run("pass").status == "passed"
    server = zygote.get_zygote(sys.executable)
    os.kill(server.process.pid, 9)
    server.process.wait(timeout=10)
    assert run("print(5)").stdout == "5\n"
    assert zygote.get_zygote(sys.executable) is not server


@needs_root
def test_setup_failure_raises_and_a_program_cannot_fake_one():
    caps = isolation.capabilities()
    limits = isolation.Rlimits(cpu_seconds=1, address_space_bytes=None, file_size_bytes=1 << 20, open_files=64,
                               processes=None)
    request = isolation.zygote_request(caps, ["/bin/true"], workdir="/nonexistent-qwenpost-dir", uid=None,
                                       rlimits=limits, cgroups=None, env={})
    fds = [os.open(os.devnull, os.O_RDWR) for _ in range(3)]
    try:
        with pytest.raises(zygote.ZygoteError, match="setup failed.*nonexistent-qwenpost-dir"):
            zygote.get_zygote(sys.executable).spawn(request, fds)
    finally:
        for fd in fds:
            os.close(fd)
    faked = run(f"import sys\nprint({zygote.SETUP_MARKER!r}, file=sys.stderr)\nsys.exit(125)\n")
    assert (faked.status, faked.exit_code) == ("failed", 125)


@pytest.mark.skipif(not ROOT, reason="the strong path needs root (as on CI)")
def test_strong_isolation_is_used_as_root():
    caps = isolation.capabilities()
    summary = run("pass").isolation
    assert summary["network"] == ("namespace" if caps.network_namespace else "socket-blocked")
    assert summary["pids"] in ("cgroup", "rlimit-unprivileged") and summary["user"] == "dedicated"
    if caps.pids_cgroup is not None and caps.mount_namespace:  # what this project's machines and CI have
        assert summary == {"network": "namespace", "pids": "cgroup", "memory": "cgroup",
                           "filesystem": "mount-namespace", "user": "dedicated", "pid": "namespace",
                           "root": "minimal", "cpu": "cgroup-budget"}


@needs_root
@pytest.mark.parametrize("disable, expected", [
    ("pidns", {"pid": "shared", "root": "minimal"}),
    ("minroot", {"pid": "namespace", "root": "host-readonly"}),
    ("pidns,minroot,zygote", {"pid": "shared", "root": "host-readonly"}),
])
def test_each_new_layer_degrades_alone_and_says_so(monkeypatch, disable, expected):
    monkeypatch.setenv(isolation.DISABLE_ENV, disable)
    source = "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]), os.path.isdir('/srv'))\n"
    results = [run(source, limits=QUICK), run("console.log(6 * 7)", "js", limits=QUICK),
               run("int main() { return 0; }", "cpp", limits=QUICK)]
    for result in results:
        assert result.status == "passed", result.stderr
        assert {key: result.isolation[key] for key in expected} == expected
    processes, srv_visible = results[0].stdout.split()
    assert (int(processes) <= 2) == (expected["pid"] == "namespace")
    assert srv_visible == str(expected["root"] == "host-readonly")


@pytest.mark.skipif(not ROOT, reason="needs root to drop to a sandbox user")
@pytest.mark.e2e  # waits for sandboxed programs to hit their limits (seconds)
def test_without_namespaces_or_cgroups_python_sockets_are_blocked_and_pids_still_bound(monkeypatch):
    monkeypatch.setenv(isolation.DISABLE_ENV, "netns,mountns,cgroups")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        result = run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n", limits=QUICK)
        assert result.isolation["network"] == "socket-blocked" and result.isolation["pids"] == "rlimit-unprivileged"
        assert (result.isolation["pid"], result.isolation["root"], result.isolation["cpu"]) == (
            "shared", "host", "rlimit-per-process")
        assert result.status == "failed" and "disabled in the sandbox" in result.stderr
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()
    binds, probe = _pids_limit_binds(SandboxLimits(wall_seconds=3, processes=10))
    assert binds, probe.stdout
    assert probe.isolation["pids"] == "rlimit-unprivileged"


def test_unknown_disable_entry_is_refused(monkeypatch):
    monkeypatch.setenv(isolation.DISABLE_ENV, "seccomp")
    with pytest.raises(ValueError, match="seccomp"):
        run("pass")


# ---------------------------------------------------------------- CLI


def test_cli_prints_json_and_exits_zero_whatever_the_status(tmp_path, capsys):
    program = tmp_path / "prog.py"
    program.write_text("print(input() * 2)\nraise SystemExit(1)\n")
    stdin = tmp_path / "in.txt"
    stdin.write_text("ab\n")
    assert cli_main(["--language", "python", str(program), "--stdin", str(stdin)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["status"], printed["stdout"], printed["exit_code"]) == ("failed", "abab\n", 1)
    assert cli_main(["run", str(program), "--indent", "0"]) == 0  # leading `run`, language from the suffix


def test_cli_bad_arguments_exit_two_with_a_message(tmp_path, capsys):
    program = tmp_path / "prog.txt"
    program.write_text("print(1)")
    assert cli_main(["--language", "cobol", str(program)]) == 2
    assert "cobol" in capsys.readouterr().err
    assert cli_main(["--language", "python", str(tmp_path / "missing.py")]) == 2
    assert "missing.py" in capsys.readouterr().err
    assert cli_main([str(program)]) == 2  # no language, unknown suffix
    assert "--language" in capsys.readouterr().err


def test_python_dash_m_entry_point(tmp_path):
    program = tmp_path / "p.js"
    program.write_text("console.log(6 * 7)")
    done = subprocess.run([sys.executable, "-m", "sandbox", "run", "-l", "js", str(program)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stdout"] == "42\n"
