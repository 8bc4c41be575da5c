"""``onlinelp``: the multiplier from a linear program over the market seen so far.

AuctionNet's OnlineLP sorts past bidding opportunities by realised cost per conversion and
takes them greedily until the budget (and CPA) binds; the price of the last one taken sets
the bid. For a multiplier bidder that greedy solution is a threshold on value per cost, i.e.
a single ``alpha``, so this policy scans a log grid of multipliers instead of sorting
opportunities: it is the same LP solved in its dual variable.

What it learns from: after each step, the step's bid landscape (``MarketSimulator.
bid_landscape``: expected clicks, cost and predicted conversions the step's auctions would
have given at every grid multiplier, the data a platform's bid simulator reports; see
``MarketSimulator.multiplier_landscape``). Per expected query, the landscapes of the steps
played so far are pooled with a 3-hour half-life (tuned like the PID's gains, on training
seeds 1000-1004: half-lives of 1/16, 1/8, 1/4, 1/2 day scored 0.987, 0.987, 0.983, 0.981
mean score ratio), so prices that move within the day or after a shock are followed
within hours. The landscapes are expectations, not noisy counts, so short memory is cheap.
The predicted conversions are recalibrated by the realised ones like the PID's (prior of
20 conversions).

Decision at each step: forecast, per multiplier, the rest of today (its expected query
volume) and each later day (capped at the daily budget), add what was realised so far, and
take the multiplier with the best forecast MARKET.md score (so a CPA or ROAS target is a
soft constraint with the score's quadratic penalty, exactly as it is scored) among those
whose expected spend for the rest of today fits today's remaining budget. When the budget
is what stops a higher multiplier, it interpolates between grid points on the budget slack.

Prior on day 1: before any step has been played, alpha is the natural multiplier (1 with a
CPA target or none, ``1 / target_roas`` with a ROAS target); from the second step on, the
steps already played stand in for the days already seen.
"""

from __future__ import annotations

import math

import numpy as np

from adbot.bidding.base import ALPHA_MAX, ALPHA_MIN, bids_from_alpha, natural_alpha
from adbot.bidding.pid import calibrated
from adbot.market import libm
from adbot.market.score import score_many
from adbot.market.simulator import MarketSimulator, StepOutcome

GRID_POINTS = 96
PRIOR_CONVERSIONS = 20.0


class OnlineLpPolicy:
    """Multiplier from an LP over the bid landscapes of the steps already played."""

    def __init__(self, name: str = "onlinelp", half_life_days: float = 0.125) -> None:
        self.name = name
        self.half_life_days = half_life_days
        self.grid = libm.geomspace(ALPHA_MIN, ALPHA_MAX, GRID_POINTS)
        self.alpha: float | None = None

    def reset(self, sim: MarketSimulator) -> None:
        self._sim = sim
        self._decay = 0.5 ** (1.0 / (self.half_life_days * sim.steps_per_day))
        self._seen = np.zeros((3, GRID_POINTS))  # decayed sums: cost, conversions, value
        self._seen_queries = 0.0
        self._cost = self._conversions = self._value = self._predicted = 0.0
        self.alpha = None
        # Later days enter the forecast through their traffic alone, and days share a few
        # traffic figures (weekdays, shocks): the days after today are kept as how many have
        # each figure, so a step costs the grid times the distinct figures, not times the
        # days left (a 20,000-day scenario took 12 ms a step).
        day_traffic = sim.expected_queries.reshape(-1, sim.steps_per_day).sum(axis=1)
        self._day_traffic, self._day_kind = np.unique(day_traffic, return_inverse=True)
        self._days_left = np.bincount(self._day_kind, minlength=self._day_traffic.shape[0])
        self._counted_from = 0  # the first day still in ``_days_left``

    def bids(self, sim: MarketSimulator) -> np.ndarray:
        self.alpha = natural_alpha(sim) if self._seen_queries <= 0 else self._solve(sim)
        return bids_from_alpha(self.alpha, sim)

    def observe(self, outcome: StepOutcome) -> None:
        sim = self._sim
        self._cost += outcome.total_cost
        self._conversions += outcome.total_conversions
        self._value += outcome.total_value
        self._predicted += float(outcome.clicks @ sim.pcvr)
        land = sim.multiplier_landscape(outcome.index, self.grid)
        self._seen *= self._decay
        self._seen += (land.cost, land.conversions, land.value)
        self._seen_queries = self._seen_queries * self._decay + sim.expected_queries[outcome.index]

    def _forecast(self, sim: MarketSimulator) -> tuple[np.ndarray, ...]:
        """Per grid multiplier: today's remaining cost, and episode-end cost, conv., value."""
        cost, conversions, value = self._seen / self._seen_queries
        spd, now = sim.steps_per_day, sim.step_index
        end_today = (now // spd + 1) * spd
        today = cost * sim.expected_queries[now:end_today].sum()
        cap = np.minimum(1.0, sim.budget_left_today / np.maximum(today, 1e-12))
        later, days = self._day_traffic, self._later_days(now // spd + 1)
        per_day = np.outer(cost, later)
        caps = np.minimum(1.0, sim.daily_budget / np.maximum(per_day, 1e-12))
        volume = sim.expected_queries[now:end_today].sum() * cap + (caps * later) @ days
        kappa = calibrated(self._predicted, self._conversions, PRIOR_CONVERSIONS)
        kappa = kappa / self._predicted if self._predicted > 0 else 1.0
        total_cost = self._cost + today * cap + (per_day * caps) @ days
        total_conversions = self._conversions + kappa * conversions * volume
        total_value = self._value + kappa * value * volume
        return today, total_cost, total_conversions, total_value

    def _later_days(self, first: int) -> np.ndarray:
        """How many days from day ``first`` on have each distinct traffic figure (float)."""
        while self._counted_from < first:
            self._days_left[self._day_kind[self._counted_from]] -= 1
            self._counted_from += 1
        return self._days_left.astype(np.float64)

    def _solve(self, sim: MarketSimulator) -> float:
        today, cost, conversions, value = self._forecast(sim)
        with np.errstate(over="ignore"):  # a budget near the smallest float: only signs matter
            slack = (sim.budget_left_today - today) / sim.daily_budget
        feasible = slack >= 0
        if not feasible.any():
            return float(self.grid[0])
        forecast = score_many(conversions, value, cost, sim.scenario.campaign)
        best = int(np.argmax(np.where(feasible, forecast, -np.inf)))
        budget_bound = best + 1 < GRID_POINTS and forecast[best + 1] > forecast[best]
        if not budget_bound or feasible[best + 1]:
            return float(self.grid[best])
        # The budget stops us between two grid points: interpolate on its slack.
        low, high = slack[best], slack[best + 1]
        share = low / (low - high) if low > high else 0.0
        log_grid = libm.log(self.grid)
        return math.exp(log_grid[best] + share * (log_grid[best + 1] - log_grid[best]))
