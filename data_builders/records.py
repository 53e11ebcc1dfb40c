"""The three record schemas of the data builders, as constructors that validate what they build.

Conversations are TRL's conversational format: a list of `{"role", "content"}` messages.

- SFT row: `id, category, messages, source, verification{verifier, passed, details}`
- Preference row (DPOTrainer, RewardTrainer): `id, category, prompt, chosen, rejected, reason`, where `prompt` ends
  with the user turn and `chosen` / `rejected` are one-message lists `[{"role": "assistant", "content": ...}]`
- RL query row (GRPOTrainer): `id, category, prompt, reference, reward_variance`

`reference` and `verification.details` are stored as JSON strings: Arrow needs one type per column, and these
dicts differ from verifier to verifier. `reward_variance` is None until measured. `id` is a content hash of the
category and the prompt, so a rebuild gives the same ids.
"""

import hashlib
import json

from verifiers import VERIFIERS, VerifierResult, parse_reference

SFT_FIELDS = ("id", "category", "messages", "source", "verification")
PREFERENCE_FIELDS = ("id", "category", "prompt", "chosen", "rejected", "reason")
RL_QUERY_FIELDS = ("id", "category", "prompt", "reference", "reward_variance")
VERIFICATION_FIELDS = ("verifier", "passed", "details")
ROLES = ("system", "user", "assistant", "tool")


