"""The compiled landscape planner against the numpy planner it replaced.

The reference below is the numpy implementation (``_choose`` with ``coarse @ _TO_FINE``,
``np.interp`` rates and ``score_many``) kept as it was; the planner must choose the same
grid points and agree on every float to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from adbot.market.scenario import Campaign, Scenario, Shock, load_scenario
from adbot.market.score import score_many
from adbot.market.simulator import MarketSimulator
from adbot.rl.env import cap_daily_queries
from adbot.rl.features import PacingState
from adbot.rl.planner import (
    DAY,
    DAY_CONV,
    DAY_COST,
    EMPTY_COUNT,
    FAST,
    FAST_CONV,
    FAST_COST,
    FAST_FORGET,
    FAST_WEIGHT,
    FINE_LOG_GRID,
    FORGET,
    GRID,
    GROUP_LATER_AFTER,
    LOG_GRID,
    PRICE_MIN_QUERIES,
    PRICE_MOVE,
    PRICE_SHIFT,
    SLOW,
    SLOW_CONV,
    SLOW_COST,
    LandscapePlanner,
    Plan,
    _plan_kernel,
    _price_shift,
    _prior,
    later_days,
)

TO_FINE = np.stack([np.interp(FINE_LOG_GRID, LOG_GRID, row) for row in np.eye(GRID.shape[0])])
ALPHA_FIELDS = ("alpha_budget", "alpha_goal", "alpha_prior", "alpha_slow", "alpha_fast")
REL = 1e-12  # the fine grid was a BLAS product; the compiled sum may round differently


# --- the numpy reference ------------------------------------------------------------------
@dataclass
class RefRates:
    forget: float
    cost: np.ndarray
    conv: np.ndarray
    queries: float = 0.0

    def add(self, cost: np.ndarray, conv: np.ndarray, queries: float) -> None:
        self.cost = self.forget * self.cost + cost
        self.conv = self.forget * self.conv + conv
        self.queries = self.forget * self.queries + queries

    @property
    def per_query(self) -> float:
        return 1.0 / self.queries if self.queries > EMPTY_COUNT else 0.0

    def at(self, log_alpha: float) -> tuple[float, float]:
        per_query = self.per_query
        cost = float(np.interp(log_alpha, LOG_GRID, self.cost)) * per_query
        conv = float(np.interp(log_alpha, LOG_GRID, self.conv)) * per_query
        return cost, conv


@dataclass
class Inputs:
    budget_left_today: float
    traffic_left_today: float
    traffic_later_days: np.ndarray
    realised: tuple[float, float, float]
    calibration: float


@dataclass
class Reference:
    plan: Plan
    slow_scores: np.ndarray  # the slow rates' score per fine grid point
    budget_binds: bool


def ref_choose(
    slow: RefRates, fast: RefRates, x: Inputs, campaign: Campaign
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    coarse = np.stack([slow.cost, slow.conv, fast.cost, fast.conv])
    per_query = np.array([slow.per_query, fast.per_query])
    fine = (coarse @ TO_FINE).reshape(2, 2, -1) * per_query[:, None, None]
    cost, conv = fine[:, 0], fine[:, 1]
    spend_today = cost * x.traffic_left_today
    affordable = spend_today <= x.budget_left_today
    last = affordable.shape[1] - 1 - np.argmax(affordable[:, ::-1], axis=1)
    i_budget = np.where(affordable.any(axis=1), last, 0)
    later = np.minimum(cost[:, :, None] * x.traffic_later_days, campaign.daily_budget)
    spend = np.minimum(spend_today, x.budget_left_today) + later.sum(axis=2)
    per_cost = np.divide(conv, cost, out=np.zeros_like(conv), where=cost > 0)
    conv_future = per_cost * spend * x.calibration
    r_cost, r_conv, r_value = x.realised
    scores = score_many(
        r_conv + conv_future,
        r_value + conv_future * campaign.conversion_value.mean,
        r_cost + spend,
        campaign,
    )
    best = scores.max(axis=1, keepdims=True)
    i_goal = np.argmax(scores >= best * (1 - 1e-9), axis=1)
    return i_budget, i_goal, cost[0], scores[0]


def ref_elasticity(cost: np.ndarray, i: int) -> float:
    lo, hi = max(i - 3, 0), min(i + 3, cost.shape[0] - 1)
    if cost[lo] <= 0 or cost[hi] <= 0 or hi == lo:
        return 0.0
    slope = np.log(cost[hi] / cost[lo]) / (FINE_LOG_GRID[hi] - FINE_LOG_GRID[lo])
    return min(10.0, max(0.0, float(slope)))


def ref_log_ratio(num: float, den: float) -> float:
    if num <= 0 or den <= 0:
        return 0.0
    return min(3.0, max(-3.0, math.log(num / den)))


def ref_plan(slow: RefRates, fast: RefRates, x: Inputs, campaign: Campaign) -> Reference:
    if fast.per_query == 0.0:  # the fast memory forgot everything: the slow one stands in
        fast = slow
    i_budget, i_goal, cost, scores = ref_choose(slow, fast, x, campaign)
    i_slow, i_fast = (int(i) for i in np.minimum(i_budget, i_goal))
    log_slow = float(FINE_LOG_GRID[i_slow])
    log_fast = float(FINE_LOG_GRID[i_fast])
    fast_cost, fast_conv = fast.at(log_slow)
    slow_cost, slow_conv = slow.at(log_slow)
    efficiency_fast = fast_conv / fast_cost if fast_cost > 0 else 0.0
    efficiency_slow = slow_conv / slow_cost if slow_cost > 0 else 0.0
    plan = Plan(
        alpha_budget=math.exp(FINE_LOG_GRID[int(i_budget[0])]),
        alpha_goal=math.exp(FINE_LOG_GRID[int(i_goal[0])]),
        alpha_prior=math.exp((1 - FAST_WEIGHT) * log_slow + FAST_WEIGHT * log_fast),
        elasticity=ref_elasticity(cost, i_slow),
        cost_trend=ref_log_ratio(fast_cost, slow_cost),
        efficiency_trend=ref_log_ratio(efficiency_fast, efficiency_slow),
        alpha_slow=math.exp(log_slow),
        alpha_fast=math.exp(log_fast),
    )
    return Reference(plan, scores, budget_binds=int(i_budget[0]) < FINE_LOG_GRID.shape[0] - 1)


# --- random states --------------------------------------------------------------------------
def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_campaign(rng: np.random.Generator, base: Campaign) -> Campaign:
    kind = int(rng.integers(3))  # CPA target, ROAS target, neither
    value = base.conversion_value.model_copy(update={"mean": log_uniform(rng, 5.0, 300.0)})
    return base.model_copy(
        update={
            "target_cpa": log_uniform(rng, 2.0, 150.0) if kind == 0 else None,
            "target_roas": log_uniform(rng, 0.3, 10.0) if kind == 1 else None,
            "daily_budget": log_uniform(rng, 20.0, 3000.0),
            "conversion_value": value,
        }
    )


def random_landscape(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """(cost, conversions, queries) of one step: cost rising with alpha from some zeros,
    conversions at a falling rate per cost, sometimes none at all."""
    n = GRID.shape[0]
    cost = np.cumsum(rng.exponential(size=n) * (rng.random(n) < 0.8))
    cost[: int(rng.integers(0, n // 2))] = 0.0
    if rng.random() < 0.15:
        cost = rng.random(n) * (rng.random(n) < 0.7)  # no shape at all
    queries = log_uniform(rng, 1.0, 5000.0)
    cost *= queries * log_uniform(rng, 1e-4, 1.0) / max(cost[-1], 1e-12)
    per_cost = log_uniform(rng, 1e-3, 0.5) * np.exp(-rng.uniform(0, 2) * np.linspace(0, 1, n))
    conv = 0.0 * cost if rng.random() < 0.15 else cost * per_cost
    return cost, conv, queries


def random_inputs(rng: np.random.Generator, budget: float) -> Inputs:
    def maybe_zero(p: float, value: float) -> float:
        return 0.0 if rng.random() < p else value

    realised = (
        maybe_zero(0.3, log_uniform(rng, 1.0, 20 * budget)),
        maybe_zero(0.3, log_uniform(rng, 0.1, 500.0)),
        maybe_zero(0.3, log_uniform(rng, 1.0, 20_000.0)),
    )
    return Inputs(
        budget_left_today=maybe_zero(0.25, log_uniform(rng, 0.01, 1.0) * budget),
        traffic_left_today=maybe_zero(0.15, log_uniform(rng, 10.0, 100_000.0)),
        # up to 10 later days: numpy sums 8 or more in another order
        traffic_later_days=np.exp(rng.uniform(np.log(10.0), np.log(1e5), int(rng.integers(11)))),
        realised=realised,
        calibration=log_uniform(rng, 0.3, 3.0),
    )


def assert_same_plan(plan: Plan, expected: Plan) -> None:
    for name in ALPHA_FIELDS:  # fine grid points: the same index gives the same float
        assert getattr(plan, name) == getattr(expected, name), name
    for name in Plan._fields:
        assert getattr(plan, name) == pytest.approx(getattr(expected, name), rel=REL, abs=1e-13), (
            name
        )


def assert_same_rates(planner: LandscapePlanner, slow: RefRates, fast: RefRates) -> None:
    """The planner's rates equal the reference's exactly (the same update, in place)."""
    for ref, cost_row, conv_row, entry in (
        (slow, SLOW_COST, SLOW_CONV, SLOW),
        (fast, FAST_COST, FAST_CONV, FAST),
    ):
        np.testing.assert_array_equal(planner.rates[cost_row], ref.cost)
        np.testing.assert_array_equal(planner.rates[conv_row], ref.conv)
        assert planner.queries[entry] == ref.queries


def folded(rng: np.random.Generator, planner: LandscapePlanner) -> tuple[RefRates, RefRates]:
    """A few random landscapes folded into the planner and into reference rates."""
    n = GRID.shape[0]
    slow, fast = (
        RefRates(FORGET, np.zeros(n), np.zeros(n)),
        RefRates(FAST_FORGET, np.zeros(n), np.zeros(n)),
    )
    for _ in range(int(rng.integers(1, 6))):
        cost, conv, queries = random_landscape(rng)
        planner.fold(cost, conv, queries)
        slow.add(cost, conv, queries)
        fast.add(cost, conv, queries)
        assert_same_rates(planner, slow, fast)
    return slow, fast


# --- tests ----------------------------------------------------------------------------------
def test_plan_matches_the_numpy_reference_on_random_states(cpa_scenario: Scenario) -> None:
    rng = np.random.default_rng(20240611)
    seen = dict.fromkeys(("cpa", "roas", "value", "tie", "binds", "goal", "no_budget", "free"), 0)
    for _ in range(30):
        campaign = random_campaign(rng, cpa_scenario.campaign)
        scenario = cpa_scenario.model_copy(update={"campaign": campaign})
        sim = MarketSimulator(scenario, int(rng.integers(1000)))
        goal = "cpa" if campaign.target_cpa else "roas" if campaign.target_roas else "value"
        for _ in range(40):
            planner = LandscapePlanner(sim)
            slow, fast = folded(rng, planner)
            x = random_inputs(rng, campaign.daily_budget)
            if not planner.has_data:
                continue
            expected = ref_plan(slow, fast, x, campaign)
            assert_same_plan(planner.plan(**vars(x), fallback_alpha=1.0), expected.plan)
            scores = expected.slow_scores
            seen[goal] += 1
            seen["tie"] += int(np.sum(scores >= scores.max() * (1 - 1e-9)) > 1)
            seen["binds"] += int(expected.budget_binds)
            seen["goal"] += int(expected.plan.alpha_goal < expected.plan.alpha_budget)
            seen["no_budget"] += int(x.budget_left_today == 0)
            seen["free"] += int(x.realised[0] == 0 or x.realised[1] == 0)
    # the random states reach every case the score and the choice distinguish
    assert min(seen.values()) >= 20, seen


@pytest.mark.parametrize("scenario_name", ["cpa_scenario", "roas_scenario", "value_scenario"])
def test_plan_matches_the_numpy_reference_on_played_steps(
    scenario_name: str, request: pytest.FixtureRequest
) -> None:
    scenario: Scenario = request.getfixturevalue(scenario_name)
    rng = np.random.default_rng(7)
    sim = MarketSimulator(scenario, 3)
    planner = LandscapePlanner(sim)
    n = GRID.shape[0]
    slow, fast = (
        RefRates(FORGET, np.zeros(n), np.zeros(n)),
        RefRates(FAST_FORGET, np.zeros(n), np.zeros(n)),
    )
    plans = 0
    while not sim.done:
        outcome = sim.step_multiplier(float(np.exp(rng.uniform(-1.5, 1.5))))
        planner.add_step(outcome.index, float(outcome.total_queries))
        view = sim.multiplier_landscape(outcome.index, GRID)
        day, row = sim.played_day_landscapes(outcome.index, GRID)  # the env's compiled step
        for got, whole in zip(view, day, strict=True):
            np.testing.assert_array_equal(got, whole[row])
        slow.add(view.cost, view.conversions, float(outcome.total_queries))
        fast.add(view.cost, view.conversions, float(outcome.total_queries))
        assert_same_rates(planner, slow, fast)
        if planner.has_data:
            x = random_inputs(rng, scenario.campaign.daily_budget)
            expected = ref_plan(slow, fast, x, scenario.campaign)
            assert_same_plan(planner.plan(**vars(x), fallback_alpha=1.0), expected.plan)
            plans += 1
    assert plans > sim.n_steps // 2


def test_plan_without_data_is_the_fallback(cpa_scenario: Scenario) -> None:
    planner = LandscapePlanner(MarketSimulator(cpa_scenario, 1))
    x = random_inputs(np.random.default_rng(1), cpa_scenario.campaign.daily_budget)
    assert planner.plan(**vars(x), fallback_alpha=0.7) == Plan(0.7, 0.7, 0.7, 1.0, 0, 0, 0.7, 0.7)


def test_add_step_and_plan_is_add_step_then_plan(cpa_scenario: Scenario) -> None:
    """The fused per-step call folds and plans exactly as the separate calls do, the later
    days' traffic scaled inside it and the fast memory emptied at a new day; before any data
    it gives the fallback."""
    rng = np.random.default_rng(5)
    sim = MarketSimulator(cpa_scenario, 2)
    fused, separate = LandscapePlanner(sim), LandscapePlanner(sim)
    plans = fallbacks = 0
    while not sim.done:
        outcome = sim.step_multiplier(float(np.exp(rng.uniform(-1.5, 1.5))))
        # The first step counted as no queries: no data yet, so the fallback.
        queries = float(outcome.total_queries) if outcome.index else 0.0
        x = random_inputs(rng, cpa_scenario.campaign.daily_budget)
        scale = log_uniform(rng, 0.2, 5.0)
        fallback = log_uniform(rng, 0.1, 2.0)
        new_day = sim.step_index % sim.steps_per_day == 0
        plan = fused.add_step_and_plan(
            outcome.index, queries, x.budget_left_today, x.traffic_left_today,
            later_days(x.traffic_later_days), scale, *x.realised, x.calibration, fallback,
            new_day, True,
        )  # fmt: skip
        separate.add_step(outcome.index, queries)
        if new_day:
            separate.end_day()
            separate.forget_day()
            assert fused.queries[FAST] == 0.0 and not fused.rates[[FAST_COST, FAST_CONV]].any()
        expected = separate.plan(
            **{**vars(x), "traffic_later_days": x.traffic_later_days * scale},
            fallback_alpha=fallback,
        )
        assert plan == expected
        np.testing.assert_array_equal(fused.rates, separate.rates)
        np.testing.assert_array_equal(fused.queries, separate.queries)
        assert fused.steps == separate.steps
        plans += int(separate.has_data)
        fallbacks += int(not separate.has_data)
    assert plans > sim.n_steps // 2 and fallbacks == 1


def test_a_new_day_is_planned_on_the_slow_memory_alone(cpa_scenario: Scenario) -> None:
    """With the fast memory emptied, the fast plan is the slow one, the trends are flat and
    the prior is the slow plan; the next step's fold starts the fast memory again from it
    alone, while the slow memory keeps the days before."""
    rng = np.random.default_rng(3)
    sim = MarketSimulator(cpa_scenario, 4)
    planner = LandscapePlanner(sim)
    while sim.step_index < 30:
        planner.add_step(sim.step_multiplier(float(np.exp(rng.uniform(-1, 1)))).index, 400.0)
    x = random_inputs(rng, cpa_scenario.campaign.daily_budget)
    before = planner.plan(**vars(x), fallback_alpha=1.0)
    slow_queries = planner.queries[SLOW]
    planner.forget_day()
    plan = planner.plan(**vars(x), fallback_alpha=1.0)
    assert before.alpha_fast != before.alpha_slow  # the fast memory differed
    assert plan.alpha_fast == plan.alpha_slow == before.alpha_slow
    assert plan.alpha_prior == pytest.approx(plan.alpha_slow, rel=1e-12)
    assert plan.cost_trend == plan.efficiency_trend == 0.0
    assert planner.queries[SLOW] == slow_queries
    planner.add_step(sim.step_multiplier(1.0).index, 250.0)
    assert planner.queries[FAST] == 250.0


def test_the_compiled_prior_is_pythons_on_every_pair_of_fine_points() -> None:
    """The kernel's prior (numba's exp) is the float Python's math.exp gives, for every
    (slow, fast) pair of fine points the plans can pick."""
    logs = FINE_LOG_GRID.tolist()
    for i_slow, log_slow in enumerate(logs):
        for i_fast, log_fast in enumerate(logs):
            expected = math.exp((1 - FAST_WEIGHT) * log_slow + FAST_WEIGHT * log_fast)
            assert _prior(i_slow, i_fast) == expected, (i_slow, i_fast)


def quiet_steps(planner: LandscapePlanner, steps: int) -> None:
    """Fold ``steps`` steps without traffic (a closed day: no queries, empty landscapes)."""
    nothing = np.zeros(GRID.shape[0])
    for _ in range(steps):
        planner.fold(nothing, nothing, 0.0)


@pytest.mark.parametrize("steps", [60, 2000])
def test_a_stretch_without_traffic_keeps_the_plan(cpa_scenario: Scenario, steps: int) -> None:
    """Days without traffic (a weekday weight of 0) forget counts and sums alike, so the
    per-query rates, and the plan, are those before them: after 60 quiet steps the fast
    count is far under one query (a floor of 1e-9 on it once shrank the fast rates and
    moved the prior several-fold); after 2000 it is gone and the slow rates stand in."""
    rng = np.random.default_rng(11)
    sim = MarketSimulator(cpa_scenario, 0)
    x = random_inputs(rng, cpa_scenario.campaign.daily_budget)
    x.budget_left_today, x.traffic_left_today = cpa_scenario.campaign.daily_budget, 2000.0
    planner = LandscapePlanner(sim)
    cost = np.geomspace(1e-3, 50.0, GRID.shape[0]) * 100.0
    planner.fold(cost, cost * np.linspace(0.08, 0.01, GRID.shape[0]), 100.0)
    before = planner.plan(**vars(x), fallback_alpha=1.0)
    quiet_steps(planner, steps)
    after = planner.plan(**vars(x), fallback_alpha=1.0)
    assert planner.queries[FAST] < 1e-9
    for name in ALPHA_FIELDS:
        assert getattr(after, name) == getattr(before, name), name


def test_later_days_are_day_by_day_then_grouped_by_traffic() -> None:
    """Up to ``GROUP_LATER_AFTER`` later days each is its own column (the day-by-day sums, bit
    for bit); past it, days of equal traffic are one column with their count, so a step of
    a years-long scenario costs a few columns, not one per day left (quadratic before)."""
    week = np.array([5.0, 5.0, 6.0, 5.0, 7.0, 3.0, 3.0])
    np.testing.assert_array_equal(later_days(week), np.stack((week, np.ones(7))))
    years = np.tile(week, 150)  # 1,050 days of three weekday figures
    assert years.shape[0] > GROUP_LATER_AFTER
    np.testing.assert_array_equal(later_days(years), [[3.0, 5.0, 6.0, 7.0], [300, 450, 150, 150]])
    assert later_days(np.zeros(0)).shape == (2, 0)


def test_a_grouped_plan_is_the_day_by_day_plan(cpa_scenario: Scenario) -> None:
    """Planning over 1,050 later days grouped by traffic gives the plan the same days give one
    by one (sums in another order: the same grid points here)."""
    sim = MarketSimulator(cpa_scenario, 1)
    planner = LandscapePlanner(sim)
    while sim.step_index < 6:
        planner.add_step(sim.step_multiplier(1.0).index, 500.0)
    days = np.tile([400.0, 410.0, 380.0, 400.0, 450.0, 200.0, 150.0], 150)
    inputs = {"budget_left_today": 30.0, "traffic_left_today": 200.0, "realised": (40.0, 2.0, 0.0)}
    grouped = planner.plan(**inputs, traffic_later_days=days, calibration=1.0, fallback_alpha=1.0)
    one_by_one = Plan._make(
        _plan_kernel(
            planner.rates, planner.queries, 30.0, 200.0, np.stack((days, np.ones_like(days))),
            1.0, 40.0, 2.0, 0.0, 1.0, planner._daily_budget, planner._goal, planner._target,
            planner._mean_value,
        )
    )  # fmt: skip
    assert grouped == one_by_one


# --- the price check at a day's end -------------------------------------------------------
def conversions_curve(move: float) -> np.ndarray:
    """Predicted conversions per query on ``GRID``: an S in log alpha, moved ``move`` (log)
    along the multiplier axis, as rivals' prices multiplied by ``exp(move)`` move it."""
    return 0.03 / (1.0 + np.exp(-1.5 * (LOG_GRID - move)))


