"""Code-verified instructions written by the generator (`areas.instruction_code.author: generator`): the reply
parser, config checks, and whole builds with the OpenAI-compatible backend against a real local stub server."""

import ast
import builtins
import json
import textwrap
from pathlib import Path

import pytest

from data_builders.builders import build_area
from data_builders.builders import instruction_code as ic
from data_builders.builders.sampling import failure_reason
from data_builders.config import DataConfig, parse_area
from data_builders.generators.openai_http import OpenAIGenerator
from data_builders.records import validate_preference_record, validate_sft_record
from verifiers import verify

ROOT = Path(__file__).resolve().parents[2]
FENCE = "```"

GOOD_INSTRUCTION = "Write a two-line note about tea whose last line is a question."
# The module-level line would mark this process if the function were ever run here instead of in the sandbox.
GOOD_FUNCTION = """import builtins

builtins.AUTHORED_CHECK_RAN_IN_PROCESS = True


def check(response: str) -> bool:
    lines = [line for line in response.strip().splitlines() if line.strip()]
    return len(lines) == 2 and lines[-1].rstrip().endswith("?")
"""
GOOD_TESTS = """assert check("Tea is warm.\\nWill you have a cup?")
assert not check("Tea is warm.")
assert check("A\\nB?") is True
assert check("A\\nB\\nC?") == False
"""
PASSING = "Green tea is calming.\nWould you like a cup?"
FAILING = "Green tea is calming and I drink it every day."


def reply(instruction: str, function: str, tests: str) -> str:
    return (f"Instruction: {instruction}\n\n{FENCE}python\n{function}{FENCE}\n\n{FENCE}python\n{tests}{FENCE}\n")


AUTHOR_REPLIES = {
    "good": reply(GOOD_INSTRUCTION, GOOD_FUNCTION, GOOD_TESTS),
    # its tests catch its bug: "Why? I like it." has a question mark but does not end with one
    "buggy": reply("Write one sentence about coffee ending with a question.",
                   "def check(response: str) -> bool:\n    return '?' in response\n",
                   "assert check('Do you like coffee?')\nassert not check('Why? I like it.')\n"),
    "malformed": "Instruction: Write about cats in exactly five words.\n\nI would check it by counting the words.\n",
    "vacuous": reply("Write about dogs in under ten words.",
                     "def check(response: str) -> bool:\n    return len(response.split()) < 10\n",
                     "check('Dogs are loyal.')\nassert True\n"),
}
DROPS = {"author reply: check function failed its own tests": 1, "author reply: no check function": 1,
         "author reply: unit tests have no must-pass and no must-fail assert": 1}


def model_answer(prompt: str, n: int) -> list[str] | None:
    if prompt.startswith("Write one instruction-following task on this idea: "):
        idea = prompt.splitlines()[0].rpartition(": ")[2]
        return [AUTHOR_REPLIES[idea]] * n
    if prompt == GOOD_INSTRUCTION:
        return [(PASSING, FAILING)[i % 2] for i in range(n)]
    return None


@pytest.fixture
def stub(chat_stub):
    """The model: author prompts get the canned task of their idea, the good task's instruction gets a passing and a
    failing response, anything else a 400."""

    def respond(body: dict, index: int) -> tuple[int, list[str] | None, float]:
        texts = model_answer(body["messages"][-1]["content"], body["n"])
        return (400 if texts is None else 200), texts, 0.0

    return chat_stub(respond)


def author_area(splits: dict, **extra):
    return parse_area("instruction_code", {"author": "generator", "author_prompts": 4, "k": 2, "splits": splits,
                                           "topics": ["good", "buggy", "malformed", "vacuous"], **extra})


def build(stub, splits: dict):
    generator = OpenAIGenerator(stub.url, "tiny", backoff_s=0.01, timeout_s=10.0, max_retries=0, concurrency=2)
    return build_area("instruction_code", author_area(splits), generator, seed=0, progress=False)


def reference_of_good_task() -> dict:
    return {"type": "instruction_code", "function": GOOD_FUNCTION, "entry_point": "check"}


