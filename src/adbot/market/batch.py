"""Whole episodes of constant multipliers, many at once, on one pre-drawn market.

Used by the hindsight oracle: A multipliers cost little more than one, because the episode's
market is drawn once and every day is a dense (A, Q) computation. The totals and the score are
bit for bit those of ``MarketSimulator`` playing the multiplier's bids. Where each bid vector
gets a click and what it pays is ``placed_dense``, the arithmetic of the simulator's ``serve``;
the clicks are then added up in the simulator's order (``_play_day``), because float sums taken
in another order differ in the last bits: summing a day in one piece once put the oracle a few
ulps under ``fixed`` where every multiplier ties (``min_bid == max_bid``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from adbot.market.auction import AuctionRules, multiplier_bids, placed_dense
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


@numba.njit(cache=True)
def _play_day(
    impression: np.ndarray,
    price: np.ndarray,
    p_click: np.ndarray,
    u_click: np.ndarray,
    converts: np.ndarray,
    worth: np.ndarray,
    step_ends: np.ndarray,
    budget: float,
    totals: np.ndarray,
) -> None:
    """Add a day's clicks, cost, conversions and value of each bid vector to ``totals``
    (4, A), in the simulator's order; the (A, Q) arrays are ``placed_dense``'s, the (Q,) ones
    the day's (``converts``: a click converts; ``worth``: its value).

    As in ``serve``, the day's spend is one running sum, click by click, and the campaign
    leaves the day's auctions once it reaches the budget (the crossing click counts). As in
    ``MarketSimulator``, each step's cost and value are summed from 0 by themselves and the
    step's sums are then added to the totals: the only order that gives its floats.
    """
    for a in range(impression.shape[0]):
        spent = 0.0
        start = 0
        for end in step_ends:
            if spent >= budget:
                break  # out for the rest of the day: its steps add exactly 0
            clicks = conversions = 0
            cost = value = 0.0
            for q in range(start, end):
                if not (impression[a, q] and u_click[q] < p_click[a, q]):
                    continue
                clicks += 1
                cost += price[a, q]
                spent += price[a, q]
                if converts[q]:
                    conversions += 1
                    value += worth[q]
                if spent >= budget:
                    break
            totals[0, a] += clicks
            totals[1, a] += cost
            totals[2, a] += conversions
            totals[3, a] += value
            start = end


def _episode_totals(scenario: Scenario, episode_seed: int, bids: np.ndarray) -> np.ndarray:
    """(4, A) clicks, cost, conversions, value of fixed bid vectors (A, K).

    Only the queries where a click is possible at all are played (``clickable_day``): the
    others add nothing to any step's sums, so every sum comes out exactly as on the whole day.
    """
    market = episode_market(scenario, episode_seed)
    rules = AuctionRules(
        reserve=scenario.market.reserve_cpc,
        slots=scenario.market.slots,
        click_prob=market.universe.click_prob,
    )
    budget = scenario.campaign.daily_budget
    totals = np.zeros((4, bids.shape[0]))
    for day in range(scenario.horizon.days):
        queries = market.clickable_day(day)
        if queries.keyword.shape[0] == 0:
            continue  # no click possible: the day adds exactly 0 to every sum
        impression, _, price, p_click = placed_dense(queries, bids, rules)
        converts = queries.u_conv < queries.cvr
        step_ends = market.clickable_step_ends(day)
        _play_day(
            impression, price, p_click, queries.u_click, converts, queries.conv_value,
            step_ends, budget, totals,
        )  # fmt: skip
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
