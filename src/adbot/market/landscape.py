"""Bid landscapes: what other bids would have got on a played step, in expectation.

A landscape is what a platform's bid simulator reports: for each candidate bid vector,
the expected clicks, cost and predicted conversions the step's auctions would have given
(our click probabilities and predicted CVR; no click or conversion draws, no budget).

For candidate bid vectors that rise together, keyword by keyword (a multiplier grid, say),
each query's slot changes only where a bid passes one of the few competitor ranks, so the
landscape is assembled from those crossing points with difference arrays: O(queries x
slots) work instead of O(queries x candidates). Ties are ignored (they have probability 0
unless bids are constructed to tie).

Multiplier bids ``clip(alpha * v_k, lo, hi)`` (the simulator's landscapes, a whole day per
call) go through one compiled pass, :func:`_multiplier_kernel`: a crossing point is found by
comparing ``x / v_k`` with the sorted alphas, and the few rows where a click is paid at our
own bid are added row by row. The searches are most of its time, so each is started where
the answer is known to be close: the entry row is found once per keyword, and a query's
further crossing points by stepping from the one found before (the next lower rank's is at or
below it, the full price's a row or two above), exact on any ascending grid. Arbitrary
non-decreasing bid matrices stay in numpy (:func:`_monotone_landscape`), found through the
ranks of the bid values.
tests/market/test_market_landscape.py keeps the numpy multiplier version the kernel replaced
as its reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numba
import numpy as np

from adbot.market.auction import MIN_INCREMENT, AuctionRules, placed_dense
from adbot.market.episode import StepMarket


class Landscape(NamedTuple):
    """Expected clicks, cost, predicted conversions and value per bid vector (A,), no budget."""

    clicks: np.ndarray
    cost: np.ndarray
    conversions: np.ndarray
    value: np.ndarray


Finder = Callable[[np.ndarray, str], np.ndarray]


def _row_finder(bids: np.ndarray, keyword: np.ndarray) -> Finder:
    """``find(x, side)``: per query, the first row whose bid on the query's keyword is
    ``> x`` (side="right") or ``>= x`` (side="left"); ``A`` if none. Bids must not decrease
    down each column. Exact: bids are compared through their ranks among all bid values."""
    n_rows, n_keywords = bids.shape
    values = np.unique(bids)
    stride = values.shape[0] + 1
    codes = np.searchsorted(values, bids)
    sorted_keys = (np.arange(n_keywords)[:, None] * stride + codes.T).ravel()
    base, first_row = keyword * stride, keyword * n_rows

    def find(x: np.ndarray, side: str) -> np.ndarray:
        code = np.searchsorted(values, x, side=side)  # type: ignore[call-overload]
        return np.searchsorted(sorted_keys, base + code, side="left") - first_row

    return find


def _monotone_landscape(
    step: StepMarket, bids: np.ndarray, rules: AuctionRules, pcvr: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clicks, cost, conversions) per row for column-wise non-decreasing ``bids`` (A, K)."""
    n_rows, n_keywords = bids.shape
    keyword, quality = step.keyword, step.quality
    find = _row_finder(bids, keyword)
    width = n_rows + 1
    entry = find(np.full(keyword.shape, rules.reserve), "left" if rules.reserve > 0 else "right")
    diff = np.zeros((3, width))  # clicks, conversions, cost at the full second price
    own_bid_share = np.zeros(width * n_keywords)  # clicks paid at our own bid
    end = np.full(keyword.shape, n_rows)
    for j in range(rules.slots):
        next_rank = step.comp_rank[j] / quality
        beats = find(next_rank, "right")
        start = np.maximum(beats, entry)
        price = np.maximum(rules.reserve, next_rank) + MIN_INCREMENT
        full_price_from = np.clip(find(price, "left"), start, end)
        p_click = rules.click_prob[keyword, j]
        live = start < end
        for k, weights in enumerate((p_click, p_click * pcvr[keyword])):
            diff[k] += _spans(start[live], end[live], weights[live], width)
        paid = full_price_from < end
        diff[2] += _spans(full_price_from[paid], end[paid], (p_click * price)[paid], width)
        own = start < full_price_from
        kw = keyword[own]
        own_bid_share += np.bincount(
            np.concatenate([start[own] * n_keywords + kw, full_price_from[own] * n_keywords + kw]),
            weights=np.concatenate([p_click[own], -p_click[own]]),
            minlength=own_bid_share.shape[0],
        )
        end = np.minimum(end, beats)
    clicks, conversions, cost = np.cumsum(diff, axis=1)[:, :n_rows]
    share = np.cumsum(own_bid_share.reshape(width, n_keywords), axis=0)[:n_rows]
    return clicks, cost + (share * bids).sum(axis=1), conversions