def fold_day(planner: LandscapePlanner, conv: np.ndarray, steps: int = 24) -> None:
    """A day of ``steps`` steps of 100 queries each on the per-query curve ``conv``."""
    for _ in range(steps):
        planner.fold(conv * GRID * 100.0, conv * 100.0, 100.0)


@pytest.mark.parametrize(
    ("move", "restarts"),
    [(math.log(5.0), True), (math.log(0.3), True), (math.log(2.0), False), (0.0, False)],
)
def test_a_day_moved_by_rivals_prices_restarts_the_slow_memory(
    cpa_scenario: Scenario, move: float, restarts: bool
) -> None:
    """A day whose landscape moved along the multiplier axis by more than PRICE_SHIFT either
    way (rivals' prices x5 or x0.3) replaces both memories with that day's landscapes
    alone; a move within it (x2, and none) leaves the memories as they were. The move is
    read to within the grid's interpolation."""
    planner = LandscapePlanner(MarketSimulator(cpa_scenario, 0))
    fold_day(planner, conversions_curve(0.0))
    assert not planner.end_day()  # no day before it to compare with
    fold_day(planner, conversions_curve(move))
    day = planner.rates[[DAY_COST, DAY_CONV]].copy(), planner.queries[DAY]
    kept = planner.rates[[SLOW_COST, SLOW_CONV]].copy(), planner.queries[SLOW]
    kept_fast = planner.rates[[FAST_COST, FAST_CONV]].copy(), planner.queries[FAST]
    assert _price_shift(
        conversions_curve(0.0) * 2400.0, 2400.0, conversions_curve(move) * 2400.0, 2400.0
    ) == pytest.approx(move, abs=0.03)
    assert planner.end_day() == restarts
    slow = planner.rates[[SLOW_COST, SLOW_CONV]], planner.queries[SLOW]
    fast = planner.rates[[FAST_COST, FAST_CONV]], planner.queries[FAST]
    # Both memories start again: at a few steps a day the fast one spans days too.
    for memory, before in ((slow, kept), (fast, kept_fast)):
        expected = day if restarts else before
        np.testing.assert_array_equal(memory[0], expected[0])
        assert memory[1] == expected[1]
    # A new day's sums start from nothing.
    assert not planner.rates[[DAY_COST, DAY_CONV]].any() and planner.queries[DAY] == 0.0


