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
from adbot.market.profiles import step_weights
from adbot.market.simulator import MOST_OF_DAY, MarketSimulator, StepOutcome
from adbot.rl.planner import (
    CALIBRATION_PRIOR,
    FORGET_DAY_MIN_STEPS,
    GOAL_CPA,
    GOAL_ROAS,
    GRID,
    LandscapePlanner,
    Plan,
    _add_and_plan_kernel,
    _forget_and_add,
    fallback_plan,
    goal_of,
    later_days,
)

MIN_ALPHA = 0.02
MAX_ALPHA = 50.0
FIRST_STEP_SHADE = 0.5
# A first step with traffic that is most of its day (``MOST_OF_DAY``) is shaded less, down
# to none at the whole day when its budget cannot bind (see ``initial_alpha``); the shipped
# agents never saw such a step (the wide draws, ``random_scenario(wide=True)``, have some).
# How far the first step's spend may fall short of the upper bound of ``_top_slot_spend``:
# where that bound reaches the daily budget at 1/BUDGET_REACH of the natural multiplier,
# the budget is taken to bind and the step stays shaded.
BUDGET_REACH = 2.5
OBS_BOUND = 10.0  # every feature is clipped to [-OBS_BOUND, OBS_BOUND]
_EPS = 1e-9
_SMALLEST = math.ulp(0.0)  # the smallest positive float

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
    """Before any evidence: the natural multiplier (one predicted conversion at the target;
    value / target with a ROAS target) shaded by ``FIRST_STEP_SHADE``, or by less when the
    first step with forecast traffic carries much of its day.

    The first step is bid blind, and its risks are lopsided: bidding too low loses part of
    one step, too high can spend a large share of a tight daily budget in that one step.
    Whatever the bid, the step's bid landscape informs every later step. When that step is
    most of its day (one step a day, traffic in one hour), bidding low loses most of the day
    instead: past ``MOST_OF_DAY`` of the day the shade eases in log scale, to none at
    the whole day, unless the budget could bind (:func:`_budget_shade`). At one step a day
    the half shade cost ``tight-cpa`` 12 points of the oracle's score.
    """
    campaign = sim.scenario.campaign
    natural = 1.0
    if campaign.target_cpa is None and campaign.target_roas is not None:
        natural = 1.0 / campaign.target_roas
    shade = FIRST_STEP_SHADE
    traffic = np.flatnonzero(np.asarray(sim.expected_queries) > 0.0)
    if traffic.size:
        first = int(traffic[0])
        share = sim.forecast_share_of_day(first)
        weight = min(1.0, (share - MOST_OF_DAY) / (1.0 - MOST_OF_DAY))
        if weight > 0.0:
            eased = _budget_shade(sim, first, natural)
            shade = math.exp((1.0 - weight) * math.log(shade) + weight * math.log(eased))
    return min(MAX_ALPHA, max(MIN_ALPHA, shade * natural))


def _top_slot_spend(sim: MarketSimulator, step: int, alpha: float) -> float:
    """An upper bound of a step's expected spend at multiplier ``alpha``: every forecast
    query's top-slot click, each paid at its full bid. It reads the keywords' shares of the
    traffic and the campaign's click-through rate at the top slot, the universe's constants
    that an advertiser estimates from its history (search volume per keyword, CTR by
    position), not the episode's draws."""
    bids = np.clip(alpha * sim.keyword_values, sim.min_bid, sim.max_bid)
    clicks = sim.expected_queries[step] * sim.market.universe.volume_share
    return float(np.sum(clicks * sim.market.universe.click_prob[:, 0] * bids))


