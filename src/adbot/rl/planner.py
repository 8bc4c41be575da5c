"""The prior multiplier an agent's action is relative to, planned from the bid landscape.

After each step the platform's bid simulator (``MarketSimulator.bid_landscape``: expected
clicks, cost and predicted conversions of other multipliers on a step already played, no
future and no hidden draws) is read on a fixed log grid of multipliers. The landscapes are
summed with exponential forgetting (so a price shock fades out of the estimate within about
a day) into per-query rates: cost ``c(alpha)``, predicted conversions ``n(alpha)``.

Two multipliers follow from the rates:

* ``alpha_budget``: the largest multiplier whose expected spend over the traffic still
  forecast today fits in what is left of today's budget;
* ``alpha_goal``: the multiplier that maximises the MARKET.md score of the episode's final
  totals, predicted as realised totals so far plus ``c, n`` times the traffic forecast for
  the rest of the episode (daily budgets ignored; predicted conversions are scaled by the
  realised/predicted ratio so far, shrunk to 1 while evidence is thin).

The prior is ``min(alpha_budget, alpha_goal)``: when the budget binds, the cheapest
multiplier that still spends it wins the most conversions; otherwise the goal decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adbot.market.score import score_many
from adbot.market.simulator import MarketSimulator

GRID = np.exp(np.linspace(np.log(0.02), np.log(50.0), 33))
LOG_GRID = np.log(GRID)
FINE_LOG_GRID = np.linspace(LOG_GRID[0], LOG_GRID[-1], 257)
FORGET = 0.97  # per-step weight of older landscapes
CALIBRATION_PRIOR = 20.0  # predicted conversions of pseudo-evidence that calibration is 1


@dataclass(frozen=True)
class Plan:
    alpha_budget: float
    alpha_goal: float
    alpha_prior: float
    elasticity: float  # d log cost / d log alpha at the prior


class LandscapePlanner:
    """Running landscape rates of one episode and the plan they imply."""

    def __init__(self, sim: MarketSimulator) -> None:
        self.sim = sim
        self._grid_bids = np.clip(np.outer(GRID, sim.keyword_values), sim.min_bid, sim.max_bid)
        self.cost = np.zeros(GRID.shape[0])
        self.conv = np.zeros(GRID.shape[0])
        self.queries = 0.0

    @property
    def has_data(self) -> bool:
        return self.queries > 0 and bool(self.cost[-1] > 0)

    def add_step(self, index: int, queries: float) -> None:
        """Fold the landscape of played step ``index`` into the rates."""
        view = self.sim.bid_landscape(index, self._grid_bids)
        self.cost = FORGET * self.cost + view.cost
        self.conv = FORGET * self.conv + view.conversions
        self.queries = FORGET * self.queries + queries

    def _fine_rates(self) -> tuple[np.ndarray, np.ndarray]:
        per_query = 1.0 / max(self.queries, 1e-9)
        cost = np.interp(FINE_LOG_GRID, LOG_GRID, self.cost * per_query)
        conv = np.interp(FINE_LOG_GRID, LOG_GRID, self.conv * per_query)
        return cost, conv

    def plan(
        self,
        *,
        budget_left_today: float,
        traffic_left_today: float,
        traffic_left_episode: float,
        realised: tuple[float, float, float],
        calibration: float,
        fallback_alpha: float,
    ) -> Plan:
        """The prior for the next step; ``realised`` is (cost, conversions, value) so far."""
        if not self.has_data:
            return Plan(fallback_alpha, fallback_alpha, fallback_alpha, 1.0)
        cost, conv = self._fine_rates()
        affordable = cost * traffic_left_today <= budget_left_today
        i_budget = int(np.nonzero(affordable)[0].max()) if affordable.any() else 0
        sim = self.sim
        conv_future = conv * traffic_left_episode * calibration
        r_cost, r_conv, r_value = realised
        mean_value = sim.scenario.campaign.conversion_value.mean
        scores = score_many(
            r_conv + conv_future,
            r_value + conv_future * mean_value,
            r_cost + cost * traffic_left_episode,
            sim.scenario.campaign,
        )
        # Among equal scores (a flat top) the cheapest multiplier is the safer choice.
        i_goal = int(np.argmax(scores >= scores.max() * (1 - 1e-9)))
        i_prior = min(i_budget, i_goal)
        return Plan(
            alpha_budget=float(np.exp(FINE_LOG_GRID[i_budget])),
            alpha_goal=float(np.exp(FINE_LOG_GRID[i_goal])),
            alpha_prior=float(np.exp(FINE_LOG_GRID[i_prior])),
            elasticity=_elasticity(cost, i_prior),
        )


def _elasticity(cost: np.ndarray, i: int) -> float:
    lo, hi = max(i - 8, 0), min(i + 8, cost.shape[0] - 1)
    if cost[lo] <= 0 or cost[hi] <= 0 or hi == lo:
        return 0.0
    slope = np.log(cost[hi] / cost[lo]) / (FINE_LOG_GRID[hi] - FINE_LOG_GRID[lo])
    return float(np.clip(slope, 0.0, 10.0))
