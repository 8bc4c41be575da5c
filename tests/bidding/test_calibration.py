"""Keyword-level bidding (adbot.bidding.calibration): CVR calibration, the allocation on each
keyword's landscape, and the ``calibrated:`` policies."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from bidding_helpers import quick, quick_week

from adbot.bidding import make_policy, register_policy_factory, run_episode
from adbot.bidding.base import bids_from_alpha
from adbot.bidding.calibration import (
    ALLOCATION_GRID,
    PRIOR_FACTOR_LIMIT,
    CalibratedPolicy,
    KeywordCalibration,
    KeywordLandscapes,
    prior_factor_means,
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
    means = np.linspace(0.8, 1.2, sim.n_keywords)
    calibration = KeywordCalibration(sim.pcvr, prior_conversions=8.0, prior_means=means)
    assert np.array_equal(calibration.factors(), means)
    clicks = np.zeros(sim.n_keywords)
    conversions = np.zeros(sim.n_keywords)
    for _ in range(6):
        outcome = sim.step(bids_from_alpha(2.0, sim))
        calibration.record(outcome)
        clicks += outcome.clicks
        conversions += outcome.conversions
    assert conversions.sum() > 0  # the check below has evidence to weigh
    expected = (8.0 * means + conversions) / (8.0 + clicks * sim.pcvr)
    np.testing.assert_allclose(calibration.factors(), expected, rtol=1e-12)
    never = clicks == 0
    assert never.any() and np.array_equal(calibration.factors()[never], means[never])


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


def test_prior_means_are_the_models_expected_error_given_the_prediction() -> None:
    """Against a simulation of the model (true CVRs lognormal, predictions with a mean-one
    lognormal error): ``E[true / predicted]`` among keywords predicted alike."""
    market = quick(cvr={"mean": 0.05, "sd_log": 0.6}, pcvr_noise=0.3).market
    rng = np.random.default_rng(7)
    n = 2_000_000
    true = 0.05 * np.exp(rng.normal(-(0.6**2) / 2, 0.6, n))
    predicted = true * np.exp(rng.normal(-(0.3**2) / 2, 0.3, n))
    edges = np.quantile(predicted, np.linspace(0.02, 0.98, 9))
    for low, high in itertools.pairwise(edges):
        inside = (predicted >= low) & (predicted < high)
        simulated = float(np.mean(true[inside] / predicted[inside]))
        middle = np.sqrt(low * high)
        model = float(prior_factor_means(market, np.array([middle]))[0])
        assert model == pytest.approx(simulated, rel=0.03), (low, high)
    # Predicted high: over-predicted on average; low: under-predicted.
    ends = prior_factor_means(market, np.array([edges[0], edges[-1]]))
    assert ends[0] > 1.05 and ends[1] < 0.95
    exact = quick(pcvr_noise=0.0).market
    assert np.array_equal(prior_factor_means(exact, np.array([1e-9, 0.05, 1.0])), np.ones(3))
    extreme = prior_factor_means(market, np.array([0.0, 1e-300, 1.0]))
    assert np.all(np.isfinite(extreme)) and extreme[0] == pytest.approx(PRIOR_FACTOR_LIMIT)


def _landscapes(steps: int, **market: object) -> tuple[MarketSimulator, KeywordLandscapes]:
    sim = _played(steps, **market)
    landscapes = KeywordLandscapes(sim)
    landscapes.update(sim)
    return sim, landscapes


def _dense(sim: MarketSimulator, index: int) -> np.ndarray:
    """Step ``index``'s cost landscape with a row for every keyword (0 where not queried)."""
    keywords, landscape = sim.keyword_landscape(index, ALLOCATION_GRID)
    dense = np.zeros((sim.n_keywords, ALLOCATION_GRID.size))
    dense[keywords] = landscape.cost
    return dense


def test_landscapes_sum_the_played_steps_halving_each_day() -> None:
    sim, landscapes = _landscapes(3, daily_queries=600)  # few queries: keywords join late
    decay = 0.5 ** (1 / sim.steps_per_day)
    expected = sum(decay ** (2 - i) * _dense(sim, i) for i in range(3))
    seen = np.flatnonzero(expected[:, -1] > 0)
    assert 0 < seen.size < sim.n_keywords  # some keywords never queried: no row
    np.testing.assert_array_equal(landscapes.keywords, seen)
    np.testing.assert_allclose(landscapes.cost, expected[seen], rtol=1e-12)
    landscapes.update(sim)  # nothing new played: unchanged
    np.testing.assert_allclose(landscapes.cost, expected[seen], rtol=1e-12)