def test_a_flat_stretch_moved_with_the_rest_is_a_price_move() -> None:
    """A stretch of the curve at one level (auctions won at the reserve price where fewer
    rivals take part than there are slots) counts once: each of its points mapped to the
    start of the day's stretch, and their spread hid a clean x5 move."""
    curve = conversions_curve(0.0)
    curve[10:16] = curve[10]  # flat over six grid points
    step = LOG_GRID[1] - LOG_GRID[0]
    moved = np.interp(LOG_GRID - math.log(5.0), LOG_GRID, curve, left=0.0)
    assert _price_shift(curve, 1.0, moved, 1.0) == pytest.approx(math.log(5.0), abs=step / 4)


def test_neighbouring_floats_of_one_log_are_no_division_by_zero() -> None:
    """Two floats a step apart can have the same log: the interpolation's 0/0 raised
    ZeroDivisionError inside the compiled step."""
    level = 0.0123
    last, day = conversions_curve(0.0), conversions_curve(0.0)
    last[15], day[14], day[15] = level, np.nextafter(level, 0.0), level
    assert math.log(day[14]) == math.log(day[15])
    assert math.isfinite(_price_shift(last, 1.0, day, 1.0))


def test_a_changed_shape_or_a_thin_day_is_no_price_move(cpa_scenario: Scenario) -> None:
    """Rivals running out of budget reshape the landscape unevenly (here 60 % of the curve
    moved x0.1: its middle level moves more than PRICE_SHIFT, its top little): no one price
    level, no restart. A day under PRICE_MIN_QUERIES queries is not compared, and the last
    day compared stays the one before it."""
    planner = LandscapePlanner(MarketSimulator(cpa_scenario, 0))
    base = conversions_curve(0.0)
    reshaped = 0.6 * conversions_curve(math.log(0.1)) + 0.4 * base
    middle = 0.5 * base[-1]
    moved = np.interp(middle, reshaped, LOG_GRID) - np.interp(middle, base, LOG_GRID)
    assert abs(moved) > math.log(PRICE_SHIFT)
    assert _price_shift(base, 1.0, reshaped, 1.0) == 0.0
    fold_day(planner, base)
    planner.end_day()
    fold_day(planner, reshaped)
    assert not planner.end_day()
    fold_day(planner, conversions_curve(math.log(5.0)), steps=1)  # 100 queries
    assert PRICE_MIN_QUERIES > 100.0 and not planner.end_day()
    fold_day(planner, base)  # the same as the last day with traffic: no move
    assert not planner.end_day()


