"""The tool_calling area: Qwen2.5 function-calling samples whose tool results ran in the sandbox and whose every
kept turn the tool_call verifier passed; rendered by our chat template exactly as the structured messages are."""

import json
from collections import Counter

import pytest

from data_builders.builders import build_area
from data_builders.builders.tool_calling import (
    TOOLS,
    call_text,
    make_queries,
    tool_messages,
    tools_system_prompt,
)
from data_builders.config import DataConfig, parse_area
from data_builders.generators import OpenAIGenerator, ProceduralGenerator
from data_builders.records import validate_preference_record, validate_rl_query_record, validate_sft_record
from qwen25.tokenizer import DEFAULT_SYSTEM_PROMPT, build_tokenizer
from verifiers import parse_reference, verify
from verifiers.tool_call import parse_tool_calls


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(["What is the population of Lyon?"] * 20, vocab_size=300)


@pytest.fixture(scope="module")
def area():
    return parse_area("tool_calling", {"procedural": 24, "k": 7})


@pytest.fixture(scope="module")
def queries(area):
    built, dropped = make_queries(area, seed=3)
    assert not dropped
    return built


@pytest.fixture(scope="module")
def built(area):
    return build_area("tool_calling", area, ProceduralGenerator(seed=3), 3, progress=False)


def structured(messages: list[dict]) -> list[dict]:
    """The records' text-form conversation as the structured messages a chat API would hold: tool calls parsed into
    `tool_calls`, `<tool_response>` user turns split into `tool` messages, the tools taken out of the system turn."""
    out = [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}]
    for message in messages[1:]:
        content = message["content"]
        if message["role"] == "assistant" and content.startswith("<tool_call>"):
            out.append({"role": "assistant", "content": "",
                        "tool_calls": [{"type": "function", "function": c} for c in parse_tool_calls(content).calls]})
        elif message["role"] in ("user", "tool") and content.startswith("<tool_response>"):
            for block in content.split("<tool_response>\n")[1:]:
                out.append({"role": "tool", "content": block.split("\n</tool_response>")[0]})
        else:
            out.append(message)
    return out


def tools_of(messages: list[dict]) -> list[dict]:
    system = messages[0]["content"]
    return [json.loads(line) for line in system.split("<tools>\n")[1].split("\n</tools>")[0].split("\n")]


def test_system_prompt_is_the_templates_own_tools_text(tokenizer):
    tools = [TOOLS["city_info"].spec(), TOOLS["big_arithmetic"].spec()]
    user = [{"role": "user", "content": "hi"}]
    with_tools = tokenizer.apply_chat_template([{"role": "system", "content": "Be brief."}, *user], tools=tools,
                                               tokenize=False)
    rendered = tokenizer.apply_chat_template([{"role": "system", "content": tools_system_prompt(tools, "Be brief.")},
                                              *user], tokenize=False)
    assert rendered == with_tools
    default = tokenizer.apply_chat_template(user, tools=tools, tokenize=False)  # no system turn: Qwen's default
    assert default == tokenizer.apply_chat_template(
        [{"role": "system", "content": tools_system_prompt(tools)}, *user], tokenize=False)


@pytest.mark.parametrize("role", ["user", "tool"])
def test_text_form_turns_render_like_structured_messages(tokenizer, role):
    calls = [{"name": "city_info", "arguments": {"city": "Lyon", "field": "population"}},
             {"name": "convert_units", "arguments": {"value": 2.5, "from_unit": "km", "to_unit": "mi"}}]
    tools = [TOOLS["city_info"].spec(), TOOLS["convert_units"].spec()]
    text_form = [{"role": "system", "content": tools_system_prompt(tools)}, {"role": "user", "content": "q"},
                 {"role": "assistant", "content": call_text(calls)}, *tool_messages([522250, 1.5534], role),
                 {"role": "assistant", "content": "522250 and 1.5534"}]
    chat_api = [{"role": "user", "content": "q"},
                {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": c}
                                                                    for c in calls]},
                {"role": "tool", "content": "522250"}, {"role": "tool", "content": "1.5534"},
                {"role": "assistant", "content": "522250 and 1.5534"}]
    assert tokenizer.apply_chat_template(text_form, tokenize=False) == \
        tokenizer.apply_chat_template(chat_api, tools=tools, tokenize=False)


def test_queries_cover_every_kind_and_step(queries):
    sources = Counter(q.source.split(":", 2)[2] for q in queries)
    assert {s.split(":")[0] for s in sources} == {"single", "parallel", "multi_step"}
    assert any(s.endswith(":answer") for s in sources) and any(s.endswith(":call0") for s in sources)
    assert "multi_step:call1" in sources or "multi_step:answer" in sources


def test_every_gold_turn_passes_and_every_flawed_kind_fails(queries):
    kinds = Counter()
    for query in queries:
        reference = query.reference
        assert reference["type"] == "tool_call" and query.messages[-1]["role"] in ("user", "tool")
        for candidate in query.offline:
            result = verify(candidate.text, reference)
            assert result.passed == (candidate.kind == "correct") or candidate.kind == "wrong_arguments", \
                (candidate, result.details)
            kinds[candidate.kind, result.passed] += 1
    assert kinds["wrong_arguments", False] > 0
    for kind in ("schema_violation", "unknown_function", "malformed_json", "no_call", "wrong_answer", "call_again"):
        assert kinds[kind, False] > 0 and kinds[kind, True] == 0, kind


