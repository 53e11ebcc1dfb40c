"""Build `math_verify_cases.jsonl`: math-verify's published test cases that fit our reference format.

    git clone https://github.com/huggingface/Math-Verify /tmp/Math-Verify
    python tests/verifiers/data/build_math_verify_cases.py --git_dir /tmp/Math-Verify/.git

Every `@pytest.mark.parametrize` case of the files in `FILES` is read with `ast` at `COMMIT` (nothing is imported
or run) and kept when it fits how this project verifies math: one reference answer and one response.

- The test compares with the knobs we use (`float_rounding=6`, `strict=True`, `allow_set_relation_comp=False`).
  Which extractors the test enables (latex, expr) is not a knob here: our own extraction finds the answer.
- The gold is one answer: a bare answer (outer `$`, `$$`, `\\(`, `\\[` removed; no further math delimiters, no
  box, no sentence, at most 200 characters, our `MAX_ANSWER_CHARS`), or a text whose boxes all hold the same
  answer (a solution ending in `\\boxed{X}`), which becomes the reference `X`.
- The prediction is a bare answer (by the same rule; compared with `answers_match`) or a response that states its
  final answer in a box or as "... answer is ..." (judged by `verify_math`). A response that states no final
  answer fails our format check whatever its numbers, by design, so it is left out.

Each row keeps the case's id (`<file>::<test>[<index>]`), line, the original gold and prediction, the reference
and bare prediction derived from them, and math-verify's expected verdict. The first line is a header naming the
source. Self-contained on purpose: the selection must not move when `verifiers/math.py` changes.
"""

import argparse
import ast
import json
import re
import subprocess
from collections import Counter
from pathlib import Path

REPOSITORY = "https://github.com/huggingface/Math-Verify"
COMMIT = "5d148cfaaf99214c2e4ffb4bc497ab042c592a7a"  # main on 2025-07-02, pyproject version 0.8.0
FILES = ("tests/test_all.py", "tests/test_numina_cases.py", "tests/test_open_thoughts.py", "tests/test_boxed.py",
         "tests/test_strict.py", "tests/test_yujianll.py")  # the other test files hold no (gold, pred) cases
LICENSE = "Apache-2.0 (the repository's LICENCE; tests/test_all.py also carries an MIT header)"
MAX_ANSWER_CHARS = 200  # verifiers.math.MAX_ANSWER_CHARS
OUT = Path(__file__).with_name("math_verify_cases.jsonl")

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_TEXT = re.compile(r"\\(?:text|textbf|textnormal|mbox|mathrm)\{[^{}]*\}")
_SENTENCE = re.compile(r"(?<![\\\w])[A-Za-z']{2,}\s+[A-Za-z']{2,}\s+[A-Za-z']{2,}")  # three words in a row
_STATED = re.compile(r"answer\s+is", re.IGNORECASE)


def _strip_math(text: str) -> str:
    text = text.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            return text[len(left) : len(text) - len(right)].strip()
    return text


def bare_answer(text: str) -> str | None:
    """`text` as one bare answer, or None when it is a sentence, holds a box or more math, or is too long."""
    answer = _strip_math(text)
    lone_currency = answer.count("$") == 1 and (answer.startswith("$") or answer.endswith("$"))
    if ("$" in answer and not lone_currency) or "\\(" in answer or "\\[" in answer or "\n" in answer:
        return None
    if not answer or len(answer) > MAX_ANSWER_CHARS or _BOX.search(answer) or _SENTENCE.search(_TEXT.sub("", answer)):
        return None
    return answer


def box_contents(text: str) -> list[str | None]:
    """The content of every box in `text`, None for one that never closes."""
    contents = []
    for match in _BOX.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        contents.append(text[match.end() : i - 1].strip() if depth == 0 else None)
    return contents


def reference_of(gold: str) -> str | None:
    answer = bare_answer(gold)
    if answer is not None:
        return answer
    contents = set(box_contents(gold))
    if len(contents) == 1 and None not in contents:
        answer = contents.pop()
        return answer if answer and len(answer) <= MAX_ANSWER_CHARS else None
    return None


def read_cases(git_dir: str, commit: str):
    """(id, file, line, test body's last line, {argument: value}) for every parametrized case."""
    for path in FILES:
        source = subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], capture_output=True,
                                text=True, check=True).stdout
        for function in ast.parse(source).body:
            if not isinstance(function, ast.FunctionDef):
                continue
            call = ast.unparse(function.body[-1])
            for decorator in function.decorator_list:
                if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "parametrize"):
                    continue
                names = [name.strip() for name in ast.literal_eval(decorator.args[0]).split(",")]
                for index, element in enumerate(decorator.args[1].elts):
                    case_id = f"{Path(path).name}::{function.name}[{index}]"
                    try:
                        values = dict(zip(names, ast.literal_eval(element), strict=True))
                    except ValueError:  # an f-string computed at import time
                        values = None
                    yield case_id, path, element.lineno, call, values


def select(case_id: str, call: str, values: dict | None) -> tuple[dict | None, str | None]:
    """(row, None) for a case that fits, else (None, why it does not)."""
    if values is None:
        return None, "not a literal case"
    if values.get("precision", 6) != 6 or re.search(r"precision=[0-57-9]", call):
        return None, "float_rounding other than 6"
    if values.get("strict", True) is not True:
        return None, "strict=False"
    if values.get("allow_set_relation_comp", False):
        return None, "allow_set_relation_comp=True"
    gold, pred = values["gold"], values["pred"]
    reference = reference_of(gold)
    if reference is None:
        return None, "gold is not one answer"
    prediction = bare_answer(pred)
    if prediction is not None:
        kind = "answer"
    elif _BOX.search(pred) or _STATED.search(pred):
        kind, prediction = "response", pred
    else:
        return None, "response states no final answer"
    expected = values["expected"] if "expected" in values else values["result"]
    return {"id": case_id, "kind": kind, "reference": reference, "prediction": prediction,
            "expected": bool(expected), "gold": gold, "pred": pred}, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git_dir", required=True, help="a clone's .git directory holding COMMIT")
    parser.add_argument("--commit", default=COMMIT)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows, left_out = [], Counter()
    for case_id, path, line, call, values in read_cases(args.git_dir, args.commit):
        row, why = select(case_id, call, values)
        if row is None:
            left_out[why] += 1
        else:
            rows.append({**row, "file": path, "line": line})
    header = {"source": REPOSITORY, "commit": args.commit, "files": list(FILES), "license": LICENSE,
              "built_by": "tests/verifiers/data/build_math_verify_cases.py", "cases": len(rows),
              "left_out": dict(sorted(left_out.items()))}
    with args.out.open("w") as out:
        out.write(json.dumps({"header": header}) + "\n")
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} cases -> {args.out}; left out: {dict(left_out)}")


if __name__ == "__main__":
    main()
