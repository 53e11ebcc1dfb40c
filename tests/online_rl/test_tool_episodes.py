"""Multi-turn tool use in GRPO episodes (online_rl/tools.py): a scripted policy's call runs in the sandbox, its
result comes back as a tool turn whose tokens are masked out of the loss (checked token by token, and through the
trainer), and every bad call (malformed JSON, unknown tool, schema violation, a tool that raises, loops or floods
its output) becomes a bounded `error:` tool message, never a crash."""

from __future__ import annotations

import json
import time

import pytest
import torch
from datasets import Dataset

from online_rl.tools import Toolbox, run_episodes, tool_suffix_ids
from stagekit.config import ConfigError

CALC = {
    "type": "function",
    "function": {
        "name": "big_arithmetic", "description": "Exact integer arithmetic on decimal strings.",
        "parameters": {"type": "object", "additionalProperties": False, "required": ["operation", "a", "b"],
                       "properties": {"operation": {"type": "string", "enum": ["add", "subtract", "multiply"]},
                                      "a": {"type": "string", "pattern": "^-?[0-9]{1,60}$"},
                                      "b": {"type": "string", "pattern": "^-?[0-9]{1,60}$"}}},
    },
}  # fmt: skip
NASTY = [{"type": "function", "function": {"name": name, "description": name, "parameters": {"type": "object"}}}
         for name in ("boom", "spin", "flood", "shout")]  # fmt: skip
IMPLEMENTATION = """
def big_arithmetic(operation, a, b):
    x, y = int(a), int(b)
    return str({"add": x + y, "subtract": x - y, "multiply": x * y}[operation])

def boom():
    raise ZeroDivisionError("the tool divided by zero")

def spin():
    while True:
        pass

def flood():
    return "x" * 5_000_000

def shout():
    print("y" * 5_000_000)
    return "ok"
"""
A, B = "123456789", "987654321"
PRODUCT = str(int(A) * int(B))


@pytest.fixture(scope="module")
def tok(micro_base):
    from qwen25.tokenizer import load_tokenizer

    return load_tokenizer(micro_base)


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory):
    path = tmp_path_factory.mktemp("tools") / "toolbox.json"
    path.write_text(json.dumps({"tools": [CALC, *NASTY], "implementation": IMPLEMENTATION}))
    return Toolbox.load(path, timeout_s=2.0, max_result_chars=200)


def _messages():
    system = "You may call tools."
    return [{"role": "system", "content": system}, {"role": "user", "content": f"What is {A} * {B}?"}]


def _call(name="big_arithmetic", arguments=None) -> str:
    arguments = {"operation": "multiply", "a": A, "b": B} if arguments is None else arguments
    return f'<tool_call>\n{json.dumps({"name": name, "arguments": arguments})}\n</tool_call>'


def _scripted(tok, turns: list[str]):
    """A policy that writes `turns` in order (each call of the sampler takes the next one for every row)."""
    calls = []

    def sample(prompt_ids, budget, seed):
        text = turns[min(len(calls), len(turns) - 1)]
        calls.append((prompt_ids, budget, seed))
        ids = tok(text + tok.eos_token, add_special_tokens=False)["input_ids"][:budget]
        return [ids for _ in prompt_ids], [[-0.5] * len(ids) for _ in prompt_ids]

    return sample, calls


