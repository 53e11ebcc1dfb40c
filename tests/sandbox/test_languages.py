"""Every language of the table: hello world passes, its static check refuses a broken program (static_error with the
diagnostic), and the attack corpus in its own idiom (language_programs.py) ends in a bounded status with nothing
reaching the host; compile-time attacks (an endless include, template and constexpr explosions, a compiler that
never ends, gigantic diagnostics) are bounded by the compile limits and the output cap.

A language whose toolchain is not installed skips, naming the package. The default tier runs every language's
hello/static pair except the slow JVM compilers (kotlin, scala: ~7 s a build), and the attack corpus for a quick
subset (QUICK_ATTACK_LANGUAGES); the whole grid is `slow`.
"""

import dataclasses
import importlib.util
import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from sandbox import (
    LANGUAGES,
    LanguageUnavailable,
    SandboxJob,
    SandboxLimits,
    available,
    isolation,
    run,
    run_many,
    unavailable,
)
from sandbox.cli import main as cli_main
from sandbox.languages import Language

_spec = importlib.util.spec_from_file_location("sandbox_language_programs",
                                               Path(__file__).with_name("language_programs.py"))
programs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(programs)

ROOT = os.geteuid() == 0
REPO = Path(__file__).resolve().parents[2]
ALL = list(LANGUAGES)
SLOW_BUILDS = {"kotlin", "scala"}  # ~7 s per build on 2 cores
QUICK_ATTACK_LANGUAGES = ("c", "bash", "lua")
LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=4, memory_mb=256, processes=16, output_bytes=8192)
# a memory bomb ends at the memory limit, not the clock: room for slow allocators (bash copies its string each time)
ATTACK_LIMITS = {"memory_bomb": dataclasses.replace(LIMITS, cpu_seconds=4, wall_seconds=8)}
# C has no runtime to report it: malloc returns NULL at the address-space limit and the unchecked program crashes
MEMORY_BOMB_STATUS = {"c": "crashed"}
needs_strong = pytest.mark.skipif(
    not ROOT, reason="the attack corpus runs only on the strong path (root: cgroups, namespaces, own uid), as on CI")


def _needs(language: str) -> None:
    reason = unavailable(language)
    if reason is not None:
        pytest.skip(reason)


def _param(language: str, slow: bool = False):
    return pytest.param(language, marks=[pytest.mark.slow] if slow else [], id=language)


# ---------------------------------------------------------------- the table


def test_table_has_twenty_languages_each_with_package_check_and_executables():
    assert len(LANGUAGES) == 20
    assert {"swift", "julia"}.isdisjoint(LANGUAGES) and {"ocaml", "racket"} <= set(LANGUAGES)
    for lang in LANGUAGES.values():
        assert lang.package.startswith(("apt:", "npm:")), lang.name
        assert lang.check is not None or lang.inline_check or lang.name == "cpp", lang.name
        assert lang.executables or lang.name == "python"
    aliases = {"ts": "typescript", "cs": "csharp", "c#": "csharp", "golang": "go", "rs": "rust", "rb": "ruby",
               "pl": "perl", "sh": "bash", "hs": "haskell", "ml": "ocaml", "rkt": "racket", "kt": "kotlin"}
    for alias, name in aliases.items():
        assert LANGUAGES[alias].name == name


def test_make_installs_every_toolchain_by_package_name_and_ci_installs_at_least_eight():
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    lists = {m[1]: m[2].split() for m in re.finditer(r"^(SANDBOX_APT(?:_CI)?) := (.*)$", text, re.MULTILINE)}
    ci = set(lists["SANDBOX_APT_CI"])
    everything = ci | set(lists["SANDBOX_APT"]) - {"$(SANDBOX_APT_CI)"}
    packages = {lang.name: lang.package.removeprefix("apt:") for lang in LANGUAGES.values()}
    assert set(packages.values()) <= everything
    assert sum(package in ci for package in packages.values()) >= 8
    assert re.search(r"apt-get install .*\$\(SANDBOX_APT\)", text) and "curl" not in text and "wget" not in text
    ci_script = (REPO / ".ci" / "run").read_text()
    assert 0 <= ci_script.index("make sandbox-languages-ci") < ci_script.index("make test")


