"""Ties with our ad are broken uniformly at random over every tied ad, also those past the
``slots`` competitor ranks a query keeps (``StepMarket.comp_tied``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from market_helpers import budget_limited, small_data, tied_budget_day

from adbot.market import MarketSimulator
from adbot.market.auction import placed_dense, placement, serve
from adbot.market.batch import evaluate_multipliers
from adbot.market.episode import (
    EpisodeMarket,
    _exhaust,
    _feed_counting,
    _serving_budgets,
    entry_jitter_table,
    episode_market,
)
from adbot.market.scenario import Scenario, load_scenario

EPISODES = range(3)


def _tie(slots: int, competitor_budget: float | None = None) -> Scenario:
    """Three competitors and our ad, all at ad rank 5 on one keyword, for ``slots`` slots."""
    market: dict[str, Any] = {
        "daily_queries": 20000, "volume_zipf": 1.0, "hourly_profile": "flat",
        "weekday_profile": [1, 1, 1, 1, 1, 1, 1], "competitors": 3, "participation": 1.0,
        "competitor_cpc": {"mean": 1.0, "sd_log": 0.0},
        "competitor_quality": {"mean": 5.0, "sd": 0.0}, "slots": slots,
        "position_ctr": [0.5] * slots, "cvr": {"mean": 0.05, "sd_log": 0.0}, "pcvr_noise": 0.0,
        "bid_noise": 0.0, "reserve_cpc": 0.05,
    }  # fmt: skip
    if competitor_budget is not None:
        market["competitor_budget"] = {"mean": competitor_budget, "sd_log": 0.0}
    campaign = {
        "daily_budget": 1e6, "target_cpa": 30.0, "conversion_value": {"mean": 80.0, "sd_log": 0.0},
        "keywords": 1, "quality_score": {"mean": 5.0, "sd": 0.0}, "min_bid": 1.0, "max_bid": 1.0,
    }  # fmt: skip
    horizon = {"days": 1, "steps_per_day": 1}
    return load_scenario(
        {"name": "tie", "seed": 1, "horizon": horizon, "campaign": campaign, "market": market}
    )


def _assert_near(hits: float, trials: float, p: float) -> None:
    """``hits / trials`` within 4 binomial standard errors of ``p``."""
    error = math.sqrt(p * (1 - p) / trials)
    assert abs(hits / trials - p) < 4 * error, (hits / trials, p)


@pytest.mark.parametrize("budget", [None, 1e9], ids=["no-budgets", "competitor-budgets"])
@pytest.mark.parametrize("slots", [1, 2])
def test_a_tie_at_the_last_slot_is_broken_over_all_tied_ads(slots: int, budget: float) -> None:
    """Four equal ad ranks for ``slots`` slots: we show on slots / 4 of the queries, in the
    simulator, in the oracle's dense placement and in its batch (whose clicks are the
    simulator's, bit for bit), and pay our own bid (the next ad ties with ours)."""
    scenario = _tie(slots, budget)
    queries = impressions = dense_impressions = 0
    clicks = batch_clicks = click_chances = 0.0
    for seed in EPISODES:
        sim = MarketSimulator(scenario, seed)
        outcome = sim.step(np.array([1.0]))
        queries += int(outcome.queries.sum())
        impressions += int(outcome.impressions.sum())
        clicks += float(outcome.clicks.sum())
        np.testing.assert_array_equal(outcome.avg_cpc, [1.0])
        step = episode_market(scenario, seed).step(0)
        impression, *_ = placed_dense(step, np.array([[1.0]]), sim.rules)
        dense_impressions += int(impression.sum())
        batch = evaluate_multipliers(scenario, seed, np.array([0.5, 1.0, 2.0]))
        assert (batch.clicks == outcome.clicks.sum()).all()  # min_bid == max_bid: one bid
        batch_clicks += float(batch.clicks[0])
        click_chances += float(sim.rules.click_prob[0, 0]) * step.n_queries
    _assert_near(impressions, queries, slots / 4)
    assert dense_impressions == impressions
    # Every slot has the same click probability: clicks are Binomial(queries, p x slots / 4).
    p_click = click_chances / queries
    _assert_near(batch_clicks, queries, p_click * slots / 4)


