"""Whole episodes of constant multipliers, many at once, on one pre-drawn market.

Used by the hindsight oracle: A multipliers cost little more than one, because the episode's
market is drawn once and every step is a dense (A, Q) computation. The arithmetic is the
simulator's (``serve_many`` mirrors ``serve``), so running a multiplier through
``MarketSimulator`` gives the same totals up to the last bits of cost and value: here a day is
summed in one piece, there step by step, and float sums taken in another order can differ by an
ulp or so (the oracle settles a tie with alpha 1 by playing it through the simulator).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adbot.market.auction import AuctionRules, multiplier_bids, serve_many
from adbot.market.episode import episode_market
from adbot.market.scenario import Scenario
from adbot.market.score import score_many

_MAX_CELLS = 2_000_000  # bid vectors x queries per dense block, to bound memory


@dataclass(frozen=True)
class MultiplierTotals:
    """Episode totals per multiplier, arrays of shape (A,)."""

    alphas: np.ndarray
    clicks: np.ndarray
    cost: np.ndarray
    conversions: np.ndarray
    value: np.ndarray
    score: np.ndarray


def _episode_totals(scenario: Scenario, episode_seed: int, bids: np.ndarray) -> np.ndarray:
    """(4, A) clicks, cost, conversions, value of fixed bid vectors (A, K).

    Only the queries where a click is possible at all are played (``clickable_day``): spend,
    budget exhaustion and conversions come out exactly as on the whole day.
    """
    market = episode_market(scenario, episode_seed)
    universe = market.universe
    rules = AuctionRules(
        reserve=scenario.market.reserve_cpc,
        slots=scenario.market.slots,
        click_prob=universe.click_prob,
    )
    budget = scenario.campaign.daily_budget
    totals = np.zeros((4, bids.shape[0]))
    for day in range(scenario.horizon.days):
        # A day in one piece: the running spend crosses step boundaries as in the simulator.
        start = np.zeros(bids.shape[0])
        result = serve_many(market.clickable_day(day), bids, start, budget, rules)
        totals += (result.clicks, result.cost, result.conversions, result.value)
    return totals


def evaluate_multipliers(
    scenario: Scenario, episode_seed: int, alphas: np.ndarray
) -> MultiplierTotals:
    """Play the whole episode once per constant multiplier ``alphas`` (A,)."""
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    market = episode_market(scenario, episode_seed)
    campaign = scenario.campaign
    values = market.universe.pcvr * campaign.value_per_conversion
    bids = multiplier_bids(alphas, values, campaign.min_bid, campaign.max_bid)
    clickable = 0.2 * scenario.market.daily_queries * max(scenario.market.weekday_profile)
    block = max(1, int(_MAX_CELLS // max(1.0, clickable)))
    parts = [
        _episode_totals(scenario, episode_seed, bids[a : a + block])
        for a in range(0, alphas.shape[0], block)
    ]
    clicks, cost, conversions, value = np.concatenate(parts, axis=1)
    return MultiplierTotals(
        alphas=alphas,
        clicks=clicks,
        cost=cost,
        conversions=conversions,
        value=value,
        score=score_many(conversions, value, cost, campaign),
    )