def test_a_missing_toolchain_is_a_clear_error_naming_the_package(monkeypatch, tmp_path, capsys):
    fake = Language(name="cobol", file_name="main.cob", check=("cobc-not-installed", "-fsyntax-only", "{file}"),
                    run=("./main",), package="apt:gnucobol4")
    monkeypatch.setitem(LANGUAGES, "cobol", fake)
    reason = unavailable("cobol")
    assert not available("cobol") and "cobc-not-installed" in reason and "gnucobol4" in reason
    with pytest.raises(LanguageUnavailable, match="gnucobol4") as raised:
        run("x", "cobol")
    assert (raised.value.package, raised.value.missing) == ("apt:gnucobol4", ["cobc-not-installed"])
    with pytest.raises(LanguageUnavailable, match="gnucobol4"):
        run_many([SandboxJob("print(1)"), SandboxJob("x", "cobol")])  # refused before any job starts
    program = tmp_path / "p.cob"
    program.write_text("x")
    assert cli_main(["--language", "cobol", str(program)]) == 1
    assert "gnucobol4" in capsys.readouterr().err
    assert available("python") and unavailable("python") is None


# ---------------------------------------------------------------- hello world and the static check


@pytest.mark.parametrize("language", [_param(name, name in SLOW_BUILDS) for name in ALL])
def test_hello_world_passes_and_the_static_check_refuses_a_broken_program(language):
    _needs(language)
    limits = SandboxLimits(cpu_seconds=5, wall_seconds=10)
    hello = run(programs.HELLO[language], language, limits=limits)
    assert (hello.status, hello.stdout) == ("passed", "hello\n"), hello.stderr
    source, diagnostic = programs.STATIC_ERROR[language]
    broken = run(source, language, limits=limits)
    expected = "compile_error" if language == "cpp" else "static_error"  # C++: its compiler's step (languages.py)
    assert broken.status == expected, (broken.status, broken.stdout, broken.stderr)
    assert diagnostic in broken.stderr, broken.stderr
    assert "ran" not in broken.stdout  # nothing of the program ran


def test_python_check_is_inline_and_can_be_skipped():
    refused = run("print('ran')\ndef f(:\n    pass\n")
    assert (refused.status, refused.exit_code, refused.stdout) == ("static_error", 65, "")
    assert 'File "main.py", line 2' in refused.stderr and "SyntaxError" in refused.stderr
    unchecked = run("print('ran')\ndef f(:\n    pass\n", check=False)
    assert unchecked.status == "failed" and "SyntaxError" in unchecked.stderr
    runtime = run("raise ValueError('no')")  # a failure at run time stays failed
    assert runtime.status == "failed"


def test_check_false_skips_a_separate_check():
    source = "console.log('ran');\nfunction f( {"
    assert run(source, "js").status == "static_error"
    skipped = run(source, "js", check=False)
    assert skipped.status == "failed" and "SyntaxError" in skipped.stderr


def test_check_false_keeps_a_compiler_that_builds_as_a_compile_step():
    _needs("go")
    source = 'package main\nimport "fmt"\nfunc main() { fmt.Println("ran"); var x int = "text" }'
    assert run(source, "go").status == "static_error"
    unchecked = run(source, "go", check=False)
    assert unchecked.status == "compile_error" and "cannot use" in unchecked.stderr + unchecked.stdout
    assert run(programs.HELLO["go"], "go", check=False).stdout == "hello\n"


def test_run_many_mixes_languages_and_keeps_statuses():
    languages = [name for name in ("python", "javascript", "c", "bash", "lua", "perl") if available(name)]
    jobs = [SandboxJob(programs.HELLO[name], name) for name in languages]
    jobs += [SandboxJob(programs.STATIC_ERROR[name][0], name) for name in languages]
    results = run_many(jobs, workers=4)
    assert [r.status for r in results] == ["passed"] * len(languages) + ["static_error"] * len(languages)


# ---------------------------------------------------------------- the attack corpus


