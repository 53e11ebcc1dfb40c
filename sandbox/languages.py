"""The sandbox's language table: how to check, compile and run one source file in each of 20 languages.

Adding a language is one `Language` entry in `LANGUAGES`: the file name the source is written to, an optional
static `check`, an optional `compile` command, the run command, and the package that installs its toolchain.
Commands are argument lists (never shell strings) with placeholders: `{file}` (the source file name),
`{memory_mb}` (the job's memory limit), `{heap_mb}` (half of it: the heap cap of runtimes whose own overhead sits
beside the heap, JVM, GHC, mono), `{python}` (a Python interpreter the unprivileged sandbox user can execute) and
`{python_bootstrap}` (see `python_bootstrap`). Executables are looked up on the sandbox's PATH
(`isolation.SANDBOX_PATH`) when a job runs; `unavailable(language)` says which are missing and which package to
install (`make sandbox-languages` installs them all, by name, through apt-get).

The steps, and the status each one's failure gives (runner.py):
- `check`: a static check, run first: a syntax checker (`node --check`, `php -l`, `ruby -c`, `perl -c`,
  `luac -p`, `bash -n`, R's `parse()`, `gcc -fsyntax-only -Wall` for C) or, where the compiler is the only
  checker there is, the compiler itself, run once, building as it checks (javac, mcs, kotlinc, scalac, rustc,
  `go build`, ghc, ocamlc, tsc, `raco make`): a second front-end pass would double the build time. A failed check
  is `static_error`. Python's check is its own bytecode compile inside the run (`inline_check`: free, no extra
  process): a SyntaxError before any of the program ran is `static_error`. A caller can skip static checks
  (`run(check=False)`); a compiler that is the check (`check_builds`) then still runs, as a compile step.
- `compile`: a build step after the check passed (C: gcc itself, after the syntax check; C++: g++, which has
  always been C++'s compile step and stays so, since `-fsyntax-only` first would double its front-end time).
  A failed compile is `compile_error`.
- `run`: the program; its statuses are runner.py's.

Per-language memory choices (the memory cgroup of the run, where there is one, bounds every language):
- python: RLIMIT_AS as well, so an oversized allocation raises MemoryError instead of being OOM-killed. Run with
  `-I -S` (isolated mode, no site: no user or system site-packages, nothing from the environment, no `.pth`
  files) through a small bootstrap that puts the working directory on `sys.path` (so `extra_files` modules import)
  and restores `exit()`/`quit()`, which `-S` drops and model-written code often calls.
- javascript, typescript: no RLIMIT_AS (V8 reserves large virtual ranges up front and dies under it); the heap is
  capped with `--max-old-space-size` so a runaway allocation ends as "JavaScript heap out of memory".
- c, cpp, rust, ruby, perl, lua, php, r, bash, ocaml, racket: RLIMIT_AS on the program (an allocation past it
  fails inside the program, and its runtime says so: `std::bad_alloc`, "memory allocation of N bytes failed",
  "Out of memory!"...; C has no runtime to say it: malloc returns NULL, and what follows is the program's own
  doing, often a crash). go: no RLIMIT_AS (its runtime reserves the heap arenas' address space up front), so the
  run's memory cgroup alone bounds it (an OOM kill reads as `memory`). The compilers run under the looser
  `compile_limits` and without RLIMIT_AS, because their peak is large and is not the program's fault.
- java, kotlin, scala (JVM), csharp (mono), haskell (GHC's RTS): no RLIMIT_AS (each reserves far more address
  space than it uses); the heap is capped with the runtime's own flag at half the memory limit (`{heap_mb}`),
  the rest being the runtime's own, and they get `extra_processes` for their GC and compiler threads (a cgroup's
  pids.max counts threads).

Swift and Julia have no package in Debian bookworm (`apt-cache policy swiftlang julia`: none), and this sandbox
installs toolchains only through the distribution's package manager; OCaml and Racket, both in MultiPL-E,
take their places in the 20.
"""

import shutil
from dataclasses import dataclass, field


@dataclass(frozen=True)
class CompileLimits:
    """Limits for the check and compile steps; independent of the job's limits, which are sized for the program
    they build."""

    cpu_seconds: float = 30.0
    wall_seconds: float = 60.0
    memory_mb: int = 2048
    processes: int = 16  # processes and threads together
    open_files: int = 64


_JVM_COMPILE = CompileLimits(cpu_seconds=60.0, wall_seconds=60.0, memory_mb=2048, processes=96, open_files=1024)

