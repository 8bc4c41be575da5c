"""Our side of one step's auctions (numpy only): one bid vector, or many at once.

Competitors' ad ranks do not depend on our bids, so a query's outcome for any bid needs only
its top ``slots + 1`` competitor ranks: our slot is the number of competitors ranked above
us (ties broken at random), and we pay per click
``min(bid, max(reserve, next_rank / our_quality) + 0.01)`` (MARKET.md). Queries are served in
order; we take part while the day's spend before the query is below the budget, so the query
that crosses it is served in full (overshoot of at most one click) and later ones are not.

``serve`` handles one bid vector and works on the few queries we win (the simulator's step);
``serve_many`` handles A bid vectors as dense (A, Q) arrays (the oracle's multiplier grid).
Both follow the same arithmetic, so their results agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adbot.market.episode import StepMarket

MIN_INCREMENT = 0.01


@dataclass(frozen=True)
class AuctionRules:
    reserve: float
    slots: int
    click_prob: np.ndarray  # (K, slots) our click probability by keyword and slot

    def enters(self, bid: np.ndarray) -> np.ndarray:
        """A bid takes part when positive and not under the reserve."""
        return bid >= self.reserve if self.reserve > 0 else bid > 0


def multiplier_bids(alphas: np.ndarray, values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``clip(alpha * v_k, min_bid, max_bid)`` for each alpha: shape (A, K)."""
    return np.clip(np.outer(alphas, values), lo, hi)