def _host_processes_with(text: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
                state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if text.encode() in cmdline and state != "Z":
                found.append(int(entry.name))
    return found


@pytest.fixture
def secret_file():
    """A world-readable secret in a world-readable host directory outside the working directory."""
    base = "/var/tmp" if os.access("/var/tmp", os.W_OK) else tempfile.gettempdir()
    directory = Path(base) / f"qwenpost-sandbox-test-{os.getpid()}-{secrets.token_hex(4)}"
    directory.mkdir()
    directory.chmod(0o755)
    secret = "qwenpost_secret_" + secrets.token_hex(8)
    (directory / "secret.txt").write_text(secret + "\n")
    (directory / "secret.txt").chmod(0o644)
    try:
        yield directory / "secret.txt", secret
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _attack(language: str, attack: str, monkeypatch, secret_file) -> None:
    _needs(language)
    table = programs.ATTACKS[attack]
    if language not in table:
        pytest.skip(programs.NOT_EXPRESSIBLE[(language, attack)])
    source = table[language]
    caps = isolation.capabilities()
    if attack == "fork_bomb" and caps.pids_cgroup is None:
        pytest.skip("no pids cgroup here: the fork bomb runs only where a cgroup bounds it")
    secret_path, secret = secret_file
    monkeypatch.setenv("QWENPOST_SANDBOX_TEST_SECRET", secret)
    marker = f"{40 + secrets.randbelow(10**6) / 10**7:.7f}"
    target = REPO / f"qwenpost-sandbox-escape-{secrets.token_hex(6)}"
    source = (source.replace("@SECRET_FILE@", str(secret_path)).replace("@MARKER@", marker)
              .replace("@TARGET@", str(target)))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        source = source.replace("@PORT@", str(listener.getsockname()[1]))
        start = time.monotonic()
        limits = ATTACK_LIMITS.get(attack, LIMITS)
        result = run(source, language, limits=limits)
        elapsed = time.monotonic() - start
        listener.settimeout(0.05)
        with pytest.raises(TimeoutError):  # a connection from the sandbox would wait in the backlog
            listener.accept()
    detail = (result.status, result.stdout[-500:], result.stderr[-1500:])
    assert result.status in ("passed", "failed", "timeout", "memory", "crashed"), detail  # built, then ran
    build = LANGUAGES[language].compile_limits.wall_seconds
    assert elapsed < 2 * build + limits.wall_seconds + 5  # bounded: the build's and the run's wall clocks
    assert len(result.stdout.encode()) <= LIMITS.output_bytes
    assert len(result.stderr.encode()) <= LIMITS.output_bytes + 512  # the cap, and the sandbox's note
    output = result.stdout + result.stderr
    if attack == "fork_bomb":
        assert result.status in ("timeout", "failed", "crashed", "memory"), detail
    elif attack == "memory_bomb":
        assert result.status == MEMORY_BOMB_STATUS.get(language, "memory"), detail
    elif attack == "infinite_loop":
        assert result.status == "timeout", detail
    elif attack == "huge_output":
        assert result.truncated and result.status in ("failed", "timeout"), detail
        assert result.status == "timeout" or "output limit" in result.stderr, detail
    elif attack == "network":
        assert result.status != "passed" and "connected" not in result.stdout, detail
    elif attack == "write_outside":
        assert not target.exists(), f"{target} was created on the host"
        assert result.status != "passed" and "wrote" not in result.stdout, detail
    elif attack == "read_secrets":
        assert secret not in output, detail
    elif attack == "orphan":
        assert result.status == "passed" and "started" in result.stdout, detail
        deadline = time.monotonic() + 3
        while _host_processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _host_processes_with(marker) == [], "an orphan outlived its run"
    if target.exists():
        target.unlink()
        pytest.fail(f"{target} was created on the host")


@needs_strong
@pytest.mark.e2e  # waits for sandboxed programs to hit their limits (seconds)
@pytest.mark.parametrize("attack", list(programs.ATTACKS))
@pytest.mark.parametrize("language", QUICK_ATTACK_LANGUAGES)
def test_attack_corpus_quick_subset(language, attack, monkeypatch, secret_file):
    _attack(language, attack, monkeypatch, secret_file)


@needs_strong
@pytest.mark.slow  # 8 attacks x 20 languages, each building and running to its limits: minutes
@pytest.mark.parametrize("attack", list(programs.ATTACKS))
@pytest.mark.parametrize("language", [name for name in ALL if name not in QUICK_ATTACK_LANGUAGES])
def test_attack_corpus_every_language(language, attack, monkeypatch, secret_file):
    _attack(language, attack, monkeypatch, secret_file)


# ---------------------------------------------------------------- compile-time attacks


def _with_build_limits(monkeypatch, language: str, **limits) -> None:
    lang = LANGUAGES[language]
    monkeypatch.setitem(LANGUAGES, lang.name, dataclasses.replace(
        lang, compile_limits=dataclasses.replace(lang.compile_limits, **limits)))


_MACRO_BOMB = "#define X0 x\n" + "".join(f"#define X{i} X{i - 1} X{i - 1}\n" for i in range(1, 40)) + (
    "int main(void) { int x = 0; return X39; }\n")
_TEMPLATE_RECURSION = ("template <int N> struct F { static const int value = F<N + 1>::value; };\n"
                       "int main() { return F<0>::value; }\n")
_CONSTEXPR_FOREVER = ("constexpr long spin() {\n"
                      "  long s = 0; for (long i = 0; i < (1L << 62); ++i) s += i % 7; return s; }\n"
                      "static_assert(spin() != 1, \"never decided\");\nint main() { return 0; }\n")
_TEMPLATE_EXPLOSION = ("template <int N> struct T { using A = T<N - 1>; using B = T<N - 2>;\n"
                       "  static constexpr long v = A::v + B::v + sizeof(typename T<N - 1>::A); };\n"
                       "template <> struct T<1> { using A = T<1>; static constexpr long v = 1; };\n"
                       "template <> struct T<0> { using A = T<0>; static constexpr long v = 1; };\n"
                       "int main() { return T<800>::v != 0; }\n")
_RUST_CONST_FOREVER = ("const X: u64 = { let mut i: u64 = 0; loop { i = i.wrapping_add(1); } };\n"
                       "fn main() { println!(\"{}\", X); }\n")


@needs_strong
@pytest.mark.e2e  # runs compilers to their limits
@pytest.mark.parametrize("language", ["c", "cpp"])
def test_include_dev_zero_is_bounded(language, monkeypatch):
    _needs(language)
    _with_build_limits(monkeypatch, language, cpu_seconds=3, wall_seconds=6, memory_mb=512)
    start = time.monotonic()
    result = run('#include "/dev/zero"\nint main(void) { return 0; }\n', language)
    assert result.status == ("static_error" if language == "c" else "compile_error"), result.stderr
    assert time.monotonic() - start < 15 and len(result.stderr) < 70_000


@needs_strong
@pytest.mark.e2e  # runs compilers to their limits
@pytest.mark.parametrize("name, language, source, status", [
    ("template recursion", "cpp", _TEMPLATE_RECURSION, "compile_error"),
    ("macro explosion", "c", _MACRO_BOMB, "static_error"),
    ("constexpr that never ends", "cpp", _CONSTEXPR_FOREVER, "compile_error"),
    ("rust const evaluation that never ends", "rust", _RUST_CONST_FOREVER, "static_error"),
])
def test_compile_time_explosions_are_bounded_by_the_compile_limits(name, language, source, status, monkeypatch):
    _needs(language)
    _with_build_limits(monkeypatch, language, cpu_seconds=3, wall_seconds=6, memory_mb=512)
    start = time.monotonic()
    result = run(source, language, limits=SandboxLimits(output_bytes=16384))
    elapsed = time.monotonic() - start
    assert result.status == status, (name, result.stderr[-2000:])
    assert elapsed < 15, (name, elapsed)
    assert len(result.stderr.encode()) < 16384 + 512


@needs_strong
@pytest.mark.e2e  # runs compilers to their limits
@pytest.mark.parametrize("language, source, status", [
    ("cpp", "".join(f"void f{i}() {{ undefined_{i}(); }}\n" for i in range(20000)) + "int main() {}\n",
     "compile_error"),
    ("java", "public class Main {\n" + "".join(f"  static int f{i}() {{ return undefined{i}; }}\n"
                                               for i in range(3000)) + "  public static void main(String[] a) {} }\n",
     "static_error"),
])
def test_gigantic_compiler_output_is_cut_at_the_cap(language, source, status):
    _needs(language)
    result = run(source, language, limits=SandboxLimits(output_bytes=4096))
    assert result.status == status and result.truncated, result.stderr[-500:]
    assert len((result.stdout + result.stderr).encode()) < 2 * 4096 + 512


@needs_strong
@pytest.mark.parametrize("language, source", [
    ("c", '#include "@SECRET_FILE@"\nint main(void) { return 0; }\n'),
    ("rust", 'const S: &str = include_str!("@SECRET_FILE@");\nfn main() { println!("{}", S); }\n'),
    ("go", 'package main\nimport _ "embed"\n//go:embed @SECRET_FILE@\nvar s string\nfunc main() { println(s) }\n'),
])
def test_a_compiler_cannot_read_a_host_file(language, source, secret_file):
    _needs(language)
    path, secret = secret_file
    result = run(source.replace("@SECRET_FILE@", str(path)), language)
    assert result.status == "static_error", result.stderr
    assert secret not in result.stdout + result.stderr
