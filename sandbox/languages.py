"""The sandbox's language table: how to compile and run one source file in each language.

Adding a language is one `Language` entry in `LANGUAGES`: the file name the source is written to, an optional
compile command and the run command. Commands are argument lists (never shell strings) with four placeholders:
`{file}` (the source file name), `{memory_mb}` (the job's memory limit), `{python}` (a Python interpreter the
unprivileged sandbox user can execute) and `{python_bootstrap}` (see `python_bootstrap`). Executables are looked
up on the sandbox's PATH when a job runs.

Per-language memory choices (the memory cgroup of the run, where there is one, bounds every language):
- python: RLIMIT_AS as well, so an oversized allocation raises MemoryError instead of being OOM-killed. Run with
  `-I -S` (isolated mode, no site: no user or system site-packages, nothing from the environment, no `.pth`
  files) through a small bootstrap that puts the working directory on `sys.path` (so `extra_files` modules import)
  and restores `exit()`/`quit()`, which `-S` drops and model-written code often calls.
- javascript: no RLIMIT_AS (V8 reserves large virtual ranges up front and dies under it); the heap is capped with
  `--max-old-space-size` so a runaway allocation ends as "JavaScript heap out of memory".
- cpp: RLIMIT_AS on the program (`new` then throws std::bad_alloc); the compiler runs under the looser
  `compile_limits` and without RLIMIT_AS, because cc1plus's peak is large and is not the program's fault.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CompileLimits:
    """Limits for a compile step; independent of the job's limits, which are sized for the program it builds."""

    cpu_seconds: float = 30.0
    wall_seconds: float = 60.0
    memory_mb: int = 2048
    processes: int = 16


@dataclass(frozen=True)
class Language:
    """How to build and run one program in one language."""

    name: str  # canonical name, the key in LANGUAGES
    file_name: str  # the source is written to this file in the empty working directory
    run: tuple[str, ...]  # run command; placeholders {file}, {memory_mb}, {python}
    compile: tuple[str, ...] | None = None  # compile command, run first; a non-zero exit is a compile_error
    aliases: tuple[str, ...] = ()  # other names accepted by `get_language`
    address_space_limit: bool = True  # apply RLIMIT_AS = memory limit to the run (False where it breaks the runtime)
    memory_error_markers: tuple[str, ...] = ()  # stderr text that means the program ran out of memory
    compile_limits: CompileLimits = field(default_factory=CompileLimits)
    socket_guard: bool = False  # the run command blocks sockets in-process when there is no network namespace


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
    "_c=compile(open(sys.argv[0],'rb').read(),sys.argv[0],'exec')\n"
    "del sys,builtins,_m\n"
    "exec(_c)\n"
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


def python_bootstrap(block_sockets: bool) -> str:
    """The `-c` program that runs main.py; with the socket guard first when `block_sockets`."""
    return (_PYTHON_SOCKET_GUARD if block_sockets else "") + _PYTHON_BOOTSTRAP


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
        aliases=("py", "python3"),
        socket_guard=True,
        memory_error_markers=("MemoryError",),
    ),
    "javascript": Language(
        name="javascript",
        file_name="main.js",
        run=("node", "--max-old-space-size={memory_mb}", "{file}"),
        aliases=("js", "node"),
        address_space_limit=False,
        memory_error_markers=(
            "JavaScript heap out of memory",
            "Array buffer allocation failed",
        ),
    ),
    "cpp": Language(
        name="cpp",
        file_name="main.cpp",
        compile=("g++", "-std=c++17", "-O2", "-pipe", "-o", "main", "{file}"),
        run=("./main",),
        aliases=("c++", "cxx"),
        memory_error_markers=("std::bad_alloc",),
    ),
})


def get_language(name: str) -> Language:
    """The language called `name` (or one of its aliases, case-insensitive); ValueError naming the known ones."""
    if isinstance(name, str) and name in LANGUAGES:
        return LANGUAGES[name]
    known = ", ".join(f"{lang.name} ({', '.join(lang.aliases)})" if lang.aliases else lang.name
                      for lang in LANGUAGES.values())
    raise ValueError(f"unknown sandbox language {name!r}; known languages: {known}")
