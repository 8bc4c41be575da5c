"""Reward components: the default reward sums to the MARKET.md score over an episode."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from adbot.errors import InvalidInput
from adbot.market.scenario import Scenario
from adbot.rl.config import training_config_from_dict
from adbot.rl.env import BidPacingEnv
from adbot.rl.rewards import (
    REWARD_COMPONENTS,
    Goal,
    Reward,
    RewardSpec,
    Totals,
    Transition,
    register_reward_component,
    running_score,
)


def _episode(
    env: BidPacingEnv, seed: int, scenario: Scenario | None = None
) -> tuple[float, float, BidPacingEnv]:
    env.reset(seed=seed, options=None if scenario is None else {"scenario": scenario})
    actions = np.random.default_rng(seed).uniform(-1, 1, (10_000, 1)).astype(np.float32)
    total = 0.0
    for action in actions:
        _, reward, terminated, _, info = env.step(action)
        total += float(reward)
        if terminated:
            return total, info["score"], env
    raise AssertionError("episode did not end")


def test_default_reward_sums_to_score_over_reference(
    cpa_scenario: Scenario, roas_scenario: Scenario, value_scenario: Scenario
) -> None:
    """One env plays the scenarios in turn (as domain randomisation does): each episode's
    rewards are divided by its own scenario's reference score, not an earlier one's."""
    scenarios = (cpa_scenario, roas_scenario, value_scenario, cpa_scenario)
    references = [Goal.of(scenario).reference_score() for scenario in scenarios]
    assert len(set(references)) == 3
    env = BidPacingEnv(cpa_scenario)
    for scenario, reference in zip(scenarios, references, strict=True):
        total, score, env = _episode(env, seed=3, scenario=scenario)
        assert score > 0
        assert total * reference == pytest.approx(score, rel=1e-9), scenario.name


def test_unscaled_score_reward_sums_to_the_score(cpa_scenario: Scenario) -> None:
    env = BidPacingEnv(cpa_scenario, reward={"components": {"score": 1.0}, "scale": "none"})
    total, score, _ = _episode(env, seed=5)
    assert total == pytest.approx(score, rel=1e-9)


def test_terminal_score_pays_the_score_once(cpa_scenario: Scenario) -> None:
    env = BidPacingEnv(cpa_scenario, reward={"components": {"terminal_score": 1}, "scale": "none"})
    env.reset(seed=1)
    rewards = []
    while True:
        _, reward, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
        rewards.append(reward)
        if terminated:
            break
    assert rewards[:-1] == [0.0] * (len(rewards) - 1)
    assert rewards[-1] == pytest.approx(info["score"])


def _goal(scenario: Scenario) -> Goal:
    return Goal.of(scenario)


def _transition(goal: Goal, before: Totals, after: Totals, pace_gap: float = 0.0) -> Transition:
    return Transition(goal, before, after, pace_gap=pace_gap, terminal=False)


@pytest.mark.parametrize("fixture", ["cpa_scenario", "roas_scenario", "value_scenario"])
def test_scored_totals_give_the_same_rewards(fixture: str, request: pytest.FixtureRequest) -> None:
    """The env scores its running totals once per step (``Totals.add`` with the goal); every
    component gives the same floats as on unscored totals, which it scores itself."""
    scenario = request.getfixturevalue(fixture)
    goal = _goal(scenario)
    steps = [(50.0, 1.0, 80.0), (0.0, 0.0, 0.0), (350.0, 4.0, 220.0), (20.0, 9.0, 700.0)]
    plain, scored = [Totals()], [Totals()]
    for step in steps:
        plain.append(plain[-1].add(*step))
        scored.append(scored[-1].add(*step, goal))
        assert plain[-1].score is None
        assert scored[-1].score == running_score(goal, plain[-1])
        assert scored[-1][:3] == plain[-1][:3]
    for (b0, a0), (b1, a1) in zip(
        itertools.pairwise(plain), itertools.pairwise(scored), strict=True
    ):
        for name, component in REWARD_COMPONENTS.items():
            args = (goal, b0, a0, 0.1, True, b0, a0), (goal, b1, a1, 0.1, True, b1, a1)
            assert component(Transition(*args[0])) == component(Transition(*args[1])), name


def test_conversions_plus_cpa_penalty_is_the_score(cpa_scenario: Scenario) -> None:
    goal = _goal(cpa_scenario)
    target = cpa_scenario.campaign.target_cpa
    assert target is not None
    steps = [Totals(), Totals(50.0, 1.0, 80.0), Totals(400.0, 5.0, 300.0), Totals(420.0, 14.0)]
    for before, after in itertools.pairwise(steps):
        t = _transition(goal, before, after)
        parts = REWARD_COMPONENTS["conversions"](t) + REWARD_COMPONENTS["cpa_penalty"](t)
        assert parts == pytest.approx(REWARD_COMPONENTS["score"](t))
    # over target: 5 conversions at CPA 80 against the target score 5 * (target / 80)^2
    level = 5 * min(1.0, (target / 80.0) ** 2)
    whole = _transition(goal, Totals(), Totals(400.0, 5.0, 0.0))
    assert REWARD_COMPONENTS["score"](whole) == pytest.approx(level)


def test_value_plus_roas_penalty_is_the_score(roas_scenario: Scenario) -> None:
    goal = _goal(roas_scenario)
    before, after = Totals(100.0, 2.0, 250.0), Totals(300.0, 5.0, 600.0)
    t = _transition(goal, before, after)
    parts = REWARD_COMPONENTS["value"](t) + REWARD_COMPONENTS["roas_penalty"](t)
    assert parts == pytest.approx(REWARD_COMPONENTS["score"](t))
    assert REWARD_COMPONENTS["roas_penalty"](t) < 0  # ROAS 2 under the target of 4


def test_profit_and_pacing_components(cpa_scenario: Scenario) -> None:
    goal = _goal(cpa_scenario)
    t = _transition(goal, Totals(10.0, 1.0, 30.0), Totals(25.0, 2.0, 90.0), pace_gap=0.2)
    assert REWARD_COMPONENTS["profit"](t) == pytest.approx(60.0 - 15.0)
    assert REWARD_COMPONENTS["pacing_penalty"](t) == pytest.approx(-0.04)
    assert (
        REWARD_COMPONENTS["cpa_penalty"](_transition(_goal_without_cpa(cpa_scenario), *_two())) == 0
    )


def _goal_without_cpa(scenario: Scenario) -> Goal:
    campaign = scenario.campaign.model_copy(update={"target_cpa": None})
    return Goal(campaign, scenario.horizon.days, Goal.of(scenario).market_cpa)


def _two() -> tuple[Totals, Totals]:
    return Totals(), Totals(100.0, 1.0, 10.0)


def test_weighted_spec_and_budget_scale(cpa_scenario: Scenario) -> None:
    goal = _goal(cpa_scenario)
    t = _transition(goal, Totals(), Totals(60.0, 3.0, 200.0), pace_gap=0.5)
    spec = RewardSpec(components={"conversions": 2.0, "pacing_penalty": 4.0}, scale="budget")
    expected = (2.0 * 3.0 - 4.0 * 0.25) / goal.reference_score()
    assert Reward(spec)(t) == pytest.approx(expected)
    market = cpa_scenario.market
    market_cpa = market.competitor_cpc.mean / market.cvr.mean
    assert goal.reference_score() == pytest.approx(
        cpa_scenario.campaign.daily_budget * 2 / market_cpa
    )


def test_spec_rejects_unknown_components_and_bad_weights() -> None:
    with pytest.raises(InvalidInput, match="unknown component"):
        training_config_from_dict({"reward": {"components": {"clicks": 1.0}}})
    with pytest.raises(InvalidInput, match="finite"):
        training_config_from_dict({"reward": {"components": {"score": float("nan")}}})
    with pytest.raises(InvalidInput, match="at least one"):
        training_config_from_dict({"reward": {"components": {}}})


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ({"score": 1.0, "pacing_penalty": -0.5}, r"weight of 'pacing_penalty' is -0\.5: .* >= 0"),
        ({"cpa_penalty": -1.0}, r"weight of 'cpa_penalty' is -1\.0"),
        ({"score": 0.0}, "at least one weight must be above 0"),
        ({"score": 0.0, "value": -0.0}, "at least one weight must be above 0"),
    ],
)
def test_spec_refuses_negative_or_all_zero_weights(
    components: dict[str, float], message: str
) -> None:
    # A penalty is already <= 0: a negative weight would train the agent to seek it.
    with pytest.raises(InvalidInput, match=message):
        training_config_from_dict({"reward": {"components": components}})
    zero_allowed = RewardSpec(components={"score": 1.0, "pacing_penalty": 0.0})
    assert zero_allowed.components["pacing_penalty"] == 0.0


def test_registry_refuses_to_replace_a_component() -> None:
    score = REWARD_COMPONENTS["score"]
    with pytest.raises(InvalidInput, match="reward component 'score' is already registered"):
        register_reward_component("score", REWARD_COMPONENTS["value"])
    assert REWARD_COMPONENTS["score"] is score


@pytest.mark.parametrize(
    ("name", "component", "message"),
    [
        ("", REWARD_COMPONENTS["value"], "reward component name ''"),
        ("two words", REWARD_COMPONENTS["value"], "reward component name 'two words'"),
        (None, REWARD_COMPONENTS["value"], "reward component name None"),
        ("five", 5, "reward component 'five' must be a function of one Transition, not int"),
    ],
)
def test_registry_refuses_a_bad_name_or_component(
    name: object, component: object, message: str
) -> None:
    """A name of None was registered and then broke every spec's "unknown component"
    message (sorting None among strings); a component of 5 failed at the first step."""
    with pytest.raises(InvalidInput) as error:
        register_reward_component(name, component)  # type: ignore[arg-type]
    assert error.value.message.startswith(message)
    assert None not in REWARD_COMPONENTS and "five" not in REWARD_COMPONENTS


@pytest.mark.parametrize("spec", [0, False, "", [], (), 0.0])
def test_a_falsy_spec_is_not_the_default(cpa_scenario: Scenario, spec: object) -> None:
    """``reward=0`` or ``reward=[]`` was taken for the default reward; only None is."""
    with pytest.raises(InvalidInput, match=r"^reward: "):
        BidPacingEnv(cpa_scenario, reward=spec)  # type: ignore[arg-type]


def _tiny_budget(scenario: Scenario, budget: float) -> Scenario:
    campaign = scenario.campaign.model_copy(update={"daily_budget": budget})
    return scenario.model_copy(update={"campaign": campaign})


def test_a_budget_the_scale_cannot_divide_by_is_refused_at_reset(cpa_scenario: Scenario) -> None:
    """A valid daily budget of 5e-324 made the reference score 0: a ZeroDivisionError at the
    first step. The scale is refused by name at reset; scale 'none' plays."""
    scenario = _tiny_budget(cpa_scenario, 5e-324)
    with pytest.raises(InvalidInput, match=r"reward scale 'budget' is 0\.0 on this scenario"):
        BidPacingEnv(scenario).reset(seed=0)
    env = BidPacingEnv(scenario, reward={"components": {"score": 1.0}, "scale": "none"})
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(1, dtype=np.float32))
    assert np.isfinite(reward)


@pytest.mark.parametrize(
    ("budget", "spec"),
    [
        # One click over a budget of 1e-200 is a pace gap of ~1e200: ``** 2`` raised a bare
        # OverflowError; at 1e-110 every reward was -inf.
        (1e-200, {"components": {"pacing_penalty": 1.0}}),
        (1e-110, {"components": {"pacing_penalty": 1.0}}),
        (None, {"components": {"value": 1e308, "score": 1e308}, "scale": "none"}),
    ],
)
def test_a_reward_past_float_range_is_refused_by_name(
    cpa_scenario: Scenario, budget: float | None, spec: dict[str, object]
) -> None:
    scenario = cpa_scenario if budget is None else _tiny_budget(cpa_scenario, budget)
    env = BidPacingEnv(scenario, reward=spec)
    env.reset(seed=0)
    with pytest.raises(InvalidInput, match=r"the reward of this step is -?inf \(not finite\)"):
        for _ in range(scenario.n_steps):
            env.step(np.ones(1, dtype=np.float32))


def test_baseline_reward_is_the_lead_over_the_plan(cpa_scenario: Scenario) -> None:
    spec = {"components": {"score": 1.0, "baseline_score": 1.0}, "scale": "none"}
    env = BidPacingEnv(cpa_scenario, reward=spec)
    env.reset(seed=2)
    while True:  # following the plan is the baseline itself: nothing to gain or lose
        _, reward, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
        assert reward == 0.0
        if terminated:
            break
    assert info["score"] == info["baseline_score"]
    total, score, env = _episode(env, seed=2)
    assert total == pytest.approx(score - _plan_alone_score(cpa_scenario, seed=2), abs=1e-9)


def _plan_alone_score(scenario: Scenario, seed: int) -> float:
    """The score of the plan alone (action 0) on the episode that ``reset(seed=seed)`` draws,
    played in an env of its own."""
    env = BidPacingEnv(scenario)
    env.reset(seed=seed)
    while True:
        _, _, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
        if terminated:
            return float(info["score"])


def test_baseline_component_needs_the_baseline_run(cpa_scenario: Scenario) -> None:
    goal = _goal(cpa_scenario)
    with pytest.raises(InvalidInput, match="baseline"):
        REWARD_COMPONENTS["baseline_score"](_transition(goal, Totals(), Totals(1.0, 1.0, 1.0)))