def test_allocation_maximises_each_keywords_return_at_the_policys_spend() -> None:
    sim, landscapes = _landscapes(6)
    bids = bids_from_alpha(1.0, sim)
    willingness = bids * np.exp(np.random.default_rng(0).normal(0.0, 0.3, sim.n_keywords))
    allocated, lam = landscapes.allocate(willingness, bids)
    known = landscapes.keywords
    assert known.size > 5 and 1 / 16 < lam < 16
    # Each keyword seen bids the grid point that maximises lam x worth x clicks - cost.
    gain = lam * willingness[known, None] * landscapes.clicks - landscapes.cost
    index = np.argmax(gain, axis=1)
    best = np.clip(ALLOCATION_GRID[index] * sim.keyword_values[known], sim.min_bid, sim.max_bid)
    np.testing.assert_allclose(allocated[known], best, rtol=1e-12)
    # Together they cost, on the landscapes, what the policy's bids would have.
    spent = landscapes.cost[np.arange(known.size), index].sum()
    base = sum(
        np.interp(np.log(bids[k] / sim.keyword_values[k]), np.log(ALLOCATION_GRID), curve)
        for k, curve in zip(known, landscapes.cost, strict=True)
    )
    assert spent == pytest.approx(base, rel=0.05)
    # A keyword with too few auctions seen bids its worth; one left out stays out.
    landscapes.clicks[0] *= 0.5 / landscapes.clicks[0, -1]  # half an expected click at most
    bids[known[1]] = 0.0
    allocated, lam = landscapes.allocate(willingness, bids)
    assert allocated[known[0]] == willingness[known[0]] and allocated[known[1]] == 0.0


def test_a_jump_of_the_argmax_bids_where_the_policys_spend_is_reached() -> None:
    """A landscape that is not convex (a slot won only from some bid on): the argmax of
    ``lambda x worth x clicks - cost`` jumps over the bids between, and its least lambda cost
    twice what the policy's bid would have. The keyword that jumps bids the least grid point
    that reaches the policy's spend instead: with one keyword, the policy's own bid."""
    sim, landscapes = _landscapes(2)
    n = ALLOCATION_GRID.size
    # From grid point 81 to 120 the same clicks at a rising price, then twice the clicks.
    clicks = np.interp(np.arange(n), [0, 80, 81, 120, 121, n - 1], [0, 2, 10, 10, 20, 22.0])
    price = np.interp(np.arange(n), [0, 80, 81, n - 1], [0.1, 0.5, 0.9, 3.0])
    landscapes.keywords = landscapes.keywords[:1]
    landscapes.clicks, landscapes.cost = clicks[None, :], (clicks * price)[None, :]
    keyword = int(landscapes.keywords[0])
    value = sim.keyword_values[keyword]
    bids = np.zeros(sim.n_keywords)
    bids[keyword] = ALLOCATION_GRID[100] * value  # inside the stretch the argmax jumps over
    allocated, _ = landscapes.allocate(bids.copy(), bids)
    point = int(np.argmin(np.abs(ALLOCATION_GRID * value - allocated[keyword])))
    assert point == 100  # was the hull's next point above the stretch, costing twice as much
    assert allocated[keyword] == pytest.approx(bids[keyword], rel=1e-12)