@pytest.mark.parametrize(
    ("steps_per_day", "shock_step", "restart_day"), [(24, 0, 2), (1, 0, 2), (24, 12, 3), (4, 1, 3)]
)
def test_rivals_prices_x5_restart_the_memories_once(
    steps_per_day: int, shock_step: int, restart_day: int
) -> None:
    """On the market: ``tight-budget`` with rivals' prices x5 from day 2 restarts the
    memories at the end of day 2 and at no other day's end, at 24 steps a day and at one.
    From within day 2 that day is half moved, no price level against day 1, and day 3 is
    not against it: day 3 against day 1 is, and restarts them (once: day 4 against day 2 is
    not counted again). The same market without the shock never restarts."""
    scenario = cap_daily_queries(load_scenario("tight-budget"), 20000.0)
    scenario = scenario.model_copy(
        update={"horizon": scenario.horizon.model_copy(update={"days": 5})}
    )
    horizon = scenario.horizon.model_copy(update={"steps_per_day": steps_per_day})
    shock = Shock(day=2, step=shock_step, competitor_cpc_multiplier=5.0)
    shocked = scenario.market.model_copy(update={"shocks": (shock,)})
    for market, expected in ((shocked, [restart_day]), (scenario.market, [])):
        sim = MarketSimulator(scenario.model_copy(update={"horizon": horizon, "market": market}), 3)
        planner = LandscapePlanner(sim)
        restarts = []
        while not sim.done:
            outcome = sim.step_multiplier(1.0)
            planner.add_step(outcome.index, float(outcome.total_queries))
            if sim.step_index % steps_per_day == 0 and planner.end_day():
                restarts.append(outcome.index // steps_per_day)
        assert restarts == expected


@pytest.mark.parametrize("factor", [1.5, 1 / 1.5, 2.4])
def test_a_smaller_move_moves_the_earlier_days_when_days_are_few_steps(
    cpa_scenario: Scenario, factor: float
) -> None:
    """At few steps a day (``follow_moves``) a clean move within PRICE_SHIFT and beyond
    PRICE_MOVE moves both memories' earlier days by it: they become what they would be had
    those days been played at the new prices (to within the grid's interpolation, away from
    its ends), and the day itself is kept as it is. At many steps a day the memories keep
    the earlier prices (the agents trained so)."""
    move = math.log(factor)
    assert math.log(PRICE_MOVE) < abs(move) < math.log(PRICE_SHIFT)
    sim = MarketSimulator(cpa_scenario, 0)
    moved, never, kept = LandscapePlanner(sim), LandscapePlanner(sim), LandscapePlanner(sim)
    for day in range(4):
        curve = conversions_curve(move if day == 3 else 0.0)
        for planner, played in ((moved, curve), (never, conversions_curve(move)), (kept, curve)):
            fold_day(planner, played, steps=4)
        assert not moved.end_day(follow_moves=True) and not never.end_day(follow_moves=True)
        assert not kept.end_day()
    inner = slice(4, -4)
    for row in (SLOW_COST, SLOW_CONV, FAST_COST, FAST_CONV):
        np.testing.assert_allclose(moved.rates[row, inner], never.rates[row, inner], rtol=0.02)
        assert not np.allclose(kept.rates[row, inner], never.rates[row, inner], rtol=0.05)
    np.testing.assert_array_equal(moved.queries, kept.queries)
    # The next day at the new prices is no move again, and moves nothing.
    fold_day(moved, conversions_curve(move), steps=4)
    moved.end_day(follow_moves=True)
    fold_day(never, conversions_curve(move), steps=4)
    never.end_day(follow_moves=True)
    np.testing.assert_allclose(
        moved.rates[SLOW_CONV, inner], never.rates[SLOW_CONV, inner], rtol=0.02
    )


def test_a_move_within_price_move_moves_nothing(cpa_scenario: Scenario) -> None:
    """Day-to-day wobble (x1.1 here; at most x1.06 on markets without shocks) is left to the
    memories: they average it out."""
    sim = MarketSimulator(cpa_scenario, 0)
    follows, plain = LandscapePlanner(sim), LandscapePlanner(sim)
    for move in (0.0, math.log(1.1)):
        for planner in (follows, plain):
            fold_day(planner, conversions_curve(move), steps=4)
        follows.end_day(follow_moves=True)
        plain.end_day()
    np.testing.assert_array_equal(follows.rates[: SLOW_CONV + 1], plain.rates[: SLOW_CONV + 1])
    np.testing.assert_array_equal(
        follows.rates[FAST_COST : FAST_CONV + 1], plain.rates[FAST_COST : FAST_CONV + 1]
    )


def test_rivals_prices_x1_5_at_one_step_a_day_move_the_memories() -> None:
    """On the market at one step a day: after rivals' prices x1.5 from day 2 the slow
    memory's landscape (a month of memory at this step) is at the new prices from day 2's
    end, where it stayed half way between without the move."""
    scenario = cap_daily_queries(load_scenario("tight-budget"), 20000.0)
    horizon = scenario.horizon.model_copy(update={"steps_per_day": 1, "days": 4})
    shock = Shock(day=2, competitor_cpc_multiplier=1.5)
    market = scenario.market.model_copy(update={"shocks": (shock,)})
    sim = MarketSimulator(scenario.model_copy(update={"horizon": horizon, "market": market}), 3)
    follows, plain = LandscapePlanner(sim), LandscapePlanner(sim)
    while not sim.done:
        outcome = sim.step_multiplier(1.0)
        for planner in (follows, plain):
            planner.add_step(outcome.index, float(outcome.total_queries))
        day = planner.rates[DAY_CONV].copy(), planner.queries[DAY]
        assert not follows.end_day(follow_moves=True) and not plain.end_day()
        if outcome.index == 2:
            seen = {}
            for name, planner in (("follows", follows), ("plain", plain)):
                memory = planner.rates[SLOW_CONV], planner.queries[SLOW]
                seen[name] = _price_shift(memory[0], memory[1], day[0], day[1])
            assert abs(seen["follows"]) < 0.05 < math.log(1.5) / 3 < seen["plain"]


@pytest.mark.parametrize(("steps_per_day", "follows"), [(24, False), (4, True), (1, True)])
def test_the_step_count_alone_decides_whether_moves_are_followed(
    steps_per_day: int, follows: bool
) -> None:
    """``PacingState`` follows smaller moves at fewer than 12 steps a day, whether or not
    the fast memory holds one day: at 24 steps a day the agents trained with it kept
    overnight, and their training must play as before (the slow memory there is the plain
    one's, bit for bit, after rivals' prices x1.5)."""
    scenario = cap_daily_queries(load_scenario("tight-budget"), 20000.0)
    horizon = scenario.horizon.model_copy(update={"steps_per_day": steps_per_day, "days": 4})
    shock = Shock(day=2, competitor_cpc_multiplier=1.5)
    market = scenario.market.model_copy(update={"shocks": (shock,)})
    scenario = scenario.model_copy(update={"horizon": horizon, "market": market})
    reference = LandscapePlanner(MarketSimulator(scenario, 3))
    slow = {}
    for by_day in (False, True):
        sim = MarketSimulator(scenario, 3)
        state = PacingState(sim, 0.0, fast_memory_by_day=by_day)
        while not sim.done:
            outcome = sim.step_multiplier(1.0)
            state.record(1.0, outcome)
            if not by_day:
                reference.sim.step_multiplier(1.0)
                reference.add_step(outcome.index, float(outcome.total_queries))
                if sim.step_index % steps_per_day == 0 and not sim.done:
                    reference.end_day(follow_moves=follows)
        slow[by_day] = state.planner.rates[[SLOW_COST, SLOW_CONV]]
    np.testing.assert_array_equal(slow[False], slow[True])
    np.testing.assert_array_equal(slow[False], reference.rates[[SLOW_COST, SLOW_CONV]])
