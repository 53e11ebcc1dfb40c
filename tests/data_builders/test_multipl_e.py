"""The MultiPL-E-style translator (data_builders/builders/multipl_e.py): the type language, prompts that match
MultiPL-E's published ones, value literals per language, and the code area built from typed families and seeds in
several languages."""

import json
from pathlib import Path

import pytest

from data_builders.builders import code as code_builder
from data_builders.builders.code_tasks import FAMILIES, render_tests
from data_builders.builders.multipl_e import (
    LANGUAGES,
    TRANSLATORS,
    Type,
    TypedTask,
    Unsupported,
    entry_name,
    make_task,
    multipl_e_row,
    parse_type,
    supports,
    translate_prompt,
    translate_tests,
)
from data_builders.config import CODE_LANGUAGES, parse_area
from data_builders.seeds import read_jsonl
from sandbox import LANGUAGES as SANDBOX_LANGUAGES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _add_task() -> TypedTask:
    """HumanEval_53_add as a typed task, examples ordered so the first two are the docstring's."""
    return make_task("add", "x: int, y: int", "int", "Add two numbers x and y",
                     [[[2, 3], 5], [[5, 7], 12], [[0, 1], 1], [[1, 0], 1], [[7, 5], 12]])


def test_languages_are_the_sandbox_and_config_ones():
    assert set(LANGUAGES) == set(SANDBOX_LANGUAGES) == set(CODE_LANGUAGES) and len(LANGUAGES) == 20


def test_type_language_parses_and_refuses():
    assert parse_type("list[dict[str,optional[float]]]") == Type(
        "list", (Type("dict", (Type("str"), Type("optional", (Type("float"),)))),))
    assert str(parse_type("tuple[int, str, bool]")) == "tuple[int,str,bool]"
    for bad in ("list", "dict[int,int]", "set[int]", "list[int", "optional[int,str]"):
        with pytest.raises(ValueError):
            parse_type(bad)


def test_make_task_checks_examples_against_types():
    with pytest.raises(ValueError, match="argument xs"):
        make_task("f", "xs: list[int]", "int", "d", [[[["a"]], 1]])
    with pytest.raises(ValueError, match="expected value"):
        make_task("f", "n: int", "bool", "d", [[[1], 1]])
    with pytest.raises(ValueError, match="2 arguments"):
        make_task("f", "n: int", "int", "d", [[[1, 2], 1]])


@pytest.mark.parametrize("language,multipl_e", [("cpp", "cpp"), ("javascript", "js"), ("typescript", "ts"),
                                                ("bash", "sh")])
def test_prompt_is_multipl_e_prompt_verbatim(language, multipl_e):
    """With doctests kept (MultiPL-E's "keep" rows), our prompt is byte-identical to MultiPL-E's published one."""
    rows = {row["language"]: row for row in map(json.loads, (FIXTURES / "multipl_e" / "humaneval_53_add.jsonl")
                                                .read_text().splitlines())}
    assert translate_prompt(_add_task(), language, doctests="keep") == rows[multipl_e]["prompt"]


def test_prompts_follow_each_language_idiom():
    task = _add_task()
    expected = {
        "python": "def add(x: int, y: int) -> int:", "java": "    public static long add(long x, long y) {",
        "csharp": "    public static long Add(long x, long y) {", "go": "func add(x int, y int) int {",
        "rust": "fn add(x: isize, y: isize) -> isize {", "php": "function add($x, $y) {", "ruby": "def add(x, y)",
        "perl": "sub add {", "lua": "local function add(x, y)", "r": "add <- function(x, y) {",
        "scala": "    def add(x : Long, y : Long) : Long = {", "kotlin": "fun add(x: Int, y: Int): Int {",
        "haskell": "add :: Int -> Int -> Int", "ocaml": "let rec add (x : int) (y : int) : int =",
        "racket": "(define (add x y)", "c": "long add(long x, long y) {",
    }
    for language, line in expected.items():
        prompt = translate_prompt(task, language)
        assert line in prompt.splitlines(), (language, prompt)
        assert "Add two numbers x and y" in prompt and ">>> " in prompt  # description + translated doctests


def test_literals_per_language():
    t = parse_type("list[int]")
    assert TRANSLATORS["cpp"].literal([1, -2], t) == "std::vector<long>({1, -2})"
    assert TRANSLATORS["rust"].literal([], t) == "Vec::<isize>::new()"
    assert TRANSLATORS["go"].literal([1], t) == "[]int{1}"
    assert TRANSLATORS["haskell"].literal([-1], t) == "[(-1)]"
    assert TRANSLATORS["ocaml"].literal([1, 2], t) == "[1; 2]"
    assert TRANSLATORS["r"].literal([], t) == "integer(0)"
    assert TRANSLATORS["perl"].literal(False, Type("bool")) == '""'
    assert TRANSLATORS["racket"].literal(True, Type("bool")) == "#t"
    assert TRANSLATORS["java"].literal(None, parse_type("optional[int]")) == "java.util.Optional.empty()"
    assert TRANSLATORS["rust"].literal({"a": 1}, parse_type("dict[str,int]")) == \
        'std::collections::HashMap::from([(String::from("a"), 1)])'
    assert TRANSLATORS["php"].literal("$x", Type("str")) == '"\\$x"'