def to_json(value: dict) -> str:
    """Canonical JSON text (sorted keys, no ASCII escaping) so equal dicts give equal bytes."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def user_message(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant_message(content: str) -> dict:
    return {"role": "assistant", "content": content}


def prompt_text(messages: list[dict]) -> str:
    """The text a prompt is identified by: every non-assistant turn, in order."""
    return "\n".join(m["content"] for m in messages if m["role"] != "assistant")


def record_id(category: str, messages: list[dict]) -> str:
    """Stable id: the first 16 hex digits of sha1(category, prompt text)."""
    return hashlib.sha1(f"{category}\n{prompt_text(messages)}".encode()).hexdigest()[:16]


def sft_record(category: str, messages: list[dict], source: str, verification: VerifierResult) -> dict:
    """An SFT row; `messages` ends with the verified assistant turn."""
    row = {
        "id": record_id(category, messages),
        "category": category,
        "messages": [dict(m) for m in messages],
        "source": source,
        "verification": {
            "verifier": verification.verifier,
            "passed": verification.passed,
            "details": to_json(verification.details),
        },
    }
    validate_sft_record(row)
    return row


def preference_record(category: str, prompt: list[dict], chosen: str, rejected: str, reason: str) -> dict:
    """A preference row pairing the `chosen` assistant reply against the `rejected` one, with why it was rejected."""
    row = {
        "id": record_id(category, prompt),
        "category": category,
        "prompt": [dict(m) for m in prompt],
        "chosen": [assistant_message(chosen)],
        "rejected": [assistant_message(rejected)],
        "reason": reason,
    }
    validate_preference_record(row)
    return row


def rl_query_record(category: str, prompt: list[dict], reference: dict, reward_variance: float | None = None) -> dict:
    """An RL query row; `reference` is the verifier spec (e.g. `{"type": "math", "answer": "12"}`)."""
    row = {
        "id": record_id(category, prompt),
        "category": category,
        "prompt": [dict(m) for m in prompt],
        "reference": to_json(reference),
        "reward_variance": reward_variance,
    }
    validate_rl_query_record(row)
    return row


def _check_fields(row: dict, fields: tuple[str, ...], kind: str) -> None:
    if not isinstance(row, dict):
        raise ValueError(f"{kind} row must be a dict, got {type(row).__name__}")
    if set(row) != set(fields):
        missing, extra = sorted(set(fields) - set(row)), sorted(set(row) - set(fields))
        raise ValueError(f"{kind} row must have exactly the fields {list(fields)}; missing {missing}, extra {extra}")
    for key in ("id", "category"):
        if not isinstance(row[key], str) or not row[key]:
            raise ValueError(f"{kind} row field {key!r} must be a non-empty string, got {row[key]!r}")


def _check_messages(messages: object, where: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where} must be a non-empty list of messages, got {messages!r:.80}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise ValueError(f"{where}[{i}] must be a dict with exactly 'role' and 'content', got {message!r:.80}")
        if message["role"] not in ROLES:
            raise ValueError(f"{where}[{i}] has role {message['role']!r}; expected one of {list(ROLES)}")
        if not isinstance(message["content"], str):
            raise ValueError(f"{where}[{i}] content must be a string")


def _check_prompt(prompt: object, where: str) -> None:
    _check_messages(prompt, where)
    if prompt[-1]["role"] not in ("user", "tool"):  # "tool": results of the model's calls, the model answers next
        raise ValueError(f"{where} must end with the user turn (or tool results), ends with {prompt[-1]['role']!r}")


def _check_json_object(text: object, where: str) -> dict:
    """A stored JSON-object column (`reference`, `verification.details`): text that `parse_reference` reads."""
    if not isinstance(text, str):
        raise ValueError(f"{where} must be a JSON string, got {type(text).__name__}")
    return parse_reference(text, where)


def validate_sft_record(row: dict) -> None:
    """Raise ValueError naming the field if `row` is not a well-formed SFT row."""
    _check_fields(row, SFT_FIELDS, "SFT")
    _check_messages(row["messages"], "messages")
    roles = [m["role"] for m in row["messages"]]
    if roles[-1] != "assistant" or "user" not in roles:
        raise ValueError(f"messages must contain a user turn and end with the assistant turn, got roles {roles}")
    if not isinstance(row["source"], str) or not row["source"]:
        raise ValueError("SFT row field 'source' must be a non-empty string")
    verification = row["verification"]
    if not isinstance(verification, dict) or set(verification) != set(VERIFICATION_FIELDS):
        raise ValueError(f"verification must have fields {list(VERIFICATION_FIELDS)}, got {verification!r:.80}")
    if verification["verifier"] not in VERIFIERS:
        raise ValueError(f"verification.verifier {verification['verifier']!r} is not one of {sorted(VERIFIERS)}")
    if verification["passed"] is not True:
        raise ValueError("verification.passed must be True: SFT keeps only verified responses")
    _check_json_object(verification["details"], "verification.details")


def validate_preference_record(row: dict) -> None:
    """Raise ValueError naming the field if `row` is not a well-formed preference row."""
    _check_fields(row, PREFERENCE_FIELDS, "preference")
    _check_prompt(row["prompt"], "prompt")
    for key in ("chosen", "rejected"):
        reply = row[key]
        _check_messages(reply, key)
        if len(reply) != 1 or reply[0]["role"] != "assistant":
            raise ValueError(f"{key} must be a one-message list with the assistant reply, got {reply!r:.80}")
    if row["chosen"][0]["content"] == row["rejected"][0]["content"]:
        raise ValueError("chosen and rejected are the same reply")
    if not isinstance(row["reason"], str) or not row["reason"]:
        raise ValueError("preference row field 'reason' must be a non-empty string")


def validate_rl_query_record(row: dict) -> None:
    """Raise ValueError naming the field if `row` is not a well-formed RL query row."""
    _check_fields(row, RL_QUERY_FIELDS, "RL query")
    _check_prompt(row["prompt"], "prompt")
    reference = _check_json_object(row["reference"], "reference")
    if reference.get("type") not in VERIFIERS:
        raise ValueError(f"reference type {reference.get('type')!r} is not one of {sorted(VERIFIERS)}")
    variance = row["reward_variance"]
    if variance is not None and (isinstance(variance, bool) or not isinstance(variance, int | float)):
        raise ValueError(f"reward_variance must be a float or None, got {variance!r}")
