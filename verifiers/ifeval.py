"""IFEval's prompt files as instruction references, so IFEval prompts seed builders and are scored unchanged.

IFEval's `input_data.jsonl` holds one JSON object per line: `{"key": 1000, "prompt": "...",
"instruction_id_list": ["punctuation:no_comma", ...], "kwargs": [{}, ...]}`. Each becomes the reference
`{"type": "instruction", "key": ..., "prompt": ..., "instruction_id_list": [...], "kwargs": [...]}` that
`verify_instruction` reads as is. The file is not shipped with any installable package (NOTES.md), so it is read
from a local path.
"""

import json
from pathlib import Path

from verifiers.instruction import parse_instruction_reference

_FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")


def ifeval_reference(record: dict) -> dict:
    """The instruction reference of one IFEval record; raises ValueError naming what is wrong with it."""
    if not isinstance(record, dict):
        raise ValueError(f"IFEval record must be a JSON object, got {type(record).__name__}")
    missing = [name for name in _FIELDS if name not in record]
    if missing:
        raise ValueError(f"IFEval record lacks {missing}; expected keys {list(_FIELDS)}")
    if not isinstance(record["prompt"], str) or not record["prompt"].strip():
        raise ValueError("IFEval record 'prompt' must be a non-empty string")
    reference = {
        "type": "instruction",
        "key": record["key"],
        "prompt": record["prompt"],
        "instruction_id_list": record["instruction_id_list"],
        "kwargs": record["kwargs"],
    }
    parse_instruction_reference(reference)  # unknown ids, bad kwargs and length mismatches fail here, not later
    return reference


def load_ifeval_jsonl(path: str | Path) -> list[dict]:
    """Every record of an IFEval input file as a reference, in file order; blank lines are skipped.

    Raises ValueError naming the file and the line number of the first malformed line.
    """
    path = Path(path)
    references = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                references.append(ifeval_reference(json.loads(line)))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError too
                raise ValueError(f"{path}:{number}: {exc}") from exc
    return references
