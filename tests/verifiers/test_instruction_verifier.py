"""The instruction verifier: every IFEval constraint passing and failing on hand-written responses, the counting
helpers, the two reference formats, loose mode, aliases, descriptions, sampling, bad input and the IFEval loader."""

import json
import random
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from verifiers import VERIFIERS, verify
from verifiers.ifeval import ifeval_reference, load_ifeval_jsonl
from verifiers.instruction import (
    CONFLICTS,
    CONSTRAINTS,
    IFEVAL_IDS,
    KINDS,
    SCHEMA,
    check_constraints,
    count_placeholders,
    describe_constraint,
    loose_variants,
    resolve_constraint,
    verify_instruction,
)
from verifiers.text import capital_words, count_sentences, count_words, split_sentences

# IFEval's registry (instructions_registry.INSTRUCTION_DICT): the 25 instructions its benchmark uses.
IFEVAL_25 = [
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript", "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response", "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections", "detectable_format:json_format", "detectable_format:title",
    "combination:two_responses", "combination:repeat_prompt", "startend:end_checker",
    "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
    "punctuation:no_comma", "startend:quotation",
]

# (id, kwargs, response, followed): at least one True and one False row per constraint, written by hand.
CASES = [
    ("keywords:existence", {"keywords": ["river", "Bridge"]}, "The RIVER runs under the old bridge.", True),
    ("keywords:existence", {"keywords": ["river", "bridge"]}, "The river runs under the old road.", False),
    ("keywords:existence", {"keywords": ["c++"]}, "I write C++ every day.", True),  # matched literally
    ("keywords:existence", {"keywords": ["c++"]}, "I write C every day.", False),
    ("keywords:frequency", {"keyword": "war", "frequency": 3, "relation": "at least"}, "War, war and more war.", True),
    ("keywords:frequency", {"keyword": "war", "frequency": 3, "relation": "at least"}, "War and peace.", False),
    ("keywords:frequency", {"keyword": "war", "frequency": 2, "relation": "less than"}, "One war only.", True),
    ("keywords:frequency", {"keyword": "war", "frequency": 2, "relation": "less than"}, "war and war", False),
    # IFEval counts substrings: "warning" contains "war".
    ("keywords:frequency", {"keyword": "war", "frequency": 1, "relation": "less than"}, "A warning sign.", False),
    ("keywords:forbidden_words", {"forbidden_words": ["rock"]}, "Rocky hills and rockets.", True),
    ("keywords:forbidden_words", {"forbidden_words": ["rock", "roll"]}, "We ROCK the stage.", False),
    ("keywords:letter_frequency", {"letter": "e", "let_frequency": 1, "let_relation": "less than"},
     "A dog ran away.", True),
    ("keywords:letter_frequency", {"letter": "e", "let_frequency": 1, "let_relation": "less than"},
     "Everyone ran.", False),
    ("keywords:letter_frequency", {"letter": "O", "let_frequency": 3, "let_relation": "at least"},
     "Oh, look: two moons.", True),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"},
     "#summer #fun", True),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": "at least"}, "#summer", False),
    ("language:response_language", {"language": "fr"},
     "Le chat dort sur le canapé pendant que la pluie tombe doucement dehors.", True),
    ("language:response_language", {"language": "fr"},
     "The cat sleeps on the sofa while the rain falls softly outside.", False),
    ("language:response_language", {"language": "kn"}, "12345 !!!", True),  # undetectable counts as followed
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two!", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "One. Two? Three.", False),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"},
     "Dr. Smith arrived at 3.30 p.m. today. He sat down. It rained.", True),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"},
     "Mr. J. Smith met Mrs. Jones, e.g. at the U.S. embassy. They talked.", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First part.\n***\nSecond part.", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "***\nFirst part.\n***\nSecond part.\n***", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "Only one part.", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First.\n***\n***\nSecond.", False),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "Four words right here.", True),
    ("length_constraints:number_words", {"num_words": 5, "relation": "less than"}, "These are exactly five words.",
     False),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, "don't stop", True),
    ("length_constraints:number_words", {"num_words": 3, "relation": "at least"}, "stop - now", False),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "President"},
     "Aliens landed today.\n\n\"President Smith waved.\"", True),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "president"},
     "Aliens landed today.\n\nThe president waved.", False),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "president"},
     "Aliens landed.\n\nPresident Smith waved.\n\nThe end.", False),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], see you at [address].", True),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], see you soon.", False),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello there.\n\nP.S. See you soon.", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello there.\n\np. s. see you soon.", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello there. PS see you soon.", False),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Bye.\nP.P.S. One more thing.", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Bye.\nP.S. One more thing.", False),
    ("detectable_content:postscript", {"postscript_marker": "Note:"}, "Bye.\nnote: one more thing.", True),
    ("detectable_content:postscript", {"postscript_marker": "Note:"}, "Bye.\nNotes one more thing.", False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Intro\n* one\n* two", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "**Note** first\n- one\n  * two", True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two\n* three", False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "one\ntwo", False),
    ("detectable_format:constrained_response", {}, "I checked twice. My answer is yes.", True),
    ("detectable_format:constrained_response", {}, "Yes.", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and *two*", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "a **bold** claim", True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "a **bold** claim", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 1}, "empty ** and * * here", False),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nIntro.\nSection 2\nBody.", True),
    ("detectable_format:multiple_sections", {"section_spliter": "PARAGRAPH", "num_sections": 2},
     "PARAGRAPH 1 first. PARAGRAPH 2 second.", True),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section 1\nIntro only.", False),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2},
     "Section one\nIntro.\nSection two\nBody.", False),
    ("detectable_format:json_format", {}, '```json\n{"name": "Ann", "age": 3}\n```', True),
    ("detectable_format:json_format", {}, "[1, 2, 3]", True),
    ("detectable_format:json_format", {}, 'Here it is: {"name": "Ann"}', False),
    ("detectable_format:json_format", {}, '```json\n{"name": "Ann",}\n```', False),
    ("detectable_format:title", {}, "<<Ode to Rain>>\nDrops fall softly.", True),
    ("detectable_format:title", {}, "<< >> no title here", False),
    ("detectable_format:title", {}, "<<broken\ntitle>>", False),
    ("combination:two_responses", {}, "Zeus.\n******\nOdin.", True),
    ("combination:two_responses", {}, "Zeus.\n******\nZeus.", False),
    ("combination:two_responses", {}, "Zeus.\n******\nOdin.\n******\nRa.", False),
    ("combination:two_responses", {}, "Zeus.\n******\n******\nOdin.", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "write a poem. Roses are red.", True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "Sure! Write a poem. Roses are red.",
     False),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Here you go. any other questions?", True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, '"Here you go. Any other questions?"', True),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Any other questions? Bye.", False),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "NASA and the ESA agree.", True),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"},
     "Nasa and the Esa agree.", False),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "Only COVID-19 counts here.", True),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "less than"},
     "I said NO to the USA.", False),
    ("change_case:english_capital", {}, "THIS IS ALL IN CAPITAL LETTERS AND IT IS WRITTEN IN PLAIN ENGLISH.", True),
    ("change_case:english_capital", {}, "This Is Not All In Capital Letters.", False),
    ("change_case:english_capital", {}, "CECI EST UNE PHRASE ÉCRITE EN FRANÇAIS AVEC BEAUCOUP DE MOTS.", False),
    ("change_case:english_lowercase", {}, "this is all lowercase english text about the weather today.", True),
    ("change_case:english_lowercase", {}, "this has One capital letter in it.", False),
    ("change_case:english_lowercase", {}, "ceci est une phrase écrite en français avec beaucoup de mots.", False),
    ("punctuation:no_comma", {}, "No commas here at all.", True),
    ("punctuation:no_comma", {}, "Yes, a comma.", False),
    ("startend:quotation", {}, '  "Wrapped in quotes."  ', True),
    ("startend:quotation", {}, 'Not "wrapped" at all.', False),
    ("startend:quotation", {}, '"', False),
    ("multi-turn:constrained_start", {"starter": "I think"}, "  I think so, yes.", True),
    ("multi-turn:constrained_start", {"starter": "I think"}, "Well, I think so.", False),
]


