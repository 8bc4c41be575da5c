"""The observation against a plain reference: the features written out one by one.

``PacingState.observation`` reads per-step constants from tables built at reset and computes
the features in one compiled call, clipping each once, after the float32 cast; the reference
below recomputes every feature from the state with numpy scalars and clips before the cast,
as the features are documented.
Both must give the same float32 bits on every step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from adbot.bidding import run_episode
from adbot.bidding.oracle import hindsight_oracle
from adbot.errors import InvalidInput
from adbot.market.profiles import step_weights
from adbot.market.scenario import Scenario, load_scenario, random_scenario
from adbot.market.simulator import MarketSimulator
from adbot.rl.env import cap_daily_queries
from adbot.rl.features import (
    BASE_DAY,
    BASE_PREDICTED,
    FEATURE_NAMES,
    FIRST_STEP_SHADE,
    OBS_BOUND,
    PacingState,
    _py_log,
    _py_max,
    _py_min,
    _top_slot_spend,
    initial_alpha,
)
from adbot.rl.planner import FAST
from adbot.rl.policy import PriorPolicy

EPS = 1e-9


def clip(x: float, bound: float = 3.0) -> float:
    return float(min(bound, max(-bound, x)))


def log_ratio(num: float, den: float, bound: float = 3.0) -> float:
    return clip(math.log((num + EPS) / (den + EPS)), bound)


def goal_gap(state: PacingState, conversions: float) -> float:
    if state.cost <= 0 or conversions <= 0:
        return 0.0
    if state.target_cpa is not None:
        return log_ratio(state.target_cpa * conversions, state.cost)
    if state.target_roas is not None:
        return log_ratio(conversions * state.mean_value, state.target_roas * state.cost)
    return 0.0


def reference_observation(state: PacingState) -> np.ndarray:
    sim, plan = state.sim, state.plan
    spd = sim.steps_per_day
    forecast = np.asarray(sim.expected_queries, dtype=np.float64)
    forecast_cum = np.concatenate(([0.0], np.cumsum(forecast)))
    day = forecast[:spd]
    profile = sim.scenario.market.hourly_profile
    day_share = day / day.sum() if day.sum() > 0 else step_weights(profile, spd)
    day_cum = np.concatenate(([0.0], np.cumsum(day_share)))
    step_in_day = min(sim.step_index, sim.n_steps - 1) % spd
    day_progress = step_in_day / spd
    weekday = (sim.scenario.horizon.start_weekday + sim.day) % 7
    past_today = float(day_cum[step_in_day])
    past_episode = (sim.day + past_today) / sim.days
    reference_conv = state.total_budget / sim.value_per_conversion
    calibration = state.calibration()
    features = {
        "episode_progress": sim.step_index / sim.n_steps,
        "day_progress": day_progress,
        "hour_sin": math.sin(2 * math.pi * day_progress),
        "hour_cos": math.cos(2 * math.pi * day_progress),
        "weekday_sin": math.sin(2 * math.pi * weekday / 7),
        "weekday_cos": math.cos(2 * math.pi * weekday / 7),
        "budget_left_today": sim.budget_left_today / sim.daily_budget,
        "budget_left_episode": max(state.total_budget - state.cost, 0.0) / state.total_budget,
        "pace_gap_today": clip(sim.spend_today / sim.daily_budget - past_today),
        "pace_gap_episode": clip(state.cost / state.total_budget - past_episode),
        "traffic_left_today": 1.0 - past_today,
        "log_alpha_prior": clip(math.log(plan.alpha_prior), 4.0),
        "log_budget_over_goal": log_ratio(plan.alpha_budget, plan.alpha_goal),
        "log_prior_change": log_ratio(plan.alpha_prior, state.alpha),
        "elasticity": plan.elasticity / 3.0,
        "cost_trend": plan.cost_trend,
        "efficiency_trend": plan.efficiency_trend,
        "evidence": min(1.0, state.planner.steps / spd),
        "log_fast_over_slow": log_ratio(plan.alpha_fast, plan.alpha_slow),
        "step_traffic": clip(float(day_share[step_in_day]) * spd, 10.0),
        "target_gap": goal_gap(state, state.pred_conversions * calibration),
        "realised_target_gap": goal_gap(state, state.conversions),
        "calibration": clip(math.log(calibration)),
        "impression_share": state.last_step[0],
        "cpc_to_bid": state.last_step[1],
        "spend_rate": state.last_step[2],
        "conversions_so_far": clip(state.pred_conversions / reference_conv, 10.0),
        "volume_ratio": log_ratio(state.queries + 50.0, forecast_cum[sim.step_index] + 50.0),
        "has_cpa_target": float(state.target_cpa is not None),
        "has_roas_target": float(state.target_roas is not None),
    }
    assert tuple(features) == FEATURE_NAMES
    return np.clip(np.array(list(features.values()), dtype=np.float32), -OBS_BOUND, OBS_BOUND)


def play_and_compare(scenario: Scenario, seed: int) -> int:
    """Play an episode with random multipliers; the number of observations compared.

    A twin state on a twin simulator takes the env's path, ``record_and_observe`` (one
    compiled call): the same observation as ``record`` then ``observation()``, and the same
    running numbers and planner rates."""
    rng = np.random.default_rng(seed)
    sim, twin_sim = MarketSimulator(scenario, seed), MarketSimulator(scenario, seed)
    state, twin = PacingState(sim, 0.5), PacingState(twin_sim, 0.5)
    compared = 0
    obs = np.empty(len(FEATURE_NAMES), np.float32)
    while True:
        np.testing.assert_array_equal(state.observation(), reference_observation(state))
        if compared:
            np.testing.assert_array_equal(obs, state.observation())
        np.testing.assert_array_equal(twin.numbers, state.numbers)
        np.testing.assert_array_equal(twin.planner.rates, state.planner.rates)
        compared += 1
        if sim.done:
            return compared
        action = float(rng.uniform(-1, 1))
        alpha = state.alpha_for(action)
        assert twin.alpha_for(action) == alpha
        state.record(alpha, sim.step_multiplier(alpha))
        twin.record_and_observe(alpha, twin_sim.step_multiplier(alpha), obs)


@pytest.mark.parametrize("scenario_name", ["cpa_scenario", "roas_scenario", "value_scenario"])
def test_observation_matches_the_reference(
    scenario_name: str, request: pytest.FixtureRequest
) -> None:
    scenario: Scenario = request.getfixturevalue(scenario_name)
    assert play_and_compare(scenario, 3) == scenario.horizon.days * 24 + 1


def test_observation_matches_the_reference_on_random_scenarios() -> None:
    rng = np.random.default_rng(11)
    weekdays = set()
    for seed in range(12):
        scenario = cap_daily_queries(random_scenario(rng), 1500.0)
        weekdays.add(scenario.horizon.start_weekday)
        play_and_compare(scenario, seed)
    assert len(weekdays) >= 3  # the weekday table is read at several offsets


def test_a_first_day_without_traffic_keeps_the_hourly_profile(cpa_scenario: Scenario) -> None:
    """An episode that starts on a weekday of weight 0 (a shop closed on Mondays) has the
    day's shape of its hourly profile, not a flat one: the first day, where it was read
    from, has no traffic to read it from."""
    data = cpa_scenario.model_dump(mode="json")
    data["market"]["weekday_profile"] = [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    scenario = load_scenario(data)
    state = PacingState(MarketSimulator(scenario, 0), 0.5)
    shares = step_weights(scenario.market.hourly_profile, 24)
    open_day = PacingState(MarketSimulator(cpa_scenario, 0), 0.5)
    for step in range(24):
        expected = float(np.cumsum(shares)[step])
        assert state.traffic_share_through(step) == pytest.approx(expected, rel=1e-12)
        assert state.traffic_share_through(step) == pytest.approx(
            open_day.traffic_share_through(step), rel=1e-12
        )
    assert play_and_compare(scenario, 2) == scenario.horizon.days * 24 + 1


def test_a_lasting_drop_in_volume_is_planned_from_the_recent_days() -> None:
    """Volume x0.2 from day 1 of a budget-bound scenario: forecast from the queries seen since
    the start (0.6 of the forecast on day 2, where it is 0.2), the plan believed the budget
    would be spent at a low multiplier and spent 36 % of it on day 2 and 70 % on day 3. Once
    the recent ratio is off by more than RECENT_VOLUME_SHIFT it plans from that."""
    data = load_scenario("value-only").model_dump(mode="json")
    data["horizon"]["days"] = 4
    data["market"]["shocks"] = [{"day": 1, "step": 0, "volume_multiplier": 0.2}]
    scenario = load_scenario(data)
    result = run_episode(scenario, 0, PriorPolicy())
    budget = scenario.campaign.daily_budget
    spent = [float(result.spend[day * 24 : (day + 1) * 24].sum()) / budget for day in range(4)]
    assert spent[0] > 0.9 and spent[2] > 0.8 and spent[3] > 0.9


def _competitors_run_dry() -> Scenario:
    """Two days of a market whose 24 competitors each have a daily budget they spend by
    evening (a wide validation draw, ``random-1746740247``), flat traffic; ours is small."""
    return load_scenario(
        {
            "name": "competitors-run-dry",
            "seed": 1746740247,
            "horizon": {"days": 2, "steps_per_day": 24},
            "campaign": {
                "daily_budget": 219.6,
                "target_cpa": 36.66,
                "conversion_value": {"mean": 22.8, "sd_log": 0.31},
                "keywords": 29,
                "quality_score": {"mean": 5.36, "sd": 1.87},
            },
            "market": {
                "daily_queries": 25609.0,
                "volume_zipf": 0.997,
                "hourly_profile": "flat",
                "weekday_profile": [1.0] * 7,
                "competitors": 24,
                "participation": 0.868,
                "competitor_cpc": {"mean": 1.863, "sd_log": 0.596},
                "competitor_quality": {"mean": 6.13, "sd": 1.07},
                "competitor_budget": {"mean": 257.7, "sd_log": 0.5},
                "slots": 4,
                "position_ctr": [0.112, 0.093, 0.083, 0.048],
                "cvr": {"mean": 0.0905, "sd_log": 0.64},
                "pcvr_noise": 0.042,
                "bid_noise": 0.262,
                "reserve_cpc": 0.0396,
            },
        }
    )


@pytest.mark.parametrize("seed", [0, 2])
def test_a_new_day_is_not_bid_at_the_prices_of_the_last_ones_evening(seed: int) -> None:
    """Competitors that run out of budget by evening leave the late auctions at the reserve
    price whatever the bid, and the fast memory read that as "any multiplier fits". Carried
    into the next morning, when their budgets are fresh, it bid 2.5-2.9 and spent the whole
    of day 1's budget in its first hour (0.46-0.52 of the oracle's score). The new day is
    planned on the slow memory: its first hour spends a few percent and the day most of it."""
    scenario = _competitors_run_dry()
    result = run_episode(scenario, seed, PriorPolicy())
    budget = scenario.campaign.daily_budget
    assert result.spend[24] < 0.1 * budget
    assert 0.8 * budget < result.spend[24:].sum() <= budget * 1.01
    assert result.metrics.score > 0.95 * hindsight_oracle(scenario, seed).score


@pytest.mark.parametrize(("steps_per_day", "emptied"), [(24, True), (12, True), (6, False)])
def test_the_fast_memory_is_emptied_at_a_new_day_only_when_it_spans_hours(
    steps_per_day: int, emptied: bool
) -> None:
    """At 12 or more steps a day the fast memory (about 2.5 steps) is a few hours of one
    day, emptied when the next starts; at coarser steps it spans much of a day or more (10
    hours at 6 steps a day), the quick memory of a change, and is kept."""
    data = _competitors_run_dry().model_dump(mode="json")
    data["horizon"]["steps_per_day"] = steps_per_day
    sim = MarketSimulator(load_scenario(data), 0)
    state = PacingState(sim, 0.5)
    while sim.step_index < steps_per_day:
        alpha = state.alpha_for(0.0)
        state.record(alpha, sim.step_multiplier(alpha))
    assert (state.planner.queries[FAST] == 0.0) == emptied
    if emptied:  # the slow plan alone
        assert state.plan.alpha_fast == state.plan.alpha_slow
    else:
        assert state.planner.queries[FAST] > 0.0


def _plan_alone(scenario: Scenario, seed: int) -> tuple[PacingState, float]:
    """The plan's state at the end of an episode of action 0, and the episode's CPA."""
    sim = MarketSimulator(scenario, seed)
    state = PacingState(sim, 0.5)
    while not sim.done:
        alpha = state.alpha_for(0.0)
        state.record(alpha, sim.step_multiplier(alpha))
    return state, state.cost / max(state.conversions, 1.0)


def test_the_calibration_starts_again_after_a_lasting_change_in_cvr() -> None:
    """CVR x0.3 from day 1: the calibration since the start still said 0.46 days later and
    the plan bought at 2.6 times the target CPA. It starts again at day 1 once the rates
    before and after differ beyond CALIBRATION_SHIFT with the evidence asked for."""
    data = load_scenario("tight-cpa").model_dump(mode="json")
    data["horizon"]["days"] = 5
    data["market"]["shocks"] = [{"day": 1, "step": 0, "cvr_multiplier": 0.3}]
    state, cpa = _plan_alone(load_scenario(data), 0)
    assert state.numbers[BASE_DAY] == 1
    assert cpa < 1.5 * 20.0  # 53 before, against a target of 20
    steady, _ = _plan_alone(load_scenario("tight-cpa"), 0)  # no change: never starts again
    assert steady.numbers[BASE_DAY] == 0 and steady.numbers[BASE_PREDICTED] == 0.0


def test_steps_before_the_first_traffic_do_not_move_the_plan(cpa_scenario: Scenario) -> None:
    """Until a step has traffic the plan is the first step's, whatever the actions played:
    planned from the multiplier just played, each empty step moved it again by the action
    (an agent's small positive actions over two closed days took 0.5 to 11 before the
    first query, which then spent a day's worth at twice the target CPA)."""
    data = cpa_scenario.model_dump(mode="json")
    data["horizon"].update(days=3, start_weekday=0)
    data["market"]["weekday_profile"] = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    sim = MarketSimulator(load_scenario(data), 0)
    state = PacingState(sim, 0.5)
    first = initial_alpha(sim)
    empty_steps = 0
    while not state.planner.has_data:
        assert state.plan.alpha_prior == first
        alpha = state.alpha_for(1.0)
        assert alpha == pytest.approx(first * math.exp(0.5))
        outcome = sim.step_multiplier(alpha)
        empty_steps += outcome.total_queries == 0
        state.record(alpha, outcome)
    assert empty_steps == 48  # two closed days, then the plan reads the first landscape
    assert state.plan.alpha_prior != first


def _first_step_scenario(name: str, change: dict[str, object]) -> MarketSimulator:
    data = load_scenario(name).model_dump(mode="json")
    data["market"]["shocks"] = []
    for key, value in change.items():
        group, field = key.split(".")
        data[group][field] = value
    return MarketSimulator(load_scenario(data), 0)


def test_the_first_step_is_shaded_by_half_when_it_is_a_small_part_of_its_day() -> None:
    """Every training draw's first step carries at most 1/24 of its day: half the natural
    multiplier there (value / target ROAS with a ROAS target), also when the traffic starts
    on a later day, at the first step that has any."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        sim = MarketSimulator(random_scenario(rng), 0)
        campaign = sim.scenario.campaign
        natural = 1.0
        if campaign.target_cpa is None and campaign.target_roas is not None:
            natural = 1.0 / campaign.target_roas
        assert initial_alpha(sim) == min(50.0, max(0.02, FIRST_STEP_SHADE * natural))
    closed_start = _first_step_scenario(
        "tight-cpa", {"market.weekday_profile": [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]}
    )
    assert initial_alpha(closed_start) == FIRST_STEP_SHADE


@pytest.mark.parametrize(
    "change",
    [{"horizon.steps_per_day": 1}, {"market.hourly_profile": [0.0] * 20 + [1.0] + [0.0] * 3}],
    ids=["one-step-a-day", "one-open-hour"],
)
def test_a_whole_day_first_step_bids_the_target_where_the_budget_cannot_bind(
    change: dict[str, object],
) -> None:
    """A blind first step that is the whole day bid at half the target lost the whole day:
    on `tight-cpa` at one step a day 12 points of the oracle's score. Where even every
    top-slot click at its full bid stays within the budget it bids the natural multiplier
    (`tight-cpa`); with a ROAS target that is value / target, and on `value-roas` the bound
    reaches its budget at just over 0.4 of it, so the shade is all but gone (0.995)."""
    cpa = _first_step_scenario("tight-cpa", change)
    assert _top_slot_spend(cpa, 0, 0.4) <= cpa.daily_budget
    assert initial_alpha(cpa) == 1.0
    roas = _first_step_scenario("value-roas", change)
    natural = 1.0 / roas.scenario.campaign.target_roas
    assert 0.99 * natural < initial_alpha(roas) < natural


@pytest.mark.parametrize("name", ["tight-budget", "value-only", "budgeted-competitors"])
def test_a_whole_day_first_step_stays_shaded_where_the_budget_binds(name: str) -> None:
    """Bidding the natural multiplier over a whole day of a tight budget spent it on the
    dearest clicks (0.58 to 0.60 of the oracle's score on these at one step a day, against
    0.72 to 0.87 shaded): the bound passes the budget far below the natural multiplier, so
    the full shade stays, and a budget whose bound meets it between gets a shade between."""
    sim = _first_step_scenario(name, {"horizon.steps_per_day": 1})
    assert _top_slot_spend(sim, 0, 0.2) > sim.daily_budget
    assert initial_alpha(sim) == FIRST_STEP_SHADE
    budget = _top_slot_spend(sim, 0, 0.3)
    between = _first_step_scenario(
        name, {"horizon.steps_per_day": 1, "campaign.daily_budget": budget}
    )
    assert initial_alpha(between) == pytest.approx(0.75, rel=1e-6)


def test_the_first_step_shade_eases_with_its_share_of_the_day() -> None:
    """From a quarter of the day's traffic in the first step to all of it, the shade eases
    in log scale from half to none; no step in between moves the other way."""
    alphas = []
    for steps in (24, 6, 4, 3, 2, 1):
        change = {"horizon.steps_per_day": steps, "market.hourly_profile": "flat"}
        alphas.append(initial_alpha(_first_step_scenario("tight-cpa", change)))
    assert alphas[:3] == [FIRST_STEP_SHADE] * 3  # 4 flat steps: a quarter each
    assert alphas[2] < alphas[3] < alphas[4] < alphas[5] == 1.0


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_each_feature_is_clipped_to_its_own_bound(cpa_scenario: Scenario, scale: float) -> None:
    """Running totals pushed far out: every clipped feature sits at its bound, as in the
    reference."""
    sim = MarketSimulator(cpa_scenario, 5)
    state = PacingState(sim, 0.5)
    for _ in range(30):
        alpha = state.alpha_for(0.0)
        state.record(alpha, sim.step_multiplier(alpha))
    state.queries *= scale
    state.pred_conversions *= scale
    state.conversions *= scale
    state.cost /= scale
    sim.spend_today *= scale
    state.alpha /= scale
    obs = state.observation()
    np.testing.assert_array_equal(obs, reference_observation(state))
    at_bound = {name for name, x in zip(FEATURE_NAMES, obs, strict=True) if abs(x) in (3.0, 10.0)}
    assert {"volume_ratio", "log_prior_change", "target_gap", "realised_target_gap"} <= at_bound


def test_a_nan_in_the_state_is_refused_by_name(cpa_scenario: Scenario) -> None:
    sim = MarketSimulator(cpa_scenario, 5)
    state = PacingState(sim, 0.5)
    for _ in range(3):
        alpha = state.alpha_for(0.0)
        state.record(alpha, sim.step_multiplier(alpha))
    state.pred_conversions = float("nan")
    with pytest.raises(InvalidInput, match=r"NaN features: calibration, conversions_so_far$"):
        state.observation()
    alpha = state.alpha_for(0.0)
    obs = np.empty(len(FEATURE_NAMES), np.float32)
    with pytest.raises(InvalidInput, match=r"NaN features: .*conversions_so_far"):
        state.record_and_observe(alpha, sim.step_multiplier(alpha), obs)


def test_the_compiled_observation_keeps_pythons_min_max_and_log() -> None:
    """The observation kernel's helpers give what Python's builtins and ``math.log`` give,
    NaN, signed zeros and the domain error included (numba's own differ there)."""
    values = [math.nan, -math.inf, -3.0, -0.0, 0.0, 1e-300, 2.5, math.inf]
    for a in values:
        for b in values:
            assert repr(_py_min(a, b)) == repr(min(a, b)), (a, b)
            assert repr(_py_max(a, b)) == repr(max(a, b)), (a, b)
    for x in values:
        if x > 0 or x != x:
            assert repr(_py_log(x)) == repr(math.log(x)), x
        else:
            with pytest.raises(ValueError, match="math domain error"):
                math.log(x)
            with pytest.raises(ValueError, match="math domain error"):
                _py_log(x)
