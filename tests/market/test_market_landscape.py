"""The compiled multiplier landscape against the numpy implementation it replaced.

The reference below is the numpy multiplier path of ``adbot.market.landscape`` kept as it
was (``_multiplier_finder`` and the grouped ``_monotone_landscape``). The kernel must give
the same clicks, cost and conversions up to summation order, on simulated days (reserve 0
and above, bids clipped at min_bid and max_bid, 1 to 5 slots, shocked steps, with and
without groups) and on constructed markets where bids tie exactly with competitor ranks,
reserves and prices, so that every strict / non-strict comparison is pinned down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from market_helpers import small_data

from adbot.market import MarketSimulator, load_scenario
from adbot.market.auction import MIN_INCREMENT, AuctionRules, multiplier_bids
from adbot.market.episode import StepMarket
from adbot.market.landscape import (
    Landscape,
    _first_above_from,
    _first_reaching_from,
    multiplier_landscape,
)

REL = 1e-12  # sums over queries run in another order than numpy's bincount and cumsum
GRID = np.exp(np.linspace(np.log(0.02), np.log(50.0), 33))  # as adbot.rl.planner.GRID

# --- the numpy reference ------------------------------------------------------------------
Finder = Callable[[np.ndarray, str], np.ndarray]


def ref_multiplier_finder(alphas: np.ndarray, values: np.ndarray, lo: float, hi: float) -> Finder:
    n_rows = alphas.shape[0]

    def find(x: np.ndarray, side: str) -> np.ndarray:
        rows = np.searchsorted(alphas, x / values, side=side)  # type: ignore[call-overload]
        always = lo > x if side == "right" else lo >= x
        never = hi <= x if side == "right" else hi < x
        return np.where(always, 0, np.where(never, n_rows, rows))

    return find


def ref_spans(start: np.ndarray, end: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(
        np.concatenate([start, end]),
        weights=np.concatenate([weights, -weights]),
        minlength=size,
    )


def ref_monotone_landscape(
    step: StepMarket,
    bids: np.ndarray,
    rules: AuctionRules,
    pcvr: np.ndarray,
    find: Finder,
    groups: tuple[np.ndarray, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_rows, n_keywords = bids.shape
    keyword, quality = step.keyword, step.quality
    group, n_groups = groups if groups is not None else (np.zeros_like(keyword), 1)
    width = n_rows + 1
    offset = group * width
    entry = find(np.full(keyword.shape, rules.reserve), "left" if rules.reserve > 0 else "right")
    diff = np.zeros((3, n_groups * width))
    own_bid_share = np.zeros(n_groups * width * n_keywords)
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
            diff[k] += ref_spans(at, until, weights[live], diff.shape[1])
        paid = full_price_from < end
        diff[2] += ref_spans(
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


def ref_multiplier_landscape(
    step: StepMarket,
    alphas: np.ndarray,
    values: np.ndarray,
    bid_range: tuple[float, float],
    rules: AuctionRules,
    pcvr: np.ndarray,
    groups: tuple[np.ndarray, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi = bid_range
    bids = multiplier_bids(alphas, values, lo, hi)
    find = ref_multiplier_finder(alphas, values[step.keyword], lo, hi)
    return ref_monotone_landscape(step, bids, rules, pcvr, find, groups)


# --- helpers ------------------------------------------------------------------------------
def assert_matches(
    got: Landscape, expected: tuple[np.ndarray, ...], value_per_conversion: float
) -> None:
    clicks, cost, conversions = expected
    assert clicks.sum() > 0 and cost.sum() > 0  # a landscape with something to compare
    for name, want in (("clicks", clicks), ("cost", cost), ("conversions", conversions)):
        np.testing.assert_allclose(getattr(got, name), want, rtol=REL, atol=0, err_msg=name)
    np.testing.assert_allclose(got.value, conversions * value_per_conversion, rtol=REL, atol=0)


def day_case(
    changes: dict[str, Any], day: int
) -> tuple[MarketSimulator, StepMarket, np.ndarray, int]:
    sim = MarketSimulator(load_scenario(small_data(**changes)), 4)
    queries, step_of = sim.market.whole_day(day)
    return sim, queries, step_of, sim.steps_per_day


FIVE_SLOTS = {
    "market__slots": 5,
    "market__position_ctr": [0.1, 0.07, 0.05, 0.03, 0.02],
    "market__competitors": 9,
}
# (scenario changes, day, alphas): the shock of ``small_data`` is on day 1 from step 2.
CASES = {
    "reserve-clipped-shock": ({}, 1, GRID),
    "no-reserve-one-slot": (
        {
            "market__slots": 1,
            "market__position_ctr": [0.1],
            "market__reserve_cpc": 0.0,
            "campaign__min_bid": 0.0,
        },
        0,
        np.sort(np.concatenate([[0.0, 0.0], GRID, GRID[12:15]])),  # zero bids, repeated rows
    ),
    "five-slots-tight-range": (
        {
            **FIVE_SLOTS,
            "campaign__min_bid": 0.3,
            "market__reserve_cpc": 0.3,
            "campaign__max_bid": 1.0,
        },
        1,
        GRID,
    ),
    "five-slots-min-bid-over-reserve": (
        {**FIVE_SLOTS, "campaign__min_bid": 0.4, "market__reserve_cpc": 0.25},
        0,
        GRID,
    ),
}


# --- simulated days -----------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_day_landscape_matches_numpy_reference(name: str) -> None:
    changes, day, alphas = CASES[name]
    sim, queries, step_of, n_steps = day_case(changes, day)
    args = (queries, alphas, sim.keyword_values, (sim.min_bid, sim.max_bid), sim.rules, sim.pcvr)
    bids = multiplier_bids(alphas, sim.keyword_values, sim.min_bid, sim.max_bid)
    # the grid reaches both clipped ends
    assert (bids == sim.min_bid).any() and (bids == sim.max_bid).any()
    expected = ref_multiplier_landscape(*args, groups=(step_of, n_steps))
    got = multiplier_landscape(*args, sim.value_per_conversion, groups=(step_of, n_steps))
    assert got.clicks.shape == (n_steps, alphas.shape[0])
    assert_matches(got, expected, sim.value_per_conversion)
    whole = ref_multiplier_landscape(*args)
    assert_matches(
        multiplier_landscape(*args, sim.value_per_conversion), whole, sim.value_per_conversion
    )


@pytest.mark.parametrize("name", ["reserve-clipped-shock", "five-slots-tight-range"])
def test_step_landscape_matches_numpy_reference(name: str) -> None:
    changes, day, alphas = CASES[name]
    sim, _, _, n_steps = day_case(changes, day)
    for index in range(day * n_steps + 1, (day + 1) * n_steps, 3):  # shocked steps on day 1
        step = sim.market.step(index)  # its competitor ranks are a slice of the day's
        args = (step, alphas, sim.keyword_values, (sim.min_bid, sim.max_bid), sim.rules, sim.pcvr)
        got = multiplier_landscape(*args, sim.value_per_conversion)
        assert got.clicks.shape == alphas.shape
        assert_matches(got, ref_multiplier_landscape(*args), sim.value_per_conversion)


def test_read_only_grid_and_bad_groups() -> None:
    sim, queries, step_of, n_steps = day_case({}, 0)
    grid = GRID.copy()
    grid.flags.writeable = False
    args = (queries, grid, sim.keyword_values, (sim.min_bid, sim.max_bid), sim.rules, sim.pcvr)
    got = multiplier_landscape(*args, 1.0, groups=(step_of, n_steps))
    assert_matches(got, ref_multiplier_landscape(*args, groups=(step_of, n_steps)), 1.0)
    with pytest.raises(ValueError, match="group"):
        multiplier_landscape(*args, 1.0, groups=(step_of, n_steps - 1))


# --- constructed markets with exact ties --------------------------------------------------
def tied_market(
    seed: int, slots: int, reserve: float
) -> tuple[StepMarket, AuctionRules, np.ndarray, np.ndarray]:
    """(step, rules, alphas, values): competitor ranks, the reserve and the prices fall
    exactly on bid grid points.

    Values, qualities and ranks are dyadic, so ``rank / quality`` and ``x / value`` are
    exact, and the grid holds every ``rank / quality / value`` and ``price / value``.
    """
    rng = np.random.default_rng(seed)
    n_queries, n_keywords = 400, 5
    values = rng.choice([0.5, 1.0, 2.0], n_keywords)
    keyword = rng.integers(0, n_keywords, n_queries)
    quality = rng.choice([1.0, 2.0, 4.0], n_queries)
    comp_rank = np.sort(rng.integers(0, 12, (slots, n_queries)) * 0.25, axis=0)[::-1]
    comp_rank[:, rng.random(n_queries) < 0.2] = 0.0  # nobody at all
    next_rank = (comp_rank / quality).ravel()
    price = np.maximum(reserve, next_rank) + MIN_INCREMENT
    alphas = np.unique(
        np.concatenate(
            [
                np.arange(0, 33) * 0.125,
                (next_rank[:, None] / values).ravel(),
                (price[:, None] / values).ravel(),
                [reserve / v for v in values],
            ]
        )
    )
    ctr = np.sort(rng.uniform(0.02, 0.2, slots))[::-1]
    rules = AuctionRules(
        reserve=reserve,
        slots=slots,
        click_prob=ctr * rng.uniform(0.5, 1.0, (n_keywords, 1)),
    )
    uniform = rng.random(n_queries)
    step = StepMarket(
        keyword=keyword.astype(np.intp),
        comp_rank=comp_rank.astype(np.float32),
        quality=quality,
        cvr=np.full(n_queries, 0.1),
        u_tie=uniform,
        u_click=uniform,
        u_conv=uniform,
        value_table=np.ones(4),
    )
    return step, rules, alphas, values


# (reserve, min_bid, max_bid): every bid limit below, at and above the reserve, and a
# max_bid equal to the reserve and to the price of an uncontested slot.
TIED_RANGES = [
    (0.0, 0.0, 2.0),
    (0.0, 0.25, 8.0),
    (0.0, 0.0, 0.25),
    (0.25, 0.0, 2.0),
    (0.25, 0.25, 2.0),
    (0.25, 0.5, 8.0),
    (0.25, 0.0, 0.25),
    (0.25, 0.25, 0.25 + MIN_INCREMENT),
    (0.5, 0.25, 1.0),
]


@pytest.mark.parametrize("slots", [1, 3, 5])
@pytest.mark.parametrize(("reserve", "lo", "hi"), TIED_RANGES)
def test_exact_ties_match_numpy_reference(slots: int, reserve: float, lo: float, hi: float) -> None:
    step, rules, alphas, values = tied_market(slots, slots, reserve)
    rng = np.random.default_rng(slots)
    pcvr = rng.uniform(0.01, 0.2, values.shape[0])
    group = np.sort(rng.integers(0, 3, step.n_queries))
    args = (step, alphas, values, (lo, hi), rules, pcvr)
    for groups in (None, (group, 3)):
        expected = ref_multiplier_landscape(*args, groups=groups)
        assert expected[0].sum() > 0
        got = multiplier_landscape(*args, 1.0, groups=groups)
        for name, want in zip(("clicks", "cost", "conversions"), expected, strict=True):
            np.testing.assert_allclose(getattr(got, name), want, rtol=REL, atol=0, err_msg=name)


@pytest.mark.parametrize("seed", range(4))
def test_searches_from_any_hint_match_searchsorted(seed: int) -> None:
    """The kernel's stepping searches give the binary search's row from every start row, on
    grids with repeated alphas and on points equal to grid values, inside and outside the
    clip range."""
    rng = np.random.default_rng(seed)
    alphas = np.sort(np.round(rng.uniform(0.0, 4.0, 17), 1))  # rounding makes repeats
    value, lo, hi = float(rng.uniform(0.5, 2.0)), 0.3, 6.0
    points = np.concatenate([alphas * value, rng.uniform(0.0, 8.0, 20), [lo, hi, 0.0, np.inf]])
    find = ref_multiplier_finder(alphas, np.array([value]), lo, hi)
    for x in points:
        above = int(find(np.array([x]), "right")[0])
        reaching = int(find(np.array([x]), "left")[0])
        for hint in range(alphas.shape[0] + 1):
            assert _first_above_from(alphas, float(x), value, lo, hi, hint) == above
            assert _first_reaching_from(alphas, float(x), value, lo, hi, hint) == reaching