def _budget_shade(sim: MarketSimulator, step: int, natural: float) -> float:
    """The first step's shade, ``FIRST_STEP_SHADE`` to 1, when it is the whole day: none
    where even ``_top_slot_spend`` at the natural multiplier over ``BUDGET_REACH`` stays within
    the daily budget (the target decides the bid, and a blind bid at it is safe); the full
    shade where that bound passes the budget already at the shaded multiplier over
    ``BUDGET_REACH``; between, ``BUDGET_REACH`` times the multiplier at which the bound meets
    the budget.

    The bound is loose (rivals take slots and set lower prices), so the multiplier that really
    spends the budget is higher: on the bundled scenarios at one step a day, the best constant
    multiplier in hindsight was 2.9 to 8 times the one at which the bound meets the budget
    where the budget binds (`tight-budget`, `value-only`, `retail-tight-budget`, ...), which
    keeps their full shade; `tight-cpa` and `loose-budget` bid the natural multiplier.
    """
    budget = sim.daily_budget
    low, high = FIRST_STEP_SHADE / BUDGET_REACH, 1.0 / BUDGET_REACH
    if _top_slot_spend(sim, step, high * natural) <= budget:
        return 1.0
    if _top_slot_spend(sim, step, low * natural) >= budget:
        return FIRST_STEP_SHADE
    for _ in range(30):  # bisection in log scale, to about 1e-9 of the ratio
        middle = math.sqrt(low * high)
        low, high = (
            (middle, high)
            if _top_slot_spend(sim, step, middle * natural) < budget
            else (low, middle)
        )
    return BUDGET_REACH * low


# PacingState's running numbers: one float64 array (``PacingState.numbers``) that the
# compiled step (``_record_kernel``) updates in place. The sums so far, the multiplier in
# force, last step's report features, the recent queries and their forecast (each step's
# weight halving every quarter of a day), the conversions and predicted conversions before
# the day the plan's calibration last started again and that day, then the fields of the
# current ``Plan``.
(
    COST, CONVERSIONS, VALUE, PRED_CONVERSIONS, QUERIES, ALPHA,
    IMPRESSION_SHARE, CPC_TO_BID, SPEND_RATE, RECENT_QUERIES, RECENT_FORECAST,
    BASE_CONVERSIONS, BASE_PREDICTED, BASE_DAY,
) = range(14)  # fmt: skip
PLAN = 14
# The traffic the plan expects is the forecast times the queries seen over the queries
# forecast since the start. Once the recent ratio (the last quarter day or so, on at least
# RECENT_MIN_FORECAST forecast queries) is off that by more than RECENT_VOLUME_SHIFT either
# way, the recent one: a lasting change in volume beyond what the agents trained on (shocks
# of x0.7-1.4, so the training draws never get there; Poisson noise on 200 queries is 7 %).
RECENT_VOLUME_SHIFT = 1.6
RECENT_MIN_FORECAST = 200.0
# The plan's calibration (realised over predicted conversions) counts every conversion since
# the start. It starts again at the start of one of the last CALIBRATION_SCAN_DAYS days once
# the rate since then differs from the rate before by more than CALIBRATION_SHIFT either way
# (the agents trained on CVR shocks of x0.8-1.2), with a Poisson likelihood ratio (two rates
# against one) of CALIBRATION_EVIDENCE, about five standard errors, on at least
# CALIBRATION_MIN_PREDICTED predicted conversions on each side. After CVR x0.3 the rate since
# the start still read 0.46 four days later, and the plan bought at 3-6 times the target CPA.
CALIBRATION_SHIFT = 1.6
CALIBRATION_EVIDENCE = 25.0
CALIBRATION_MIN_PREDICTED = 20.0
CALIBRATION_SCAN_DAYS = 14
N_NUMBERS = PLAN + len(Plan._fields)
_PRIOR = PLAN + Plan._fields.index("alpha_prior")
# The episode's constants as the kernels take them (``PacingState._constants``).
(
    C_N_STEPS, C_DAYS, C_STEPS_PER_DAY, C_DAILY_BUDGET, C_TOTAL_BUDGET, C_GOAL, C_TARGET,
    C_MEAN_VALUE, C_REFERENCE_CONV, C_HAS_CPA, C_HAS_ROAS, C_START_WEEKDAY, C_INITIAL_ALPHA,
    C_RECENT_DECAY, C_FORGET_DAY,
) = range(15)  # fmt: skip
_NO_DAYS = np.zeros((2, 0))
_NO_OBSERVATION = np.zeros(0, np.float32)


