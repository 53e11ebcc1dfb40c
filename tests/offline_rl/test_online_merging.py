"""The Online Merging Optimizer: one step against numbers derived by hand, DARE's keep/drop law, resume state
(the sharded run against the unsharded one: test_online_merging_sharded.py)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from offline_rl.online_merging import OnlineMergingAdamW, magnitude_mask_


def _one_step(p0, g, tau, **kw) -> tuple[torch.Tensor, OnlineMergingAdamW]:
    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = OnlineMergingAdamW([p], ref_deltas={p: torch.tensor(tau, dtype=torch.float64)}, **kw)
    p.grad = torch.tensor(g, dtype=torch.float64)
    opt.step()
    return p.detach(), opt


def test_ondare_step_by_hand():
    # reserve_p = 1: DARE keeps everything, so the step is deterministic.
    # First Adam step: m = (1 - b1) g, v = (1 - b2) g^2, step_size = lr * sqrt(1 - b2) / (1 - b1), hence
    #   delta = -lr * sqrt(1 - b2) * g / (sqrt(1 - b2) |g| + eps) = -lr * g / (|g| + eps / sqrt(1 - b2)).
    # With lr = 0.1, b1 = 0.9, b2 = 0.999 (sqrt(1 - b2) = 0.0316227766), eps = 1e-8 and
    # g = [0.5, -1, 0, 2]:  delta = [-0.1 * 0.5 / (0.5 + e), +0.1 * 1 / (1 + e), 0, -0.1 * 2 / (2 + e)],
    # e = 1e-8 / 0.0316227766 = 3.16227766e-7, i.e. delta ~= [-0.1, 0.1, 0, -0.1] (a zero gradient gives 0).
    e = 1e-8 / math.sqrt(1 - 0.999)
    delta = [-0.1 * 0.5 / (0.5 + e), 0.1 * 1.0 / (1.0 + e), 0.0, -0.1 * 2.0 / (2.0 + e)]
    # tau_ref = [0.2, -0.4, 2.0, 0.1] is clipped to clip_val = 1: [0.2, -0.4, 1.0, 0.1].
    tau = [0.2, -0.4, 1.0, 0.1]
    # theta' = theta + alpha * tau + (1 - alpha) * delta with alpha = 0.25, then weight decay
    # theta'' = theta' * (1 - lr * wd) = theta' * (1 - 0.1 * 0.1) = 0.99 theta'.
    p0 = [1.0, -2.0, 0.5, 0.0]
    expected = [(p0[i] + 0.25 * tau[i] + 0.75 * delta[i]) * 0.99 for i in range(4)]
    # ~= [(1 + 0.05 - 0.075) * 0.99, (-2 - 0.1 + 0.075) * 0.99, (0.5 + 0.25) * 0.99, (0.025 - 0.075) * 0.99]
    #  = [0.96525, -2.00475, 0.7425, -0.0495]
    assert expected == pytest.approx([0.96525, -2.00475, 0.7425, -0.0495], abs=1e-7)
    got, _ = _one_step(
        p0, [0.5, -1.0, 0.0, 2.0], [0.2, -0.4, 2.0, 0.1],
        lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, variant="ondare", reserve_p=1.0, alpha=0.25,
    )  # fmt: skip
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)


def test_onties_step_by_hand():
    # b1 = 0.5, b2 = 0.75, eps = 1: m = 0.5 g, v = 0.25 g^2, denom = 0.5 |g| + 1, step_size = 0.1 * 0.5 / 0.5 = 0.1,
    # so delta = -0.1 * 0.5 g / (0.5 |g| + 1) = -0.1 g / (|g| + 2).
    # g = [2, -6, 0.5, -1]: |g| + 2 = [4, 8, 2.5, 3], delta = [-0.05, 0.075, -0.02, 0.0333...].
    # reserve_p = 0.5 of 4 entries -> k = 2 largest magnitudes kept: delta -> [-0.05, 0.075, 0, 0].
    # tau_ref = [0.3, 0.1, -0.4, 0.02] -> its 2 largest: [0.3, 0, -0.4, 0] (trimmed once, at construction).
    # Elected sign of tau + delta = [0.25, 0.075, -0.4, 0] -> [+, +, -, +] (>= 0 counts as +).
    # tau entries that agree: [0.3, 0, -0.4, 0];  delta entries that agree: [0 (- vs +), 0.075, 0, 0].
    # alpha = 0.5: theta' = 1 + 0.5 * [0.3, 0, -0.4, 0] + 0.5 * [0, 0.075, 0, 0] = [1.15, 1.0375, 0.8, 1.0].
    got, opt = _one_step(
        [1.0, 1.0, 1.0, 1.0], [2.0, -6.0, 0.5, -1.0], [0.3, 0.1, -0.4, 0.02],
        lr=0.1, betas=(0.5, 0.75), eps=1.0, variant="onties", reserve_p=0.5, alpha=0.5,
    )  # fmt: skip
    torch.testing.assert_close(got, torch.tensor([1.15, 1.0375, 0.8, 1.0], dtype=torch.float64), rtol=0, atol=1e-12)
    (state,) = opt.state.values()
    torch.testing.assert_close(state["tau_ref"], torch.tensor([0.3, 0.0, -0.4, 0.0], dtype=torch.float64))


def test_magnitude_mask_keeps_the_largest():
    t = torch.tensor([[0.1, -5.0], [3.0, -0.2]])
    assert magnitude_mask_(t.clone(), 0.5).tolist() == [[0.0, -5.0], [3.0, 0.0]]
    assert magnitude_mask_(t.clone(), 0.1).tolist() == t.tolist()  # k = int(0.4) = 0: left whole (authors' rule)


def test_ondare_drops_and_rescales_each_entry():
    """With reserve_p = 0.5 every update entry is either 0 or delta / 0.5, about half each; same law for tau_ref."""
    torch.manual_seed(0)
    n, alpha, lr = 20_000, 0.1, 0.01
    g = torch.randn(n, dtype=torch.float64)
    tau = 0.5 * torch.randn(n, dtype=torch.float64)
    p = torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))
    opt = OnlineMergingAdamW([p], ref_deltas={p: tau}, lr=lr, eps=0.0, variant="ondare", reserve_p=0.5, alpha=alpha)
    p.grad = g
    opt.step()
    kept_tau = opt.state[p]["tau_ref"]
    tau_hand = (tau / 0.5).clamp(-1.0, 1.0)  # kept entries are divided by reserve_p, then clipped to clip_val = 1
    tau_kept = kept_tau != 0
    torch.testing.assert_close(kept_tau[tau_kept], tau_hand[tau_kept])
    rl_part = (p.detach() - alpha * kept_tau) / (1 - alpha)  # the sparsified AdamW delta
    delta_hand = -lr * g.sign() / 0.5  # first step with eps = 0: -lr * sign(g), kept entries / reserve_p
    delta_kept = rl_part.abs() > lr
    torch.testing.assert_close(rl_part[delta_kept], delta_hand[delta_kept])
    torch.testing.assert_close(rl_part[~delta_kept], torch.zeros_like(rl_part[~delta_kept]), rtol=0, atol=1e-15)
    for frac in (tau_kept.double().mean().item(), delta_kept.double().mean().item()):
        assert abs(frac - 0.5) < 0.02  # binomial sd = 0.0035


def test_state_dict_round_trip_continues_identically():
    """tau_ref, the moments and the step count (which keys the counter-based DARE draw) live in the optimizer state:
    a reloaded optimizer takes the same next step, without any RNG state."""
    torch.manual_seed(0)
    p_a = torch.nn.Parameter(torch.randn(64))
    tau = torch.randn(64) * 0.01
    opt_a = OnlineMergingAdamW([p_a], ref_deltas={p_a: tau}, lr=1e-2, reserve_p=0.3, alpha=0.1)
    p_a.grad = torch.randn(64)
    opt_a.step()
    p_b = torch.nn.Parameter(p_a.detach().clone())
    opt_b = OnlineMergingAdamW([p_b], ref_deltas={p_b: torch.zeros(64)}, lr=1e-2, reserve_p=0.3, alpha=0.1)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # as torch.save + torch.load of optimizer.pt
    grad = torch.randn(64)
    p_a.grad, p_b.grad = grad.clone(), grad.clone()
    opt_a.step()
    torch.manual_seed(123)  # the global RNG plays no part in the masks
    opt_b.step()
    torch.testing.assert_close(p_a, p_b, rtol=0, atol=0)


def test_bad_settings_are_refused():
    p = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="variant"):
        OnlineMergingAdamW([p], ref_deltas={p: torch.zeros(3)}, variant="ties")
    with pytest.raises(ValueError, match="reserve_p"):
        OnlineMergingAdamW([p], ref_deltas={p: torch.zeros(3)}, reserve_p=0.0)
    with pytest.raises(ValueError, match="shape"):
        OnlineMergingAdamW([p], ref_deltas={p: torch.zeros(4)})
    with pytest.raises(ValueError, match="no reference delta"):
        OnlineMergingAdamW([p], ref_deltas={})
