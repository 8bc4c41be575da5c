"""Play one episode with a policy and keep its trace."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from adbot.bidding.base import Policy
from adbot.market.scenario import Scenario
from adbot.market.score import EpisodeMetrics
from adbot.market.simulator import MarketSimulator


@dataclass(frozen=True)
class KeywordTrace:
    """Per step and keyword, arrays of shape (n_steps, K)."""

    bids: np.ndarray
    queries: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    cost: np.ndarray
    conversions: np.ndarray
    value: np.ndarray
    avg_position: np.ndarray


@dataclass(frozen=True)
class EpisodeResult:
    """Metrics of an episode plus per-step series (n_steps,) for plots.

    ``alpha`` is the multiplier the policy reported at each step (NaN when it has none).
    ``keywords`` holds the per-keyword trace when it was asked for.
    """

    policy: str
    scenario: str
    episode_seed: int
    metrics: EpisodeMetrics
    spend: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    value: np.ndarray
    alpha: np.ndarray
    keywords: KeywordTrace | None = None


_KEYWORD_FIELDS = ("queries", "impressions", "clicks", "cost", "conversions", "value")


def run_episode(
    scenario: Scenario, episode_seed: int, policy: Policy, *, keyword_trace: bool = False
) -> EpisodeResult:
    """Reset ``policy`` and play the whole (scenario, episode seed) episode with it."""
    sim = MarketSimulator(scenario, episode_seed)
    policy.reset(sim)
    n, k = sim.n_steps, sim.n_keywords
    series = np.zeros((4, n))  # spend, clicks, conversions, value
    alpha = np.full(n, np.nan)
    # (n_steps, K) each, only when asked for: at 20,000 steps and 1,000,000 keywords each was
    # 149 GiB, a MemoryError for a run that never writes them.
    names = (*_KEYWORD_FIELDS, "bids", "avg_position") if keyword_trace else ()
    per_keyword = {name: np.zeros((n, k)) for name in names}
    while not sim.done:
        index = sim.step_index
        bids = policy.bids(sim)
        outcome = sim.step(bids)
        policy.observe(outcome)
        series[:, index] = (
            outcome.total_cost,
            outcome.total_clicks,
            outcome.total_conversions,
            outcome.total_value,
        )
        used_alpha = getattr(policy, "alpha", None)
        alpha[index] = math.nan if used_alpha is None else used_alpha
        if keyword_trace:
            per_keyword["bids"][index] = outcome.bids
            per_keyword["avg_position"][index] = outcome.avg_position
            for name in _KEYWORD_FIELDS:
                per_keyword[name][index] = getattr(outcome, name)
    return EpisodeResult(
        policy=policy.name,
        scenario=scenario.name,
        episode_seed=episode_seed,
        metrics=sim.totals(),
        spend=series[0],
        clicks=series[1],
        conversions=series[2],
        value=series[3],
        alpha=alpha,
        keywords=KeywordTrace(**per_keyword) if keyword_trace else None,
    )
