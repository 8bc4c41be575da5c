"""Bid landscapes: what other bids would have got on a played step, in expectation.

A landscape is what a platform's bid simulator reports: for each candidate bid vector,
the expected clicks, cost and predicted conversions the step's auctions would have given
(our click probabilities and predicted CVR; no click or conversion draws, no budget).

For candidate bid vectors that rise together, keyword by keyword (a multiplier grid, say),
each query's slot changes only where a bid passes one of the few competitor ranks, so the
landscape is assembled from those crossing points with difference arrays: O(queries x
slots) work instead of O(queries x candidates). Ties are ignored (they have probability 0
unless bids are constructed to tie).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adbot.market.auction import MIN_INCREMENT, AuctionRules, multiplier_bids, placed_dense
from adbot.market.episode import StepMarket


@dataclass(frozen=True)
class Landscape:
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


def _multiplier_finder(alphas: np.ndarray, values: np.ndarray, lo: float, hi: float) -> Finder:
    """The ``_row_finder`` of bids ``clip(alpha * values[keyword], lo, hi)``, alphas sorted."""
    n_rows = alphas.shape[0]

    def find(x: np.ndarray, side: str) -> np.ndarray:
        rows = np.searchsorted(alphas, x / values, side=side)  # type: ignore[call-overload]
        always = lo > x if side == "right" else lo >= x
        never = hi <= x if side == "right" else hi < x
        return np.where(always, 0, np.where(never, n_rows, rows))

    return find


def _monotone_landscape(
    step: StepMarket,
    bids: np.ndarray,
    rules: AuctionRules,
    pcvr: np.ndarray,
    find: Finder,
    groups: tuple[np.ndarray, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clicks, cost, conversions) per row for column-wise non-decreasing ``bids`` (A, K).

    With ``groups = (group, G)`` (each query's group in ``0..G-1``, say its step in the day)
    the queries of every group are summed apart and each result has shape (G, A): one pass
    over a whole day instead of one per step, the same arithmetic.
    """
    n_rows, n_keywords = bids.shape
    keyword, quality = step.keyword, step.quality
    group, n_groups = groups if groups is not None else (np.zeros_like(keyword), 1)
    width = n_rows + 1
    offset = group * width  # each group's own block of difference-array rows
    entry = find(np.full(keyword.shape, rules.reserve), "left" if rules.reserve > 0 else "right")
    diff = np.zeros((3, n_groups * width))  # clicks, conversions, cost at the full second price
    own_bid_share = np.zeros(n_groups * width * n_keywords)  # clicks paid at our own bid
    end = np.full(keyword.shape, n_rows)
    for j in range(rules.slots):
        next_rank = step.comp_rank[j] / quality
        beats = find(next_rank, "right")
        start = np.maximum(beats, entry)
        price = np.maximum(rules.reserve, next_rank) + MIN_INCREMENT
        full_price_from = np.clip(find(price, "left"), start, end)
        p_click = rules.click_prob[keyword, j]
        live = start < end
        at, until = offset[live] + start[live], offset[live] + end[live]
        for k, weights in enumerate((p_click, p_click * pcvr[keyword])):
            diff[k] += _spans(at, until, weights[live], diff.shape[1])
        paid = full_price_from < end
        diff[2] += _spans(
            offset[paid] + full_price_from[paid],
            offset[paid] + end[paid],
            (p_click * price)[paid],
            diff.shape[1],
        )
        own = start < full_price_from
        kw, base = keyword[own], offset[own]
        own_bid_share += np.bincount(
            np.concatenate(
                [
                    (base + start[own]) * n_keywords + kw,
                    (base + full_price_from[own]) * n_keywords + kw,
                ]
            ),
            weights=np.concatenate([p_click[own], -p_click[own]]),
            minlength=own_bid_share.shape[0],
        )
        end = np.minimum(end, beats)
    sums = np.cumsum(diff.reshape(3, n_groups, width), axis=2)[:, :, :n_rows]
    clicks, conversions, cost = sums
    share = np.cumsum(own_bid_share.reshape(n_groups, width, n_keywords), axis=1)[:, :n_rows]
    cost = cost + (share * bids).sum(axis=2)
    if groups is None:
        return clicks[0], cost[0], conversions[0]
    return clicks, cost, conversions


def _spans(start: np.ndarray, end: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Difference array (length ``size``) adding ``weights`` on rows [start, end)."""
    return np.bincount(
        np.concatenate([start, end]),
        weights=np.concatenate([weights, -weights]),
        minlength=size,
    )


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
        find = _row_finder(bids, step.keyword)
        clicks, cost, conversions = _monotone_landscape(step, bids, rules, pcvr, find)
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

    With ``groups`` (see ``_monotone_landscape``) every array has shape (G, A).
    """
    lo, hi = bid_range
    bids = multiplier_bids(alphas, values, lo, hi)
    find = _multiplier_finder(alphas, values[step.keyword], lo, hi)
    clicks, cost, conversions = _monotone_landscape(step, bids, rules, pcvr, find, groups)
    return Landscape(
        clicks=clicks,
        cost=cost,
        conversions=conversions,
        value=conversions * value_per_conversion,
    )
