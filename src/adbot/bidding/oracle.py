"""The hindsight oracle: the best constant multiplier on the identical episode (MARKET.md).

A log grid of ``GRID_POINTS`` multipliers on [0.02, 50] is played at once on the episode's
pre-drawn market, then golden-section searches refine the ``REFINED_POINTS`` best grid points,
each inside its two neighbours (in log alpha), in lockstep: every round plays one multiplier
per search in one batched call. The score of a small episode is a step function of alpha,
so several grid points can tie at the best with the true peak beside any one of them; the
search around the first best alone missed it (a constant policy once scored 12 where the
oracle reported 11). Alpha 1, what the ``fixed`` policy plays, is played with the grid. The
result is the best multiplier ever evaluated, so the oracle is never worse than any of them:
the batch's totals are the simulator's bit for bit, so not even by an ulp under ``fixed``
where every multiplier ties. Results are memoised per (scenario, episode seed).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from adbot.bidding.base import ALPHA_MAX, ALPHA_MIN, bids_from_alpha
from adbot.market import libm
from adbot.market.batch import evaluate_multipliers
from adbot.market.episode import scenario_key
from adbot.market.scenario import Scenario
from adbot.market.simulator import MarketSimulator, StepOutcome

GRID_POINTS = 48
REFINED_POINTS = 4
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


def _golden(
    scenario: Scenario, seed: int, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Best (score, log alpha) that a golden-section search finds on each [low, high] (log
    alpha), all searches played side by side: each round is one batched call."""

    def score_at(log_alpha: np.ndarray) -> np.ndarray:
        return evaluate_multipliers(scenario, seed, libm.exp(log_alpha)).score

    a, b = low.copy(), high.copy()
    c, d = b - _INVERSE_PHI * (b - a), a + _INVERSE_PHI * (b - a)
    both = score_at(np.concatenate([c, d]))
    fc, fd = both[: c.size], both[c.size :]
    # Ties go to the larger alpha, as max() over (score, log alpha) pairs would.
    take_d = (fd > fc) | ((fd == fc) & (d > c))
    best_score, best_x = np.where(take_d, fd, fc), np.where(take_d, d, c)
    for _ in range(GOLDEN_ITERATIONS):
        left = fc >= fd  # the peak is left of d: drop [d, b]
        b = np.where(left, d, b)
        a = np.where(left, a, c)
        c, d = (
            np.where(left, b - _INVERSE_PHI * (b - a), d),
            np.where(left, c, a + _INVERSE_PHI * (b - a)),
        )
        x = np.where(left, c, d)  # the one new point of each search
        fx = score_at(x)
        fc, fd = np.where(left, fx, fd), np.where(left, fc, fx)  # the other is the kept one
        better = (fx > best_score) | ((fx == best_score) & (x > best_x))
        best_score, best_x = np.where(better, fx, best_score), np.where(better, x, best_x)
    return best_score, best_x


def _refined(scores: np.ndarray) -> np.ndarray:
    """The grid points to refine: the best ``REFINED_POINTS``, the first best first."""
    order = np.argsort(-scores, kind="stable")
    return order[:REFINED_POINTS]


def hindsight_oracle(scenario: Scenario, episode_seed: int) -> OracleResult:
    """Best constant multiplier in hindsight on (scenario, episode seed), and its score."""
    key = (scenario_key(scenario), episode_seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    grid = libm.geomspace(ALPHA_MIN, ALPHA_MAX, GRID_POINTS)
    played = evaluate_multipliers(scenario, episode_seed, np.append(grid, 1.0)).score
    scores, score_at_one = played[:GRID_POINTS], float(played[GRID_POINTS])
    i = int(np.argmax(scores))
    best_score, best_alpha = float(scores[i]), float(grid[i])
    if best_score > 0:
        log_grid = libm.log(grid)
        points = _refined(scores)
        low = log_grid[np.maximum(points - 1, 0)]
        high = log_grid[np.minimum(points + 1, GRID_POINTS - 1)]
        found, log_alphas = _golden(scenario, episode_seed, low, high)
        j = int(np.argmax(found))  # the first best: the search around the grid's best wins ties
        if found[j] > best_score:
            best_score, best_alpha = float(found[j]), math.exp(float(log_alphas[j]))
    if score_at_one > best_score:
        best_score, best_alpha = score_at_one, 1.0
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