@pytest.mark.parametrize("cid, kwargs, response, followed", CASES)
def test_constraint_on_hand_written_response(cid, kwargs, response, followed):
    assert CONSTRAINTS[cid].check(response, kwargs) is followed


def test_every_constraint_has_a_passing_and_a_failing_case():
    verdicts = {cid: set() for cid in CONSTRAINTS}
    for cid, _, _, followed in CASES:
        verdicts[cid].add(followed)
    assert {cid: seen for cid, seen in verdicts.items() if seen != {True, False}} == {}


def test_registry_covers_ifeval_and_exposes_schema():
    assert set(IFEVAL_25) <= set(CONSTRAINTS) and len(IFEVAL_25) == 25
    assert list(IFEVAL_IDS) == [cid for cid in CONSTRAINTS if cid in IFEVAL_25]
    assert CONSTRAINTS["length_constraints:number_words"].kwarg_names == ("num_words", "relation")
    assert SCHEMA["keywords:letter_frequency"] == {"letter": "str", "let_frequency": "int", "let_relation": "str"}
    assert SCHEMA["keywords:existence"] == {"keywords": "list[str]"}
    assert SCHEMA["punctuation:no_comma"] == {}
    assert {"max_words", "number_words", "length_constraints:number_words"} <= set(KINDS)


