"""The execution sandbox: everything that runs model-written code goes through `run` or `run_many`.

    from sandbox import run, SandboxLimits
    result = run("print(1 + 1)", "python", limits=SandboxLimits(wall_seconds=2))
    result.status, result.stdout   # ("passed", "2\\n")

See `runner.py` (statuses, output capture), `isolation.py` (what confines a run and how it degrades) and
`languages.py` (the language table; adding a language is one entry).
"""

from sandbox.languages import LANGUAGES, Language, get_language
from sandbox.runner import (
    STATUSES,
    SandboxError,
    SandboxJob,
    SandboxLimits,
    SandboxResult,
    run,
    run_many,
)

__all__ = [
    "LANGUAGES",
    "STATUSES",
    "Language",
    "SandboxError",
    "SandboxJob",
    "SandboxLimits",
    "SandboxResult",
    "get_language",
    "run",
    "run_many",
]
