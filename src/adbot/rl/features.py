"""What a bidder knows, as normalised features, and how an action becomes a bid multiplier.

:class:`PacingState` is shared by the Gymnasium env (training) and the ``ppo:`` policy
(evaluation, autopilot), so an agent sees exactly the same features in both places.

Only information a real bidder has is used: its own bids and predicted conversion rates,
the platform's per-step report (eligible queries, impressions, clicks, cost, conversions,
value), the platform's bid simulator on steps already played, its budget and targets,
the clock, and its usual traffic profile (the forecast every account has from history;
unannounced shocks are not in it).

Action -> multiplier: ``alpha = prior x exp(action_log_range x a)`` for ``a`` in [-1, 1],
clipped to ``[MIN_ALPHA, MAX_ALPHA]``; the prior comes from
:class:`adbot.rl.planner.LandscapePlanner`, so ``a = 0`` follows the plan.
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np

from adbot.errors import InvalidInput
from adbot.market.auction import COUNT_ROWS
from adbot.market.simulator import MarketSimulator, StepOutcome
from adbot.rl.planner import CALIBRATION_PRIOR, LandscapePlanner, Plan, fallback_plan

MIN_ALPHA = 0.02
MAX_ALPHA = 50.0
FIRST_STEP_SHADE = 0.5
OBS_BOUND = 10.0  # every feature is clipped to [-OBS_BOUND, OBS_BOUND]
_EPS = 1e-9

FEATURE_NAMES: tuple[str, ...] = (
    "episode_progress",  # share of the episode's steps done
    "day_progress",  # share of today's steps done
    "hour_sin",
    "hour_cos",
    "weekday_sin",
    "weekday_cos",
    "budget_left_today",  # share of the daily budget not yet spent today
    "budget_left_episode",  # share of the total budget not yet spent
    "pace_gap_today",  # share of today's budget spent minus share of today's traffic past
    "pace_gap_episode",  # the same over the whole episode
    "traffic_left_today",  # share of today's forecast traffic still to come
    "log_alpha_prior",  # the plan's multiplier (clipped logs, as every log below)
    "log_budget_over_goal",  # log(alpha_budget / alpha_goal): > 0 when the goal binds
    "log_prior_change",  # log(prior / multiplier in force)
    "elasticity",  # d log spend / d log alpha around the prior (bid landscape)
    "cost_trend",  # log(last steps' / long-run spend per query) at the prior
    "efficiency_trend",  # log(last steps' / long-run conversions per cost) at the prior
    "evidence",  # steps of landscape seen so far / steps in a day, capped at 1
    "log_fast_over_slow",  # log(plan on the last few steps' rates / plan on a day's)
    "step_traffic",  # forecast share of today's traffic in the coming step x steps a day
    "target_gap",  # log(target / CPA so far), CPA on predicted conversions; ROAS alike
    "realised_target_gap",  # the same with realised conversions (0 before the first)
    "calibration",  # log(realised / predicted conversions), shrunk to 0 while thin
    "impression_share",  # last step: impressions / eligible queries
    "cpc_to_bid",  # last step: average CPC / average bid of clicks
    "spend_rate",  # log(last step's spend / its even-pace share of the daily budget)
    "conversions_so_far",  # predicted conversions / (total budget / R)
    "volume_ratio",  # log(eligible queries so far / forecast)
    "has_cpa_target",
    "has_roas_target",
)
N_FEATURES = len(FEATURE_NAMES)
_CLICKS = COUNT_ROWS.index("clicks")  # StepOutcome.clicks, read without the descriptor


def _clip(x: float, bound: float = 3.0) -> float:
    return float(min(bound, max(-bound, x)))


def _log_ratio(num: float, den: float, bound: float = 3.0) -> float:
    # _clip inlined: a per-step helper, and math.log already gives a Python float
    return min(bound, max(-bound, math.log((num + _EPS) / (den + _EPS))))


def initial_alpha(sim: MarketSimulator) -> float:
    """Before any evidence: ``FIRST_STEP_SHADE`` x the natural multiplier (one predicted
    conversion at the target; value / target with a ROAS target).

    The first step is bid blind, and its risks are lopsided: bidding too low loses part of
    one step, too high can spend a large share of a tight daily budget in that one step.
    Whatever the bid, the step's bid landscape informs every later step.
    """
    campaign = sim.scenario.campaign
    natural = 1.0
    if campaign.target_cpa is None and campaign.target_roas is not None:
        natural = 1.0 / campaign.target_roas
    return min(MAX_ALPHA, max(MIN_ALPHA, FIRST_STEP_SHADE * natural))


class PacingState:
    """Running statistics of one episode, the observation, and action -> alpha."""

    def __init__(self, sim: MarketSimulator, action_log_range: float) -> None:
        self.sim = sim
        self.action_log_range = action_log_range
        campaign = sim.scenario.campaign
        self.target_cpa = campaign.target_cpa
        self.target_roas = None if campaign.target_cpa is not None else campaign.target_roas
        self.mean_value = campaign.conversion_value.mean
        self._has_cpa = float(self.target_cpa is not None)
        self._has_roas = float(self.target_roas is not None)
        self.total_budget = sim.daily_budget * sim.days
        forecast = np.asarray(sim.expected_queries, dtype=np.float64)
        self._forecast_cum = np.concatenate(([0.0], np.cumsum(forecast)))
        day = forecast[: sim.steps_per_day]
        self._day_share = day / day.sum() if day.sum() > 0 else np.full(day.shape, 1 / day.size)
        # Per-step constants as Python floats (cheaper than numpy scalars in the per-step
        # arithmetic); the same values as the arrays they come from.
        self._forecast_cum_f: list[float] = self._forecast_cum.tolist()
        self._day_cum: list[float] = np.concatenate(([0.0], np.cumsum(self._day_share))).tolist()
        self._clock = _clock_features(sim.steps_per_day)
        self._step_traffic = [
            _clip(float(share) * sim.steps_per_day, 10.0) for share in self._day_share
        ]
        self._weekday = _WEEKDAY_FEATURES[sim.scenario.horizon.start_weekday :]
        # Each step of the day's even-pace share of the daily budget (spend rate feature).
        self._even_spend = [sim.daily_budget * float(share) for share in self._day_share]
        self._day_end, self._later_days = _day_forecasts(self._forecast_cum, sim)
        self.planner = LandscapePlanner(sim)
        self.alpha = initial_alpha(sim)
        self.cost = self.conversions = self.value = 0.0
        self.pred_conversions = self.queries = 0.0
        self._last = (0.0, 0.0, 0.0)  # impression share, cpc/bid, spend rate
        self.plan = fallback_plan(self.alpha)  # no landscape seen yet

    # --- traffic ----------------------------------------------------------------------
    def traffic_share_through(self, step_in_day: int) -> float:
        """Share of a day's forecast traffic in its steps 0..step_in_day."""
        return self._day_cum[step_in_day + 1]

    def calibration(self) -> float:
        c0 = CALIBRATION_PRIOR
        return (self.conversions + c0) / (self.pred_conversions + c0)

    def _plan_after(self, index: int, queries: float) -> Plan:
        """Fold played step ``index`` (``queries`` eligible queries) into the planner and
        plan the next step, in one compiled call."""
        sim = self.sim
        next_index = sim.step_index
        day = next_index // sim.steps_per_day
        forecast = self._forecast_cum_f
        # Traffic so far against its forecast scales the forecast still to come.
        expected = forecast[next_index]
        volume_ratio = min(5.0, max(0.2, (self.queries + 50.0) / (expected + 50.0)))
        return self.planner.add_step_and_plan(
            index,
            queries,
            sim.budget_left_today,
            (forecast[self._day_end[day]] - expected) * volume_ratio,
            self._later_days[day],
            volume_ratio,
            self.cost,
            self.conversions,
            self.value,
            self.calibration(),
            self.alpha,
        )

    # --- action -------------------------------------------------------------------------
    def alpha_for(self, action: float) -> float:
        """The multiplier of the next step for an action in [-1, 1]."""
        a = float(action)
        if not math.isfinite(a):
            raise InvalidInput(f"the agent's action must be a finite number, got {a}")
        a = min(1.0, max(-1.0, a))
        alpha = self.plan.alpha_prior * math.exp(self.action_log_range * a)
        return min(MAX_ALPHA, max(MIN_ALPHA, alpha))

    def record(self, alpha: float, outcome: StepOutcome) -> None:
        """Fold one step's report (the step the simulator just played) into the state."""
        cost = outcome.total_cost
        queries = outcome.total_queries
        clicks = outcome.counts[_CLICKS].astype(np.float64)
        self.alpha = alpha
        self.cost += cost
        self.conversions += outcome.total_conversions
        self.value += outcome.total_value
        # ndarray.dot: the BLAS dot product that ``@`` calls on two vectors, with less dispatch
        self.pred_conversions += float(clicks.dot(self.sim.pcvr))
        self.queries += queries
        cpc_to_bid = cost / float(clicks.dot(outcome.bids)) if outcome.total_clicks else 0.0
        spend_rate = _log_ratio(cost, self._even_spend[outcome.step])
        self._last = (outcome.total_impressions / max(queries, 1), cpc_to_bid, spend_rate)
        if self.sim.done:  # nothing left to plan
            self.planner.add_step(outcome.index, float(queries))
        else:
            self.plan = self._plan_after(outcome.index, float(queries))

    # --- observation ----------------------------------------------------------------------
    def _goal_gap(self, conversions: float) -> float:
        if self.cost <= 0 or conversions <= 0:
            return 0.0
        if self.target_cpa is not None:
            return _log_ratio(self.target_cpa * conversions, self.cost)
        if self.target_roas is not None:
            return _log_ratio(conversions * self.mean_value, self.target_roas * self.cost)
        return 0.0

    def observation(self) -> np.ndarray:
        sim, plan = self.sim, self.plan
        spd, index = sim.steps_per_day, sim.step_index
        step_in_day = min(index, sim.n_steps - 1) % spd
        day = index // spd
        past_today = self._day_cum[step_in_day]
        day_progress, hour_sin, hour_cos = self._clock[step_in_day]
        weekday_sin, weekday_cos = self._weekday[day % 7]
        reference_conv = self.total_budget / sim.value_per_conversion
        daily_budget, total_budget, cost = sim.daily_budget, self.total_budget, self.cost
        calibration = self.calibration()
        obs, has_nan = _bounded_float32(
            _LOWER,
            _UPPER,
            index / sim.n_steps,
            day_progress,
            hour_sin,
            hour_cos,
            weekday_sin,
            weekday_cos,
            max(0.0, daily_budget - sim.spend_today) / daily_budget,
            max(total_budget - cost, 0.0) / total_budget,
            sim.spend_today / daily_budget - past_today,
            cost / total_budget - (day + past_today) / sim.days,
            1.0 - past_today,
            math.log(plan.alpha_prior),
            math.log((plan.alpha_budget + _EPS) / (plan.alpha_goal + _EPS)),
            math.log((plan.alpha_prior + _EPS) / (self.alpha + _EPS)),
            plan.elasticity / 3.0,
            plan.cost_trend,
            plan.efficiency_trend,
            min(1.0, self.planner.steps / spd),
            math.log((plan.alpha_fast + _EPS) / (plan.alpha_slow + _EPS)),
            self._step_traffic[step_in_day],
            self._goal_gap(self.pred_conversions * calibration),
            self._goal_gap(self.conversions),
            math.log(calibration),
            *self._last,
            self.pred_conversions / reference_conv,
            math.log((self.queries + 50.0 + _EPS) / (self._forecast_cum_f[index] + 50.0 + _EPS)),
            self._has_cpa,
            self._has_roas,
        )
        if has_nan:  # clipping keeps a NaN: name the features
            bad = [name for name, x in zip(FEATURE_NAMES, obs.tolist(), strict=True) if x != x]
            raise InvalidInput(f"the observation has NaN features: {', '.join(bad)}")
        return obs