def test_generator_written_tasks_give_verified_sft_rows(stub):
    rows, stats = build(stub, {"sft": 1.0})
    assert dict(stats.dropped) == DROPS  # exactly the good task is kept; every other reply counted by reason
    assert stats.queries == 1 and stats.candidates == 2 and stats.passed == 1
    assert dict(stats.failures) == {"check returned False": 1}
    (row,) = rows["sft"]
    validate_sft_record(row)
    assert row["messages"][0] == {"role": "user", "content": GOOD_INSTRUCTION}
    assert row["messages"][-1]["content"] == PASSING and row["source"] == "openai:instruction_code"
    assert row["verification"]["passed"] is True and row["verification"]["verifier"] == "instruction_code"
    assert verify(PASSING, reference_of_good_task()).passed and not verify(FAILING, reference_of_good_task()).passed
    author_bodies = [b for b in stub.bodies if b["messages"][-1]["content"] != GOOD_INSTRUCTION]
    response_bodies = [b for b in stub.bodies if b["messages"][-1]["content"] == GOOD_INSTRUCTION]
    assert len(author_bodies) == 4 and all(b["n"] == 1 for b in author_bodies)
    assert "def check(response: str) -> bool:" in author_bodies[0]["messages"][-1]["content"]
    assert [b["n"] for b in response_bodies] == [2]  # only the accepted task is sampled, k = 2
    assert not hasattr(builtins, "AUTHORED_CHECK_RAN_IN_PROCESS")  # the function ran in the sandbox only


def test_generator_written_tasks_pair_passing_and_failing_responses(stub):
    rows, stats = build(stub, {"preference": 1.0})
    assert dict(stats.dropped) == DROPS
    (row,) = rows["preference"]
    validate_preference_record(row)
    assert row["prompt"] == [{"role": "user", "content": GOOD_INSTRUCTION}]
    assert row["chosen"][0]["content"] == PASSING and row["rejected"][0]["content"] == FAILING
    rejected = verify(FAILING, reference_of_good_task())
    assert row["reason"] == f"sampled: {failure_reason(rejected)}" == "sampled: check function returned False"
    assert not hasattr(builtins, "AUTHORED_CHECK_RAN_IN_PROCESS")