def _prompt_ids(tok):
    text = tok.apply_chat_template(_messages(), add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def test_episode_runs_the_call_in_the_sandbox_and_masks_the_result_token_by_token(tok, toolbox):
    answer = f"The answer is {PRODUCT}."
    sample, calls = _scripted(tok, [_call(), answer])
    prompt = _prompt_ids(tok)
    (episode,) = run_episodes(sample, tok, toolbox, [prompt], max_new_tokens=256, max_iterations=3, seed=1)
    first = tok(_call() + tok.eos_token, add_special_tokens=False)["input_ids"]
    suffix = tool_suffix_ids(tok, [{"role": "tool", "name": "big_arithmetic", "content": PRODUCT}])
    second = tok(answer + tok.eos_token, add_special_tokens=False)["input_ids"]
    assert episode.completion_ids == first + suffix + second
    assert episode.env_mask == [1] * len(first) + [0] * len(suffix) + [1] * len(second)
    assert episode.logprobs == [-0.5] * len(first) + [0.0] * len(suffix) + [-0.5] * len(second)
    assert tok.decode(suffix) == f"\n<|im_start|>user\n<tool_response>\n{PRODUCT}\n</tool_response><|im_end|>\n" \
                                 "<|im_start|>assistant\n"  # fmt: skip
    # the episode is exactly the structured conversation rendered by the chat template
    conversation = _messages() + [
        {"role": "assistant", "content": _call()},
        {"role": "tool", "name": "big_arithmetic", "content": PRODUCT},
        {"role": "assistant", "content": answer},
    ]
    rendered = tok.apply_chat_template(conversation, tokenize=False)
    assert tok.decode(prompt + episode.completion_ids) == rendered.rstrip("\n")
    assert episode.final_turn == answer and episode.tool_calls == 1 and episode.tool_errors == 0
    assert calls[1][0] == [prompt + first + suffix] and calls[1][1] == 256 - len(first + suffix)


@pytest.mark.parametrize(
    ("turn", "message"),
    [
        ("<tool_call>\n{not json\n</tool_call>", "error: tool call 0 is not valid JSON"),
        ("<tool_call>\n" + '{"name": "add"', "error: unbalanced tool call tags"),
        (_call("nope", {}), "error: tool call 0 names 'nope', which is not a declared tool"),
        (_call(arguments={"operation": "divide", "a": A, "b": B}), "violate the schema at operation"),
        (_call("boom", {}), "the tool divided by zero"),
        (_call("spin", {}), "error: tool call spin({}) failed"),
        (_call("flood", {}), "error: "),
    ],
    ids=["malformed-json", "unclosed", "unknown-tool", "schema", "raises", "loops", "huge-result"],
)
def test_bad_calls_become_bounded_error_messages_and_the_episode_goes_on(tok, toolbox, turn, message):
    sample, _ = _scripted(tok, [turn, "I could not compute it."])
    started = time.monotonic()
    (episode,) = run_episodes(sample, tok, toolbox, [_prompt_ids(tok)], max_new_tokens=400, max_iterations=2, seed=0)
    assert time.monotonic() - started < 20  # the looping tool is stopped at its 2 s limit
    masked = [t for t, m in zip(episode.completion_ids, episode.env_mask, strict=True) if m == 0]
    text = tok.decode(masked)
    assert message in text, text
    body = text.split("<tool_response>\n", 1)[1].split("\n</tool_response>", 1)[0]
    assert len(body) <= 200 + len(" ... [cut: 9999999 more characters]")
    assert episode.tool_errors == 1 and episode.final_turn == "I could not compute it."


def test_a_tool_that_prints_megabytes_is_cut_and_answers(tok, toolbox):
    messages = toolbox.respond(_call("shout", {}))
    assert len(messages) == 1 and len(messages[0]["content"]) <= 240  # output past the sandbox cap: named, cut


def test_iteration_and_token_budgets_end_an_episode_that_keeps_calling(tok, toolbox):
    sample, calls = _scripted(tok, [_call()])  # calls the tool every turn
    (episode,) = run_episodes(sample, tok, toolbox, [_prompt_ids(tok)], max_new_tokens=1000, max_iterations=2,
                              seed=0)  # fmt: skip
    assert episode.tool_calls == 2 and len(calls) == 3  # two tool rounds, then the third call turn is final
    (short,) = run_episodes(sample, tok, toolbox, [_prompt_ids(tok)], max_new_tokens=60, max_iterations=5, seed=0)
    assert len(short.completion_ids) <= 60 and short.tool_calls >= 1


def test_toolbox_file_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        Toolbox.load(tmp_path / "missing.json", timeout_s=1, max_result_chars=100)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"tools": [{"name": "f", "parameters": {"type": "nonsense"}}],
                               "implementation": "def f(): pass"}))  # fmt: skip
    with pytest.raises(ConfigError, match="invalid parameters schema"):
        Toolbox.load(bad, timeout_s=1, max_result_chars=100)
    bad.write_text(json.dumps({"tools": [CALC]}))
    with pytest.raises(ConfigError, match="implementation"):
        Toolbox.load(bad, timeout_s=1, max_result_chars=100)


def test_trainer_masks_tool_tokens_and_scores_the_final_answer(micro_base, tmp_path, toolbox, tok):
    """Through QwenGRPOTrainer: the tool-result tokens are 0 in `tool_mask` (so out of the loss and of
    num_items_in_batch), and the reward function receives the final answer, not the tool transcript."""
    from online_rl.config import GRPOStageConfig
    from online_rl.rollout import RolloutEngine
    from online_rl.trainer import QwenGRPOTrainer
    from qwen25.model import load_model
    from qwen25.tokenizer import load_tokenizer

    seen = []

    def reward(prompts, completions, final_response=None, **kwargs):
        seen.extend(final_response)
        return [float(PRODUCT in text) for text in final_response]

    rows = Dataset.from_list([{"id": "q0", "prompt": _messages(), "reference": "{}"}])
    cfg = GRPOStageConfig(output_dir=str(tmp_path), num_generations=2, per_device_train_batch_size=2,
                          report_to="none", bf16=False, max_completion_length=200, query_order="dataset",
                          rollout_engine="inline", beta=0.0, tools_file="unused")  # fmt: skip
    turns = iter([[_call(), _call()], [f"The answer is {PRODUCT}.", "No idea."]])  # both call, then answer

    class Scripted(RolloutEngine):
        def _sample(self, model, prompt_ids, seed, max_new_tokens=None):
            ids = [tok(t + tok.eos_token, add_special_tokens=False)["input_ids"] for t in next(turns)]
            return ids, [[-1.0] * len(i) for i in ids]

    processing = load_tokenizer(micro_base)
    processing.padding_side = "left"
    trainer = QwenGRPOTrainer(model=load_model(micro_base), reward_funcs=[reward], args=cfg, train_dataset=rows,
                              processing_class=processing,
                              rollout_engine=Scripted(cfg, engine="inline", toolbox=toolbox))  # fmt: skip
    trainer.model.train()
    out = trainer._generate_and_score_completions([dict(rows[0]), dict(rows[0])])
    suffix = tool_suffix_ids(tok, [{"role": "tool", "name": "big_arithmetic", "content": PRODUCT}])
    first = tok(_call() + tok.eos_token, add_special_tokens=False)["input_ids"]
    for row in range(2):
        n = int(out["completion_mask"][row].sum())
        mask = out["tool_mask"][row][:n].tolist()
        assert mask == [1] * len(first) + [0] * len(suffix) + [1] * (n - len(first) - len(suffix))
    policy_tokens = int((out["completion_mask"] * out["tool_mask"]).sum())
    assert int(out["num_items_in_batch"]) == policy_tokens < int(out["completion_mask"].sum())
    assert seen == [f"The answer is {PRODUCT}.", "No idea."]
    assert out["advantages"][0] > 0 > out["advantages"][1]
    assert trainer._metrics["train"]["tools/calls_per_episode"][-1] == 1.0
    trainer.current_gradient_accumulation_steps = 1  # set by train(); the loss of this batch, outside it
    assert torch.isfinite(trainer._compute_loss(trainer.model, out))