def test_linear_rewrites_agree_with_ifeval_regexes():
    """Placeholders, titles, bullets and postscripts are scanned without IFEval's backtracking regexes; on random
    short strings they give IFEval's exact answers."""
    rng = random.Random(1)
    for _ in range(3000):
        text = "".join(rng.choice("[]<> \n*-ab\t.pPsS") for _ in range(rng.randint(0, 25)))
        placeholders = len(re.findall(r"\[.*?\]", text))
        title = any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", text))
        bullets = len(re.findall(r"^\s*\*[^\*].*$", text, flags=re.M)) + len(re.findall(r"^\s*-.*$", text, flags=re.M))
        postscript = bool(re.findall(r"\s*p\.\s?s\..*$", text.lower(), flags=re.M))
        if text.strip():
            assert count_placeholders(text) == placeholders, text
            assert CONSTRAINTS["detectable_content:number_placeholders"].check(
                text, {"num_placeholders": placeholders}), text
            assert CONSTRAINTS["detectable_format:title"].check(text) is title, text
            assert CONSTRAINTS["detectable_format:number_bullet_lists"].check(text, {"num_bullets": bullets}), text
            assert CONSTRAINTS["detectable_content:postscript"].check(text, {"postscript_marker": "P.S."}) is (
                postscript), text


GARBAGE = ["{" * 20_000, "[" * 20_000, "*" * 20_000, "\n" * 20_000, "<" * 20_000 + ">>", "P." * 10_000,
           "." * 20_000 + "x", "!" * 10_000 + '"' * 10_000 + "x", "Section" * 3_000, "-\n" * 10_000, "[a" * 10_000,
           "word. " * 3_000, "\x00\x01", "}}}{{{", "```json", "******", "<<>>"]


@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_gets_a_verdict_from_every_constraint(garbage):
    rng = random.Random(3)
    specs = [{"kind": cid, **c.sample_kwargs(rng, "Write a haiku.")} for cid, c in CONSTRAINTS.items()]
    reference = {"type": "instruction", "mode": "loose", "prompt": "Write a haiku.", "constraints": specs}
    result = verify(garbage, reference)
    assert len(result.details["constraints"]) == len(CONSTRAINTS)
    assert 0.0 <= result.score <= 1.0
    json.dumps(result.details)


