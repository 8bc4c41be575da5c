"""Our side of one step's auctions (numpy only): one bid vector, or many at once.

Competitors' ad ranks do not depend on our bids, so a query's outcome for any bid needs only
its top ``slots`` competitor ranks: our slot is the number of them ranked above us (ties
broken at random; ``slots`` or more above means no slot), and we pay per click
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

    ``n_served`` queries (a prefix of the step) were served before the budget ran out;
    ``spend_after`` is the day's spend after the step (a running sum, see ``serve``).
    ``shown`` are query indices with an impression, ``slot`` their 0-based slots;
    ``clicked`` query indices with a click, ``cost`` their prices, ``converted`` whether
    each click converted, ``value`` its conversion value (0 if none).
    """

    n_served: int
    spend_after: float
    entered: np.ndarray
    shown: np.ndarray
    slot: np.ndarray
    clicked: np.ndarray
    cost: np.ndarray
    converted: np.ndarray
    value: np.ndarray


def serve(
    step: StepMarket, bids: np.ndarray, spend_today: float, budget: float, rules: AuctionRules
) -> Served:
    """Serve the step's queries for one bid vector ``bids`` (K,).

    The day's spend is a running sum continued from ``spend_today`` click by click, so
    playing a day step by step gives bit for bit the sums of playing it in one piece.
    """
    bid = bids[step.keyword]
    rank = bid * step.quality
    entered = rules.enters(bid)
    above = _above(step.comp_rank, rank)
    won = np.flatnonzero(entered & (above < rules.slots))
    slot = above[won]
    below = step.comp_rank[slot, won]
    if np.any(below == rank[won]):
        slot += _break_ties(step.comp_rank[:, won], rank[won], step.u_tie[won])
        keep = slot < rules.slots
        won, slot = won[keep], slot[keep]
        below = step.comp_rank[slot, won]
    price = _price(bid[won], below, step.quality[won], rules.reserve)
    p_click = rules.click_prob.ravel()[step.keyword[won] * rules.slots + slot]
    hit = step.u_click[won] < p_click
    clicked, cost = won[hit], price[hit]
    spent = np.cumsum(np.concatenate(([spend_today], cost)))
    n_served, spend_after = step.n_queries, float(spent[-1])
    if spend_today >= budget:
        n_served, spend_after = 0, spend_today
    else:
        crossing = int(np.count_nonzero(spent[1:] < budget))
        if crossing < cost.shape[0]:
            n_served, spend_after = int(clicked[crossing]) + 1, float(spent[crossing + 1])
    shown_ok = won < n_served
    click_ok = clicked < n_served
    clicked, cost = clicked[click_ok], cost[click_ok]
    converted = step.u_conv[clicked] < step.cvr[clicked]
    value = np.zeros(clicked.shape[0])
    value[converted] = step.value_of(clicked[converted])
    return Served(
        n_served=n_served,
        spend_after=spend_after,
        entered=entered[:n_served],
        shown=won[shown_ok],
        slot=slot[shown_ok],
        clicked=clicked,
        cost=cost,
        converted=converted,
        value=value,
    )


@dataclass(frozen=True)
class Totals:
    """Per bid vector (A,) totals of a step."""

    clicks: np.ndarray
    cost: np.ndarray
    conversions: np.ndarray
    value: np.ndarray


def placed_dense(step: StepMarket, bids: np.ndarray, rules: AuctionRules) -> tuple[np.ndarray, ...]:
    """Dense (A, Q): impression, slot, price and click probability, budget ignored."""
    bid = bids[:, step.keyword]
    rank = bid * step.quality
    slot = _above(step.comp_rank, rank)
    queries = np.arange(rank.shape[1])
    below = step.comp_rank[np.minimum(slot, rules.slots - 1), queries]
    tied = (below == rank) & (slot < rules.slots) & (rank > 0)
    if tied.any():
        slot += _break_ties(step.comp_rank, rank, step.u_tie)
        below = step.comp_rank[np.minimum(slot, rules.slots - 1), queries]
    impression = rules.enters(bid) & (slot < rules.slots)
    capped = np.minimum(slot, rules.slots - 1)
    p_click = rules.click_prob.ravel()[step.keyword * rules.slots + capped]
    return impression, slot, _price(bid, below, step.quality, rules.reserve), p_click


def serve_many(
    step: StepMarket, bids: np.ndarray, spend_today: np.ndarray, budget: float, rules: AuctionRules
) -> Totals:
    """Totals for each of A bid vectors (A, K) whose day's spend so far is ``spend_today`` (A,).

    ``cost`` in the result is the day's spend after these queries (the running sum).
    """
    impression, _, price, p_click = placed_dense(step, bids, rules)
    click = impression & (step.u_click < p_click)
    cost = np.where(click, price, 0.0)
    spent = np.cumsum(np.hstack([spend_today[:, None], cost]), axis=1)
    n_before = np.count_nonzero(spent[:, 1:] < budget, axis=1)
    live = spend_today < budget
    served = (np.arange(cost.shape[1]) <= n_before[:, None]) & live[:, None]
    click &= served
    conversion = click & (step.u_conv < step.cvr)
    last = np.minimum(n_before + 1, cost.shape[1])
    spend_after = np.where(live, spent[np.arange(cost.shape[0]), last], spend_today)
    return Totals(
        clicks=np.count_nonzero(click, axis=1).astype(np.float64),
        cost=spend_after,
        conversions=np.count_nonzero(conversion, axis=1).astype(np.float64),
        value=np.where(conversion, step.conv_value, 0.0).sum(axis=1),
    )
