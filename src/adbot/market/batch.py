"""Whole episodes of constant multipliers, many at once, on one pre-drawn market.

Used by the hindsight oracle: A multipliers cost little more than one, because the episode's
market is drawn once and played by one compiled pass over the queries where a click is
possible. The totals and the score are bit for bit those of ``MarketSimulator`` playing the
multiplier's bids: each query is placed by the simulator's own arithmetic (``placement``),
and the clicks are added up in the simulator's order (``_play_episode``), because float sums
taken in another order differ in the last bits: summing a day in one piece once put the
oracle a few ulps under ``fixed`` where every multiplier ties (``min_bid == max_bid``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from adbot.market.auction import multiplier_bids, placement
from adbot.market.episode import episode_market
from adbot.market.scenario import Scenario
from adbot.market.score import score_many


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
def _play_episode(
    keyword: np.ndarray,
    comp_rank: np.ndarray,
    quality: np.ndarray,
    u_tie: np.ndarray,
    u_click: np.ndarray,
    converts: np.ndarray,
    worth: np.ndarray,
    step_ends: np.ndarray,
    steps_per_day: int,
    bids: np.ndarray,
    budget: float,
    reserve: float,
    click_prob: np.ndarray,
    comp_tied: np.ndarray,
) -> np.ndarray:
    """(4, A) clicks, cost, conversions and value of each bid vector (A, K) over the
    queries given (``EpisodeMarket.clickable``'s: ``converts``, a click would convert;
    ``worth``, its value; ``comp_tied``, ``StepMarket.comp_tied``),
    ``step_ends`` where each step ends among them, whole days.

    Each query is placed as ``serve`` places it (``placement``). As in ``serve``, a day's
    spend is one running sum, click by click, and the campaign leaves the day's auctions
    once it reaches the budget (the crossing click counts). As in ``MarketSimulator``, each
    step's cost and value are summed from 0 by themselves and the step's sums are then added
    to the totals: the only order that gives its floats. Day by day, every bid vector in
    turn, so that a day's queries are read from the cache.
    """
    totals = np.zeros((4, bids.shape[0]))
    for first in range(0, step_ends.shape[0], steps_per_day):
        day_start = step_ends[first - 1] if first > 0 else 0
        if step_ends[first + steps_per_day - 1] == day_start:
            continue  # no click possible: the day adds exactly 0 to every sum
        for a in range(bids.shape[0]):
            spent = 0.0
            start = day_start
            for end in step_ends[first : first + steps_per_day]:
                if spent >= budget:
                    break  # out for the rest of the day: its steps add exactly 0
                clicks = conversions = 0
                cost = value = 0.0
                for q in range(start, end):
                    k = keyword[q]
                    bid = bids[a, k]
                    if not (bid >= reserve if reserve > 0 else bid > 0):
                        continue
                    slot, price = placement(
                        comp_rank, q, bid, quality[q], u_tie[q], reserve, comp_tied[q]
                    )
                    if slot >= comp_rank.shape[0] or not u_click[q] < click_prob[k, slot]:
                        continue
                    clicks += 1
                    cost += price
                    spent += price
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
    return totals


def _episode_totals(scenario: Scenario, episode_seed: int, bids: np.ndarray) -> np.ndarray:
    """(4, A) clicks, cost, conversions, value of fixed bid vectors (A, K).

    Only the queries where a click is possible at all are played (``clickable``): the
    others add nothing to any step's sums, so every sum comes out exactly as on the whole
    episode.
    """
    market = episode_market(scenario, episode_seed)
    queries, step_ends = market.clickable()
    return _play_episode(
        queries.keyword, queries.comp_rank, queries.quality, queries.u_tie, queries.u_click,
        queries.u_conv < queries.cvr, queries.conv_value, step_ends,
        scenario.horizon.steps_per_day, np.ascontiguousarray(bids, dtype=np.float64),
        scenario.campaign.daily_budget, scenario.market.reserve_cpc, market.universe.click_prob,
        queries.comp_tied,
    )  # fmt: skip


def evaluate_multipliers(
    scenario: Scenario, episode_seed: int, alphas: np.ndarray
) -> MultiplierTotals:
    """Play the whole episode once per constant multiplier ``alphas`` (A,)."""
    alphas = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    market = episode_market(scenario, episode_seed)
    campaign = scenario.campaign
    values = market.universe.pcvr * campaign.value_per_conversion
    bids = multiplier_bids(alphas, values, campaign.min_bid, campaign.max_bid)
    clicks, cost, conversions, value = _episode_totals(scenario, episode_seed, bids)
    return MultiplierTotals(
        alphas=alphas,
        clicks=clicks,
        cost=cost,
        conversions=conversions,
        value=value,
        score=score_many(conversions, value, cost, campaign),
    )