STATIC_CHECK_MARKER = "[sandbox] static check failed"  # how an inline check (python) says it refused the program
STATIC_CHECK_EXIT = 65  # EX_DATAERR: the exit status of a refused inline check


@dataclass(frozen=True)
class Language:
    """How to check, build and run one program in one language."""

    name: str  # canonical name, the key in LANGUAGES
    file_name: str  # the source is written to this file in the empty working directory
    run: tuple[str, ...]  # run command; placeholders {file}, {memory_mb}, {heap_mb}, {python}, {python_bootstrap}
    package: str  # what installs the toolchain: "apt:<package>" (Debian) or "preinstalled:<where>"
    check: tuple[str, ...] | None = None  # static check, run first; a non-zero exit is a static_error
    check_builds: bool = False  # the check is the compiler and builds what `run` needs (kept as a build step when
    #                             the caller skips static checks; its failure is then a compile_error)
    compile: tuple[str, ...] | None = None  # build step after the check; a non-zero exit is a compile_error
    inline_check: bool = False  # the run command checks the whole program before running any of it (python)
    aliases: tuple[str, ...] = ()  # other names accepted by `get_language`
    address_space_limit: bool = True  # apply RLIMIT_AS = memory limit to the run (False where it breaks the runtime)
    memory_error_markers: tuple[str, ...] = ()  # stderr text that means the program ran out of memory
    compile_limits: CompileLimits = field(default_factory=CompileLimits)  # for the check and compile steps
    socket_guard: bool = False  # the run command blocks sockets in-process when there is no network namespace
    extra_processes: int = 0  # the runtime's own threads, added to the job's process limit for the run step
    min_open_files: int = 0  # a floor on the run step's open files limit (R refuses to start under ~100)
    env: tuple[tuple[str, str], ...] = ()  # extra environment of every step (placeholders allowed)
    support_files: tuple[tuple[str, str], ...] = ()  # (name, text) written beside the source (never the program's)
    needs: tuple[str, ...] = ()  # executables the commands start indirectly (a launcher script's `java`)
    host_paths: tuple[str, ...] = ()  # host directories the toolchain reads (config under /etc, a package db)

    @property
    def executables(self) -> tuple[str, ...]:
        """Every executable the language needs on the sandbox's PATH, in order, without duplicates."""
        names = []
        for command in (self.check, self.compile, self.run):
            if command and not command[0].startswith(("{", ".", "/")):
                names.append(command[0])
        names += self.needs
        return tuple(dict.fromkeys(names))


# Run as `python -I -S -c <bootstrap> main.py`: -I ignores PYTHON* variables and user site-packages and keeps the
# working directory off sys.path, so the bootstrap adds it back (helper modules in extra_files must import); -S skips
# site (faster start-up, no .pth code from the host), so exit()/quit() are restored here. No __pycache__ is written
# beside imported helper modules.
_PYTHON_BOOTSTRAP = (
    "import sys,builtins\n"
    "sys.dont_write_bytecode=True\n"
    "builtins.exit=builtins.quit=sys.exit\n"
    "sys.argv=sys.argv[1:]\n"
    "sys.path.insert(0,'')\n"
    "_m=sys.modules['__main__'].__dict__\n"
    "_m.update(__file__=sys.argv[0],__cached__=None)\n"
    "{compile}"
    "del sys,builtins,_m\n"
    "exec(_c)\n"
)
_PYTHON_COMPILE = "_c=compile(open(sys.argv[0],'rb').read(),sys.argv[0],'exec')\n"
# the inline static check: the whole file is compiled before any of it runs, so a SyntaxError here is the program's
# static_error (the runner reads the exit status and the marker); no traceback frames of the bootstrap itself
_PYTHON_CHECKED_COMPILE = (
    "try:\n"
    " _c=compile(open(sys.argv[0],'rb').read(),sys.argv[0],'exec')\n"
    "except (SyntaxError,ValueError) as _e:\n"
    " import traceback\n"
    " traceback.print_exception(type(_e),_e,None)\n"
    f" sys.stderr.write('{STATIC_CHECK_MARKER}\\n')\n"
    f" sys.exit({STATIC_CHECK_EXIT})\n"
)

# Without a network namespace, Python programs get an audit hook that refuses sockets, and the ways around it from
# Python (starting other programs, loading C functions through ctypes). Best effort, hence reported as
# "socket-blocked" rather than "namespace".
_PYTHON_SOCKET_GUARD = (
    "import sys\n"
    "def _guard(event,args,_blocked=frozenset(('socket.__new__','socket.connect','socket.bind','socket.sendto',"
    "'socket.getaddrinfo','socket.sendmsg','os.exec','os.posix_spawn','os.system','subprocess.Popen',"
    "'ctypes.dlopen','ctypes.dlsym','ctypes.cdata'))):\n"
    " if event in _blocked: raise PermissionError(f'{event} is disabled in the sandbox (no network)')\n"
    "sys.addaudithook(_guard)\n"
    "del _guard\n"
)


