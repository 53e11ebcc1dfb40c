"""Reward combination: hand-derived numbers."""

import math

import pytest

from reward.combine import bounded_rm_score, combine_components, length_penalty


def test_bounded_rm_score_is_tanh_of_shifted_scaled_logit():
    assert bounded_rm_score(0.0) == 0.0
    assert bounded_rm_score(1.0) == pytest.approx(0.7615941559557649)
    assert bounded_rm_score(-1.0) == pytest.approx(-0.7615941559557649)
    assert bounded_rm_score(3.0, shift=1.0, scale=2.0) == pytest.approx(math.tanh(1.0))
    assert bounded_rm_score(1e6) == 1.0 and bounded_rm_score(-1e6) == -1.0  # bounded
    with pytest.raises(ValueError, match="rm_scale"):
        bounded_rm_score(1.0, scale=0.0)


def test_bounded_rm_score_keeps_the_ranking():
    logits = [-2.5, -0.1, 0.0, 0.3, 4.0]
    scores = [bounded_rm_score(x) for x in logits]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)


def test_combine_components_weights_every_present_component():
    weights = {"rm": 0.2, "verifier": 1.0, "helpfulness": 0.5, "length_penalty": 1.0}
    scores = {"rm": 0.5, "verifier": 1.0, "helpfulness": -0.4, "length_penalty": -0.3}
    assert combine_components(scores, weights) == pytest.approx(0.1 + 1.0 - 0.2 - 0.3)
    assert combine_components({"rm": None, "verifier": 0.0, "helpfulness": 1.0}, weights) == pytest.approx(0.5)
    with pytest.raises(KeyError, match="truthfulness"):
        combine_components({"truthfulness": 0.1}, weights)  # a component without a weight is loud


def test_length_penalty_is_linear_beyond_the_free_length():
    assert length_penalty(500, per_1k_chars=0.2, free_chars=1000) == 0.0
    assert length_penalty(1000, per_1k_chars=0.2, free_chars=1000) == 0.0
    assert length_penalty(3500, per_1k_chars=0.2, free_chars=1000) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="per_1k_chars"):
        length_penalty(10, per_1k_chars=-1.0, free_chars=0)