def test_cli_builds_generator_written_tasks_from_yaml(stub, tmp_path):
    from data_builders.__main__ import main

    config = tmp_path / "author.yaml"
    config.write_text(
        "sft_size: 0\npreference_size: 0\npreference_eval_size: 0\nrl_queries_size: 0\nheldout_size: 0\n"
        f"generator: {{backend: openai, base_url: '{stub.url}', model: tiny, max_retries: 0, timeout_s: 10}}\n"
        "areas:\n  instruction_code:\n    author: generator\n    author_prompts: 4\n"
        "    topics: [good, buggy, malformed, vacuous]\n    k: 2\n    splits: {rl_queries: 1.0}\n")
    assert main(["--config", str(config), "--output_dir", str(tmp_path / "out")]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["areas"]["instruction_code"]["dropped"] == DROPS
    assert manifest["areas"]["instruction_code"]["rows"] == {"rl_queries": 1}


def test_repeated_instruction_and_procedural_tasks_mix():
    class Twice:
        name = "scripted"

        def generate(self, queries, k):
            return [[ic.Candidate(AUTHOR_REPLIES["good"])] for _ in queries]

    area = parse_area("instruction_code", {"author": "generator", "author_prompts": 2, "procedural": 3,
                                           "flawed_check_fraction": 0.0})
    queries, dropped = ic.make_queries(area, 0, generator=Twice())
    assert dict(dropped) == {"author reply: repeated instruction": 1}
    assert [q.source for q in queries][-1] == "scripted:instruction_code" and len(queries) == 4
    assert queries[-1].reference == reference_of_good_task() and queries[-1].gold is None
    procedural, _ = ic.make_queries(parse_area("instruction_code", {"procedural": 3, "flawed_check_fraction": 0.0}), 0)
    assert queries[:3] == procedural  # the offline tasks are the same with or without authored ones
    with pytest.raises(ValueError, match="needs the area's generator"):
        ic.make_queries(area, 0)


def block(code: str) -> str:
    return f"{FENCE}python\n{code}{FENCE}\n"


CHECK = "def check(response: str) -> bool:\n    return response.endswith('!')\n"
CASES = "assert check('Hi!')\nassert not check('Hi.')\n"


@pytest.mark.parametrize("text, reason", [
    ("**Instruction:** Shout.\n" + block(CHECK) + block(CASES), "no instruction"),
    (block(CHECK) + "Instruction: Shout.\n" + block(CASES), "no instruction"),
    ("Instruction: Shout.\nCount the exclamation marks.", "no check function"),
    ("Instruction: Shout.\n```py\n" + CHECK + "```\n" + block(CASES), "no check function"),
    ("Instruction: Shout.\n" + block(CHECK.replace("def check", "def verify")) + block(CASES), "no check function"),
    ("Instruction: Shout.\n" + block("def check() -> bool:\n    return True\n") + block(CASES), "no check function"),
    ("Instruction: Shout.\n" + block(CHECK), "no unit tests"),
    ("Instruction: Shout.\n" + block(CHECK) + block(CASES) + block(CASES), "3 python blocks, expected 2"),
    ("Instruction: Shout.\n" + block(CHECK.replace(" -> bool:", " -> bool", 1)) + block(CASES),
     "check function is not valid Python (line 1)"),
    ("Instruction: Shout.\n" + block(CHECK) + block("assert check('Hi!'\n"),
     "unit tests are not valid Python (line 1)"),
    ("Instruction: Shout.\n" + block(CHECK) + block("check = lambda r: True\n" + CASES), "unit tests redefine check"),
    ("Instruction: Shout.\n" + block(CHECK) + block("from os import path as check\n" + CASES),
     "unit tests redefine check"),
    ("Instruction: Shout.\n" + block(CHECK) + block("assert check('Hi!')\nassert check('Yo!')\n"),
     "unit tests have no must-fail assert"),
    ("Instruction: Shout.\n" + block(CHECK) + block("assert not check('Hi.')\n"),
     "unit tests have no must-pass assert"),
    ("Instruction: Shout.\n" + block(CHECK) + block("def test_it():\n" + textwrap.indent(CASES, "    ")),
     "unit tests have no must-pass and no must-fail assert"),
    ("Instruction: Shout.\n" + block(CHECK) + block("assert check('Hi!', 'x')\nassert not check(*['Hi.'])\n"),
     "unit tests have no must-pass and no must-fail assert"),
])
def test_parser_drops_replies_that_break_the_format(text, reason):
    with pytest.raises(ic.AuthorReplyError) as caught:
        ic.parse_author_reply(text)
    assert caught.value.reason == f"author reply: {reason}"


def test_parser_reads_the_documented_format_and_its_variants():
    task = ic.parse_author_reply("Sure, here it is.\n\nInstruction: Reply with one\nshouted line.\n\n"
                                 + block(CHECK) + "\nThe tests:\n" + block(CASES) + "\nHope this helps!")
    assert task == ic.AuthoredTask("Reply with one\nshouted line.", CHECK,
                                   "from instruction_check import check\n\n" + CASES)
    variants = ("assert check('Hi!') is True\nassert check('Hi.') is False\n",
                "from instruction_check import check\nassert check('Hi!') == True\nassert check('Hi.') != True\n",
                "assert check(response='Hi!') or True\nassert check('Hi!')\nassert check('Hi.') is not True\n")
    for tests in variants:
        assert ic.parse_author_reply("Instruction: Shout.\n" + block(CHECK) + block(tests)).tests.endswith(tests)
    assert [ic.assert_expectation(ast.parse(s).body[0].test) for s in (
        "assert check(x)", "assert not check(x)", "assert check(x) is False", "assert check(x) != False",
        "assert len(check(x))", "assert check(x) == 1")] == [True, False, False, True, None, None]


@pytest.mark.parametrize("settings, generator, message", [
    ({"author": "model"}, None, "areas.instruction_code.author.*'model'"),
    ({"author": "generator"}, {"backend": "openai", "base_url": "http://x/v1", "model": "m"},
     "areas.instruction_code.author_prompts.*>= 1"),
    ({"author_prompts": 3}, None, "areas.instruction_code.author.*'generator' when author_prompts"),
    ({"author": "generator", "author_prompts": 2, "topics": ["tea", " "]},
     {"backend": "openai", "base_url": "http://x/v1", "model": "m"}, "areas.instruction_code.topics"),
    ({"author": "generator", "author_prompts": 2}, None, "generator.backend.*a model backend"),
    ({"author": "generator", "author_prompts": -1}, None, "areas.instruction_code.author_prompts"),
])
def test_config_refuses_bad_author_settings(settings, generator, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(areas={"instruction_code": settings}, generator=generator or {"backend": "procedural"})


def test_model_text_is_never_run_in_process():
    """No exec/eval/compile/__import__ in the builder or its verifier: model-written code only runs in the
    sandbox (the builds above also check the good function's module-level marker never ran here)."""
    for path in ("data_builders/builders/instruction_code.py", "verifiers/instruction_code.py"):
        tree = ast.parse((ROOT / path).read_text())
        called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and isinstance(node.func, ast.Name)}
        assert not called & {"exec", "eval", "compile", "__import__"}, path
        assert "importlib" not in (ROOT / path).read_text(), path