def test_blank_response_follows_nothing():
    for cid in ("punctuation:no_comma", "keywords:forbidden_words", "change_case:english_lowercase"):
        kwargs = {"forbidden_words": ["x"]} if cid == "keywords:forbidden_words" else {}
        assert CONSTRAINTS[cid].check("  \n ", kwargs) is False


def test_text_counting_helpers():
    assert count_words("don't stop-now, 3.5 times") == 7  # don, t, stop, now, 3, 5, times
    assert count_words("") == 0
    assert split_sentences("Hi there. This is it! Really? Yes.") == ["Hi there.", "This is it!", "Really?", "Yes."]
    assert split_sentences("Dr. Smith met J. Doe. It was 3.5 km away.") == [
        "Dr. Smith met J. Doe.", "It was 3.5 km away."]
    assert split_sentences('She said "stop." Then she left.') == ['She said "stop."', "Then she left."]
    assert split_sentences("1. Apples.\n2. Pears.") == ["1. Apples.", "2. Pears."]
    assert split_sentences("I said no. It was the 1st. Then St. Louis.") == [
        "I said no.", "It was the 1st.", "Then St. Louis."]
    assert split_sentences("Wait... and then it ended. Done") == ["Wait... and then it ended.", "Done"]
    assert count_sentences("") == 0 and count_sentences("a list\nwithout periods") == 1
    assert capital_words("DON'T stop NASA, COVID-19 and I. Here") == ["DON", "T", "NASA", "COVID-19", "I"]


# --- references, scores, modes -------------------------------------------------------------------------------------

CONSTRAINT_REF = {
    "type": "instruction",
    "constraints": [
        {"kind": "punctuation:no_comma"},
        {"kind": "length_constraints:number_words", "relation": "less than", "num_words": 10},
        {"kind": "detectable_format:title"},
    ],
}


def test_verify_reports_each_constraint_and_the_fraction_passed():
    result = verify("<<Rain>>\nDrops fall softly", CONSTRAINT_REF)
    assert (result.verifier, result.passed, result.score, result.format_ok) == ("instruction", True, 1.0, True)
    result = verify("Drops fall, softly", CONSTRAINT_REF)
    assert (result.passed, result.format_ok) == (False, True)
    assert result.score == pytest.approx(1 / 3)
    assert result.details == {
        "mode": "strict",
        "constraints": [
            {"id": "punctuation:no_comma", "kwargs": {}, "passed": False},
            {"id": "length_constraints:number_words", "kwargs": {"num_words": 10, "relation": "less than"},
             "passed": True},
            {"id": "detectable_format:title", "kwargs": {}, "passed": False},
        ],
        "failure": "not followed: punctuation:no_comma, detectable_format:title",
    }
    json.dumps(result.details)


def test_ifeval_record_format_is_evaluated_unchanged():
    record = {
        "type": "instruction",
        "key": 1012,
        "prompt": "Write an email to my boss telling him that I am quitting. The email must contain a title "
                  "wrapped in double angular brackets, i.e. <<title>>.\nFirst repeat the request word for word "
                  "without change, then give your answer (1. do not say any words or characters before repeating "
                  "the request; 2. the request you need to repeat does not include this sentence)",
        "instruction_id_list": ["combination:repeat_prompt", "detectable_format:title"],
        "kwargs": [{"prompt_to_repeat": "Write an email to my boss telling him that I am quitting. The email must "
                                        "contain a title wrapped in double angular brackets, i.e. <<title>>."}, {}],
    }
    good = record["kwargs"][0]["prompt_to_repeat"] + "\n\n<<Goodbye>>\nDear boss, I quit."
    assert verify(good, record).passed
    result = verify("<<Goodbye>>\nDear boss, I quit.", record)
    assert [c["passed"] for c in result.details["constraints"]] == [False, True] and result.score == 0.5


