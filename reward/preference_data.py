"""Preference rows for the reward model: the builders' pairs plus local JSONL files, optionally one criterion.

A local file holds one JSON object per line in TRL's standard preference format:

    {"prompt": [{"role": "user", "content": "..."}], "chosen": [{"role": "assistant", "content": "..."}],
     "rejected": [...], "category": "math", "criterion": "helpfulness"}        # conversational
    {"prompt": "2 + 2 =", "chosen": " 4", "rejected": " 5"}                     # plain text

`prompt`, `chosen` and `rejected` are required; `id`, `category` and `criterion` (one of the report's six,
reward.combine.CRITERIA, or null) are optional. In a conversational row a plain-string chosen/rejected is read
as one assistant message. Blank lines are skipped; any other malformed line stops the run with `FILE:LINE` and
what was wrong. When plain-text and conversational rows meet (a plain file beside the builders' conversational
pairs), the plain rows become conversations (prompt -> one user message, responses -> assistant messages): one
dataset has one format.
"""

import json
from pathlib import Path

from datasets import Dataset

from reward.combine import CRITERIA
from stagekit.config import ConfigError

PREFERENCE_COLUMNS = ["prompt", "chosen", "rejected"]  # what RewardTrainer reads


def _messages(value, role: str, where: str, key: str) -> list[dict] | str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: '{key}' must be a string or a non-empty list of messages, got {value!r:.80}")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ConfigError(f"{where}: '{key}'[{i}] must be an object with a string 'role'")
        if not isinstance(message.get("content"), str):
            raise ConfigError(f"{where}: '{key}'[{i}] must have a string 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def parse_preference_row(row: object, where: str) -> dict:
    """One JSON value -> {prompt, chosen, rejected, id, category, criterion}; ConfigError naming `where` if bad."""
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [key for key in PREFERENCE_COLUMNS if key not in row]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}; a preference row needs prompt, chosen, rejected")
    prompt = _messages(row["prompt"], "user", where, "prompt")
    chosen = _messages(row["chosen"], "assistant", where, "chosen")
    rejected = _messages(row["rejected"], "assistant", where, "rejected")
    if isinstance(prompt, list):
        chosen, rejected = (
            [{"role": "assistant", "content": x}] if isinstance(x, str) else x for x in (chosen, rejected)
        )
    elif not (isinstance(chosen, str) and isinstance(rejected, str)):
        raise ConfigError(f"{where}: a plain-text prompt needs plain-text chosen and rejected")
    criterion = row.get("criterion")
    if criterion is not None and criterion not in CRITERIA:
        raise ConfigError(f"{where}: criterion {criterion!r} is not one of {list(CRITERIA)} (or null)")
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "id": str(row.get("id", "")),
        "category": str(row.get("category") or "unlabelled"),
        "criterion": criterion,
    }


def read_preference_jsonl(path: str | Path) -> list[dict]:
    """Rows of one local preference file; ConfigError naming `path:line` for the first malformed line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"preference file {path} does not exist")
    rows = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from err
            row = parse_preference_row(value, where)
            row["id"] = row["id"] or f"{path.name}:{number}"
            rows.append(row)
    if not rows:
        raise ConfigError(f"{path}: no preference rows")
    return rows


def rows_from_dataset(dataset: Dataset, key: str) -> list[dict]:
    """Rows of a builders' dataset (save_to_disk) through the same checks as a file; errors name key and row."""
    rows = []
    for index, row in enumerate(dataset):
        parsed = parse_preference_row(row, f"{key}[{index}]")
        parsed["id"] = parsed["id"] or f"{key}[{index}]"
        rows.append(parsed)
    return rows


def as_conversation(row: dict) -> dict:
    """A plain-text row as a conversation (prompt -> user message, responses -> assistant messages)."""
    if isinstance(row["prompt"], list):
        return row
    return {
        **row,
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "chosen": [{"role": "assistant", "content": row["chosen"]}],
        "rejected": [{"role": "assistant", "content": row["rejected"]}],
    }


def select_criterion(rows: list[dict], criterion: str | None, source: str) -> list[dict]:
    """All rows (criterion None) or only those labelled `criterion`; ConfigError if that leaves none."""
    if criterion is None:
        return rows
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion: {criterion!r} is not one of {list(CRITERIA)}")
    kept = [row for row in rows if row["criterion"] == criterion]
    if not kept:
        labels = sorted({str(row["criterion"]) for row in rows})
        raise ConfigError(f"criterion: no {source} row is labelled {criterion!r} (labels present: {labels})")
    return kept


def unify_format(rows: list[dict]) -> list[dict]:
    """One format per dataset: if any row is conversational, every plain-text row becomes a conversation."""
    if any(isinstance(row["prompt"], list) for row in rows) and any(isinstance(row["prompt"], str) for row in rows):
        return [as_conversation(row) for row in rows]
    return rows


def to_dataset(rows: list[dict]) -> Dataset:
    """The trainer's view: prompt/chosen/rejected only."""
    return Dataset.from_list([{key: row[key] for key in PREFERENCE_COLUMNS} for row in rows])
