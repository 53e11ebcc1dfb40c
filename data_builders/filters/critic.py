"""The critic of response filtering (report area 9): a judge beside the rule-based verifiers, either the reward
service (`reward.client.RewardClient`, accepting a response whose combined `reward` reaches `threshold`; items are sent
without a reference, so the score is the reward models' judgement, the verifiers having already passed the row) or the
configured generator asked to judge (accepting a reply whose last `VERDICT:` line says ACCEPT).

Each critic maps SFT rows to (accepted, reason) pairs, in order.
"""

import re

from data_builders.generators import Generator, Query
from data_builders.records import user_message
from reward.client import RewardClient

JUDGE_PROMPT = (
    "You are a strict reviewer of assistant responses. Read the conversation and the final response. If the "
    "response is correct, complete, follows every instruction (including any system prompt) and has no flaw, end "
    "your review with the line 'VERDICT: ACCEPT'; otherwise end it with 'VERDICT: REJECT'.\n\n"
    "Conversation:\n{conversation}\n\nFinal response:\n{response}"
)
_VERDICT = re.compile(r"VERDICT:\s*(ACCEPT|REJECT)", re.IGNORECASE)


def _conversation(row: dict) -> str:
    return "\n".join(f"[{m['role']}] {m['content']}" for m in row["messages"][:-1])


class RewardCritic:
    """Scores with the reward service; `reward` >= threshold accepts."""

    def __init__(self, url: str | list[str], threshold: float, timeout_s: float = 60.0, client=None) -> None:
        self.client = client if client is not None else RewardClient(url, timeout=timeout_s)
        self.threshold = threshold

    def judge(self, rows: list[dict]) -> list[tuple[bool, str]]:
        items = [{"prompt": row["messages"][:-1], "response": row["messages"][-1]["content"], "reference": None}
                 for row in rows]
        out = []
        for result in self.client.score(items):  # the client has checked that each result has a numeric reward
            reward = result["reward"]
            out.append((reward >= self.threshold, f"reward {reward:.3f} below {self.threshold}"))
        return out


class GeneratorCritic:
    """The generator as judge: one review per row; no VERDICT line counts as a rejection."""

    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    def judge(self, rows: list[dict]) -> list[tuple[bool, str]]:
        queries = [Query("critic", (user_message(JUDGE_PROMPT.format(conversation=_conversation(row),
                                                                      response=row["messages"][-1]["content"])),),
                         {}, f"critic:{row['id']}") for row in rows]
        out = []
        for samples in self.generator.generate(queries, 1):
            verdicts = _VERDICT.findall(samples[0].text) if samples else []
            if not verdicts:
                out.append((False, "critic gave no verdict"))
            else:
                out.append((verdicts[-1].upper() == "ACCEPT", "critic rejected the response"))
        return out