def test_placement_counts_the_ties_past_the_rows() -> None:
    """Ranks 6 and 5 kept, two more competitors at 5 past them: a bid at 5 ties with three
    (the last slot in 1 chance of 4, at its own bid), one at 6 with one only (those past the
    rows rank lower), and pays the rank below its place."""
    comp_rank = np.array([[6.0], [5.0]], dtype=np.float32)
    for u_tie, slot, price in ((0.1, 1, 5.0), (0.3, 2, 0.0), (0.9, 2, 0.0)):
        assert placement(comp_rank, 0, 5.0, 1.0, u_tie, 0.05, 2) == (slot, price)
    assert placement(comp_rank, 0, 6.0, 1.0, 0.4, 0.05, 2) == (0, 6.0)
    assert placement(comp_rank, 0, 6.0, 1.0, 0.6, 0.05, 2) == (1, 5.01)


def _reference_tied(ranks: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Each column's top ``slots`` (descending, 0-padded) and how many more equal the last."""
    ordered = np.zeros((max(slots, ranks.shape[0]), ranks.shape[1]), dtype=ranks.dtype)
    ordered[: ranks.shape[0]] = -np.sort(-ranks, axis=0)
    top, last = ordered[:slots], ordered[slots - 1]
    tied = ((ordered[slots:] == last) & (last > 0)).sum(axis=0)
    return top, tied.astype(np.int32)


@pytest.mark.parametrize("slots", [1, 2, 4])
def test_feed_counting_keeps_the_ties_past_the_top(slots: int) -> None:
    rng = np.random.default_rng(slots)
    ranks = rng.choice(np.array([0, 1, 2, 3], dtype=np.float32), (9, 500), p=[0.4, 0.2, 0.2, 0.2])
    top = np.zeros((slots, ranks.shape[1]), dtype=np.float32)
    tied = np.zeros(ranks.shape[1], dtype=np.int32)
    for i, row in enumerate(ranks):
        _feed_counting(top, row.copy(), i, tied)
        expected_top, expected_tied = _reference_tied(ranks[: i + 1], slots)
        assert np.array_equal(top, expected_top)
        assert np.array_equal(tied, expected_tied)
    assert tied.max() >= 2


def test_drawn_ties_past_the_top_without_budgets() -> None:
    """Equal competitors (no bid noise), each entering with probability 0.5: a query keeps
    ``slots`` of the n that enter, and counts the other n - slots as tied."""
    scenario = load_scenario(
        small_data(
            market__competitors=7, market__participation=0.5, market__bid_noise=0.0,
            market__competitor_cpc={"mean": 1.2, "sd_log": 0.0},
            market__competitor_quality={"mean": 6.0, "sd": 0.0}, market__shocks=[],
        )
    )  # fmt: skip
    market = EpisodeMarket(scenario, episode_market(scenario, 0).universe, 0)
    rng = market._rng(1)
    keyword, sizes = market._draw_queries(1, rng)
    step_of = _exhaust(market._shuffle_steps(rng, keyword, sizes))
    _, bits = market._draw_uniforms(rng, keyword, step_of, sizes)
    entering = (entry_jitter_table(0.0, 0.5)[bits] > 0).sum(axis=0)
    whole, _ = market.whole_day(1)
    slots = scenario.market.slots
    assert np.array_equal(whole.comp_tied, np.maximum(entering - slots, 0))
    assert np.array_equal((whole.comp_rank > 0).sum(axis=0), np.minimum(entering, slots))
    assert whole.comp_tied.max() > 0


def test_drawn_ties_past_the_top_with_budgets() -> None:
    """Bids of 0, 1 or 2 at equal qualities, competitors leaving as their budgets run out:
    the tie count is that of the ranks of those still in."""
    scenario, drawn, uni = tied_budget_day([1.0, 1.0, 2.0, 2.0, 3.0, 11.1, 12.2])
    _, ranks, tied = _exhaust(_serving_budgets(drawn, uni, scenario))
    live = budget_limited(drawn, uni, scenario)
    expected_ranks, expected_tied = _reference_tied(live * np.float32(6.0), scenario.market.slots)
    assert np.array_equal(ranks, expected_ranks)
    assert np.array_equal(tied, expected_tied)
    assert tied.max() >= 2


def test_a_step_without_tie_counts_has_none(small: Scenario) -> None:
    """A ``StepMarket`` built without ``comp_tied`` has none, and plays as before."""
    step = episode_market(small, 0).step(3)
    fields = {f.name: getattr(step, f.name) for f in dataclasses.fields(step)}
    del fields["comp_tied"]
    bare = type(step)(**fields)
    assert bare.comp_tied.shape == (step.n_queries,) and not bare.comp_tied.any()
    sim = MarketSimulator(small, 0)
    bids = np.clip(sim.keyword_values, sim.min_bid, sim.max_bid)
    assert (
        serve(bare, bids, 0.0, 1e9, sim.rules).total_cost
        == serve(step, bids, 0.0, 1e9, sim.rules).total_cost
    )
