"""The reward service on the trained micro reward model and the real verifiers (fastapi TestClient)."""

import json
import math

import pytest
from fastapi.testclient import TestClient

from reward.app import create_app
from reward.config import ServeConfig, parse_weights
from stagekit.config import ConfigError

PROMPT = [{"role": "user", "content": "Sam has 7 apples and gets 5 more. How many?"}]
RIGHT = "7 + 5 = 12. The answer is \\boxed{12}."
WRONG = "7 + 5 = 13. The answer is \\boxed{13}."
MATH_REF = {"type": "math", "answer": "12"}


@pytest.fixture(scope="module")
def config(trained_rm):
    return ServeConfig(model_path=str(trained_rm[0]), max_items_per_request=4, max_wait_ms=1.0)


@pytest.fixture(scope="module")
def client(config, rm_scorer):
    with TestClient(create_app(config, rm_scorer)) as test_client:
        yield test_client


def score(client, items, **kwargs):
    response = client.post("/v1/score", json={"items": items}, **kwargs)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_healthz(client, config):
    body = client.get("/healthz").json()
    assert body["status"] == "ok" and body["model"] == config.model_path
    assert body["weights"] == {"rm": 0.2, "verifier": 1.0}


def test_reward_is_weighted_tanh_rm_plus_verifier(client, rm_scorer):
    right, wrong = score(
        client,
        [
            {"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF},
            {"prompt": PROMPT, "response": WRONG, "reference": json.dumps(MATH_REF)},  # as the dataset stores it
        ],
    )
    assert right["components"]["verifier"]["passed"] is True and right["components"]["verifier"]["score"] == 1.0
    assert right["components"]["verifier"]["verifier"] == "math"
    assert wrong["components"]["verifier"]["passed"] is False and wrong["components"]["verifier"]["score"] == 0.0
    logits = rm_scorer([(PROMPT, RIGHT), (PROMPT, WRONG)])
    for result, logit, verified in zip((right, wrong), logits, (1.0, 0.0)):
        assert result["components"]["rm"] == pytest.approx(math.tanh(logit), abs=1e-5)
        assert result["reward"] == pytest.approx(0.2 * math.tanh(logit) + 1.0 * verified, abs=1e-5)
    assert right["reward"] > wrong["reward"]


def test_no_reference_means_no_verifier_component(client, rm_scorer):
    (result,) = score(client, [{"prompt": PROMPT, "response": RIGHT, "reference": None}])
    assert result["components"]["verifier"] is None
    assert result["reward"] == pytest.approx(0.2 * math.tanh(rm_scorer([(PROMPT, RIGHT)])[0]), abs=1e-5)


def test_plain_text_prompt_is_scored_like_training_plain_text(client, rm_scorer):
    (result,) = score(client, [{"prompt": "7 + 5 =", "response": " 12"}])
    assert result["components"]["rm"] == pytest.approx(math.tanh(rm_scorer([("7 + 5 =", " 12")])[0]), abs=1e-5)


def test_schema_errors_are_422_naming_the_field(client):
    response = client.post("/v1/score", json={"items": [{"prompt": PROMPT}]})
    assert response.status_code == 422
    assert ["body", "items", 0, "response"] in [err["loc"] for err in response.json()["detail"]]
    response = client.post("/v1/score", json={"items": [{"prompt": PROMPT, "response": 5}]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "response"
    response = client.post("/v1/score", json={"items": [{"prompt": PROMPT, "response": "x", "refrence": {}}]})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][-1] == "refrence"


def test_bad_references_are_422_naming_item_and_type(client):
    items = [{"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF}] * 2
    bad_type = [items[0], {**items[1], "reference": {"type": "astrology", "answer": "12"}}]
    response = client.post("/v1/score", json={"items": bad_type})
    assert response.status_code == 422
    assert "items[1].reference" in response.json()["detail"] and "astrology" in response.json()["detail"]
    response = client.post("/v1/score", json={"items": [{**items[0], "reference": "{not json"}]})
    assert response.status_code == 422 and "items[0].reference: not valid JSON" in response.json()["detail"]
    response = client.post("/v1/score", json={"items": [{**items[0], "reference": {"answer": "12"}}]})
    assert response.status_code == 422 and "'type'" in response.json()["detail"]


def test_too_many_items_is_413(client):
    items = [{"prompt": PROMPT, "response": RIGHT}] * 5
    response = client.post("/v1/score", json={"items": items})
    assert response.status_code == 413 and "at most 4" in response.json()["detail"]


def test_bearer_token(config, rm_scorer):
    guarded = ServeConfig(model_path=config.model_path, api_token="s3cret")
    item = {"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF}
    with TestClient(create_app(guarded, rm_scorer)) as test_client:
        assert test_client.get("/healthz").status_code == 200  # health stays open for probes
        assert test_client.post("/v1/score", json={"items": [item]}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert test_client.post("/v1/score", json={"items": [item]}, headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert score(test_client, [item], headers=right)[0]["components"]["verifier"]["passed"] is True


def test_verifier_only_service_needs_no_model():
    config = ServeConfig(weights={"rm": 0.0, "verifier": 1.0})
    with TestClient(create_app(config, None)) as test_client:
        right, wrong = score(
            test_client,
            [
                {"prompt": PROMPT, "response": RIGHT, "reference": MATH_REF},
                {"prompt": PROMPT, "response": WRONG, "reference": MATH_REF},
            ],
        )
    assert (right["reward"], wrong["reward"]) == (1.0, 0.0)
    assert right["components"]["rm"] is None


def test_config_validation():
    assert parse_weights('{"rm": 0.5, "verifier": 2}') == {"rm": 0.5, "verifier": 2.0}
    with pytest.raises(ConfigError, match=r"exactly the keys \['rm', 'verifier'\]"):
        parse_weights({"rm": 1.0})
    assert parse_weights({"rm": 1, "verifier": 1, "helpfulness": 0.5}, criteria=["helpfulness"])["helpfulness"] == 0.5
    with pytest.raises(ConfigError, match="helpfulness"):
        ServeConfig(model_path="x", criterion_models={"helpfulness": "y"})  # no weight for the criterion
    with pytest.raises(ConfigError, match="unknown criterion 'wit'"):
        ServeConfig(model_path="x", criterion_models={"wit": "y"}, weights={"rm": 1, "verifier": 1, "wit": 1})
    with pytest.raises(ConfigError, match="max_pending_items"):
        ServeConfig(model_path="x", max_pending_items=10, max_items_per_request=20)
    with pytest.raises(ConfigError, match="verifier_timeout_s"):
        ServeConfig(model_path="x", verifier_timeout_s=0)
    with pytest.raises(ConfigError, match="model_path"):
        ServeConfig(model_path=None)
    with pytest.raises(ConfigError, match="max_batch_size"):
        ServeConfig(model_path="x", max_batch_size=0)
    assert ServeConfig(model_path="x").host == "127.0.0.1"


def test_criterion_models_and_length_penalty_combine_with_their_weights():
    """Fixed logits per model: every component and the total are hand-computable."""
    config = ServeConfig(
        model_path="general",
        criterion_models={"helpfulness": "h", "conciseness": "c"},
        weights={"rm": 0.2, "verifier": 1.0, "helpfulness": 0.5, "conciseness": 0.3},
        length_penalty=0.1,
        length_penalty_free_chars=10,
    )

    def constant(logit: float):
        return lambda pairs: [logit] * len(pairs)

    scorers = {"helpfulness": constant(1.0), "conciseness": constant(-2.0)}
    app = create_app(config, constant(0.5), criterion_scorers=scorers)
    with TestClient(app) as test_client:
        short, long = score(
            test_client,
            [
                {"prompt": PROMPT, "response": RIGHT[:10], "reference": None},
                {"prompt": PROMPT, "response": "x" * 2010, "reference": MATH_REF},
            ],
        )
        health = test_client.get("/healthz").json()
    assert health["criteria"] == ["conciseness", "helpfulness"]
    expected_criteria = {"helpfulness": math.tanh(1.0), "conciseness": math.tanh(-2.0)}
    assert short["components"]["criteria"] == pytest.approx(expected_criteria)
    assert short["components"]["length_penalty"] == 0.0  # 10 characters: within the free length
    expected = 0.2 * math.tanh(0.5) + 0.5 * math.tanh(1.0) + 0.3 * math.tanh(-2.0)
    assert short["reward"] == pytest.approx(expected)
    assert long["components"]["length_penalty"] == pytest.approx(-0.1 * 2000 / 1000)
    assert long["components"]["verifier"]["passed"] is False
    assert long["reward"] == pytest.approx(expected - 0.2)
    with pytest.raises(ConfigError, match="criterion_models"):
        create_app(config, constant(0.5), criterion_scorers={"helpfulness": constant(1.0)})


@pytest.mark.parametrize("name", ["serve_tiny", "serve_smoke", "serve_criteria"])
def test_shipped_serve_configs_parse(name):
    from pathlib import Path

    from stagekit.config import parse_config

    path = Path(__file__).resolve().parents[2] / "configs" / "reward" / f"{name}.yaml"
    config = parse_config(ServeConfig, ["--config", str(path)])
    assert config.host == "127.0.0.1" and config.cache_size > 0 and config.verifier_timeout_s > 0
    assert set(config.weights) == {"rm", "verifier", *config.criterion_models}
