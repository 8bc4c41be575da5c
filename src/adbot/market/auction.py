"""Our side of one step's auctions (numpy only): one bid vector, or many at once.

Competitors' ad ranks do not depend on our bids, so a query's outcome for any bid needs only
its top ``slots`` competitor ranks and how many more tie with the last of them
(``StepMarket.comp_tied``): our slot is the number of them ranked above us plus a place
drawn uniformly among all the ads tied with us (``slots`` or more means no slot), and we pay
per click ``min(bid, max(reserve, next_rank / our_quality) + 0.01)`` (MARKET.md). Queries
are served in order; we take part while the day's spend before the query is below the
budget, so the query that crosses it is served in full (overshoot of at most one click) and
later ones are not.

``serve`` handles one bid vector and works on the few queries we win (the simulator's step);
``placed_dense`` places A bid vectors at once as dense (A, Q) arrays, budget aside (the
oracle's multiplier grid: ``batch.py`` then applies the budget and adds up the clicks). Both
follow the same arithmetic, so the slots, prices and clicks they give agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numba
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
    """``clip(alpha * v_k, min_bid, max_bid)`` for each alpha: shape (A, K). A product past
    float range (``fixed:1e308``) is infinite and clipped to ``max_bid``, as meant: no
    warning."""
    with np.errstate(over="ignore"):
        return np.clip(np.outer(alphas, values), lo, hi)


def _above(ranks: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """How many competitor ranks (rows of ``ranks``) are strictly above ``rank``."""
    above = (ranks[0] > rank).astype(np.int32)
    for row in ranks[1:]:
        above += row > rank
    return above


def _break_ties(
    ranks: np.ndarray, tied_beyond: np.ndarray, rank: np.ndarray, u_tie: np.ndarray
) -> np.ndarray:
    """Extra places lost to competitors with an equal rank: uniform among the tied, those
    beyond the rows (``tied_beyond``) tying with the last row's rank."""
    ties = (ranks[0] == rank).astype(np.int32)
    for row in ranks[1:]:
        ties += row == rank
    ties += tied_beyond * (ranks[-1] == rank)
    return (u_tie * (ties + 1)).astype(np.int32)


def _price(bid: np.ndarray, below: np.ndarray, quality: np.ndarray, reserve: float) -> np.ndarray:
    return np.minimum(bid, np.maximum(reserve, below / quality) + MIN_INCREMENT)


class Served(NamedTuple):
    """One bid vector's step: the queries we showed on and those clicked, and per keyword.

    ``n_served`` queries (a prefix of the step) were served before the budget ran out;
    ``spend_after`` is the day's spend after the step (a running sum, see ``serve``).
    ``entered`` says for each served query whether our bid took part, ``shown`` are query
    indices with an impression, ``slot`` their 0-based slots; ``clicked`` query indices with
    a click, ``cost`` their prices, ``converted`` whether each click converted, ``value`` its
    conversion value (0 if none). ``counts`` (len(COUNT_ROWS), K) and ``amounts``
    (len(AMOUNT_ROWS), K) are the same per keyword; ``total_cost`` and ``total_value`` sum
    the clicks in serving order, ``n_shown``, ``n_clicked`` and ``n_converted`` count them.

    The per-query arrays are views of two buffers the kernel fills (``query_ints`` rows
    ``QUERY_INT_ROWS``, ``query_floats`` rows cost and value), made when asked for: the
    simulator's step reads only the per-keyword rows and the totals, and every array a
    compiled function hands back costs about half a microsecond to box. A named tuple, not a
    frozen dataclass: one is built at every step, and a frozen dataclass's ``__init__`` sets
    each of its 11 fields through ``object.__setattr__`` (about 3 us against 0.5).
    """

    n_served: int
    spend_after: float
    n_shown: int
    n_clicked: int
    n_converted: int
    counts: np.ndarray
    amounts: np.ndarray
    total_cost: float
    total_value: float
    query_ints: np.ndarray
    query_floats: np.ndarray

    @property
    def entered(self) -> np.ndarray:
        return self.query_ints[3, : self.n_served].astype(np.bool_)

    @property
    def shown(self) -> np.ndarray:
        return self.query_ints[0, : self.n_shown]

    @property
    def slot(self) -> np.ndarray:
        return self.query_ints[1, : self.n_shown]

    @property
    def clicked(self) -> np.ndarray:
        return self.query_ints[2, : self.n_clicked]

    @property
    def converted(self) -> np.ndarray:
        return self.query_ints[4, : self.n_clicked].astype(np.bool_)

    @property
    def cost(self) -> np.ndarray:
        return self.query_floats[0, : self.n_clicked]

    @property
    def value(self) -> np.ndarray:
        return self.query_floats[1, : self.n_clicked]


