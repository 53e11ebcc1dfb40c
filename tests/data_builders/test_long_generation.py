"""Long-generation area: the `long` verifier at its bounds, document loading (.txt, .jsonl, .parquet), the
procedural back-translator and the generator's back-translation over a local OpenAI-compatible stub."""

import json

import pandas as pd
import pytest

from data_builders.builders import long as long_area
from data_builders.config import parse_area
from data_builders.generators.openai_http import OpenAIGenerator
from verifiers import verify
from verifiers.tokens import approx_tokens


def words(n: int) -> str:
    return " ".join(["word"] * n)


@pytest.mark.parametrize("n, passed, tag", [(80, True, None), (120, True, None), (79, False, "too short"),
                                             (121, False, "too long")])
def test_length_constraint_bounds(n, passed, tag):
    result = verify(words(n), {"type": "long", "min_words": 80, "max_words": 120})
    assert result.passed is passed and result.details.get("tag") == tag


def test_token_limit_is_8192_by_default():
    ref = {"type": "long", "min_words": 0, "max_words": 10**6}
    assert verify(words(8192), ref).passed
    over = verify(words(8193), ref)
    assert not over.passed and over.details["tag"] == "over the token limit" and over.details["max_tokens"] == 8192
    assert approx_tokens("x=12.5") == 6  # digits one by one, as Qwen2.5's tokenizer splits them


def test_reads_txt_jsonl_parquet_and_names_bad_input(tmp_path):
    (tmp_path / "a.txt").write_text("# Title\n\n" + words(200))
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": words(10)}) + "\n\n" + json.dumps({"text": "x"}) + "\n")
    pd.DataFrame({"text": [words(5), words(6)]}).to_parquet(tmp_path / "c.parquet")
    docs = long_area.read_documents([str(tmp_path / n) for n in ("a.txt", "b.jsonl", "c.parquet")], "text")
    assert [source for source, _ in docs] == ["a.txt", "b.jsonl:1", "b.jsonl:3", "c.parquet:0", "c.parquet:1"]
    (tmp_path / "bad.jsonl").write_text('{"text": 1}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected an object with a string field 'text'"):
        long_area.read_documents([str(tmp_path / "bad.jsonl")], "text")
    with pytest.raises(ValueError, match="no column 'body'"):
        long_area.read_documents([str(tmp_path / "c.parquet")], "body")
    with pytest.raises(ValueError, match="not found"):
        long_area.read_documents([str(tmp_path / "missing.txt")], "text")


def test_procedural_pairs_fit_their_constraint_and_misfits_are_dropped():
    area = parse_area("long", {"procedural": 30})
    queries, dropped = long_area.make_queries(area, seed=0)
    assert len(queries) + dropped["document does not fit its length constraint"] == 30
    assert 0 < dropped["document does not fit its length constraint"] < 30  # stated lengths are only roughly right
    for query in queries:
        stated = int(query.messages[-1]["content"].rsplit("about ", 1)[1].split()[0])
        assert query.reference["min_words"] == int(stated * 0.8) and query.reference["max_words"] >= stated * 1.2
        kinds = {c.kind: verify(c.text, query.reference).passed for c in query.offline}
        assert kinds == {"correct": True, "truncated": False, "padded": False}
        assert query.gold.startswith("# ") and query.gold.count("## ") >= area.min_sections + 2


def test_documents_over_the_token_limit_are_dropped(tmp_path):
    (tmp_path / "big.txt").write_text("# Big\n\n" + words(9000))
    (tmp_path / "ok.txt").write_text("# Fine\n\n" + words(400))
    area = parse_area("long", {"documents": [str(tmp_path / "big.txt"), str(tmp_path / "ok.txt")]})
    _, dropped = long_area.make_queries(area, seed=0)
    assert dropped["document over max_response_tokens"] == 1


def test_back_translation_by_a_model(tmp_path, chat_stub):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": f"# Doc {i}\n\n" + words(300 + i)}) + "\n" for i in range(3)))

    def respond(body, index):
        text = body["messages"][-1]["content"]
        assert "Write the instruction a user could have given" in text
        if "Doc 0" in text:
            return 200, ["Write an essay about words, in about 300 words."], 0.0
        if "Doc 1" in text:
            return 200, ["Write an essay about words in about 900 words."], 0.0  # the document does not fit
        return 200, ["Write an essay about words."], 0.0  # no length stated

    stub = chat_stub(respond)
    area = parse_area("long", {"documents": [str(docs)]})
    generator = OpenAIGenerator(stub.url, "m")
    queries, dropped = long_area.make_queries(area, seed=0, generator=generator)
    assert [q.messages[-1]["content"] for q in queries] == ["Write an essay about words, in about 300 words."]
    assert queries[0].reference["min_words"] == 240 and queries[0].source == "document:long:docs.jsonl:1"
    assert dropped == {"document does not fit its length constraint": 1, "instruction states no length": 1}
    # the sampling step keeps the document itself as the response
    assert long_area.response_generator(area, generator, 0).name == "procedural"