def test_null_kwargs_as_in_the_hugging_face_copy_are_dropped():
    reference = {
        "type": "instruction",
        "instruction_id_list": ["punctuation:no_comma", "keywords:existence"],
        "kwargs": [{"keywords": None, "num_words": None}, {"keywords": ["rain"], "num_words": None}],
    }
    assert verify("Rain again", reference).passed
    assert not verify("Sun again", reference).passed


def test_repeat_prompt_falls_back_to_the_reference_prompt():
    reference = {"type": "instruction", "prompt": "Name a fruit.", "constraints": [{"kind": "repeat_prompt"}]}
    assert verify("Name a fruit. Apple.", reference).passed
    assert not verify("Apple.", reference).passed
    with pytest.raises(ValueError, match="repeat_prompt.*prompt_to_repeat"):
        verify("Apple.", {"type": "instruction", "constraints": [{"kind": "repeat_prompt"}]})


def test_loose_mode_tries_ifeval_variants():
    no_comma_body = "Sure, here is my answer:\nRain falls on quiet streets"
    quoted_bold = '**"Rain falls on quiet streets"**'
    for response, kind in ((no_comma_body, "no_comma"), (quoted_bold, "quotation")):
        strict = {"type": "instruction", "constraints": [{"kind": kind}]}
        assert not verify(response, strict).passed
        assert verify(response, {**strict, "mode": "loose"}).passed
    assert not verify("Yes, sure, fine", {"type": "instruction", "mode": "loose",
                                          "constraints": [{"kind": "no_comma"}]}).passed
    assert loose_variants("a\n*b*\nc") == ["a\n*b*\nc", "a\nb\nc", "*b*\nc", "a\n*b*", "*b*", "b\nc", "a\nb", "b"]
    assert check_constraints("Hi, there\nfine", [("punctuation:no_comma", {})], mode="loose") == [True]


def test_aliases_resolve_to_ifeval_ids():
    assert resolve_constraint({"kind": "max_words", "value": 50}) == (
        "length_constraints:number_words", {"num_words": 51, "relation": "less than"})
    assert resolve_constraint({"kind": "min_sentences", "value": 3}) == (
        "length_constraints:number_sentences", {"num_sentences": 3, "relation": "at least"})
    assert resolve_constraint({"kind": "language", "value": "fr"}) == (
        "language:response_language", {"language": "fr"})
    assert resolve_constraint({"kind": "number_bullet_lists", "num_bullets": 3}) == (
        "detectable_format:number_bullet_lists", {"num_bullets": 3})
    assert resolve_constraint({"id": "punctuation:no_comma"}) == ("punctuation:no_comma", {})
    fifty = " ".join(["word"] * 50)
    design_example = {"type": "instruction", "constraints": [{"kind": "max_words", "value": 50}]}
    assert verify(fifty, design_example).passed
    assert not verify(fifty + " more", design_example).passed


