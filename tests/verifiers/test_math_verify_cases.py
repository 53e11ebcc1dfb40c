"""The math verifier against math-verify's own published test cases, and one regression test per defect they found.

The cases are data (`data/math_verify_cases.jsonl`, built by `data/build_math_verify_cases.py` from the commit its
header names): each is a reference answer, a prediction (a bare answer, compared with `answers_match`, or a
response, judged by `verify_math`) and math-verify's expected verdict. Ours must agree on every case except the
deliberate departures listed in `verifiers/math.py`'s docstring and in `DEPARTURES` below; a new disagreement fails,
and so does a listed departure that starts agreeing (then drop it from both lists).

    python tests/verifiers/test_math_verify_cases.py   # prints the agreement count and rate, and each disagreement
"""

import json
from pathlib import Path

import pytest

import verifiers.math
from verifiers import verify
from verifiers.math import answers_match, extract_answer, verify_math

CASES_PATH = Path(__file__).with_name("data") / "math_verify_cases.jsonl"

# id -> the short name of the reason, explained with the id in verifiers/math.py's docstring ("Departures").
DEPARTURES = {
    "test_open_thoughts.py::test_open_thoughts[14]": "words between boxes",
    "test_yujianll.py::test_string_extraction[9]": "\\mathrm{e} is e",
}


def load_cases() -> tuple[dict, list[dict]]:
    header, *rows = (json.loads(line) for line in CASES_PATH.read_text().splitlines())
    return header["header"], rows


def our_verdict(case: dict) -> bool:
    if case["kind"] == "answer":
        return answers_match(case["prediction"], case["reference"])[0]
    return verify_math(case["prediction"], {"type": "math", "answer": case["reference"]}).passed


HEADER, CASES = load_cases()


def test_the_data_names_its_source_and_matches_its_count():
    assert HEADER["source"] == "https://github.com/huggingface/Math-Verify"
    assert len(HEADER["commit"]) == 40 and HEADER["cases"] == len(CASES) >= 200
    assert len({case["id"] for case in CASES}) == len(CASES)


@pytest.mark.e2e  # math-verify on 210 cases, some of them long responses (about 20 s on 2 CPU cores)
@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_agrees_with_math_verify(case):
    ours = our_verdict(case)
    if case["id"] in DEPARTURES:
        assert ours != case["expected"], f"listed departure now agrees; remove {case['id']} from DEPARTURES"
    else:
        assert ours == case["expected"], f"reference {case['reference']!r}, prediction {case['prediction'][-300:]!r}"


def test_every_departure_is_a_case_and_is_explained_in_the_module_docstring():
    ids = {case["id"] for case in CASES}
    for case_id, reason in DEPARTURES.items():
        assert case_id in ids
        assert case_id in verifiers.math.__doc__ and reason in verifiers.math.__doc__


# --- one test per kind of defect the published cases found: each failed before the fix ------------------------------

TWELVE = {"type": "math", "answer": "12"}


@pytest.mark.parametrize("predicted, expected, same", [
    ("0.3333333", "\\frac{1}{3}", True), ("0.666667", "2/3", True), ("0.0833333333333333", "\\frac{1}{12}", True),
    ("\\frac{2}{3}", "0.666667", True),
    ("0.67", "2/3", False), ("0.3", "\\frac{1}{3}", False), ("0.33", "\\frac{1}{3}", False), ("13", "12", False),
])
def test_rounded_decimal_against_an_exact_fraction(predicted, expected, same):
    assert answers_match(predicted, expected)[0] is same
    if same:
        assert answers_match(predicted, expected)[1] == "math_verify"  # not decided by the exact path


@pytest.mark.parametrize("text, passed", [
    ("So the answer is **12**.", True), ("The final answer is *12*.", True), ("The answer is __12__", True),
    ("The answer is **13**.", False),
])
def test_markdown_emphasis_around_the_answer(text, passed):
    result = verify(text, TWELVE)
    assert result.passed is passed and result.format_ok, result.details


@pytest.mark.parametrize("predicted, expected, same", [
    ("24 \\text{ cm}^2", "24", True), ("24\\text{ cm}^2", "24", True), ("24 \\mbox{ m}^{3}", "24", True),
    ("24 cm^2", "24", True), ("15\\mbox{ cm}^2", "15\\text{ cm}^2", True),
    ("25 \\text{ cm}^2", "24", False),
])
def test_units_with_an_exponent(predicted, expected, same):
    assert answers_match(predicted, expected)[0] is same


