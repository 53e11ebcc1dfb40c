"""`qwenpost sandbox run --language L FILE`: run one file in the sandbox and print the result as JSON.

Exit status 0 when the run happened, whatever its status (read `status` in the JSON); 2 for bad arguments (an
unknown language, a missing file, a non-positive limit) with a message on stderr. Also `python -m sandbox
run --language L FILE`; the leading `run` is optional.
"""

import argparse
import json
import sys
from pathlib import Path

from sandbox.languages import LANGUAGES, get_language
from sandbox.runner import SandboxError, SandboxLimits, run

_SUFFIXES = {".py": "python", ".js": "javascript", ".mjs": "javascript", ".cpp": "cpp", ".cc": "cpp", ".cxx": "cpp",
             ".ts": "typescript", ".c": "c", ".java": "java", ".cs": "csharp", ".go": "go", ".rs": "rust",
             ".php": "php", ".rb": "ruby", ".pl": "perl", ".lua": "lua", ".r": "r", ".scala": "scala", ".kt": "kotlin",
             ".sh": "bash", ".hs": "haskell", ".ml": "ocaml", ".rkt": "racket"}


def _parser() -> argparse.ArgumentParser:
    defaults = SandboxLimits()
    parser = argparse.ArgumentParser(
        prog="qwenpost sandbox run", description="Run a program in the sandbox and print the result as JSON.")
    parser.add_argument("file", type=Path, help="source file to run")
    parser.add_argument("--language", "-l", help=f"one of {', '.join(LANGUAGES)} or an alias "
                        "(default: from the file suffix)")
    parser.add_argument("--stdin", type=Path, dest="stdin_file", help="file whose contents are the program's stdin")
    parser.add_argument("--cpu-seconds", type=float, default=defaults.cpu_seconds)
    parser.add_argument("--wall-seconds", type=float, default=defaults.wall_seconds)
    parser.add_argument("--memory-mb", type=int, default=defaults.memory_mb)
    parser.add_argument("--processes", type=int, default=defaults.processes)
    parser.add_argument("--output-bytes", type=int, default=defaults.output_bytes)
    parser.add_argument("--indent", type=int, default=2, help="JSON indent (0: one line)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the file, print the result; see the module docstring for exit statuses."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        argv = argv[1:]
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the message; --help exits 0
        return 0 if exc.code == 0 else 2

    def fail(message: str) -> int:
        print(f"qwenpost sandbox run: error: {message}", file=sys.stderr)
        return 2

    language = args.language or _SUFFIXES.get(args.file.suffix.lower())
    if language is None:
        return fail(f"cannot tell the language of {str(args.file)!r} from its suffix; pass --language")
    try:
        get_language(language)
        limits = SandboxLimits(cpu_seconds=args.cpu_seconds, wall_seconds=args.wall_seconds,
                               memory_mb=args.memory_mb, processes=args.processes, output_bytes=args.output_bytes)
    except ValueError as exc:
        return fail(str(exc))
    try:
        source = args.file.read_text(encoding="utf-8")
        stdin = args.stdin_file.read_text(encoding="utf-8") if args.stdin_file else ""
    except FileNotFoundError as exc:
        return fail(f"no such file: {exc.filename}")
    except (OSError, UnicodeDecodeError) as exc:
        return fail(f"cannot read {exc.filename if isinstance(exc, OSError) else args.file}: {exc}")
    try:
        result = run(source, language, stdin=stdin, limits=limits)
    except SandboxError as exc:
        print(f"qwenpost sandbox run: the sandbox could not run the program: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict(), indent=args.indent or None))
    return 0