@pytest.mark.parametrize("reference, message", [
    ({"type": "instruction", "constraints": [{"kind": "keywords:bogus"}]},
     r"unknown instruction constraint 'keywords:bogus'"),
    ({"type": "instruction", "instruction_id_list": ["bogus:id"], "kwargs": [{}]},
     r"unknown instruction id 'bogus:id'"),
    ({"type": "instruction", "constraints": [{"kind": "number_words", "num_words": 5}]},
     r"length_constraints:number_words: missing kwarg 'relation'"),
    ({"type": "instruction", "constraints": [{"kind": "number_words", "num_words": "5", "relation": "at least"}]},
     r"length_constraints:number_words: kwarg 'num_words' must be an integer"),
    ({"type": "instruction", "constraints": [{"kind": "number_words", "num_words": 5, "relation": "at most"}]},
     r"length_constraints:number_words: kwarg 'relation' must be one of"),
    ({"type": "instruction", "constraints": [{"kind": "no_comma", "num_words": 5}]},
     r"punctuation:no_comma: unknown kwarg 'num_words'"),
    ({"type": "instruction", "constraints": [{"kind": "keywords:existence", "keywords": "rain"}]},
     r"keywords:existence: kwarg 'keywords' must be a non-empty list"),
    ({"type": "instruction", "constraints": [{"kind": "letter_frequency", "letter": "ab", "let_frequency": 1,
                                              "let_relation": "at least"}]},
     r"keywords:letter_frequency: kwarg 'letter' must be at most 1"),
    ({"type": "instruction", "constraints": [{"kind": "max_words", "limit": 5}]}, r"max_words: expected exactly"),
    ({"type": "instruction", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}, r"equal length"),
    ({"type": "instruction", "constraints": []}, r"no constraints"),
    ({"type": "instruction", "constraints": [{"kind": ["no_comma"]}]}, r"needs a 'kind' string"),
    ({"type": "instruction"}, r"'constraints' or 'instruction_id_list'"),
    ({"type": "instruction", "mode": "lenient", "constraints": [{"kind": "no_comma"}]}, r"'mode'"),
])
def test_bad_references_raise_naming_constraint_and_key(reference, message):
    with pytest.raises(ValueError, match=message):
        verify("Some response.", reference)


def test_non_string_response_fails_cleanly():
    result = verify(None, CONSTRAINT_REF)  # type: ignore[arg-type]
    assert (result.passed, result.score) == (False, 0.0)
    assert "NoneType" in result.details["failure"]


def test_language_checks_are_deterministic_in_threads():
    cases = [
        ("Le chat dort sur le canapé pendant que la pluie tombe doucement dehors.", "fr", True),
        ("The cat sleeps on the sofa while the rain falls softly outside.", "fr", False),
        ("Der Hund läuft schnell über die grüne Wiese im Sommer.", "de", True),
        ("The cat sleeps on the sofa while the rain falls softly outside.", "en", True),
    ] * 6

    def run(case: tuple[str, str, bool]) -> bool:
        constraint = {"kind": "response_language", "language": case[1]}
        return verify(case[0], {"type": "instruction", "constraints": [constraint]}).passed

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run, cases))
    assert results == [case[2] for case in cases]


# --- describe and sample, for the data builders --------------------------------------------------------------------


def test_describe_uses_ifeval_wording():
    assert CONSTRAINTS["length_constraints:number_words"].describe({"num_words": 50, "relation": "less than"}) == (
        "Answer with less than 50 words.")
    assert CONSTRAINTS["punctuation:no_comma"].describe({}) == (
        "In your entire response, refrain from the use of any commas.")
    assert CONSTRAINTS["language:response_language"].describe({"language": "kn"}) == (
        "Your ENTIRE response should be in Kannada language, no other language is allowed.")
    assert CONSTRAINTS["detectable_content:postscript"].describe({"postscript_marker": "P.P.S"}) == (
        "At the end of your response, please explicitly add a postscript starting with P.P.S")
    assert CONSTRAINTS["keywords:existence"].describe({"keywords": ["rain", "sun"]}) == (
        'Include keywords "rain", "sun" in the response.')
    assert describe_constraint({"kind": "max_words", "value": 50}) == "Answer with less than 51 words."
    with pytest.raises(ValueError, match="keywords:frequency: missing kwarg 'keyword'"):
        CONSTRAINTS["keywords:frequency"].describe({"frequency": 2, "relation": "at least"})