@numba.njit(cache=True)
def _bounded_float32(lower, upper, *features):
    """The features (floats) as a float32 array, each clipped to its own bound after the
    cast, and whether any is NaN (clipping keeps a NaN).

    One compiled call instead of an array from a tuple, two clipping ufuncs and a NaN sum;
    clipping after the float32 cast gives the same floats as clipping before it.
    """
    obs = np.empty(len(features), np.float32)
    has_nan = False
    for i in range(len(features)):
        x = np.float32(features[i])
        if x < lower[i]:
            x = lower[i]
        elif x > upper[i]:
            x = upper[i]
        has_nan |= x != x
        obs[i] = x
    return obs, has_nan


def _day_forecasts(
    forecast_cum: np.ndarray, sim: MarketSimulator
) -> tuple[list[int], list[np.ndarray]]:
    """Per day: the index its last step ends at, and each later day's forecast traffic."""
    spd = sim.steps_per_day
    day_ends = [min((day + 1) * spd, sim.n_steps) for day in range(sim.days)]
    later = [forecast_cum[end + spd :: spd] - forecast_cum[end:-1:spd] for end in day_ends]
    return day_ends, later


@functools.cache
def _clock_features(steps_per_day: int) -> list[tuple[float, float, float]]:
    """(day progress, its sine, its cosine) of each step of the day."""
    return [
        (
            step / steps_per_day,
            math.sin(2 * math.pi * (step / steps_per_day)),
            math.cos(2 * math.pi * (step / steps_per_day)),
        )
        for step in range(steps_per_day)
    ]


# (sine, cosine) of each weekday, twice over: indexed by start weekday + day % 7.
_WEEKDAY_FEATURES = [
    (math.sin(2 * math.pi * weekday / 7), math.cos(2 * math.pi * weekday / 7))
    for weekday in (*range(7), *range(7))
]
_BOUNDS = {
    "pace_gap_today": 3.0,
    "pace_gap_episode": 3.0,
    "log_alpha_prior": 4.0,
    "log_budget_over_goal": 3.0,
    "log_prior_change": 3.0,
    "log_fast_over_slow": 3.0,
    "target_gap": 3.0,
    "realised_target_gap": 3.0,
    "calibration": 3.0,
    "spend_rate": 3.0,
    "conversions_so_far": 10.0,
    "volume_ratio": 3.0,
}
_UPPER = np.array([_BOUNDS.get(name, OBS_BOUND) for name in FEATURE_NAMES], dtype=np.float32)
_LOWER = -_UPPER