def _spans(start: np.ndarray, end: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Difference array (length ``size``) adding ``weights`` on rows [start, end)."""
    return np.bincount(
        np.concatenate([start, end]),
        weights=np.concatenate([weights, -weights]),
        minlength=size,
    )


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _first_above(alphas: np.ndarray, x: float, value: float, lo: float, hi: float) -> int:
    """First row whose bid ``clip(alpha * value, lo, hi)`` is ``> x``, as the first alpha
    ``> x / value`` (``A`` if none)."""
    if lo > x:
        return 0
    if hi <= x:
        return alphas.shape[0]
    return int(np.searchsorted(alphas, x / value, side="right"))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _first_reaching(alphas: np.ndarray, x: float, value: float, lo: float, hi: float) -> int:
    """First row whose bid is ``>= x``, as the first alpha ``>= x / value``."""
    if lo >= x:
        return 0
    if hi < x:
        return alphas.shape[0]
    return int(np.searchsorted(alphas, x / value, side="left"))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _first_above_from(
    alphas: np.ndarray, x: float, value: float, lo: float, hi: float, hint: int
) -> int:
    """``_first_above`` found by stepping from row ``hint`` (any row in 0..A): the same row on
    an ascending grid, in a few comparisons when ``hint`` is near it."""
    if lo > x:
        return 0
    n_rows = alphas.shape[0]
    if hi <= x:
        return n_rows
    y = x / value
    if y != y:  # NaN sorts last, as in searchsorted
        return n_rows
    row = hint
    while row > 0 and alphas[row - 1] > y:
        row -= 1
    while row < n_rows and alphas[row] <= y:
        row += 1
    return row


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _first_reaching_from(
    alphas: np.ndarray, x: float, value: float, lo: float, hi: float, hint: int
) -> int:
    """``_first_reaching`` found by stepping from row ``hint``, as ``_first_above_from``."""
    if lo >= x:
        return 0
    n_rows = alphas.shape[0]
    if hi < x:
        return n_rows
    y = x / value
    if y != y:
        return n_rows
    row = hint
    while row > 0 and alphas[row - 1] >= y:
        row -= 1
    while row < n_rows and alphas[row] < y:
        row += 1
    return row


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _entry_rows(
    alphas: np.ndarray, values: np.ndarray, lo: float, hi: float, reserve: float
) -> np.ndarray:
    """(K,) the first row whose bid on each keyword enters the auction (reaches a positive
    reserve, else is positive)."""
    entry = np.empty(values.shape[0], dtype=np.intp)
    for k in range(values.shape[0]):
        if reserve > 0:
            entry[k] = _first_reaching(alphas, reserve, values[k], lo, hi)
        else:
            entry[k] = _first_above(alphas, 0.0, values[k], lo, hi)
    return entry


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _multiplier_kernel(
    keyword, group, n_groups, comp_rank, quality, values, pcvr, click_prob,
    alphas, lo, hi, reserve, slots,
):  # fmt: skip
    """(clicks, cost, conversions), each (G, A): the multiplier landscape per group.

    Query by query: from the row ``entry`` where the bid enters, slot j is held on rows
    [start, end), from where the bid beats the j-th competitor rank to where it beats the
    one above. Clicks there are paid at our own bid until the bid reaches the full price
    ``max(reserve, next_rank) + MIN_INCREMENT``, at the full price from then on. Spans go
    into difference arrays (cumulated at the end). Own-bid rows are added one by one: they
    are few (bids less than one increment above the rank they beat or the reserve, or
    clipped at ``lo`` just above the reserve), and each adds its exact bid.
    """
    n_rows = alphas.shape[0]
    clicks = np.zeros((n_groups, n_rows + 1))
    conversions = np.zeros((n_groups, n_rows + 1))
    full_cost = np.zeros((n_groups, n_rows + 1))  # clicks at the full second price
    own_cost = np.zeros((n_groups, n_rows))  # clicks paid at our own bid
    entry_of = _entry_rows(alphas, values, lo, hi, reserve)
    for i in range(keyword.shape[0]):
        k, g, v = keyword[i], group[i], values[keyword[i]]
        if not 0 <= g < n_groups:
            raise ValueError("a query's group is outside 0..n_groups-1")
        entry = entry_of[k]
        end = n_rows
        for j in range(slots):
            if end <= entry:
                break
            next_rank = np.float64(comp_rank[j, i]) / quality[i]
            if j == 0:
                beats = _first_above(alphas, next_rank, v, lo, hi)
            else:  # ranks descend, so this crossing is at or below the last (``end``)
                beats = _first_above_from(alphas, next_rank, v, lo, hi, end)
            start = max(beats, entry)
            if start < end:
                p_click = click_prob[k, j]
                price = max(reserve, next_rank) + MIN_INCREMENT
                full_from = _first_reaching_from(alphas, price, v, lo, hi, beats)
                full_from = min(max(full_from, start), end)
                clicks[g, start] += p_click
                clicks[g, end] -= p_click
                conversions[g, start] += p_click * pcvr[k]
                conversions[g, end] -= p_click * pcvr[k]
                if full_from < end:
                    full_cost[g, full_from] += p_click * price
                    full_cost[g, end] -= p_click * price
                for row in range(start, full_from):
                    own_cost[g, row] += p_click * min(max(alphas[row] * v, lo), hi)
            end = min(end, beats)
    for g in range(n_groups):
        for row in range(1, n_rows):
            clicks[g, row] += clicks[g, row - 1]
            conversions[g, row] += conversions[g, row - 1]
            full_cost[g, row] += full_cost[g, row - 1]
    cost = full_cost[:, :n_rows] + own_cost
    return clicks[:, :n_rows].copy(), cost, conversions[:, :n_rows].copy()


def bid_landscape(
    step: StepMarket,
    bids: np.ndarray,
    rules: AuctionRules,
    pcvr: np.ndarray,
    value_per_conversion: float,
) -> Landscape:
    """Landscape of the bid vectors ``bids`` (A, K) on ``step``.

    Uses the crossing-point method when every keyword's bids are non-decreasing from row to
    row (a multiplier grid in increasing order), else evaluates each bid vector directly.
    """
    if bids.shape[0] > 1 and bool(np.all(np.diff(bids, axis=0) >= 0)):
        clicks, cost, conversions = _monotone_landscape(step, bids, rules, pcvr)
    else:
        impression, _, price, p_click = placed_dense(step, bids, rules)
        expected = np.where(impression, p_click, 0.0)
        clicks, cost = expected.sum(axis=1), (expected * price).sum(axis=1)
        conversions = expected @ pcvr[step.keyword]
    return Landscape(
        clicks=clicks,
        cost=cost,
        conversions=conversions,
        value=conversions * value_per_conversion,
    )


def multiplier_landscape(
    step: StepMarket,
    alphas: np.ndarray,
    values: np.ndarray,
    bid_range: tuple[float, float],
    rules: AuctionRules,
    pcvr: np.ndarray,
    value_per_conversion: float,
    groups: tuple[np.ndarray, int] | None = None,
) -> Landscape:
    """Landscape of multiplier bids ``clip(alpha * values, *bid_range)``, ``alphas`` ascending.

    With ``groups = (group, G)`` (each query's group in ``0..G-1``, say its step in the day)
    the queries of every group are summed apart and every array has shape (G, A): one pass
    over a whole day instead of one per step, the same arithmetic.
    """
    lo, hi = bid_range
    group, n_groups = groups if groups is not None else (np.zeros(step.n_queries, np.intp), 1)
    clicks, cost, conversions = _multiplier_kernel(
        step.keyword, np.asarray(group, dtype=np.intp), int(n_groups),
        np.ascontiguousarray(step.comp_rank), step.quality, values, pcvr, rules.click_prob,
        np.array(alphas, dtype=np.float64),  # a writable copy: one compiled version for all grids
        float(lo), float(hi), float(rules.reserve), int(rules.slots),
    )  # fmt: skip
    if groups is None:
        clicks, cost, conversions = clicks[0], cost[0], conversions[0]
    return Landscape(
        clicks=clicks,
        cost=cost,
        conversions=conversions,
        value=conversions * value_per_conversion,
    )
