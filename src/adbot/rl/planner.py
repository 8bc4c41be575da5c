"""The prior multiplier an agent's action is relative to, planned from the bid landscape.

After each step the platform's bid simulator (``MarketSimulator.multiplier_landscape``:
expected clicks, cost and predicted conversions of other multipliers on a step already
played; no future and no hidden draws) is read on a fixed log grid of multipliers. The
landscapes are summed with exponential forgetting into per-query rates: cost ``c(alpha)``
and predicted conversions ``n(alpha)``, once slowly (``FORGET``, about a day of memory,
the estimate) and once quickly (``FAST_FORGET``, the last few steps, to see trends such as
competitors running out of budget).

Two multipliers follow from the slow rates:

* ``alpha_budget``: the largest multiplier whose expected spend over the traffic still
  forecast today fits in what is left of today's budget;
* ``alpha_goal``: the multiplier that maximises the MARKET.md score of the episode's final
  totals, predicted as realised totals so far plus, for the rest of today and each later
  day, the spend ``c`` times that day's traffic forecast capped at the day's budget, with
  conversions in proportion (``n / c`` per unit of spend, scaled by the calibration factor
  of :class:`adbot.rl.features.PacingState`).

The slow plan is ``min(alpha_budget, alpha_goal)``: when the budget binds, the cheapest
multiplier that still spends it wins the most conversions; otherwise the goal decides.
The same plan on the fast rates (``alpha_fast``) follows the last few steps (a price shock,
competitors running out of budget during the day). The prior is their geometric blend,
``alpha_slow^(1 - FAST_WEIGHT) x alpha_fast^FAST_WEIGHT``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from adbot.market.score import score_many
from adbot.market.simulator import MarketSimulator

GRID = np.exp(np.linspace(np.log(0.02), np.log(50.0), 33))
LOG_GRID = np.log(GRID)
FINE_LOG_GRID = np.linspace(LOG_GRID[0], LOG_GRID[-1], 97)
FORGET = 0.97  # per-step weight of older landscapes in the estimate
FAST_FORGET = 0.6  # the same for the short-memory rates behind the trend features
FAST_WEIGHT = 0.5  # weight of the fast plan in the prior (log scale); chosen on random draws
CALIBRATION_PRIOR = 20.0  # predicted conversions of pseudo-evidence that calibration is 1


def _interpolation_matrix(at: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(len(grid), len(at)): ``values @ M`` is ``np.interp(at, grid, values)``."""
    return np.stack([np.interp(at, grid, row) for row in np.eye(grid.shape[0])])


_TO_FINE = _interpolation_matrix(FINE_LOG_GRID, LOG_GRID)


@dataclass(frozen=True)
class Plan:
    alpha_budget: float
    alpha_goal: float
    alpha_prior: float
    elasticity: float  # d log cost / d log alpha at the prior
    cost_trend: float  # log(recent / long-run spend per query) at the prior, clipped
    efficiency_trend: float  # log(recent / long-run conversions per cost) at the prior
    alpha_slow: float  # the plan on the long-memory rates alone
    alpha_fast: float  # the plan on the short-memory rates alone


class _Rates:
    """Exponentially forgotten sums of landscapes: cost, conversions and queries."""

    def __init__(self, forget: float) -> None:
        self.forget = forget
        self.cost = np.zeros(GRID.shape[0])
        self.conv = np.zeros(GRID.shape[0])
        self.queries = 0.0

    def add(self, cost: np.ndarray, conv: np.ndarray, queries: float) -> None:
        self.cost = self.forget * self.cost + cost
        self.conv = self.forget * self.conv + conv
        self.queries = self.forget * self.queries + queries

    def at(self, log_alpha: float) -> tuple[float, float]:
        """(cost, conversions) per query at one multiplier."""
        per_query = 1.0 / max(self.queries, 1e-9)
        cost = float(np.interp(log_alpha, LOG_GRID, self.cost)) * per_query
        conv = float(np.interp(log_alpha, LOG_GRID, self.conv)) * per_query
        return cost, conv


def _log_ratio(num: float, den: float) -> float:
    if num <= 0 or den <= 0:
        return 0.0
    return min(3.0, max(-3.0, math.log(num / den)))