def _number(index: int, doc: str) -> property:
    """A float attribute that is entry ``index`` of ``numbers``."""

    def get(state: PacingState) -> float:
        return float(state.numbers[index])

    def set_(state: PacingState, value: float) -> None:
        state.numbers[index] = value

    return property(get, set_, doc=doc)


class PacingState:
    """Running statistics of one episode, the observation, and action -> alpha.

    The running numbers live in one float64 array, ``numbers`` (entries ``COST`` ...
    ``SPEND_RATE``, then the ``Plan`` from ``PLAN`` on), read as float attributes. A step's
    report is folded in, the plan for the next step made and, for the env, the next
    observation computed in one compiled call (``_record_kernel``): per step that was some
    fifty Python float operations and four compiled calls with some eighty arguments.
    """

    cost = _number(COST, "cost so far")
    conversions = _number(CONVERSIONS, "realised conversions so far")
    value = _number(VALUE, "conversion value so far")
    pred_conversions = _number(PRED_CONVERSIONS, "predicted conversions of the clicks so far")
    queries = _number(QUERIES, "eligible queries so far")
    alpha = _number(ALPHA, "the multiplier in force (played at the last step)")

    def __init__(
        self, sim: MarketSimulator, action_log_range: float, *, fast_memory_by_day: bool = True
    ) -> None:
        """``fast_memory_by_day``: the planner's fast memory holds one day at 12 steps a day
        or more, emptied at each day's start (``LandscapePlanner.forget_day``), as policies play;
        False keeps it overnight, as the agents of ``ppo:default`` trained (a training config's
        ``env.fast_memory_by_day`` unset)."""
        self.sim = sim
        self.action_log_range = action_log_range
        campaign = sim.scenario.campaign
        self.target_cpa = campaign.target_cpa
        self.target_roas = None if campaign.target_cpa is not None else campaign.target_roas
        self.mean_value = campaign.conversion_value.mean
        goal, target = goal_of(campaign)
        self.total_budget = sim.daily_budget * sim.days
        # Predicted conversions the whole budget buys at the target (conversions_so_far);
        # never 0, which a budget near the smallest float over a large target underflows to
        # (the feature then divided by zero at the first step).
        reference_conv = max(self.total_budget / sim.value_per_conversion, _SMALLEST)
        constants = [0.0] * 15
        constants[C_N_STEPS], constants[C_DAYS] = sim.n_steps, sim.days
        constants[C_STEPS_PER_DAY], constants[C_DAILY_BUDGET] = sim.steps_per_day, sim.daily_budget
        constants[C_TOTAL_BUDGET], constants[C_GOAL], constants[C_TARGET] = (
            self.total_budget,
            goal,
            target,
        )
        constants[C_MEAN_VALUE], constants[C_REFERENCE_CONV] = self.mean_value, reference_conv
        constants[C_HAS_CPA] = float(self.target_cpa is not None)
        constants[C_HAS_ROAS] = float(self.target_roas is not None)
        constants[C_START_WEEKDAY] = sim.scenario.horizon.start_weekday
        alpha = initial_alpha(sim)
        constants[C_INITIAL_ALPHA] = alpha
        constants[C_RECENT_DECAY] = 0.5 ** (4.0 / sim.steps_per_day)
        by_day = fast_memory_by_day and sim.steps_per_day >= FORGET_DAY_MIN_STEPS
        constants[C_FORGET_DAY] = float(by_day)
        self._constants = np.array(constants)
        forecast = np.asarray(sim.expected_queries, dtype=np.float64)
        self._forecast_cum = np.concatenate(([0.0], np.cumsum(forecast)))
        day_share = _day_share(forecast, sim)
        self._day_cum = np.concatenate(([0.0], np.cumsum(day_share)))
        self._clock = _clock_table(sim.steps_per_day)
        self._step_traffic = np.array(
            [_clip(float(share) * sim.steps_per_day, 10.0) for share in day_share]
        )
        # Each step of the day's even-pace share of the daily budget (spend rate feature).
        self._even_spend = [sim.daily_budget * float(share) for share in day_share]
        self._day_end = _day_ends(sim)
        # The later days' forecast traffic, seen from one day (``_later_day``): made when the
        # day starts. Every day's at once was days^2 / 2 floats (1 GB at 16,000 days).
        self._later_day, self._later = -1, _NO_DAYS
        # Conversions and predicted conversions before each day (row d: days 0..d-1).
        self._day_start = np.zeros((sim.days + 1, 2))
        self.planner = LandscapePlanner(sim)
        self.numbers = np.zeros(N_NUMBERS)
        self.numbers[ALPHA] = alpha
        self.numbers[PLAN:] = fallback_plan(alpha)  # no landscape seen yet

    @property
    def plan(self) -> Plan:
        """The plan for the next step."""
        return Plan._make(self.numbers[PLAN:].tolist())

    @property
    def last_step(self) -> tuple[float, float, float]:
        """Last step's impression share, average CPC over average bid, and spend rate."""
        share, cpc_to_bid, spend_rate = self.numbers[IMPRESSION_SHARE : SPEND_RATE + 1].tolist()
        return share, cpc_to_bid, spend_rate

    # --- traffic ----------------------------------------------------------------------
    def traffic_share_through(self, step_in_day: int) -> float:
        """Share of a day's forecast traffic in its steps 0..step_in_day."""
        return float(self._day_cum[step_in_day + 1])

    def calibration(self) -> float:
        """Realised over predicted conversions since the start, shrunk (the ``calibration``
        feature); the plan's own starts again after a lasting change (``BASE_*`` numbers)."""
        c0 = CALIBRATION_PRIOR
        return (self.conversions + c0) / (self.pred_conversions + c0)

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
        alpha = self.numbers.item(_PRIOR) * math.exp(self.action_log_range * a)
        return min(MAX_ALPHA, max(MIN_ALPHA, alpha))

    def record(self, alpha: float, outcome: StepOutcome) -> None:
        """Fold one step's report (the step the simulator just played) into the state and
        plan the next step."""
        self._record(alpha, outcome, _NO_OBSERVATION)

    def record_and_observe(self, alpha: float, outcome: StepOutcome, obs: np.ndarray) -> None:
        """``record``, then fill ``obs`` (float32, ``N_FEATURES``) with what
        ``observation()`` would return, in the same compiled call."""
        if self._record(alpha, outcome, obs):
            _refuse_nan(obs)

    def _record(self, alpha: float, outcome: StepOutcome, obs: np.ndarray) -> bool:
        """The compiled step (``_record_kernel``); whether ``obs`` (if wanted) has a NaN."""
        sim, planner = self.sim, self.planner
        day_landscapes, row = sim.played_day_landscapes(outcome.index, GRID)
        planner.steps += 1
        next_index = sim.step_index
        plan_next = next_index < sim.n_steps
        later = _NO_DAYS
        if plan_next:
            day = next_index // sim.steps_per_day
            if day != self._later_day:
                self._later_day = day
                self._later = _later_days(self._forecast_cum, int(self._day_end[day]), sim)
            later = self._later
        has_nan = _record_kernel(
            self.numbers, self._constants, planner.rates, planner.queries,
            outcome.counts[_CLICKS], sim.pcvr, outcome.bids, day_landscapes.cost,
            day_landscapes.conversions, row, later, self._day_end, outcome.total_cost,
            outcome.total_conversions, outcome.total_value, outcome.total_queries,
            outcome.total_impressions, outcome.total_clicks, alpha,
            self._even_spend[outcome.step], next_index, sim.spend_today, plan_next, planner.steps,
            obs, _LOWER, _UPPER, self._clock, _WEEKDAY_TABLE, self._day_cum,
            self._step_traffic, self._forecast_cum, self._day_start,
        )  # fmt: skip
        return bool(has_nan)

    # --- observation ----------------------------------------------------------------------
    def observation(self) -> np.ndarray:
        """The features of :data:`FEATURE_NAMES` (float32, each clipped to its bound);
        ``InvalidInput`` naming the features that are NaN."""
        # Allocated here: an array returned by a compiled function is boxed through an
        # unpickled dtype at every call.
        obs = np.empty(N_FEATURES, np.float32)
        has_nan = _observe(
            obs, _LOWER, _UPPER, self.numbers, self._constants, self._clock, _WEEKDAY_TABLE,
            self._day_cum, self._step_traffic, self._forecast_cum, self.sim.step_index,
            self.sim.spend_today, self.planner.steps,
        )  # fmt: skip
        if has_nan:
            _refuse_nan(obs)
        return obs