def test_make_queries_is_deterministic(area, queries):
    again, _ = make_queries(area, seed=3)
    assert [(q.messages, q.reference, q.offline) for q in again] == [(q.messages, q.reference, q.offline)
                                                                      for q in queries]


def test_rows_of_every_split_are_valid_and_verified(built):
    rows, stats = built
    assert stats.rows["sft"] > 0 and stats.rows["preference"] > 0 and stats.rows["rl_queries"] > 0
    assert {"malformed JSON", "schema violation", "unknown function"} <= set(stats.failures)
    for row in rows["sft"]:
        validate_sft_record(row)
        assert row["verification"]["verifier"] == "tool_call" and row["verification"]["passed"]
    for row in rows["preference"]:
        validate_preference_record(row)
    for row in rows["rl_queries"]:
        validate_rl_query_record(row)
        assert parse_reference(row["reference"])["type"] == "tool_call"


def test_end_to_end_multi_step_sample(built, queries, tokenizer):
    """A full SFT sample: system (tools), user, a call, its sandbox result, a second call using that result, its
    result, the final answer. Every assistant turn passes `verify` with its step's reference, and our template
    renders it exactly as the structured conversation with `tools=`."""
    rows, _ = built
    by_prompt = {json.dumps(q.messages): q for q in queries}
    full = [row for row in rows["sft"] if len([m for m in row["messages"] if m["role"] == "assistant"]) == 3]
    assert full, "no multi-step sample at the answer step in the SFT split"
    row = full[0]
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert "<tools>" in row["messages"][0]["content"]
    query = by_prompt[json.dumps(row["messages"][:-1])]
    first, second = (parse_tool_calls(row["messages"][i]["content"]).calls for i in (2, 4))
    result = json.loads(row["messages"][3]["content"])  # a tool message holds the result itself
    assert str(result) in json.dumps(second[0]["arguments"])  # the second call takes the first call's result
    assistant_turns = [m["content"] for m in row["messages"] if m["role"] == "assistant"]
    for step, turn in enumerate(assistant_turns):
        verdict = verify(turn, json.dumps({**query.reference, "step": step}))
        assert verdict.passed, (step, verdict.details)
    assert first and query.reference["step"] == 2
    rendered = tokenizer.apply_chat_template(row["messages"], tokenize=False)
    assert rendered == tokenizer.apply_chat_template(structured(row["messages"]), tools=tools_of(row["messages"]),
                                                     tokenize=False)
    assert rendered.count("<tool_call>") == 2 + 2 and rendered.count("<tool_response>") == 2  # +2: the tools text


def test_preference_pairs_put_a_verified_turn_against_a_failing_one(built, queries):
    rows, _ = built
    by_prompt = {json.dumps(q.messages): q for q in queries}
    for row in rows["preference"]:
        reference = by_prompt[json.dumps(row["prompt"])].reference
        assert verify(row["chosen"][0]["content"], reference).passed
        assert not verify(row["rejected"][0]["content"], reference).passed
        assert row["reason"].split(":")[0] in ("wrong_arguments", "schema_violation", "unknown_function",
                                               "malformed_json", "no_call", "wrong_answer", "call_again")


def test_tool_messages_in_every_split_and_bad_area_keys_named():
    with pytest.raises(ValueError, match="tool_role"):
        parse_area("tool_calling", {"procedural": 2, "tool_role": "assistant"})
    with pytest.raises(ValueError, match="kinds"):
        parse_area("tool_calling", {"kinds": ["chit_chat"]})
    with pytest.raises(ValueError, match="answer_step_fraction"):
        parse_area("tool_calling", {"answer_step_fraction": 2})
    area = parse_area("tool_calling", {"procedural": 12, "k": 7, "answer_step_fraction": 1.0,
                                       "splits": {"sft": 0.5, "preference": 0.3, "rl_queries": 0.2}})
    assert area.tool_role == "tool"  # Qwen2.5's format is the default
    rows, _ = build_area("tool_calling", area, ProceduralGenerator(seed=0), 0, progress=False)
    assert rows["sft"] and all("tool" in [m["role"] for m in row["messages"]] for row in rows["sft"])
    # preference and RL-query prompts at the answer step end with the tool results; the records accept them
    prompts = [row["prompt"] for split in ("preference", "rl_queries") for row in rows[split]]
    assert prompts and all(prompt[-1]["role"] == "tool" for prompt in prompts)
    config = DataConfig(areas={"tool_calling": {"procedural": 3}}, sft_size=0, preference_size=0,
                        preference_eval_size=0, rl_queries_size=0, heldout_size=0)
    assert list(config.area_configs()) == ["tool_calling"]


def test_model_backend_gets_the_tools_in_the_system_turn(chat_stub, queries):
    """An OpenAI-compatible server (a stub answering each prompt with its gold turn) sees the tools in the system
    turn; its answers go through the same verifier."""
    gold = {json.dumps(q.messages): q.gold for q in queries}

    def respond(body, index):
        return 200, [gold[json.dumps(body["messages"])]] * body["n"], 0.0

    stub = chat_stub(respond)
    area = parse_area("tool_calling", {"procedural": 24, "k": 2})
    generator = OpenAIGenerator(stub.url, "qwen", backoff_s=0.01, timeout_s=10.0, max_retries=1)
    rows, stats = build_area("tool_calling", area, generator, 3, progress=False)
    assert stats.passed == stats.candidates > 0 and rows["sft"]
    for body in stub.bodies:
        system = body["messages"][0]
        assert system["role"] == "system" and "<tools>" in system["content"] and "</tools>" in system["content"]