def test_a_campaign_of_one_keyword_spends_as_its_policy() -> None:
    """One keyword among rivals with budgets (a validation draw given one keyword, one day):
    calibrated per keyword, ``fixed:0.3`` bid up to 2.4 times its own bids and spent 110
    where its bids spend 12; played through ``calibrated:prior`` on three days the draw scored
    half of the plan's own bids. With one keyword there is nothing to spread over: the
    policy's bids stand, to the grid's 4 %."""
    scenario = load_scenario(
        {
            "name": "one-keyword",
            "seed": 78895864,
            "horizon": {"days": 1, "steps_per_day": 24, "start_weekday": 2},
            "campaign": {
                "daily_budget": 367.0,
                "target_cpa": 18.4,
                "conversion_value": {"mean": 20.8, "sd_log": 0.37},
                "keywords": 1,
                "quality_score": {"mean": 7.55, "sd": 1.26},
            },
            "market": {
                "daily_queries": 6000.0,
                "volume_zipf": 1.4,
                "hourly_profile": "b2b",
                "weekday_profile": [1.0] * 7,
                "competitors": 21,
                "participation": 0.93,
                "competitor_cpc": {"mean": 0.874, "sd_log": 0.248},
                "competitor_quality": {"mean": 7.38, "sd": 1.93},
                "competitor_budget": {"mean": 60.8, "sd_log": 0.5},
                "slots": 5,
                "position_ctr": [0.080, 0.067, 0.057, 0.037, 0.029],
                "cvr": {"mean": 0.063, "sd_log": 0.35},
                "pcvr_noise": 0.16,
                "bid_noise": 0.13,
                "reserve_cpc": 0.0445,
            },
        }
    )
    for seed in range(2):
        plain = run_episode(scenario, seed, make_policy("fixed:0.3"), keyword_trace=True)
        calibrated = run_episode(
            scenario, seed, make_policy("calibrated:fixed:0.3"), keyword_trace=True
        )
        assert plain.keywords is not None and calibrated.keywords is not None
        assert calibrated.metrics.cost == pytest.approx(plain.metrics.cost, rel=0.1)
        ratio = calibrated.keywords.bids[:, 0] / plain.keywords.bids[:, 0]
        assert ratio.max() < 1.05  # was 2.2-2.4


def test_an_account_of_thin_keywords_keeps_its_conversions() -> None:
    """20,000 keywords and a few thousand queries a day: no keyword is seen often enough for
    its own landscape, and the policy's bids stand (with the prior's correction)."""
    scenario = quick(volume_zipf=0.3, pcvr_noise=0.0)
    data = scenario.model_dump(mode="json")
    data["campaign"]["keywords"] = 20_000
    scenario = load_scenario(data)
    base = [run_episode(scenario, s, make_policy("fixed")).metrics for s in range(2)]
    calibrated = [
        run_episode(scenario, s, make_policy("calibrated:fixed")).metrics for s in range(2)
    ]
    assert sum(m.cost for m in calibrated) == pytest.approx(sum(m.cost for m in base), rel=0.01)
    assert sum(m.conversions for m in calibrated) == sum(m.conversions for m in base)


def test_one_slot_allocation_never_bids_above_the_click_worth() -> None:
    """With one slot the auction is a second-price one: a bid above what a click is worth
    only adds auctions that cost more than they bring, so no keyword bids above it (within
    the grid's 4 %); with several slots the generalised second price makes shading pay."""
    sim, landscapes = _landscapes(8, slots=1, position_ctr=[0.09], daily_queries=30_000)
    bids = bids_from_alpha(1.0, sim)
    allocated, lam = landscapes.allocate(bids, bids)
    known = landscapes.keywords
    assert known.size > 20
    assert np.all(allocated[known] <= lam * bids[known] * 1.05)
    assert np.median(allocated[known] / (lam * bids[known])) > 0.95  # mostly the worth itself
    sim, landscapes = _landscapes(8, daily_queries=30_000)  # four slots
    bids = bids_from_alpha(1.0, sim)
    allocated, lam = landscapes.allocate(bids, bids)
    known = landscapes.keywords
    assert np.median(allocated[known] / (lam * bids[known])) < 0.9


def test_bids_the_policy_wanted_above_max_bid_stay_at_max_bid() -> None:
    """A policy whose bids max_bid clips would pay more: each keyword's worth is the bid it
    wanted, not max_bid. Taken at max_bid, the allocation bid about half the keywords below
    it (their calibration factors under 1), and no keyword could spend the difference."""
    data = quick(daily_queries=60_000).model_dump(mode="json")
    data["campaign"].update(max_bid=1.0, daily_budget=100_000.0)
    sim = MarketSimulator(load_scenario(data), 0)
    policy = CalibratedPolicy(make_policy("fixed:5"))
    policy.reset(sim)
    for _ in range(6):
        bids = policy.bids(sim)
        bidder = policy._bidder
        assert bidder is not None
        wanted = 5.0 * sim.keyword_values * bidder.calibration.factors() * bidder.level
        sure = wanted >= 2.0 * sim.max_bid  # worth twice max_bid even after calibration
        assert sure.sum() >= 30
        # (Not all: where no rival bids between, the landscape buys the same clicks lower.)
        assert np.mean(bids[sure] == sim.max_bid) >= 0.9
        policy.observe(sim.step(bids))


