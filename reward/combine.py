"""How the reward service turns a reward-model logit and a verifier result into one scalar reward.

    reward = weights.rm * tanh((logit - rm_shift) / rm_scale) + weights.verifier * verifier_score

A Bradley-Terry reward model's logit is only defined up to a constant and is unbounded, while the rule-based
verifiers score in [0, 1]. The tanh keeps the model term in (-1, 1), so with the default weights (rm 0.2,
verifier 1.0; our choice, not the report's) a verified answer always outranks an unverified one however much
the reward model likes the latter, and the model term orders responses the verifier cannot tell apart.
`rm_shift` recentres logits of a model trained without `center_rewards_coefficient`; `rm_scale` sets how many
logits it takes to saturate. A component that is absent (no reference, or no reward model) contributes 0.

With per-criterion reward models (the report's six criteria, `CRITERIA`) every criterion is one more bounded
component with its own weight (`combine_components`), and an optional length penalty is added unweighted:

    reward = sum_k weights[k] * score_k  -  length_penalty * max(0, chars - free_chars) / 1000

With a judge model (`judge:` in the service config, reward/judge.py) one more component joins the sum with the
weight `judge.weight`: the judge's integer grade N on its 1-10 rubric scale, mapped linearly to [0, 1] like the
verifier's score:

    judge_score = (N - 1) / 9                   (1 -> 0.0, 10 -> 1.0)
    reward = weights.rm * tanh((logit - rm_shift) / rm_scale) + sum_c weights[c] * tanh(...)_c
             + weights.verifier * verifier_score + judge.weight * judge_score  -  length penalty

A judge answer that is unparsable, late (`judge.timeout_s`) or failed is absent like a missing verifier: it adds
0, and the component says why (status unparsable | timeout | error; counted in /metrics).
"""

import math
from collections.abc import Mapping

# The reward model's criteria in the Qwen2.5 report (section 4.4, RECIPE.md): rows may carry one as `criterion`.
CRITERIA = ("truthfulness", "helpfulness", "conciseness", "relevance", "harmlessness", "debiasing")


def bounded_rm_score(logit: float, *, shift: float = 0.0, scale: float = 1.0) -> float:
    """Map a raw reward-model logit to (-1, 1): tanh((logit - shift) / scale). Monotonic, so it keeps the ranking."""
    if scale <= 0:
        raise ValueError(f"rm_scale must be > 0, got {scale}")
    return math.tanh((logit - shift) / scale)


def combine_components(scores: Mapping[str, float | None], weights: Mapping[str, float]) -> float:
    """sum_k weights[k] * scores[k] over the components present (None = absent, adds 0); KeyError if a present
    component has no weight, so a misconfigured criterion is loud rather than silently ignored."""
    return sum(weights[name] * score for name, score in scores.items() if score is not None)


def length_penalty(num_chars: int, *, per_1k_chars: float, free_chars: int) -> float:
    """-per_1k_chars * max(0, num_chars - free_chars) / 1000: 0 up to `free_chars`, then linear in the excess."""
    if per_1k_chars < 0 or free_chars < 0:
        raise ValueError(f"length penalty needs per_1k_chars, free_chars >= 0, got {per_1k_chars}, {free_chars}")
    return -per_1k_chars * max(0, num_chars - free_chars) / 1000.0