@numba.njit(cache=True)
def _restart_calibration(numbers, day_start, day):
    """Start the calibration again at the start of the day, among the last
    ``CALIBRATION_SCAN_DAYS`` since its last start, where the rate moved the most (the
    largest likelihood ratio), if it moved by more than ``CALIBRATION_SHIFT`` with a
    likelihood ratio of ``CALIBRATION_EVIDENCE``; ``numbers``' base fields say where."""
    conv, pred = numbers[CONVERSIONS], numbers[PRED_CONVERSIONS]
    base_conv, base_pred = numbers[BASE_CONVERSIONS], numbers[BASE_PREDICTED]
    best, best_day = CALIBRATION_EVIDENCE, -1
    for split in range(max(int(numbers[BASE_DAY]) + 1, day - CALIBRATION_SCAN_DAYS), day + 1):
        old_conv, old_pred = day_start[split, 0] - base_conv, day_start[split, 1] - base_pred
        new_conv, new_pred = conv - day_start[split, 0], pred - day_start[split, 1]
        if old_pred < CALIBRATION_MIN_PREDICTED or new_pred < CALIBRATION_MIN_PREDICTED:
            continue
        old_rate, new_rate = old_conv / old_pred, new_conv / new_pred
        if old_rate * CALIBRATION_SHIFT >= new_rate and new_rate * CALIBRATION_SHIFT >= old_rate:
            continue
        pooled = (old_conv + new_conv) / (old_pred + new_pred)
        ratio = 0.0
        if old_conv > 0.0:
            ratio += old_conv * math.log(old_rate / pooled)
        if new_conv > 0.0:
            ratio += new_conv * math.log(new_rate / pooled)
        if 2.0 * ratio >= best:
            best, best_day = 2.0 * ratio, split
    if best_day >= 0:
        numbers[BASE_CONVERSIONS] = day_start[best_day, 0]
        numbers[BASE_PREDICTED] = day_start[best_day, 1]
        numbers[BASE_DAY] = best_day


