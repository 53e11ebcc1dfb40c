"""Reward combination: hand-derived numbers."""

import math

import pytest

from reward.combine import RewardWeights, bounded_rm_score, combine_reward


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


def test_combine_reward_is_the_weighted_sum_and_absent_components_add_nothing():
    weights = RewardWeights(rm=0.2, verifier=1.0)
    assert combine_reward(0.5, 1.0, weights) == pytest.approx(1.1)
    assert combine_reward(-0.5, 0.0, weights) == pytest.approx(-0.1)
    assert combine_reward(0.5, None, weights) == pytest.approx(0.1)
    assert combine_reward(None, 1.0, weights) == pytest.approx(1.0)
    assert combine_reward(None, None, weights) == 0.0
    # with the default weights a verified answer outranks any unverified one
    assert combine_reward(-0.999, 1.0, weights) > combine_reward(0.999, 0.0, weights)