def python_bootstrap(block_sockets: bool, static_check: bool = True) -> str:
    """The `-c` program that runs main.py; with the socket guard first when `block_sockets`, and refusing a file that
    does not compile with STATIC_CHECK_MARKER and STATIC_CHECK_EXIT when `static_check`."""
    bootstrap = _PYTHON_BOOTSTRAP.replace("{compile}", _PYTHON_CHECKED_COMPILE if static_check else _PYTHON_COMPILE)
    return (_PYTHON_SOCKET_GUARD if block_sockets else "") + bootstrap


_V8_OUT_OF_MEMORY = ("JavaScript heap out of memory", "Array buffer allocation failed")
_JVM_OUT_OF_MEMORY = ("java.lang.OutOfMemoryError",)
# the JVM's configuration lives under /etc (lib/jvm.cfg and conf/ are links into it)
_JVM_HOST_PATHS = ("/etc/java-17-openjdk",)
# one GC thread, the client compiler only, no hsperfdata file in /tmp: a short program starts fastest this way
_JVM_RUN_FLAGS = ("-Xmx{heap_mb}m", "-Xss8m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
                  "-XX:CICompilerCount=1", "-Xshare:auto")
_JVM_COMPILER_OPTS = "-Xmx1g -Xss8m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData"
_JAVAC_FLAGS = ("-J-Xmx1g", "-J-XX:+UseSerialGC", "-J-XX:TieredStopAtLevel=1", "-J-XX:-UsePerfData", "-nowarn")
# What every JVM language shares: no RLIMIT_AS (the JVM reserves large ranges up front; -Xmx caps the heap), its
# out-of-memory markers, the looser compile limits, room for the JVM's threads, and the JDK's files on the host.
_JVM = dict(address_space_limit=False, memory_error_markers=_JVM_OUT_OF_MEMORY, compile_limits=_JVM_COMPILE,
            extra_processes=32, host_paths=_JVM_HOST_PATHS)
# the globals a TypeScript program and its tests reach for, without DOM or @types/node
_NODE_GLOBALS_D_TS = """declare var console: { log(...args: any[]): void; error(...args: any[]): void;
  warn(...args: any[]): void; info(...args: any[]): void };
declare var process: any;
declare var require: any;
declare var module: any;
declare var exports: any;
declare var Buffer: any;
declare function setTimeout(callback: (...args: any[]) => void, ms?: number, ...args: any[]): any;
declare function clearTimeout(handle: any): void;
declare function setInterval(callback: (...args: any[]) => void, ms?: number, ...args: any[]): any;
declare function clearInterval(handle: any): void;
"""


class LanguageTable(dict[str, Language]):
    """The table, keyed by canonical name; lookups (`[]`, `in`, `get`) also accept aliases, case-insensitively."""

    def _canonical(self, key: object) -> object:
        if not isinstance(key, str):
            return key
        key = key.strip().lower()
        for lang in self.values():
            if key == lang.name or key in lang.aliases:
                return lang.name
        return key

    def __missing__(self, key: str) -> Language:
        canonical = self._canonical(key)
        if canonical != key and dict.__contains__(self, canonical):
            return dict.__getitem__(self, canonical)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, self._canonical(key))

    def get(self, key: str, default: Language | None = None) -> Language | None:
        return self[key] if key in self else default


