"""The hindsight oracle: the best constant multiplier on the identical episode (MARKET.md).

A log grid of ``GRID_POINTS`` multipliers on [0.02, 50] is played at once on the episode's
pre-drawn market, then a golden-section search refines the best grid point inside its two
neighbours (in log alpha). The result is the best multiplier ever evaluated, so the oracle
is never worse than any grid multiplier. Results are memoised per (scenario, episode seed).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from adbot.bidding.base import ALPHA_MAX, ALPHA_MIN, bids_from_alpha
from adbot.market.batch import evaluate_multipliers
from adbot.market.episode import scenario_key
from adbot.market.scenario import Scenario
from adbot.market.simulator import MarketSimulator, StepOutcome

GRID_POINTS = 48
GOLDEN_ITERATIONS = 12
_INVERSE_PHI = (math.sqrt(5.0) - 1.0) / 2.0
_CACHE: OrderedDict[tuple[str, int], OracleResult] = OrderedDict()
_CACHE_SIZE = 64


@dataclass(frozen=True)
class OracleResult:
    score: float
    alpha: float
    grid_alphas: np.ndarray
    grid_scores: np.ndarray


def _golden(scenario: Scenario, seed: int, low: float, high: float) -> tuple[float, float]:
    """Best (score, log alpha) a golden-section search finds on [low, high] (log alpha)."""

    def score_at(log_alpha: float) -> float:
        totals = evaluate_multipliers(scenario, seed, np.array([math.exp(log_alpha)]))
        return float(totals.score[0])

    a, b = low, high
    c, d = b - _INVERSE_PHI * (b - a), a + _INVERSE_PHI * (b - a)
    fc, fd = score_at(c), score_at(d)
    best = max((fc, c), (fd, d))
    for _ in range(GOLDEN_ITERATIONS):
        if fc >= fd:
            b, d, fd = d, c, fc
            c = b - _INVERSE_PHI * (b - a)
            fc = score_at(c)
            best = max(best, (fc, c))
        else:
            a, c, fc = c, d, fd
            d = a + _INVERSE_PHI * (b - a)
            fd = score_at(d)
            best = max(best, (fd, d))
    return best


def hindsight_oracle(scenario: Scenario, episode_seed: int) -> OracleResult:
    """Best constant multiplier in hindsight on (scenario, episode seed), and its score."""
    key = (scenario_key(scenario), episode_seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    grid = np.geomspace(ALPHA_MIN, ALPHA_MAX, GRID_POINTS)
    scores = evaluate_multipliers(scenario, episode_seed, grid).score
    i = int(np.argmax(scores))
    best_score, best_alpha = float(scores[i]), float(grid[i])
    if best_score > 0:
        log_grid = np.log(grid)
        low, high = log_grid[max(i - 1, 0)], log_grid[min(i + 1, GRID_POINTS - 1)]
        score, log_alpha = _golden(scenario, episode_seed, float(low), float(high))
        if score > best_score:
            best_score, best_alpha = score, math.exp(log_alpha)
    result = OracleResult(best_score, best_alpha, grid, scores)
    _CACHE[key] = result
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


class OraclePolicy:
    """Plays the hindsight-best constant multiplier of the episode (it has seen the future)."""

    def __init__(self, name: str = "oracle") -> None:
        self.name = name
        self.alpha: float | None = None

    def reset(self, sim: MarketSimulator) -> None:
        self.alpha = hindsight_oracle(sim.scenario, sim.episode_seed).alpha

    def bids(self, sim: MarketSimulator) -> np.ndarray:
        assert self.alpha is not None, "reset() first"
        return bids_from_alpha(self.alpha, sim)

    def observe(self, outcome: StepOutcome) -> None:
        """The oracle already knows the episode."""
