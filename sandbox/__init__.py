"""The execution sandbox: everything that runs model-written code goes through `run` or `run_many`.

    from sandbox import run, SandboxLimits
    result = run("print(1 + 1)", "python", limits=SandboxLimits(wall_seconds=2))
    result.status, result.stdout   # ("passed", "2\\n")

See `runner.py` (statuses, output capture), `isolation.py` (what confines a run and how it degrades) and
`languages.py` (the language table: 20 languages, each with its static check, toolchain package and limits; adding
a language is one entry). `unavailable(language)` says why a language cannot run here (its toolchain's package).
"""

from sandbox.languages import LANGUAGES, Language, get_language
from sandbox.runner import (
    STATUSES,
    LanguageUnavailable,
    SandboxError,
    SandboxJob,
    SandboxLimits,
    SandboxResult,
    available,
    run,
    run_many,
    unavailable,
)

__all__ = [
    "LANGUAGES",
    "STATUSES",
    "Language",
    "LanguageUnavailable",
    "SandboxError",
    "SandboxJob",
    "SandboxLimits",
    "SandboxResult",
    "available",
    "get_language",
    "run",
    "run_many",
    "unavailable",
]