# Rows of ``Served.query_ints``: shown query, its slot, clicked query (the first n_shown,
# n_shown, n_clicked entries), entered (0/1 per query), converted (0/1 per click).
QUERY_INT_ROWS = ("shown", "slot", "clicked", "entered", "converted")
# Rows of ``Served.counts`` (int64) and ``Served.amounts`` (float64); ratios are 0 where
# their denominator is.
COUNT_ROWS = ("queries", "auctions_entered", "impressions", "clicks", "conversions")
AMOUNT_ROWS = ("cost", "value", "impression_share", "avg_position", "avg_cpc")


@numba.njit(cache=True)
def placement(
    comp_rank: np.ndarray,
    i: int,
    bid: float,
    quality: float,
    u_tie: float,
    reserve: float,
    tied_beyond: int,
) -> tuple[int, float]:
    """Our slot on query ``i`` for a bid that takes part, and the price of a click there
    (``placed_dense``'s arithmetic, one query); the slot is ``slots`` when we get none.

    Competitor ranks are compared as float64, and a tie among ``t`` equal ranks costs
    ``int(u_tie x (t + 1))`` places; when ours equals the last row's, the ``t`` tied are
    those in the rows and the ``tied_beyond`` competitors past them (the query's
    ``StepMarket.comp_tied``). The query's competitor ranks must descend (as
    ``StepMarket.comp_rank``'s do): when the one at the last slot is above ours, so are all
    before it (most lost queries read one rank); else the ranks above ours and then those
    equal to it are the first ones.
    """
    slots = comp_rank.shape[0]
    rank = bid * quality
    if np.float64(comp_rank[slots - 1, i]) > rank:
        return slots, 0.0
    above = ties = 0
    while np.float64(comp_rank[above, i]) > rank:
        above += 1
    while above + ties < slots and np.float64(comp_rank[above + ties, i]) == rank:
        ties += 1
    if ties and above + ties == slots:
        ties += tied_beyond
    slot = above + int(u_tie * (ties + 1)) if ties else above
    if slot >= slots:
        return slots, 0.0
    return slot, min(bid, max(reserve, np.float64(comp_rank[slot, i]) / quality) + MIN_INCREMENT)


@numba.njit(cache=True)
def _serve_kernel(
    keyword, comp_rank, comp_tied, quality, cvr, u_tie, u_click, u_conv, value_table,
    bids, spend_today, budget, reserve, slots, click_prob,
):  # fmt: skip
    """``serve`` query by query in one compiled pass (see the module docstring).

    The arithmetic is that of ``placed_dense`` (``placement``; and, for the budget,
    ``batch``'s): the day's spend is one running sum in serving order.
    """
    n_queries, n_keywords = keyword.shape[0], click_prob.shape[0]
    cells = value_table.shape[0]
    ints = np.empty((5, n_queries), np.intp)  # rows QUERY_INT_ROWS
    shown, slot_of, clicked, entered, converted = ints[0], ints[1], ints[2], ints[3], ints[4]
    entered[:] = 0
    floats = np.empty((2, n_queries), np.float64)
    cost, value = floats[0], floats[1]
    counts = np.zeros((5, n_keywords), np.int64)
    amounts = np.zeros((5, n_keywords), np.float64)
    n_shown = n_clicked = n_converted = 0
    spent, total_cost, total_value = spend_today, 0.0, 0.0
    n_served = 0 if spend_today >= budget else n_queries
    for i in range(n_queries):
        k = keyword[i]
        counts[0, k] += 1
        if i >= n_served:
            continue
        bid = bids[k]
        if not (bid >= reserve if reserve > 0 else bid > 0):
            continue
        entered[i] = 1
        counts[1, k] += 1
        slot, price = placement(comp_rank, i, bid, quality[i], u_tie[i], reserve, comp_tied[i])
        if slot >= slots:
            continue
        shown[n_shown], slot_of[n_shown] = i, slot
        n_shown += 1
        counts[2, k] += 1
        amounts[3, k] += slot + 1.0
        if not u_click[i] < click_prob[k, slot]:
            continue
        clicked[n_clicked], cost[n_clicked] = i, price
        counts[3, k] += 1
        amounts[0, k] += price
        total_cost += price
        worth = 0.0
        converted[n_clicked] = u_conv[i] < cvr[i]
        if converted[n_clicked]:
            worth = value_table[int(min(u_conv[i] / cvr[i] * cells, cells - 1.0))]
            n_converted += 1
            counts[4, k] += 1
            amounts[1, k] += worth
            total_value += worth
        value[n_clicked] = worth
        n_clicked += 1
        spent += price
        if spent >= budget:
            n_served = i + 1
    for k in range(n_keywords):
        if counts[0, k]:
            amounts[2, k] = counts[2, k] / counts[0, k]
        if counts[2, k]:
            amounts[3, k] /= counts[2, k]
        if counts[3, k]:
            amounts[4, k] = amounts[0, k] / counts[3, k]
    return (
        n_served, spent, n_shown, n_clicked, n_converted, counts, amounts, total_cost,
        total_value, ints, floats,
    )  # fmt: skip