def _refuse_nan(obs: np.ndarray) -> None:
    """``InvalidInput`` naming the NaN features (clipping keeps a NaN)."""
    bad = [name for name, x in zip(FEATURE_NAMES, obs.tolist(), strict=True) if x != x]
    raise InvalidInput(f"the observation has NaN features: {', '.join(bad)}")


@numba.njit(cache=True)
def _record_kernel(
    numbers, constants, rates, rate_queries,
    clicks, pcvr, bids, day_cost, day_conv, row, later_days, day_end,
    cost, conversions, value, queries, impressions, n_clicks, alpha, even_spend, next_index,
    spend_today, plan_next, landscape_steps,
    obs, lower, upper, clock, weekday, day_cum, step_traffic, forecast_cum, day_start,
):  # fmt: skip
    """Fold a step's report into ``numbers``, fold its landscape (row ``row`` of its day's
    ``day_cost`` and ``day_conv``) into the planner's rates and plan the next step
    (``_add_and_plan_kernel``; fold only after the last step), then, if ``obs`` has room, fill
    it with the next observation (``_observe``); whether it has a NaN. Python's arithmetic
    throughout, the same floats as the step as Python code: the two dot products are BLAS
    ``ddot`` as ``ndarray.dot`` is, ``_py_min``/``_py_max`` are the builtins.
    """
    clicks_f = clicks.astype(np.float64)
    landscape_cost, landscape_conv = day_cost[row], day_conv[row]
    numbers[ALPHA] = alpha
    numbers[COST] += cost
    numbers[CONVERSIONS] += conversions
    numbers[VALUE] += value
    numbers[PRED_CONVERSIONS] += np.dot(clicks_f, pcvr)
    numbers[QUERIES] += queries
    decay = constants[C_RECENT_DECAY]
    numbers[RECENT_QUERIES] = numbers[RECENT_QUERIES] * decay + queries
    numbers[RECENT_FORECAST] = (
        numbers[RECENT_FORECAST] * decay + forecast_cum[next_index] - forecast_cum[next_index - 1]
    )
    numbers[IMPRESSION_SHARE] = impressions / max(queries, 1)
    numbers[CPC_TO_BID] = cost / np.dot(clicks_f, bids) if n_clicks else 0.0
    numbers[SPEND_RATE] = _log_ratio(cost, even_spend)
    if plan_next:
        expected = forecast_cum[next_index]
        volume_ratio = _py_min(5.0, _py_max(0.2, (numbers[QUERIES] + 50.0) / (expected + 50.0)))
        if numbers[RECENT_FORECAST] >= RECENT_MIN_FORECAST:
            recent = (numbers[RECENT_QUERIES] + 50.0) / (numbers[RECENT_FORECAST] + 50.0)
            recent = _py_min(5.0, _py_max(0.2, recent))
            if (
                recent > volume_ratio * RECENT_VOLUME_SHIFT
                or recent * RECENT_VOLUME_SHIFT < volume_ratio
            ):
                volume_ratio = recent
        spd = int(constants[C_STEPS_PER_DAY])
        day, new_day = next_index // spd, next_index % spd == 0
        if new_day:
            day_start[day, 0] = numbers[CONVERSIONS]
            day_start[day, 1] = numbers[PRED_CONVERSIONS]
        _restart_calibration(numbers, day_start, day)
        calibration = (numbers[CONVERSIONS] - numbers[BASE_CONVERSIONS] + CALIBRATION_PRIOR) / (
            numbers[PRED_CONVERSIONS] - numbers[BASE_PREDICTED] + CALIBRATION_PRIOR
        )
        daily_budget = constants[C_DAILY_BUDGET]
        plan = _add_and_plan_kernel(
            rates, rate_queries, landscape_cost, landscape_conv, float(queries),
            _py_max(0.0, daily_budget - spend_today),
            (forecast_cum[day_end[day]] - expected) * volume_ratio, later_days, volume_ratio,
            numbers[COST], numbers[CONVERSIONS], numbers[VALUE], calibration, daily_budget,
            int(constants[C_GOAL]), constants[C_TARGET], constants[C_MEAN_VALUE],
            # Until a step has traffic, the plan is the first step's: not the multiplier just
            # played, which the action moved, or each empty step would move it again (a week
            # that starts with empty days compounded it 20-fold before its first query).
            constants[C_INITIAL_ALPHA],
            new_day,
            constants[C_FORGET_DAY] > 0.0,
            # Smaller price moves are followed where a day has few steps, by the step count
            # alone: the agents trained with the fast memory kept overnight at 24 steps a day.
            spd < FORGET_DAY_MIN_STEPS,
        )  # fmt: skip
        for j in range(N_NUMBERS - PLAN):
            numbers[PLAN + j] = plan[j]
    else:
        _forget_and_add(rates, rate_queries, landscape_cost, landscape_conv, float(queries))
    if obs.shape[0] == 0:
        return False
    return _observe(
        obs, lower, upper, numbers, constants, clock, weekday, day_cum, step_traffic,
        forecast_cum, next_index, spend_today, landscape_steps,
    )  # fmt: skip