LANGUAGES: LanguageTable = LanguageTable({
    "python": Language(
        name="python",
        file_name="main.py",
        run=("{python}", "-I", "-S", "-c", "{python_bootstrap}", "{file}"),
        package="apt:python3",
        inline_check=True,
        aliases=("py", "python3"),
        socket_guard=True,
        memory_error_markers=("MemoryError",),
    ),
    "javascript": Language(
        name="javascript",
        file_name="main.js",
        check=("node", "--check", "{file}"),
        run=("node", "--max-old-space-size={memory_mb}", "{file}"),
        package="apt:nodejs",
        aliases=("js", "node"),
        address_space_limit=False,
        memory_error_markers=_V8_OUT_OF_MEMORY,
    ),
    "typescript": Language(
        name="typescript",
        file_name="main.ts",
        # tsc type-checks and emits main.js in one pass; no DOM or @types/node: a small declaration file gives the
        # globals a test harness uses (console, require, process)
        check_builds=True,
        check=("tsc", "--noEmitOnError", "--pretty", "false", "--skipLibCheck", "--target", "es2020",
               "--lib", "es2020", "--module", "commonjs", "{file}", "node_globals.d.ts"),
        run=("node", "--max-old-space-size={memory_mb}", "main.js"),
        package="apt:node-typescript",
        aliases=("ts",),
        address_space_limit=False,
        memory_error_markers=_V8_OUT_OF_MEMORY,
        support_files=(("node_globals.d.ts", _NODE_GLOBALS_D_TS),),
        needs=("node",),
    ),
    "c": Language(
        name="c",
        file_name="main.c",
        check=("gcc", "-std=gnu17", "-fsyntax-only", "-Wall", "{file}"),
        compile=("gcc", "-std=gnu17", "-O2", "-pipe", "-o", "main", "{file}", "-lm"),
        run=("./main",),
        package="apt:gcc",
        aliases=("gcc",),
    ),
    "cpp": Language(
        name="cpp",
        file_name="main.cpp",
        compile=("g++", "-std=c++17", "-O2", "-pipe", "-o", "main", "{file}"),
        run=("./main",),
        package="apt:g++",
        aliases=("c++", "cxx"),
        memory_error_markers=("std::bad_alloc",),
    ),
    "java": Language(
        name="java",
        file_name="Main.java",  # the program's public class is Main
        check_builds=True,
        check=("javac", *_JAVAC_FLAGS, "-encoding", "UTF-8", "-d", ".", "{file}"),
        run=("java", *_JVM_RUN_FLAGS, "-cp", ".", "Main"),
        package="apt:openjdk-17-jdk-headless",
        **_JVM,
    ),
    "csharp": Language(
        name="csharp",
        file_name="main.cs",
        check_builds=True,
        check=("mcs", "-nologo", "-out:main.exe", "{file}"),
        run=("mono", "main.exe"),
        package="apt:mono-mcs",
        aliases=("cs", "c#"),
        address_space_limit=False,
        memory_error_markers=("OutOfMemoryException",),
        compile_limits=_JVM_COMPILE,
        extra_processes=32,
        env=(("MONO_GC_PARAMS", "max-heap-size={heap_mb}m"),),
        host_paths=("/etc/mono",),
    ),
    "go": Language(
        name="go",
        file_name="main.go",
        check_builds=True,
        check=("go", "build", "-o", "main", "{file}"),
        run=("./main",),
        package="apt:golang-go",
        aliases=("golang",),
        address_space_limit=False,  # the Go runtime reserves its heap arenas' address space up front
        memory_error_markers=("runtime: out of memory",),
        compile_limits=CompileLimits(cpu_seconds=60.0, wall_seconds=60.0, memory_mb=2048, processes=96,
                                     open_files=1024),
        extra_processes=16,
        env=(("GO111MODULE", "off"), ("CGO_ENABLED", "0")),  # its build cache goes to $HOME, the working directory
    ),
    "rust": Language(
        name="rust",
        file_name="main.rs",
        check_builds=True,
        check=("rustc", "--edition", "2021", "-C", "opt-level=1", "-o", "main", "{file}"),
        run=("./main",),
        package="apt:rustc",
        aliases=("rs",),
        memory_error_markers=("memory allocation of",),
        compile_limits=CompileLimits(processes=64, open_files=256),
        needs=("cc",),  # rustc links through the system C compiler driver
    ),
    "php": Language(
        name="php",
        file_name="main.php",
        check=("php", "-n", "-l", "{file}"),
        # errors to stderr (the CLI prints them on stdout by default), once (not logged as well)
        run=("php", "-n", "-d", "memory_limit={memory_mb}M", "-d", "display_errors=stderr", "-d", "log_errors=0",
             "{file}"),
        package="apt:php-cli",
        memory_error_markers=("Allowed memory size", "Out of memory"),
    ),
    "ruby": Language(
        name="ruby",
        file_name="main.rb",
        check=("ruby", "-c", "{file}"),
        run=("ruby", "{file}"),
        package="apt:ruby",
        aliases=("rb",),
        memory_error_markers=("NoMemoryError", "failed to allocate memory"),
        extra_processes=4,
    ),
    "perl": Language(
        name="perl",
        file_name="main.pl",
        check=("perl", "-c", "{file}"),  # note: runs BEGIN blocks, in the sandbox like the rest
        run=("perl", "{file}"),
        package="apt:perl",
        aliases=("pl",),
        memory_error_markers=("Out of memory",),
    ),
    "lua": Language(
        name="lua",
        file_name="main.lua",
        check=("luac5.4", "-p", "{file}"),
        run=("lua5.4", "{file}"),
        package="apt:lua5.4",
        memory_error_markers=("not enough memory",),
    ),
    "r": Language(
        name="r",
        file_name="main.r",
        check=("Rscript", "--vanilla", "-e", "invisible(parse(file = 'main.r'))"),
        run=("Rscript", "--vanilla", "{file}"),
        package="apt:r-base-core",
        memory_error_markers=("cannot allocate vector", "cannot allocate memory"),
        compile_limits=CompileLimits(open_files=256),
        min_open_files=256,
        host_paths=("/etc/R",),
    ),
    "scala": Language(
        name="scala",
        file_name="main.scala",  # the program's entry point is `object Main`
        check_builds=True,
        check=("scalac", "-nobootcp", "-d", ".", "{file}"),
        run=("java", *_JVM_RUN_FLAGS, "-cp", "/usr/share/scala-2.11/lib/scala-library.jar:.", "Main"),
        package="apt:scala",
        env=(("JAVA_OPTS", _JVM_COMPILER_OPTS),),  # scalac and kotlinc are JVM programs started by a script
        needs=("java",),
        **_JVM,
    ),
    "kotlin": Language(
        name="kotlin",
        file_name="main.kt",
        check_builds=True,
        check=("kotlinc", "{file}", "-include-runtime", "-nowarn", "-d", "main.jar"),
        run=("java", *_JVM_RUN_FLAGS, "-jar", "main.jar"),
        package="apt:kotlin",
        aliases=("kt",),
        env=(("JAVA_OPTS", _JVM_COMPILER_OPTS),),  # scalac and kotlinc are JVM programs started by a script
        needs=("java",),
        **_JVM,
    ),
    "bash": Language(
        name="bash",
        file_name="main.sh",
        check=("bash", "-n", "{file}"),
        run=("bash", "{file}"),
        package="apt:bash",
        aliases=("sh", "shell"),
        memory_error_markers=("xmalloc: cannot allocate", "xrealloc: cannot allocate"),
    ),
    "haskell": Language(
        name="haskell",
        file_name="main.hs",
        check_builds=True,
        check=("ghc", "-O0", "-rtsopts", "-v0", "-outputdir", ".ghc", "-o", "main", "{file}", "+RTS", "-M1g",
               "-RTS"),
        run=("./main", "+RTS", "-M{heap_mb}m", "-RTS"),
        package="apt:ghc",
        aliases=("hs",),
        address_space_limit=False,
        memory_error_markers=("Heap exhausted", "heap overflow"),
        compile_limits=CompileLimits(processes=64, open_files=256),
        extra_processes=8,
        host_paths=("/var/lib/ghc/package.conf.d",),
    ),
    "ocaml": Language(
        name="ocaml",
        file_name="main.ml",
        check_builds=True,
        check=("ocamlc", "unix.cma", "-o", "main", "{file}"),  # with the Unix library (processes, sockets)
        run=("ocamlrun", "main"),
        package="apt:ocaml-nox",
        aliases=("ml",),
        memory_error_markers=("Out_of_memory", "Out of memory"),
    ),
    "racket": Language(
        name="racket",
        file_name="main.rkt",  # begins with `#lang racket` (or racket/base)
        check_builds=True,
        check=("raco", "make", "{file}"),
        run=("racket", "{file}"),
        package="apt:racket",
        aliases=("rkt",),
        memory_error_markers=("out of memory",),
        host_paths=("/etc/racket",),
    ),
})


def get_language(name: str) -> Language:
    """The language called `name` (or one of its aliases, case-insensitive); ValueError naming the known ones."""
    if isinstance(name, str) and name in LANGUAGES:
        return LANGUAGES[name]
    known = ", ".join(f"{lang.name} ({', '.join(lang.aliases)})" if lang.aliases else lang.name
                      for lang in LANGUAGES.values())
    raise ValueError(f"unknown sandbox language {name!r}; known languages: {known}")


def missing_executables(language: str | Language, path: str) -> list[str]:
    """The executables of `language` that are not on `path`."""
    lang = language if isinstance(language, Language) else get_language(language)
    return [name for name in lang.executables if shutil.which(name, path=path) is None]


def install_hint(language: str | Language) -> str:
    """How to install the toolchain of `language`, as a sentence."""
    lang = language if isinstance(language, Language) else get_language(language)
    manager, _, package = lang.package.partition(":")
    command = {"apt": f"apt-get install {package}", "npm": f"npm install -g {package}"}.get(manager, package)
    return f"install the package {package!r} ({command}; `make sandbox-languages` installs every toolchain)"
