"""Response filtering: the decontamination rule at its thresholds (RECIPE.md: LCS >= 13 tokens AND >= 0.6 x the
shorter length), the bit-parallel LCS against a dynamic-programming reference, MinHash dedup, the critics."""

import itertools
import json
import random
import string

import httpx
import pytest

from data_builders.filters import apply_filters, parse_filters
from data_builders.filters.critic import GeneratorCritic, RewardCritic
from data_builders.filters.decontaminate import Decontaminator, is_contaminated, lcs_length, read_eval_file
from data_builders.filters.dedup import near_duplicates
from data_builders.generators.openai_http import OpenAIGenerator
from data_builders.records import sft_record
from verifiers import VerifierResult

# distinct one-token words ("ab", "ac", ...): verifiers.tokens.words keeps each as one token
VOCAB = ["".join(p) for p in itertools.product(string.ascii_lowercase, repeat=2)]


def lcs_reference(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_bit_parallel_lcs_matches_dynamic_programming():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 90))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 130))]  # > 64 tokens: several machine words
        assert lcs_length(a, b) == lcs_reference(a, b)


def test_thirteen_tokens_contaminate_twelve_do_not():
    assert is_contaminated(VOCAB[:13], VOCAB[:13])  # LCS 13 = 1.0 x shorter
    assert not is_contaminated(VOCAB[:12], VOCAB[:12])  # ratio 1.0 but only 12 tokens
    # 13 common tokens interleaved with others, shorter length 20: 13 >= 0.6 x 20 = 12
    train = [t for pair in zip(VOCAB[:13], VOCAB[100:113]) for t in pair]
    assert lcs_length(train, VOCAB[:13] + VOCAB[200:207]) == 13
    assert is_contaminated(train, VOCAB[:13] + VOCAB[200:207])
    assert not is_contaminated(train[:-2], VOCAB[:12] + VOCAB[200:208])  # LCS 12


def test_ratio_threshold_sixty_vs_fifty_nine_percent():
    test = VOCAB[:100]  # the shorter sample: 100 tokens, so the rule needs an LCS of 60
    at = VOCAB[:60] + VOCAB[300:350]  # LCS 60 = 0.60 x 100
    below = VOCAB[:59] + VOCAB[300:351]  # LCS 59 = 0.59 x 100
    assert lcs_length(at, test) == 60 and lcs_length(below, test) == 59
    assert is_contaminated(at, test) and is_contaminated(test, at)  # symmetric in which side is shorter
    assert not is_contaminated(below, test) and not is_contaminated(test, below)
    # 0.6 x 25 = 15 needs exactly 15 (float 0.6 x 25 = 15.000000000000002 must not round up to 16)
    assert is_contaminated(VOCAB[:15] + VOCAB[400:410], VOCAB[:15] + VOCAB[500:510])


def test_decontaminator_reads_eval_files_and_finds_the_match(tmp_path):
    question = " ".join(VOCAB[:40])
    path = tmp_path / "gsm8k_test.jsonl"
    path.write_text(json.dumps({"question": "unrelated words " * 5}) + "\n" + json.dumps({"question": question})
                    + "\n")
    decon = Decontaminator(read_eval_file(path))
    assert decon.match("Please solve: " + question.upper() + " thanks") == 1  # case does not hide a copy
    assert decon.match(" ".join(VOCAB[:20] + VOCAB[300:340])) is None  # 20 < 0.6 x 40
    (tmp_path / "bad.jsonl").write_text('{"answer": "4"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: no text field"):
        read_eval_file(tmp_path / "bad.jsonl")


def test_minhash_dedup_keeps_the_first_of_near_duplicates():
    base = " ".join(VOCAB[:60])
    near = " ".join(VOCAB[:59] + ["zz"])  # one token changed at the end
    other = " ".join(VOCAB[100:160])
    assert near_duplicates([base, other, near, base]) == [None, None, 0, 0]
    partly = " ".join(VOCAB[:45] + VOCAB[300:315])  # a quarter replaced: Jaccard of 5-shingles about 0.58
    assert near_duplicates([base, partly]) == [None, None]
    assert near_duplicates([base, partly], threshold=0.4) == [None, 0]


def _row(category: str, prompt: str, answer: str) -> dict:
    proof = VerifierResult("math", True, 1.0, True, {})
    return sft_record(category, [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}],
                      "test", proof)