@numba.njit(cache=True)
def _observe(
    obs, lower, upper, numbers, constants, clock, weekday, day_cum, step_traffic, forecast_cum,
    index, spend_today, landscape_steps,
):  # fmt: skip
    """``_observation_kernel`` at step ``index``, its per-step numbers read from the tables
    and the state's arrays."""
    n_steps, spd = int(constants[C_N_STEPS]), int(constants[C_STEPS_PER_DAY])
    step_in_day = min(index, n_steps - 1) % spd
    day = index // spd
    wd = int(constants[C_START_WEEKDAY]) + day % 7
    return _observation_kernel(
        obs, lower, upper,
        index, n_steps, day, int(constants[C_DAYS]), spd,
        clock[step_in_day, 0], clock[step_in_day, 1], clock[step_in_day, 2],
        weekday[wd, 0], weekday[wd, 1], day_cum[step_in_day], step_traffic[step_in_day],
        spend_today, constants[C_DAILY_BUDGET], constants[C_TOTAL_BUDGET],
        numbers[COST], numbers[CONVERSIONS], numbers[PRED_CONVERSIONS], numbers[QUERIES],
        forecast_cum[index],
        numbers[PLAN], numbers[PLAN + 1], numbers[PLAN + 2], numbers[PLAN + 3],
        numbers[PLAN + 4], numbers[PLAN + 5], numbers[PLAN + 6], numbers[PLAN + 7],
        numbers[ALPHA], landscape_steps,
        int(constants[C_GOAL]), constants[C_TARGET], constants[C_MEAN_VALUE],
        constants[C_REFERENCE_CONV],
        numbers[IMPRESSION_SHARE], numbers[CPC_TO_BID], numbers[SPEND_RATE],
        constants[C_HAS_CPA], constants[C_HAS_ROAS],
    )  # fmt: skip


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
    """``log((num + eps) / (den + eps))`` clipped to [-3, 3], in Python's arithmetic. Both
    are at least 0, so a ratio of 0 is one that underflowed (a ROAS target of 1e307 times
    the cost is infinite): its log is under the clip (it raised Python's "math domain
    error" inside the compiled step)."""
    ratio = (num + _EPS) / (den + _EPS)
    if ratio == 0.0:
        return -3.0
    return _py_min(3.0, _py_max(-3.0, _py_log(ratio)))


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


