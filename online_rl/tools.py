"""Multi-turn tool use in GRPO episodes: the policy writes `<tool_call>` blocks (Qwen2.5's Hermes format), the calls
run in the sandbox, their results come back as `tool` turns, and the policy goes on, for at most
`max_tool_calling_iterations` rounds and `max_completion_length` tokens in all.

Why not TRL's `tools` loop: TRL 1.16 runs tool callables in the trainer process (ours must never run on the host),
and its parser (`parse_response`) turns a malformed `<tool_call>` block into plain text, so the policy is never told
its call was broken. Here the calls are read by the verifier's parser (verifiers/tool_call.py: bounded sizes and
nesting, a named reason for each malformed block), checked against the tools' JSON Schemas, and run with the
tools' reference implementation by `verifiers.tool_call.execute_calls` in the sandbox (time, memory and output
capped). Every outcome is a `tool` message: the result, or `error: ...` saying what was wrong (malformed JSON,
unknown tool, schema violation, the tool raised, timed out or printed past the cap), cut to `tool_result_max_chars`
characters. What we take from TRL: the episode layout its trainer trains on (the tool-result tokens are appended to
the completion and masked out of the loss by `env_mask`, log-prob 0) and its suffix rendering of tool turns.

The toolbox (`tools_file`, JSON): {"tools": [OpenAI-style function specs], "implementation": "Python source defining
every tool"}, the same two keys as a `tool_call` verifier reference; the data builders' tool_calling area writes
one. The tool specs are in the prompts' system turn (as the builders write them), so nothing is rendered twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from stagekit.config import ConfigError
from verifiers import verify
from verifiers.tool_call import CLOSE, OPEN, execute_calls, parse_tool_calls, parse_tool_reference, schema_errors

TOOL_WORKERS = 4  # tool turns of a batch answered at once (sandbox processes)
SampleFn = Callable[[list[list[int]], int, int], tuple[list[list[int]], list[list[float]]]]


@dataclass(frozen=True)
class Toolbox:
    tools: dict  # name -> parameters schema
    implementation: str
    timeout_s: float
    max_result_chars: int

    @classmethod
    def load(cls, path: str | Path, *, timeout_s: float, max_result_chars: int) -> Toolbox:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"tools_file: cannot read {path} as JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"tools_file {path}: expected an object with 'tools' and 'implementation'")
        try:
            ref = parse_tool_reference({"tools": data.get("tools"), "implementation": data.get("implementation"),
                                        "answer": "-", "timeout_s": timeout_s})  # fmt: skip
        except ValueError as exc:
            raise ConfigError(f"tools_file {path}: {exc}") from None
        return cls(ref.tools, ref.implementation, ref.timeout_s, max_result_chars)

    def cut(self, text: str) -> str:
        if len(text) <= self.max_result_chars:
            return text
        return text[: self.max_result_chars] + f" ... [cut: {len(text) - self.max_result_chars} more characters]"

    def respond(self, turn: str) -> list[dict] | None:
        """The tool messages answering one assistant turn, or None if the turn calls no tool (a final answer)."""
        if OPEN not in turn and CLOSE not in turn:
            return None
        parsed = parse_tool_calls(turn)
        if parsed.failure is not None:
            return [{"role": "tool", "name": "error", "content": self.cut(f"error: {parsed.failure}")}]
        messages = []
        for call in parsed.calls:
            problem = schema_errors([call], self.tools)
            if problem is not None:
                content = f"error: {problem[0]}"
            else:
                try:
                    value = execute_calls(self.implementation, [call], timeout_s=self.timeout_s)[0]
                    content = value if isinstance(value, str) else json.dumps(value)
                except RuntimeError as exc:  # raised, timed out, out of memory, output past the sandbox cap
                    content = f"error: {exc}"
            messages.append({"role": "tool", "name": call["name"][:64], "content": self.cut(content)})
        return messages


def tool_suffix_ids(tokenizer, messages: Sequence[dict]) -> list[int]:
    """The tokens the chat template puts after an assistant turn's EOS for these tool messages, up to and including
    the next assistant header (TRL's `_get_tool_suffix_ids`, on text)."""
    call = [{"type": "function", "function": {"name": messages[0]["name"], "arguments": {}}}]
    dummy = [{"role": "user", "content": "dummy"}, {"role": "assistant", "content": "", "tool_calls": call}]
    prefix = tokenizer.apply_chat_template(dummy, tokenize=False)
    full = tokenizer.apply_chat_template(dummy + list(messages), add_generation_prompt=True, tokenize=False)
    prefix = prefix[: prefix.rindex(tokenizer.eos_token) + len(tokenizer.eos_token)]
    if not full.startswith(prefix):
        raise ValueError("the chat template does not extend an assistant turn with tool messages as a suffix")
    return tokenizer(full[len(prefix) :], add_special_tokens=False)["input_ids"]


@dataclass
class Episode:
    completion_ids: list[int]
    logprobs: list[float]
    env_mask: list[int]  # 1: the policy's token (trained), 0: a tool-result token (masked out of the loss)
    final_turn: str  # the last assistant turn: what the reward service scores
    tool_calls: int = 0
    tool_errors: int = 0


def run_episodes(
    sample: SampleFn, tokenizer, toolbox: Toolbox, prompt_ids: list[list[int]], *, max_new_tokens: int,
    max_iterations: int, seed: int,
) -> list[Episode]:
    """Sample, answer tool calls, sample again, ... `sample(prompt_ids, max_new_tokens, seed)` returns completions
    (cut after EOS) and their per-token log-probs. Episodes stop at a turn without a tool call, after
    `max_iterations` tool rounds, or when the next tool turn would not fit in `max_new_tokens` tokens."""
    completions, logprobs = sample(prompt_ids, max_new_tokens, seed)
    episodes = [Episode(list(c), list(lp), [1] * len(c), "") for c, lp in zip(completions, logprobs, strict=True)]
    turns = [tokenizer.decode(c, skip_special_tokens=False) for c in completions]
    active = list(range(len(episodes)))
    for iteration in range(max_iterations + 1):
        next_active, contexts = [], []
        for i in active:
            episodes[i].final_turn = turns[i].replace(tokenizer.eos_token, "").replace(tokenizer.pad_token or "\0", "")
        if iteration == max_iterations:
            break
        with ThreadPoolExecutor(max_workers=TOOL_WORKERS) as pool:  # each call is a sandbox process
            answers = list(pool.map(toolbox.respond, [episodes[i].final_turn for i in active]))
        for i, messages in zip(active, answers, strict=True):
            episode = episodes[i]
            if messages is None:
                continue
            episode.tool_calls += len(messages)
            episode.tool_errors += sum(m["content"].startswith("error:") for m in messages)
            suffix = tool_suffix_ids(tokenizer, messages)
            if len(episode.completion_ids) + len(suffix) >= max_new_tokens:
                continue  # no room for the results and an answer: the episode ends on its call
            episode.completion_ids += suffix
            episode.logprobs += [0.0] * len(suffix)
            episode.env_mask += [0] * len(suffix)
            next_active.append(i)
            contexts.append(prompt_ids[i] + episode.completion_ids)
        if not next_active:
            break
        budget = max(max_new_tokens - len(episodes[i].completion_ids) for i in next_active)
        more, more_logprobs = sample(contexts, budget, seed + 7_919 * (iteration + 1))
        for i, ids, lps in zip(next_active, more, more_logprobs, strict=True):
            room = max_new_tokens - len(episodes[i].completion_ids)
            ids, lps = ids[:room], lps[:room]
            episodes[i].completion_ids += ids
            episodes[i].logprobs += lps
            episodes[i].env_mask += [1] * len(ids)
            turns[i] = tokenizer.decode(ids, skip_special_tokens=False)
        active = next_active
    return episodes


def evaluate_episodes(
    sample: SampleFn, tokenizer, toolbox: Toolbox, rows: Sequence[dict], *, max_new_tokens: int,
    max_iterations: int, batch_size: int = 32,
) -> dict:
    """Tool episodes on held-out rows ({"prompt": messages, "reference": verifier reference}) with `sample` (greedy
    for evaluation): how many episodes call a tool, the share of calls that ran without an error (tool-call
    validity), and the accuracy of the final turn under the row's verifier (verifiers.verify)."""
    episodes: list[Episode] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        texts = [tokenizer.apply_chat_template(list(r["prompt"]), add_generation_prompt=True, tokenize=False)
                 for r in chunk]  # fmt: skip
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        episodes += run_episodes(sample, tokenizer, toolbox, ids, max_new_tokens=max_new_tokens,
                                 max_iterations=max_iterations, seed=start)  # fmt: skip
    calls = sum(e.tool_calls for e in episodes)
    passed = [verify(e.final_turn, r["reference"]).passed for e, r in zip(episodes, rows, strict=True)]
    return {
        "episodes": len(episodes),
        "called_frac": sum(e.tool_calls > 0 for e in episodes) / len(episodes),
        "tool_calls": calls,
        "tool_call_validity": (calls - sum(e.tool_errors for e in episodes)) / calls if calls else 0.0,
        "accuracy": sum(passed) / len(passed),
        "examples": [{"final_turn": e.final_turn[:200], "tool_calls": e.tool_calls, "tool_errors": e.tool_errors,
                      "passed": p} for e, p in list(zip(episodes, passed, strict=True))[:4]],  # fmt: skip
    }
