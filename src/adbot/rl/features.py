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
from adbot.rl.planner import (
    CALIBRATION_PRIOR,
    GOAL_CPA,
    GOAL_ROAS,
    LandscapePlanner,
    Plan,
    fallback_plan,
    goal_of,
)

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
        self._goal, self._target = goal_of(campaign)  # as the observation kernel takes it
        self.total_budget = sim.daily_budget * sim.days
        # Predicted conversions the whole budget buys at the target (conversions_so_far).
        self._reference_conv = self.total_budget / sim.value_per_conversion
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

    def prepare(self) -> None:
        """Compute ahead what the next step needs whatever the action: its day's draws and
        landscapes (:meth:`LandscapePlanner.prepare`)."""
        self.planner.prepare()

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
    def observation(self) -> np.ndarray:
        """The features of :data:`FEATURE_NAMES` (float32, each clipped to its bound);
        ``InvalidInput`` naming the features that are NaN."""
        sim = self.sim
        spd, index = sim.steps_per_day, sim.step_index
        step_in_day = min(index, sim.n_steps - 1) % spd
        day = index // spd
        # Allocated here: an array returned by a compiled function is boxed through an
        # unpickled dtype at every call.
        obs = np.empty(N_FEATURES, np.float32)
        has_nan = _observation_kernel(
            obs, _LOWER, _UPPER,
            index, sim.n_steps, day, sim.days, spd,
            *self._clock[step_in_day], *self._weekday[day % 7],
            self._day_cum[step_in_day], self._step_traffic[step_in_day],
            sim.spend_today, sim.daily_budget, self.total_budget,
            self.cost, self.conversions, self.pred_conversions,
            self.queries, self._forecast_cum_f[index],
            *self.plan, self.alpha, self.planner.steps,
            self._goal, self._target, self.mean_value, self._reference_conv,
            *self._last, self._has_cpa, self._has_roas,
        )  # fmt: skip
        if has_nan:  # clipping keeps a NaN: name the features
            bad = [name for name, x in zip(FEATURE_NAMES, obs.tolist(), strict=True) if x != x]
            raise InvalidInput(f"the observation has NaN features: {', '.join(bad)}")
        return obs


@numba.njit(cache=True)
def _observation_kernel(
    obs, lower, upper,
    index, n_steps, day, days, steps_per_day,
    day_progress, hour_sin, hour_cos, weekday_sin, weekday_cos, past_today, step_traffic,
    spend_today, daily_budget, total_budget,
    cost, conversions, pred_conversions, queries, forecast_queries,
    alpha_budget, alpha_goal, alpha_prior, elasticity, cost_trend, efficiency_trend,
    alpha_slow, alpha_fast, alpha, landscape_steps,
    goal, target, mean_value, reference_conv,
    impression_share, cpc_to_bid, spend_rate, has_cpa, has_roas,
):  # fmt: skip
    """Fill ``obs`` with the features of FEATURE_NAMES, in order, from the state's numbers
    (the clock's and the day's tables already looked up); whether one is NaN.

    One compiled call instead of some thirty Python float operations, an array from a
    tuple and three ufuncs. Python's arithmetic throughout: ``_py_min``/``_py_max`` are the
    builtins' NaN handling, ``_py_log`` raises where ``math.log`` does, division by zero
    raises; each feature is cast to float32, then clipped to its bound (the same floats as
    clipping before the cast).
    """
    calibration = (conversions + CALIBRATION_PRIOR) / (pred_conversions + CALIBRATION_PRIOR)
    features = (
        index / n_steps,
        day_progress,
        hour_sin,
        hour_cos,
        weekday_sin,
        weekday_cos,
        _py_max(0.0, daily_budget - spend_today) / daily_budget,
        _py_max(total_budget - cost, 0.0) / total_budget,
        spend_today / daily_budget - past_today,
        cost / total_budget - (day + past_today) / days,
        1.0 - past_today,
        _py_log(alpha_prior),
        _py_log((alpha_budget + _EPS) / (alpha_goal + _EPS)),
        _py_log((alpha_prior + _EPS) / (alpha + _EPS)),
        elasticity / 3.0,
        cost_trend,
        efficiency_trend,
        _py_min(1.0, landscape_steps / steps_per_day),
        _py_log((alpha_fast + _EPS) / (alpha_slow + _EPS)),
        step_traffic,
        _goal_gap(pred_conversions * calibration, cost, goal, target, mean_value),
        _goal_gap(conversions, cost, goal, target, mean_value),
        _py_log(calibration),
        impression_share,
        cpc_to_bid,
        spend_rate,
        pred_conversions / reference_conv,
        _py_log((queries + 50.0 + _EPS) / (forecast_queries + 50.0 + _EPS)),
        has_cpa,
        has_roas,
    )
    has_nan = False
    i = 0
    # literal_unroll (a feature may be an int) has no enumerate in numba
    for feature in numba.literal_unroll(features):
        x = np.float32(feature)
        if x < lower[i]:
            x = lower[i]
        elif x > upper[i]:
            x = upper[i]
        has_nan |= x != x
        obs[i] = x
        i += 1  # noqa: SIM113
    return has_nan


@numba.njit(cache=True)
def _goal_gap(conversions, cost, goal, target, mean_value):
    """log(target / CPA) on these conversions (ROAS alike), clipped; 0 without a target."""
    if cost <= 0 or conversions <= 0:
        return 0.0
    if goal == GOAL_CPA:
        return _log_ratio(target * conversions, cost)
    if goal == GOAL_ROAS:
        return _log_ratio(conversions * mean_value, target * cost)
    return 0.0


@numba.njit(cache=True)
def _log_ratio(num, den):
    """``log((num + eps) / (den + eps))`` clipped to [-3, 3], in Python's arithmetic."""
    return _py_min(3.0, _py_max(-3.0, _py_log((num + _EPS) / (den + _EPS))))


@numba.njit(cache=True)
def _py_min(a, b):
    """Python's ``min(a, b)``: ``a`` unless ``b < a`` (so a NaN ``b`` gives ``a``)."""
    return b if b < a else a


@numba.njit(cache=True)
def _py_max(a, b):
    """Python's ``max(a, b)``: ``a`` unless ``b > a``."""
    return b if b > a else a


@numba.njit(cache=True)
def _py_log(x):
    """``math.log`` as Python has it: a ValueError at or below 0 (numba gives -inf, NaN)."""
    if x <= 0:
        raise ValueError("math domain error")
    return math.log(x)


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