def serve(
    step: StepMarket, bids: np.ndarray, spend_today: float, budget: float, rules: AuctionRules
) -> Served:
    """Serve the step's queries for one bid vector ``bids`` (K,).

    The day's spend is a running sum continued from ``spend_today`` click by click, so
    playing a day step by step gives bit for bit the sums of playing it in one piece.
    """
    result = _serve_kernel(
        step.keyword, step.comp_rank, step.comp_tied, step.quality, step.cvr, step.u_tie,
        step.u_click, step.u_conv, step.value_table, np.asarray(bids, dtype=np.float64),
        float(spend_today), float(budget), float(rules.reserve), int(rules.slots),
        rules.click_prob,
    )  # fmt: skip
    return Served(*result)


@numba.njit(cache=True)
def _serve_multiplier_kernel(
    keyword, comp_rank, comp_tied, quality, cvr, u_tie, u_click, u_conv, value_table,
    alpha, values, min_bid, max_bid, spend_today, budget, reserve, slots, click_prob,
):  # fmt: skip
    """The bids ``clip(alpha x values, min_bid, max_bid)`` (numpy's ``minimum(maximum(.))``
    arithmetic, element by element) and ``_serve_kernel``'s result for them."""
    bids = np.empty(values.shape[0])
    for k in range(values.shape[0]):
        bids[k] = min(max(alpha * values[k], min_bid), max_bid)
    served = _serve_kernel(
        keyword, comp_rank, comp_tied, quality, cvr, u_tie, u_click, u_conv, value_table,
        bids, spend_today, budget, reserve, slots, click_prob,
    )  # fmt: skip
    return bids, served


def serve_multiplier(
    step: StepMarket,
    alpha: float,
    values: np.ndarray,
    bid_range: tuple[float, float],
    spend_today: float,
    budget: float,
    rules: AuctionRules,
) -> tuple[np.ndarray, Served]:
    """``serve`` of MARKET.md's multiplier bids ``clip(alpha x values, *bid_range)``: the
    bids (K,) and what they got, in one compiled call (the RL env's hot path; the bids are
    the floats ``np.clip`` gives). ``alpha`` must be finite and ``values`` (K,) float64."""
    bids, result = _serve_multiplier_kernel(
        step.keyword, step.comp_rank, step.comp_tied, step.quality, step.cvr, step.u_tie,
        step.u_click, step.u_conv, step.value_table, float(alpha), values, float(bid_range[0]),
        float(bid_range[1]), float(spend_today), float(budget), float(rules.reserve),
        int(rules.slots), rules.click_prob,
    )  # fmt: skip
    return bids, Served(*result)


def placed_dense(step: StepMarket, bids: np.ndarray, rules: AuctionRules) -> tuple[np.ndarray, ...]:
    """Dense (A, Q): impression, slot, price and click probability, budget ignored."""
    bid = bids[:, step.keyword]
    rank = bid * step.quality
    slot = _above(step.comp_rank, rank)
    queries = np.arange(rank.shape[1])
    below = step.comp_rank[np.minimum(slot, rules.slots - 1), queries]
    tied = (below == rank) & (slot < rules.slots) & (rank > 0)
    if tied.any():
        slot += _break_ties(step.comp_rank, step.comp_tied, rank, step.u_tie)
        below = step.comp_rank[np.minimum(slot, rules.slots - 1), queries]
    impression = rules.enters(bid) & (slot < rules.slots)
    capped = np.minimum(slot, rules.slots - 1)
    p_click = rules.click_prob.ravel()[step.keyword * rules.slots + capped]
    return impression, slot, _price(bid, below, step.quality, rules.reserve), p_click