def test_a_multiplier_past_float_range_bids_as_a_huge_one_without_warnings() -> None:
    """``fixed:1e308`` bids max_bid everywhere, as ``fixed:1e300`` does; calibrated, its
    wanted bids (alpha x v_k) overflowed, the worths became inf or NaN, and the argmax took
    the grid's lowest bid: 10 % of the spend, with numpy's overflow warnings on stderr."""
    scenario = quick_week()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = {
            alpha: run_episode(scenario, 3, make_policy(f"calibrated:fixed:{alpha}")).metrics
            for alpha in ("1e300", "1e308")
        }
        plain = run_episode(scenario, 3, make_policy("fixed:1e308")).metrics
    assert results["1e308"] == results["1e300"]
    assert plain == run_episode(scenario, 3, make_policy("fixed:1e300")).metrics


def test_keyword_values_of_zero_bid_without_warnings() -> None:
    """A CPA target of 5e-324 makes every keyword's value 0: the target spend divided the
    bids by it, with numpy's divide-by-zero warning on stderr."""
    data = quick_week(target_cpa=5e-324, min_bid=5e-324).model_dump(mode="json")
    data["market"].update(competitors=0, reserve_cpc=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = run_episode(load_scenario(data), 0, make_policy("calibrated:pid")).metrics
    assert np.isfinite(metrics.score)


def test_no_landscape_gives_no_lambda_and_the_policy_keeps_its_level() -> None:
    sim = MarketSimulator(quick(), 2)
    landscapes = KeywordLandscapes(sim)
    landscapes.update(sim)
    bids = bids_from_alpha(1.0, sim)
    allocated, lam = landscapes.allocate(bids, bids)
    assert np.isnan(lam) and np.all(allocated == 0.0)
    policy = CalibratedPolicy(make_policy("fixed"))
    policy.reset(sim)
    means = prior_factor_means(sim.scenario.market, sim.pcvr)
    first = policy.bids(sim)  # the prior's factors, their mean level taken out
    np.testing.assert_allclose(
        first, np.clip(bids * means / means.mean(), sim.min_bid, sim.max_bid), rtol=1e-12
    )


@pytest.mark.parametrize(
    ("change", "blind_step"),
    [({"steps_per_day": 1}, 0), ({"hourly_profile": [0.0] * 20 + [1.0] + [0.0] * 3}, 20)],
    ids=["one-step-a-day", "one-open-hour"],
)
def test_a_blind_step_that_is_most_of_its_day_plays_the_policys_bids(
    change: dict[str, object], blind_step: int
) -> None:
    """Without a landscape nothing keeps the spend of the bids spread by the prior factors:
    over a whole day of a tight budget they spent a fifth less than the policy's own and lost
    the day (`tight-budget` at one step a day: `calibrated:prior` 0.713 of the oracle, the
    plan alone 0.869). Such a step plays the policy's bids; a small first step (every
    standard draw's) still spreads them."""
    data = load_scenario("tight-budget").model_dump(mode="json")
    for key, value in change.items():
        data["horizon" if key == "steps_per_day" else "market"][key] = value
    sim = MarketSimulator(load_scenario(data), 0)
    policy = CalibratedPolicy(make_policy("fixed:0.5"))
    policy.reset(sim)
    while sim.step_index < blind_step:  # the closed hours before the only open one
        policy.observe(sim.step(policy.bids(sim)))
    assert sim.forecast_share_of_day(sim.step_index) == 1.0
    np.testing.assert_array_equal(policy.bids(sim), bids_from_alpha(0.5, sim))
    small = MarketSimulator(load_scenario("tight-budget"), 0)
    assert small.forecast_share_of_day(0) < 0.05
    policy.reset(small)
    assert not np.array_equal(policy.bids(small), bids_from_alpha(0.5, small))


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