def _above(ranks: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """How many competitor ranks (rows of ``ranks``) are strictly above ``rank``."""
    above = (ranks[0] > rank).astype(np.int32)
    for row in ranks[1:]:
        above += row > rank
    return above


def _break_ties(ranks: np.ndarray, rank: np.ndarray, u_tie: np.ndarray) -> np.ndarray:
    """Extra places lost to competitors with an equal rank: uniform among the tied."""
    ties = (ranks[0] == rank).astype(np.int32)
    for row in ranks[1:]:
        ties += row == rank
    return (u_tie * (ties + 1)).astype(np.int32)


def _price(bid: np.ndarray, below: np.ndarray, quality: np.ndarray, reserve: float) -> np.ndarray:
    return np.minimum(bid, np.maximum(reserve, below / quality) + MIN_INCREMENT)


@dataclass(frozen=True)
class Served:
    """One bid vector's step, sparse: the queries we showed on and those clicked.

    ``n_served`` queries (a prefix of the step) were served before the budget ran out.
    ``shown`` are query indices with an impression, ``slot`` their 0-based slots;
    ``clicked`` query indices with a click, ``cost`` their prices, ``converted`` whether
    each click converted, ``value`` its conversion value (0 if none).
    """

    n_served: int
    total_cost: float
    entered: np.ndarray
    shown: np.ndarray
    slot: np.ndarray
    clicked: np.ndarray
    cost: np.ndarray
    converted: np.ndarray
    value: np.ndarray


def serve(step: StepMarket, bids: np.ndarray, budget_left: float, rules: AuctionRules) -> Served:
    """Serve the step's queries for one bid vector ``bids`` (K,)."""
    bid = bids[step.keyword]
    rank = bid * step.quality
    entered = rules.enters(bid)
    above = _above(step.comp_rank, rank)
    won = np.flatnonzero(entered & (above < rules.slots))
    slot = above[won]
    flat_ranks, n_queries = step.comp_rank.ravel(), step.n_queries
    below = flat_ranks[np.minimum(slot, rules.slots) * n_queries + won]
    if np.any(below == rank[won]):
        slot += _break_ties(step.comp_rank[:, won], rank[won], step.u_tie[won])
        keep = slot < rules.slots
        won, slot = won[keep], slot[keep]
        below = flat_ranks[np.minimum(slot, rules.slots) * n_queries + won]
    price = _price(bid[won], below, step.quality[won], rules.reserve)
    p_click = rules.click_prob.ravel()[step.keyword[won] * rules.slots + slot]
    hit = step.u_click[won] < p_click
    clicked, cost = won[hit], price[hit]
    # Sequential cumulative spend: the same float sums as serve_many's dense cumsum.
    spent = np.cumsum(cost)
    n_served, total_cost = step.n_queries, float(spent[-1]) if spent.shape[0] else 0.0
    if budget_left <= 0:
        n_served, total_cost = 0, 0.0
    else:
        crossing = int(np.count_nonzero(spent < budget_left))
        if crossing < cost.shape[0]:
            n_served, total_cost = int(clicked[crossing]) + 1, float(spent[crossing])
    shown_ok = won < n_served
    click_ok = clicked < n_served
    clicked, cost = clicked[click_ok], cost[click_ok]
    converted = step.u_conv[clicked] < step.cvr[clicked]
    return Served(
        n_served=n_served,
        total_cost=total_cost,
        entered=entered[:n_served],
        shown=won[shown_ok],
        slot=slot[shown_ok],
        clicked=clicked,
        cost=cost,
        converted=converted,
        value=np.where(converted, step.conv_value[clicked], 0.0),
    )


@dataclass(frozen=True)
class Totals:
    """Per bid vector (A,) totals of a step."""

    impressions: np.ndarray
    clicks: np.ndarray
    cost: np.ndarray
    conversions: np.ndarray
    value: np.ndarray


def _placed(step: StepMarket, bids: np.ndarray, rules: AuctionRules) -> tuple[np.ndarray, ...]:
    """Dense (A, Q): impression, slot, price and click probability, budget ignored."""
    bid = bids[:, step.keyword]
    rank = bid * step.quality
    slot = _above(step.comp_rank, rank)
    queries = np.arange(rank.shape[1])
    below = step.comp_rank[np.minimum(slot, rules.slots), queries]
    tied = (below == rank) & (slot < rules.slots) & (rank > 0)
    if tied.any():
        slot += _break_ties(step.comp_rank, rank, step.u_tie)
        below = step.comp_rank[np.minimum(slot, rules.slots), queries]
    impression = rules.enters(bid) & (slot < rules.slots)
    capped = np.minimum(slot, rules.slots - 1)
    p_click = rules.click_prob.ravel()[step.keyword * rules.slots + capped]
    return impression, slot, _price(bid, below, step.quality, rules.reserve), p_click


def serve_many(
    step: StepMarket, bids: np.ndarray, budget_left: np.ndarray, rules: AuctionRules
) -> Totals:
    """Step totals for each of A bid vectors (A, K), with budgets left ``budget_left`` (A,)."""
    impression, _, price, p_click = _placed(step, bids, rules)
    click = impression & (step.u_click < p_click)
    cost = np.where(click, price, 0.0)
    spent = np.cumsum(cost, axis=1)
    n_before = np.count_nonzero(spent < budget_left[:, None], axis=1)
    served = (np.arange(cost.shape[1]) <= n_before[:, None]) & (budget_left[:, None] > 0)
    click &= served
    conversion = click & (step.u_conv < step.cvr)
    last = np.minimum(n_before, cost.shape[1] - 1)
    total_cost = np.where(
        budget_left > 0, spent[np.arange(cost.shape[0]), last] if cost.shape[1] else 0.0, 0.0
    )
    return Totals(
        impressions=np.count_nonzero(impression & served, axis=1).astype(np.float64),
        clicks=np.count_nonzero(click, axis=1).astype(np.float64),
        cost=total_cost,
        conversions=np.count_nonzero(conversion, axis=1).astype(np.float64),
        value=np.where(conversion, step.conv_value, 0.0).sum(axis=1),
    )


@dataclass(frozen=True)
class Landscape:
    """Expected clicks, cost, predicted conversions and value per bid vector (A,), no budget."""

    clicks: np.ndarray
    cost: np.ndarray
    conversions: np.ndarray
    value: np.ndarray


def expected_landscape(
    step: StepMarket,
    bids: np.ndarray,
    rules: AuctionRules,
    pcvr: np.ndarray,
    value_per_conversion: float,
) -> Landscape:
    """What each bid vector would have got on this step, in expectation, with our predicted CVR.

    A bid simulator's view (the landscape platforms report): it uses the competitors' ranks
    the step had, but neither the click/conversion draws nor the true CVR.
    """
    impression, _, price, p_click = _placed(step, bids, rules)
    clicks = np.where(impression, p_click, 0.0)
    conversions = clicks @ pcvr[step.keyword]
    return Landscape(
        clicks=clicks.sum(axis=1),
        cost=(clicks * price).sum(axis=1),
        conversions=conversions,
        value=conversions * value_per_conversion,
    )