def _day_share(forecast: np.ndarray, sim: MarketSimulator) -> np.ndarray:
    """Each step's share of a day's forecast traffic (the hourly profile), read off the
    first day; from the profile itself when the first day has no traffic (its weekday
    weight is 0), which would otherwise leave no shape but a flat one for every day."""
    day = forecast[: sim.steps_per_day]
    if day.sum() > 0:
        return day / day.sum()
    return step_weights(sim.scenario.market.hourly_profile, sim.steps_per_day)


def _day_ends(sim: MarketSimulator) -> np.ndarray:
    """Per day, the index its last step ends at."""
    spd = sim.steps_per_day
    return np.array([min((day + 1) * spd, sim.n_steps) for day in range(sim.days)], np.intp)


def _later_days(forecast_cum: np.ndarray, end: int, sim: MarketSimulator) -> np.ndarray:
    """The forecast traffic of the days after the one whose last step ends at ``end``, as
    the planner takes it (:func:`adbot.rl.planner.later_days`)."""
    spd = sim.steps_per_day
    return later_days(forecast_cum[end + spd :: spd] - forecast_cum[end:-1:spd])


@functools.cache
def _clock_table(steps_per_day: int) -> np.ndarray:
    """(steps_per_day, 3): day progress, its sine and its cosine of each step of the day
    (read-only: shared by every state of that day length)."""
    table = np.array(
        [
            (
                step / steps_per_day,
                math.sin(2 * math.pi * (step / steps_per_day)),
                math.cos(2 * math.pi * (step / steps_per_day)),
            )
            for step in range(steps_per_day)
        ]
    )
    table.flags.writeable = False
    return table


# (sine, cosine) of each weekday, twice over: indexed by start weekday + day % 7.
_WEEKDAY_TABLE = np.array(
    [
        (math.sin(2 * math.pi * weekday / 7), math.cos(2 * math.pi * weekday / 7))
        for weekday in (*range(7), *range(7))
    ]
)
_WEEKDAY_TABLE.flags.writeable = False
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
