"""`qwenpost verify`: run the rule-based verifier named by a reference file on a response file, print JSON.

    qwenpost verify --reference REF.json --response RESPONSE.txt

REF.json holds one reference object (`{"type": "math", "answer": "12"}`, an instruction reference, ...); an IFEval
record without a `type` is read as an instruction reference. `--response -` reads the response from stdin.
Prints `{"verifier", "passed", "score", "format_ok", "details"}` and exits 0 whenever the verifier ran, whatever
its verdict; exits 2, with a message naming the file, for a missing file, invalid JSON or a reference no verifier
accepts.
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from verifiers import verify


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qwenpost verify", description="Check a response against a reference with the rule-based verifiers."
    )
    parser.add_argument("--reference", required=True, help="JSON file holding one reference object")
    parser.add_argument("--response", required=True, help="text file holding the response ('-' for stdin)")
    return parser


def _fail(message: str) -> int:
    print(f"qwenpost verify: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, verify, print the verdict as JSON; 0 if the verifier ran, 2 for bad input."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors; report its code instead
        return int(exc.code or 0)

    try:
        reference_text = Path(args.reference).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read reference file {args.reference}: {exc}")
    try:
        reference = json.loads(reference_text)
    except json.JSONDecodeError as exc:
        return _fail(f"reference file {args.reference} is not valid JSON: {exc}")
    if isinstance(reference, dict) and "type" not in reference and "instruction_id_list" in reference:
        reference = {"type": "instruction", **reference}

    if args.response == "-":
        response = sys.stdin.read()
    else:
        try:
            response = Path(args.response).read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return _fail(f"cannot read response file {args.response}: {exc}")

    try:
        result = verify(response, reference)
    except ValueError as exc:
        return _fail(f"bad reference in {args.reference}: {exc}")
    print(json.dumps(asdict(result), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