def test_sampled_kwargs_are_valid_deterministic_and_describable():
    first = {cid: c.sample_kwargs(random.Random(7), prompt="Write a haiku.") for cid, c in CONSTRAINTS.items()}
    again = {cid: c.sample_kwargs(random.Random(7), prompt="Write a haiku.") for cid, c in CONSTRAINTS.items()}
    assert first == again
    rng = random.Random(0)
    for _ in range(20):
        for cid, constraint in CONSTRAINTS.items():
            kwargs = constraint.sample_kwargs(rng, prompt="Write a haiku.")
            assert set(kwargs) <= set(constraint.kwarg_names)
            text = constraint.describe(kwargs)
            assert text and all(str(v) in text for k, v in kwargs.items() if isinstance(v, int))
            assert isinstance(constraint.check("A response.", kwargs, "Write a haiku."), bool)
    words = [CONSTRAINTS["length_constraints:number_words"].sample_kwargs(rng)["num_words"] for _ in range(200)]
    assert 100 <= min(words) and max(words) <= 500



def test_samplers_draw_from_the_published_sample_ranges():
    # each int kwarg states its range twice (the schema's `sample_range` and the sampler's draw): they must agree
    rng = random.Random(0)
    for cid, constraint in CONSTRAINTS.items():
        for spec in constraint.kwargs:
            if spec.sample_range is None:
                continue
            low, high = spec.sample_range
            drawn = [constraint.sample_kwargs(rng, prompt="Write a haiku.")[spec.name] for _ in range(300)]
            assert low <= min(drawn) and max(drawn) <= high, (cid, spec.name, min(drawn), max(drawn))
            if high - low <= 20:  # small ranges: both ends come up in 300 draws
                assert (min(drawn), max(drawn)) == (low, high), (cid, spec.name)

def test_conflicts_are_symmetric_and_follow_ifeval():
    for cid, others in CONFLICTS.items():
        assert cid in others
        assert all(cid in CONFLICTS[other] for other in others)
    assert "change_case:english_capital" in CONFLICTS["change_case:english_lowercase"]
    assert "keywords:existence" not in CONFLICTS["detectable_format:json_format"]
    assert "punctuation:no_comma" in CONFLICTS["detectable_format:json_format"]
    assert "punctuation:no_comma" not in CONFLICTS["keywords:existence"]


# --- IFEval input files --------------------------------------------------------------------------------------------

IFEVAL_LINES = [
    {"key": 1001, "prompt": "Plan a trip to Japan. You are not allowed to use any commas in your response.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 1122, "prompt": "make a tweet without capital letters. Include at least 4 hashtags",
     "instruction_id_list": ["change_case:english_lowercase", "keywords:letter_frequency"],
     "kwargs": [{}, {"let_relation": "at least", "letter": "#", "let_frequency": 4}]},
]


def test_load_ifeval_jsonl_turns_records_into_references(tmp_path):
    path = tmp_path / "input_data.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in IFEVAL_LINES) + "\n\n", encoding="utf-8")
    references = load_ifeval_jsonl(path)
    assert references == [{"type": "instruction", **line} for line in IFEVAL_LINES]
    assert verify("first fly to tokyo and then take the train to kyoto", references[0]).passed
    tweet = "voting day is here #vote #democracy #today #now"
    assert verify(tweet, references[1]).passed
    assert not verify("Voting day #vote", references[1]).passed
    assert ifeval_reference(IFEVAL_LINES[0]) == references[0]


@pytest.mark.parametrize("bad_line, message", [
    ("{not json", "Expecting property name"),
    (json.dumps({"key": 1, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"]}), "lacks \\['kwargs'\\]"),
    (json.dumps({"key": 1, "prompt": "p", "instruction_id_list": ["nope:nope"], "kwargs": [{}]}), "'nope:nope'"),
    (json.dumps({"key": 1, "prompt": "p", "instruction_id_list": ["length_constraints:number_words"],
                 "kwargs": [{"num_words": 5}]}), "missing kwarg 'relation'"),
    (json.dumps([1, 2]), "JSON object"),
])
def test_malformed_ifeval_line_names_file_and_line(tmp_path, bad_line, message):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(IFEVAL_LINES[0]) + "\n\n" + bad_line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"broken\.jsonl:3: .*{message}"):
        load_ifeval_jsonl(path)


def test_registry_lists_instruction_verifier():
    assert VERIFIERS["instruction"] is verify_instruction
