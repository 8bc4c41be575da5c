"""Per-keyword CVR calibration (adbot.bidding.calibration) and the ``calibrated:`` policies."""

from __future__ import annotations

import numpy as np
import pytest
from bidding_helpers import quick, quick_week

from adbot.bidding import make_policy, register_policy_factory, run_episode
from adbot.bidding.base import bids_from_alpha
from adbot.bidding.calibration import (
    MATCH_SCALES,
    CalibratedPolicy,
    KeywordCalibration,
    spend_matched_bids,
)
from adbot.errors import InvalidInput
from adbot.market import MarketSimulator, load_scenario


def _played(steps: int, **market: object) -> MarketSimulator:
    """A quick scenario's simulator after ``steps`` steps at alpha 1."""
    sim = MarketSimulator(quick(**market), 3)
    for _ in range(steps):
        sim.step(bids_from_alpha(1.0, sim))
    return sim


def test_factors_are_the_gamma_poisson_posterior_mean() -> None:
    sim = MarketSimulator(quick(), 1)
    calibration = KeywordCalibration(sim.pcvr, prior_conversions=8.0)
    assert np.array_equal(calibration.factors(), np.ones(sim.n_keywords))
    clicks = np.zeros(sim.n_keywords)
    conversions = np.zeros(sim.n_keywords)
    for _ in range(6):
        outcome = sim.step(bids_from_alpha(2.0, sim))
        calibration.record(outcome)
        clicks += outcome.clicks
        conversions += outcome.conversions
    assert conversions.sum() > 0  # the check below has evidence to weigh
    expected = (8.0 + conversions) / (8.0 + clicks * sim.pcvr)
    np.testing.assert_allclose(calibration.factors(), expected, rtol=1e-12)
    assert np.all(calibration.factors()[clicks == 0] == 1.0)  # never clicked: unchanged


def test_factors_learn_each_keywords_true_cvr() -> None:
    """After a long episode with plenty of clicks, pcvr x factor is closer to the true CVR
    than pcvr alone, where the clicks are (a 60 % prediction error to learn)."""
    scenario = quick_week(daily_budget=10_000.0)
    data = scenario.model_dump(mode="json")
    data["horizon"]["days"] = 6
    data["market"].update({"pcvr_noise": 0.6, "daily_queries": 30_000})
    sim = MarketSimulator(load_scenario(data), 0)
    calibration = KeywordCalibration(sim.pcvr)
    clicks = np.zeros(sim.n_keywords)
    while not sim.done:
        outcome = sim.step(bids_from_alpha(3.0, sim))
        calibration.record(outcome)
        clicks += outcome.clicks
    true_cvr = sim.market.universe.true_cvr
    before = np.log(sim.pcvr / true_cvr)
    after = np.log(sim.pcvr * calibration.factors() / true_cvr)
    weights = clicks / clicks.sum()
    assert float(weights @ after**2) < 0.5 * float(weights @ before**2)


def test_corrected_bids_cost_what_the_base_bids_would_have() -> None:
    sim = _played(5)
    bids = bids_from_alpha(1.0, sim)
    factors = np.exp(np.random.default_rng(0).normal(0.3, 0.4, sim.n_keywords))
    corrected, scale = spend_matched_bids(sim, bids, factors)
    assert MATCH_SCALES[0] < scale < MATCH_SCALES[-1]
    np.testing.assert_allclose(
        corrected, np.clip(bids * factors * scale, sim.min_bid, sim.max_bid), rtol=1e-12
    )
    costs = sim.bid_landscape(sim.step_index - 1, np.vstack([bids, corrected])).cost
    # Within the grid's interpolation: a step's cost is a step function of the bids.
    assert costs[1] == pytest.approx(costs[0], rel=0.03)
    # No correction: the base bids themselves (the scale found is 1 up to interpolation).
    same, unit = spend_matched_bids(sim, bids, np.ones(sim.n_keywords))
    assert unit == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(same, bids, rtol=1e-3)


def test_matching_keeps_left_out_keywords_out_and_falls_back_without_evidence() -> None:
    sim = MarketSimulator(quick(), 2)
    bids = bids_from_alpha(1.0, sim)
    bids[:3] = 0.0
    factors = np.full(sim.n_keywords, 1.5)
    first, scale = spend_matched_bids(sim, bids, factors, fallback=0.8)
    assert scale == 0.8  # nothing played yet: the fallback
    assert np.all(first[:3] == 0.0) and np.all(first[3:] > 0)
    sim.step(bids)
    nothing = np.zeros(sim.n_keywords)  # would cost nothing: the fallback again
    zeros, scale = spend_matched_bids(sim, nothing, factors, fallback=0.9)
    assert scale == 0.9 and np.all(zeros == 0.0)


def test_calibration_wins_conversions_at_the_same_spend() -> None:
    """With a large prediction error, ``calibrated:fixed`` buys more conversions than
    ``fixed`` for about the same money, over a few episodes."""
    scenario = quick_week(daily_budget=10_000.0)
    data = scenario.model_dump(mode="json")
    data["horizon"]["days"] = 4
    data["market"].update({"pcvr_noise": 1.0, "daily_queries": 20_000})
    scenario = load_scenario(data)
    base = [run_episode(scenario, s, make_policy("fixed")).metrics for s in range(3)]
    calibrated = [
        run_episode(scenario, s, make_policy("calibrated:fixed")).metrics for s in range(3)
    ]
    base_cost = sum(m.cost for m in base)
    cost = sum(m.cost for m in calibrated)
    assert cost == pytest.approx(base_cost, rel=0.05)
    per_cost = sum(m.conversions for m in calibrated) / cost
    assert per_cost > 1.1 * sum(m.conversions for m in base) / base_cost  # about 1.2 here


def test_calibrated_policies_from_the_registry() -> None:
    policy = make_policy("calibrated:onlinelp")
    assert isinstance(policy, CalibratedPolicy) and policy.name == "calibrated:onlinelp"
    result = run_episode(quick(), 0, policy)
    assert result.metrics.cost > 0 and np.isfinite(result.alpha).all()  # onlinelp's alpha
    with pytest.raises(InvalidInput, match="needs a policy to wrap"):
        make_policy("calibrated:")
    with pytest.raises(InvalidInput, match="policy calibrated:pid is calibrated already"):
        make_policy("calibrated:calibrated:pid")
    with pytest.raises(InvalidInput, match="unknown policy 'nope'"):
        make_policy("calibrated:nope")
    with pytest.raises(InvalidInput, match="cannot register"):
        register_policy_factory("calibrated", lambda arg: make_policy("pid"))
    with pytest.raises(InvalidInput, match="positive finite number of conversions, got nan"):
        CalibratedPolicy(make_policy("pid"), float("nan"))


class _NanBidder:
    name = "nan-bidder"

    def reset(self, sim: MarketSimulator) -> None:
        pass

    def bids(self, sim: MarketSimulator) -> np.ndarray:
        return np.full(sim.n_keywords, np.nan)

    def observe(self, outcome: object) -> None:
        pass


def test_bad_bids_or_order_are_named() -> None:
    policy = CalibratedPolicy(make_policy("pid"))
    sim = MarketSimulator(quick(), 0)
    with pytest.raises(InvalidInput, match="reset the policy before asking for bids"):
        policy.bids(sim)
    nan = CalibratedPolicy(_NanBidder())
    nan.reset(sim)
    with pytest.raises(InvalidInput, match="bids must be finite"):
        nan.bids(sim)