def test_apply_filters_reports_each_step(tmp_path):
    eval_file = tmp_path / "eval.txt"
    eval_file.write_text(" ".join(VOCAB[200:230]) + "\n")
    rows = [_row("logic", " ".join(VOCAB[:40]), "Answer: 1"), _row("logic", " ".join(VOCAB[:40]) + " again",
                                                                     "Answer: 1"),
            _row("structured", " ".join(VOCAB[200:230]), "Answer: 2"), _row("system", " ".join(VOCAB[50:90]), "ok")]
    config = parse_filters({"dedup": {"threshold": 0.8}, "decontaminate": {"eval_files": [str(eval_file)]}})
    kept, report = apply_filters({"sft": rows}, config)
    assert [r["category"] for r in kept["sft"]] == ["logic", "system"]
    assert report["near_duplicate"] == {"logic": 1} and report["contaminated"] == {"structured": 1}
    assert report["eval_samples"] == 1


class Judge:
    name = "judge"

    def __init__(self, verdicts):
        self.verdicts = verdicts

    def judge(self, rows):
        return self.verdicts


def test_every_scorer_must_accept():
    rows = [_row("logic", f"question {i}", "Answer: 1") for i in range(3)]
    kept, report = apply_filters({"sft": rows}, parse_filters({"critic": {"backend": "none"}}),
                                 critic=Judge([(True, ""), (False, "no"), (True, "")]))
    assert [r["id"] for r in kept["sft"]] == [rows[0]["id"], rows[2]["id"]] and report["critic"] == {"logic": 1}


def test_reward_critic_over_the_client():
    from reward.client import RewardClient

    def handler(request):
        items = json.loads(request.content)["items"]
        return httpx.Response(200, json={"results": [{"reward": 0.5 if "good" in i["response"] else -0.5,
                                                      "components": {}} for i in items]})

    client = RewardClient("http://rm.test", transport=httpx.MockTransport(handler), retries=0)
    critic = RewardCritic("http://rm.test", threshold=0.0, client=client)
    verdicts = critic.judge([_row("logic", "q1", "good answer"), _row("logic", "q2", "bad answer")])
    assert [v for v, _ in verdicts] == [True, False]


def test_generator_as_judge(chat_stub):
    stub = chat_stub(lambda body, i: (200, ["Looks right.\nVERDICT: ACCEPT" if "fine" in
                                            body["messages"][-1]["content"] else "VERDICT: REJECT"], 0.0))
    critic = GeneratorCritic(OpenAIGenerator(stub.url, "judge"))
    verdicts = critic.judge([_row("system", "q", "a fine reply"), _row("system", "q2", "a poor reply")])
    assert [v for v, _ in verdicts] == [True, False]


@pytest.mark.parametrize("values, message", [
    ({"dedupe": {}}, "unknown section"),
    ({"dedup": {"threshold": 2}}, r"filters.dedup.threshold"),
    ({"critic": {"backend": "reward"}}, r"filters.critic.url"),
    ({"critic": {"backend": "oracle"}}, r"filters.critic.backend"),
    ({"decontaminate": {"eval_files": "x.jsonl"}}, r"filters.decontaminate.eval_files"),
    ({"decontaminate": {"min_tokens": 0}}, r"filters.decontaminate.min_tokens"),
])
def test_bad_filter_settings_are_named(values, message):
    with pytest.raises(ValueError, match=message):
        parse_filters(values)