def test_float_results_are_compared_with_tolerance():
    task = make_task("half", "x: float", "float", "Half of x", [[[1.0], 0.5]])
    assert "abs(" in translate_tests(task, "python") and "< 1e-06" in translate_tests(task, "python")
    assert "std::abs" in translate_tests(task, "cpp")
    assert ".abs() < 1e-06" in translate_tests(task, "rust")


def test_unsupported_types_are_named():
    task = make_task("keys", "d: dict[str,int]", "list[str]", "Keys of d", [[[{"a": 1}], ["a"]]])
    for language in ("c", "bash"):
        assert not supports(task, language)
        with pytest.raises(Unsupported):
            translate_tests(task, language)
    assert supports(task, "python") and supports(task, "rust") and supports(task, "go")
    optional = make_task("f", "n: int", "optional[int]", "d", [[[1], None]])
    assert not supports(optional, "go")  # MultiPL-E rejects Optional in Go too


def test_idiomatic_names():
    assert [entry_name("sum_to_n", lang) for lang in ("java", "csharp", "haskell", "go")] == \
        ["sumToN", "SumToN", "sumToN", "sum_to_n"]


def test_render_tests_uses_the_translator_and_families_are_typed():
    for family in FAMILIES:
        assert isinstance(family.task, TypedTask)
        for language in family.code:
            assert render_tests(family, language) == translate_tests(family.task, language)
    families = {f.name: f for f in FAMILIES}
    for name in ("sum_to_n", "count_vowels", "evens"):
        assert len(families[name].code) >= 19, sorted(families[name].code)  # evens: all but C (no lists in C)


def test_multipl_e_row_format():
    row = multipl_e_row(_add_task(), "rust")
    assert set(row) == {"name", "language", "prompt", "doctests", "original", "prompt_terminology", "tests",
                        "stop_tokens"}
    assert row["language"] == "rs" and row["tests"].startswith("}") and row["stop_tokens"] == ["\n}"]


def test_code_area_accepts_all_languages_and_refuses_others():
    area = parse_area("code", {"procedural": 4, "languages": ["rust", "haskell", "bash"]})
    assert area.languages == ["rust", "haskell", "bash"]
    with pytest.raises(ValueError, match="areas.code.languages"):
        parse_area("code", {"procedural": 4, "languages": ["cobol"]})
    assert parse_area("code", {}).languages == ["python", "javascript", "cpp"]  # the default is unchanged


def test_procedural_queries_in_new_languages_carry_signature_and_translated_tests():
    area = parse_area("code", {"procedural": 30, "languages": ["java", "go", "haskell"]})
    queries = code_builder.procedural_queries(area, seed=0, taken=set())
    assert len(queries) == 30
    for query in queries:
        reference, prompt = query.reference, query.messages[-1]["content"]
        language, entry = reference["language"], reference["entry_point"]
        assert "the tests call exactly this signature" in prompt and entry in prompt
        assert entry in reference["tests"] and entry in query.gold  # renamed together (sumToN -> computeSumToN)
        if language == "java":
            assert "class Problem" in prompt and "class Main" in reference["tests"]


def test_multilingual_seed_rows_parse_and_name_file_line(tmp_path):
    rows = read_jsonl(FIXTURES / "code_seeds" / "rust.jsonl")
    language, prompt, tests, entry, solution = code_builder.parse_multilingual_code(rows[0])
    assert language == "rust" and "fn abs_diff(a: isize, b: isize) -> isize {" in prompt
    assert "assert_eq!(candidate(3, 7), 4);" in tests and entry == "abs_diff" and "fn abs_diff" in solution
    lua = read_jsonl(FIXTURES / "code_seeds" / "lua.jsonl")[1]
    assert code_builder.parse_multilingual_code(lua)[2] == "assert(double(2) == 4)\nassert(double(-3) == -6)\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"language": "cobol", "prompt": "p", "tests": "t", "code": "c"}) + "\n"
                   + json.dumps({"language": "c", "name": "f", "params": "xs: list[int]", "returns": "int",
                                 "description": "d", "examples": [[[[1]], 1]], "code": "c"}) + "\n")
    first, second = read_jsonl(bad)
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'language'"):
        code_builder.parse_multilingual_code(first)
    with pytest.raises(ValueError, match=r"bad.jsonl:2: typed task cannot be translated to c"):
        code_builder.parse_multilingual_code(second)


@pytest.mark.e2e  # builds a whole area, with a Go and a Rust compiler
def test_code_area_from_seeds_in_several_languages(tmp_path):
    """Seeds in five languages (one not in `languages`: skipped and counted) and procedural tasks in two; every
    gold answer passes its translated tests, and rows validate."""
    from tests.data_builders.test_builders import build, check_rows

    seeds = [str(FIXTURES / "code_seeds" / f"{lang}.jsonl") for lang in ("python", "go", "rust", "lua", "ruby")]
    rows, stats, references = build("code", {"seed_files": seeds, "procedural": 6, "k": 2,
                                             "languages": ["go", "rust", "lua", "bash"]})
    check_rows(rows, references, "code")
    assert stats.dropped.get("reference rejects its gold answer", 0) == 0
    assert stats.queries == 5 + 6  # seeds: python, go, rust, lua x2 (ruby is not in `languages`)
    assert any("ruby" in reason for reason in stats.dropped), stats.dropped