def test_comma_and_space_separate_two_numbers_not_thousands():
    assert answers_match("32, 349", "32349") == (False, "math_verify")
    assert not verify("is $\\boxed{32, 349}$", {"type": "math", "answer": "32349"}).passed
    assert answers_match("32,349", "32349")[0] and answers_match("32,\\! 349", "32349")[0]
    assert answers_match("32, 349", "32,349")[0] is False
    assert answers_match("1, 2", "\\{1, 2\\}")[0]


@pytest.mark.parametrize("predicted, expected, same", [
    ("p = -1 \\text{ and } p = \\dfrac{15}{8}", "p=-1,p=\\frac{15}{8}", True),
    ("p=-1,p=\\frac{15}{8}", "p = -1 \\text{ and } p = \\dfrac{15}{8}", True),
    ("6 \\text{ and } 8", "6,8", True), ("(x, y) = (5, 8) \\quad \\text{and} \\quad (8, 5)", "(5, 8), (8, 5)", True),
    ("p = -1 \\text{ and } p = \\frac{15}{7}", "p=-1,p=\\frac{15}{8}", False), ("6 \\text{ and } 9", "6,8", False),
])
def test_text_and_between_two_answers(predicted, expected, same):
    assert answers_match(predicted, expected)[0] is same


@pytest.mark.parametrize("predicted, expected, same", [
    ("1000,99", "1000.99", True), ("1.22", "1,22", True), ("0,111", "0.111", True), ("-3,5", "-\\frac{7}{2}", True),
    ("1000,99", "1000.98", False), ("1,000", "1.000", False), ("1,22", "122", False), ("1,000", "1000", True),
    ("1,3", "3,1", True), ("2,5", "2,6", False),  # comma forms on both sides: lists of numbers, as before
])
def test_decimal_comma(predicted, expected, same):
    assert answers_match(predicted, expected)[0] is same


def test_final_statement_after_intermediate_boxes_is_the_answer():
    text = ("The interest is $0.04 \\cdot 10,000 \\cdot \\frac{1}{2} = \\boxed{200}$, then "
            "$0.05 \\cdot 10,200 \\cdot \\frac{1}{2} = \\boxed{255}$ So Dr. Zaius has $10,455. "
            "Final Answer: The final answer is $10,455$. I hope it is correct.")
    assert extract_answer(text) == ("$10,455$", "answer_is")
    assert verify(text, {"type": "math", "answer": "10455"}).passed
    assert extract_answer("The answer is \\boxed{12}.") == ("12", "boxed")  # a box inside the statement still wins


@pytest.mark.parametrize("text, answer, extracted, passed", [
    ("$$\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}$$", "(2, 2), (6, 2)", "(2, 2), (6, 2)", True),
    ("the roots are: \\[ \\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}. \\]", "1,-2", "-2, 1", True),
    ("\\boxed{1},\\boxed{2},\\boxed{3}", "\\{1,2,3\\}", "1, 2, 3", True),
    ("\\boxed{k = 45} \\quad \\text{and} \\quad \\boxed{n = 2}", "k = 45, n = 2", "k = 45, n = 2", True),
    # words between the boxes: the earlier one is an intermediate value, the last box is the answer
    ("\\boxed{1} no no no no no \\boxed{2}", "1,2", "2", False),  # math-verify's published case, same verdict
    ("So x = \\boxed{3} which gives y = \\boxed{12}", "12", "12", True),
    ("\\boxed{3}. Then a long stretch of further work, well past seventy characters, gives \\boxed{12}", "12", "12",
     True),
])
def test_answer_split_across_boxes(text, answer, extracted, passed):
    assert extract_answer(text) == (extracted, "boxed")
    assert verify(text, {"type": "math", "answer": answer}).passed is passed


def main() -> None:
    agree = 0
    for case in CASES:
        ours = our_verdict(case)
        agree += ours == case["expected"]
        if ours != case["expected"]:
            note = f"  (departure: {DEPARTURES[case['id']]})" if case["id"] in DEPARTURES else ""
            print(f"disagree {case['id']}: expected {case['expected']}, ours {ours}{note}")
    print(f"agreement with math-verify's published cases ({HEADER['source']} @ {HEADER['commit'][:7]}): "
          f"{agree}/{len(CASES)} = {agree / len(CASES):.1%}")


if __name__ == "__main__":
    main()