class LandscapePlanner:
    """Running landscape rates of one episode and the plan they imply."""

    def __init__(self, sim: MarketSimulator) -> None:
        self.sim = sim
        self.slow = _Rates(FORGET)
        self.fast = _Rates(FAST_FORGET)
        self.steps = 0

    @property
    def has_data(self) -> bool:
        return self.slow.queries > 0 and bool(self.slow.cost[-1] > 0)

    def add_step(self, index: int, queries: float) -> None:
        """Fold the landscape of played step ``index`` into the rates."""
        view = self.sim.multiplier_landscape(index, GRID)
        self.slow.add(view.cost, view.conversions, queries)
        self.fast.add(view.cost, view.conversions, queries)
        self.steps += 1

    def _choose(
        self,
        budget_left_today: float,
        traffic_left_today: float,
        traffic_later_days: np.ndarray,
        realised: tuple[float, float, float],
        calibration: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fine-grid indices of (alpha_budget, alpha_goal) for the slow and the fast rates
        (each of shape (2,)), and the slow cost rates, in one vectorised pass."""
        coarse = np.stack([self.slow.cost, self.slow.conv, self.fast.cost, self.fast.conv])
        per_query = 1.0 / np.maximum([self.slow.queries, self.fast.queries], 1e-9)
        fine = (coarse @ _TO_FINE).reshape(2, 2, -1) * per_query[:, None, None]
        cost, conv = fine[:, 0], fine[:, 1]  # (2, fine grid): slow, fast
        spend_today = cost * traffic_left_today
        affordable = spend_today <= budget_left_today
        last = affordable.shape[1] - 1 - np.argmax(affordable[:, ::-1], axis=1)
        i_budget = np.where(affordable.any(axis=1), last, 0)
        campaign = self.sim.scenario.campaign
        # Each day's spend stops at its budget; conversions follow spend at the same alpha.
        later = np.minimum(cost[:, :, None] * traffic_later_days, campaign.daily_budget)
        spend = np.minimum(spend_today, budget_left_today) + later.sum(axis=2)
        per_cost = np.divide(conv, cost, out=np.zeros_like(conv), where=cost > 0)
        conv_future = per_cost * spend * calibration
        r_cost, r_conv, r_value = realised
        scores = score_many(
            r_conv + conv_future,
            r_value + conv_future * campaign.conversion_value.mean,
            r_cost + spend,
            campaign,
        )
        # Among equal scores (a flat top) the cheapest multiplier is the safer choice.
        best = scores.max(axis=1, keepdims=True)
        i_goal = np.argmax(scores >= best * (1 - 1e-9), axis=1)
        return i_budget, i_goal, cost[0]

    def plan(
        self,
        *,
        budget_left_today: float,
        traffic_left_today: float,
        traffic_later_days: np.ndarray,
        realised: tuple[float, float, float],
        calibration: float,
        fallback_alpha: float,
    ) -> Plan:
        """The prior for the next step; ``realised`` is (cost, conversions, value) so far."""
        if not self.has_data:
            a = fallback_alpha
            return Plan(a, a, a, 1.0, 0.0, 0.0, a, a)
        i_budget, i_goal, cost = self._choose(
            budget_left_today, traffic_left_today, traffic_later_days, realised, calibration
        )
        i_slow, i_fast = (int(i) for i in np.minimum(i_budget, i_goal))
        log_slow = float(FINE_LOG_GRID[i_slow])
        log_fast = float(FINE_LOG_GRID[i_fast])
        fast_cost, fast_conv = self.fast.at(log_slow)
        slow_cost, slow_conv = self.slow.at(log_slow)
        efficiency_fast = fast_conv / fast_cost if fast_cost > 0 else 0.0
        efficiency_slow = slow_conv / slow_cost if slow_cost > 0 else 0.0
        return Plan(
            alpha_budget=math.exp(FINE_LOG_GRID[int(i_budget[0])]),
            alpha_goal=math.exp(FINE_LOG_GRID[int(i_goal[0])]),
            alpha_prior=math.exp((1 - FAST_WEIGHT) * log_slow + FAST_WEIGHT * log_fast),
            elasticity=_elasticity(cost, i_slow),
            cost_trend=_log_ratio(fast_cost, slow_cost),
            efficiency_trend=_log_ratio(efficiency_fast, efficiency_slow),
            alpha_slow=math.exp(log_slow),
            alpha_fast=math.exp(log_fast),
        )


def _elasticity(cost: np.ndarray, i: int) -> float:
    lo, hi = max(i - 3, 0), min(i + 3, cost.shape[0] - 1)
    if cost[lo] <= 0 or cost[hi] <= 0 or hi == lo:
        return 0.0
    slope = np.log(cost[hi] / cost[lo]) / (FINE_LOG_GRID[hi] - FINE_LOG_GRID[lo])
    return min(10.0, max(0.0, float(slope)))
