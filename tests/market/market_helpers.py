"""Small, fast scenarios for the market tests."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np

from adbot.market.episode import _Day, _serve_budgets, episode_market
from adbot.market.scenario import Scenario, load_scenario
from adbot.market.universe import Universe, quality_factor

SMALL: dict[str, Any] = {
    "name": "small-test",
    "seed": 5,
    "horizon": {"days": 2, "steps_per_day": 8, "start_weekday": 4},
    "campaign": {
        "daily_budget": 60.0,
        "target_cpa": 20.0,
        "conversion_value": {"mean": 50.0, "sd_log": 0.4},
        "keywords": 12,
        "quality_score": {"mean": 6.0, "sd": 1.5},
        "min_bid": 0.05,
        "max_bid": 20.0,
    },
    "market": {
        "daily_queries": 3000,
        "volume_zipf": 1.0,
        "hourly_profile": "retail",
        "weekday_profile": [1.0, 1.0, 1.0, 1.0, 1.1, 0.8, 0.7],
        "competitors": 6,
        "participation": 0.7,
        "competitor_cpc": {"mean": 1.2, "sd_log": 0.5},
        "competitor_quality": {"mean": 6.0, "sd": 1.5},
        "slots": 3,
        "position_ctr": [0.1, 0.06, 0.03],
        "cvr": {"mean": 0.08, "sd_log": 0.5},
        "pcvr_noise": 0.25,
        "bid_noise": 0.2,
        "reserve_cpc": 0.1,
        "shocks": [{"day": 1, "step": 2, "competitor_cpc_multiplier": 1.5}],
    },
}


def small_data(**changes: Any) -> dict[str, Any]:
    """A copy of ``SMALL`` with dotted-path changes, e.g. ``campaign__daily_budget=1e9``."""
    data = copy.deepcopy(SMALL)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    return data


def competitor_spend(
    bid: np.ndarray, quality: np.ndarray, u_click: np.ndarray, scenario: Scenario
) -> np.ndarray:
    """(C, Q) spend of each competitor on each query, in the auction without us.

    The per-query definition that ``adbot.market.episode._serve_competitor_budgets`` runs,
    vectorised over queries with no budgets; the tests serve a day with it one query at a time
    as the reference.
    Equal ranks go to the lower competitor index first (a stable sort), as in the kernel.
    """
    market = scenario.market
    c, q = bid.shape
    ranks = bid.astype(np.float64) * quality
    order = np.argsort(-ranks, axis=0, kind="stable")[: min(market.slots + 1, c)]
    cols = np.arange(q)
    spend = np.zeros((c, q))
    for j in range(min(market.slots, c)):
        who = order[j]
        rank = ranks[who, cols]
        below = ranks[order[j + 1], cols] if j + 1 < order.shape[0] else np.zeros(q)
        own_q = quality[who, cols].astype(np.float64)
        price = np.minimum(bid[who, cols], np.maximum(market.reserve_cpc, below / own_q) + 0.01)
        p_click = np.minimum(market.position_ctr[j] * quality_factor(own_q), 1.0)
        clicked = (rank > 0) & (u_click < p_click)
        spend[who, cols] = np.where(clicked, price, 0.0)
    return spend


def budget_limited(drawn: _Day, uni: Universe, scenario: Scenario) -> np.ndarray:
    """The drawn competitor bids, 0 from the query after the one where a competitor's day
    spend reaches its budget, as the episode's budget kernel finds it."""
    assert drawn.comp_bid is not None
    out_from, _ = _serve_budgets(drawn, uni, scenario)
    live = drawn.comp_bid.copy()
    for i, start in enumerate(out_from):
        live[i, start:] = 0.0
    return live


def tied_budget_day(budgets: list[float]) -> tuple[Scenario, _Day, Universe]:
    """Day 0 of a small market of seven rivals with the daily ``budgets``, all of quality 6
    and bidding 0, 1 or 2 (seeded), clicks at probability under 0.3: equal ranks everywhere."""
    scenario = load_scenario(
        small_data(market__competitor_budget={"mean": 2.0, "sd_log": 0.5}, market__competitors=7)
    )
    market = episode_market(scenario, 0)
    drawn = market._draw_day(0)
    uni = dataclasses.replace(
        market.universe,
        competitor_quality=np.full_like(market.universe.competitor_quality, 6.0),
        competitor_budget=np.array(budgets),
    )
    rng = np.random.default_rng(0)
    assert drawn.comp_bid is not None
    drawn.comp_bid = rng.choice(np.array([0.0, 1.0, 2.0], dtype=np.float32), drawn.comp_bid.shape)
    drawn.comp_click = rng.random(drawn.keyword.shape[0]) * 0.3
    return scenario, drawn, uni
