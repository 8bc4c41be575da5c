"""BidPacing-v0 follows the Gymnasium API exactly (checkers with warnings as errors)."""

from __future__ import annotations

import copy
import itertools
import math
import re
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import adbot.rl  # noqa: F401  (registers the prior policy)
from adbot.bidding import make_policy, run_episode
from adbot.errors import InvalidInput
from adbot.market.batch import evaluate_multipliers
from adbot.market.episode import episode_market
from adbot.market.scenario import Scenario
from adbot.market.simulator import MarketSimulator
from adbot.rl import ENV_ID
from adbot.rl.config import TrainingConfig
from adbot.rl.env import (
    MAX_EPISODE_STEPS,
    START_AHEAD,
    TWIN_STEPS_PER_STAGE,
    BidPacingEnv,
    cap_daily_queries,
    raise_conversion_rate,
)
from adbot.rl.features import FEATURE_NAMES, MAX_ALPHA, MIN_ALPHA, N_FEATURES
from adbot.rl.planner import FAST
from adbot.rl.train import make_env


def _rollout(env: gym.Env, seed: int, actions: np.ndarray) -> tuple[list, list]:  # type: ignore[type-arg]
    obs, _ = env.reset(seed=seed)
    observations, rewards = [obs], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return observations, rewards


def test_gymnasium_checker_passes_without_warnings() -> None:
    env = gym.make(ENV_ID, max_daily_queries=2000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_sb3_checker_passes_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(BidPacingEnv(max_daily_queries=2000.0), warn=True)


def test_registered_with_a_time_limit() -> None:
    spec = gym.spec(ENV_ID)
    assert spec.max_episode_steps == MAX_EPISODE_STEPS
    env = gym.make(ENV_ID, max_daily_queries=2000.0)
    assert isinstance(env.unwrapped, BidPacingEnv)


def test_spaces_are_typed_float32() -> None:
    env = BidPacingEnv(max_daily_queries=2000.0)
    assert env.observation_space.dtype == np.float32
    assert env.action_space.dtype == np.float32
    assert env.observation_space.shape == (N_FEATURES,) == (len(FEATURE_NAMES),)


def test_same_seed_same_rollout(cpa_scenario: Scenario) -> None:
    actions = np.random.default_rng(5).uniform(-1, 1, (60, 1)).astype(np.float32)
    first = _rollout(BidPacingEnv(max_daily_queries=2000.0), 11, actions)
    second = _rollout(BidPacingEnv(max_daily_queries=2000.0), 11, actions)
    other = _rollout(BidPacingEnv(max_daily_queries=2000.0), 12, actions)
    assert all(np.array_equal(a, b) for a, b in zip(first[0], second[0], strict=True))
    assert first[1] == second[1]
    assert not np.array_equal(first[0][0], other[0][0]) or first[1] != other[1]


def test_step_returns_python_types_and_ends_on_the_horizon(cpa_scenario: Scenario) -> None:
    env = BidPacingEnv(cpa_scenario)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    steps = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        assert env.observation_space.contains(obs)
        assert MIN_ALPHA <= info["alpha"] <= MAX_ALPHA
        if terminated:
            break
    assert steps == cpa_scenario.n_steps and not truncated
    with pytest.raises(InvalidInput):
        env.step(env.action_space.sample())


def test_scenario_from_reset_options(cpa_scenario: Scenario, value_scenario: Scenario) -> None:
    env = BidPacingEnv(cpa_scenario)
    _, info = env.reset(seed=0, options={"scenario": value_scenario, "episode_seed": 3})
    assert info == {"scenario": value_scenario.name, "episode_seed": 3}
    _, info = env.reset(seed=0)
    assert info["scenario"] == cpa_scenario.name


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"episode_seeds": 3}, "unknown reset option(s) episode_seeds (known: scenario,"),
        ({"episode_seed": "3"}, "episode_seed must be an integer, got '3'"),
        ({"episode_seed": True}, "episode_seed must be an integer, got True"),
        ({"scenario": 7}, "scenario must be a file, a bundled scenario's name, a mapping or a"),
        ({"episode_seed": 2**64}, "episode seed must be 0 to 2**63 - 1, got 18446744073709551616"),
    ],
)
def test_bad_reset_options_are_refused_by_name(
    options: dict[str, object], message: str, cpa_scenario: Scenario
) -> None:
    """A misspelt option is not ignored; a value of the wrong type is named."""
    env = BidPacingEnv(cpa_scenario)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        env.reset(seed=0, options=options)
    assert env.reset(seed=0, options={"episode_seed": np.int64(3)})[1]["episode_seed"] == 3


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_daily_queries": -5}, "env settings: max_daily_queries: Input should be greater"),
        ({"max_daily_queries": float("inf")}, "max_daily_queries: Input should be a finite"),
        ({"training_cvr": 2.0}, "training_cvr: Input should be less than or equal to 0.3"),
        ({"action_log_range": float("nan")}, "action_log_range: Input should be a finite"),
        ({"action_log_range": -1.0}, "action_log_range: Input should be greater than 0"),
        ({"action_log_range": "1"}, "action_log_range: Input should be a valid number"),
        ({"reward": {"components": {"x": 1.0}}}, "reward: components: unknown component(s) x"),
        ({"reward": [1]}, "reward: config: Input should be a valid dictionary"),
        ({"keyword_calibration": 0.0}, "keyword_calibration: Input should be greater than 0"),
        ({"keyword_calibration": float("nan")}, "keyword_calibration: Input should be a finite"),
        ({"keyword_calibration": "32"}, "keyword_calibration: Input should be a valid number"),
    ],
)
def test_bad_settings_are_refused_by_name(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        BidPacingEnv(**settings)


def test_random_scenarios_are_drawn_from_np_random() -> None:
    env = BidPacingEnv(max_daily_queries=2000.0)
    names = {env.reset(seed=seed)[1]["scenario"] for seed in range(4)}
    assert len(names) == 4
    assert env.reset(seed=2)[1] == BidPacingEnv(max_daily_queries=2000.0).reset(seed=2)[1]


def test_wide_draws_play_to_the_end_with_finite_rewards() -> None:
    """``wide_draws`` (``env.wide_draws`` in a config): draws of 1 to 24 steps a day, 1 to 80
    keywords, closed days and hours, shocks of x0.2-5; every episode plays to its end."""
    env = BidPacingEnv(max_daily_queries=1500.0, training_cvr=0.15, wide_draws=True)
    steps_per_day = set()
    for seed in range(24):
        env.reset(seed=seed)
        assert env.sim is not None
        steps_per_day.add(env.sim.steps_per_day)
        terminated, steps = False, 0
        while not terminated:
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert np.isfinite(obs).all() and math.isfinite(reward) and not truncated
            steps += 1
        assert steps == env.sim.n_steps
    assert len(steps_per_day) > 1
    standard = BidPacingEnv(max_daily_queries=1500.0).reset(seed=3)[1]["scenario"]
    assert (
        BidPacingEnv(max_daily_queries=1500.0, wide_draws=False).reset(seed=3)[1]["scenario"]
        == standard
    )


@pytest.mark.parametrize("by_day", [False, True])
def test_the_fast_memory_is_kept_overnight_unless_asked(by_day: bool) -> None:
    """The env plans as ``ppo:default``'s agents trained, the fast memory kept overnight,
    unless ``fast_memory_by_day`` (``env.fast_memory_by_day`` in a config) empties it at each
    day's start as the policies play; its plan-alone twin plans the same way."""
    env = BidPacingEnv("tight-cpa", reward={"components": {"score": 1, "baseline_score": 1}},
                       fast_memory_by_day=by_day)  # fmt: skip
    config = TrainingConfig().with_overrides(env={"fast_memory_by_day": by_day or None})
    assert make_env(config).unwrapped.fast_memory_by_day == by_day  # type: ignore[attr-defined]
    env.reset(seed=0)
    for _ in range(24):
        env.step(np.zeros(1, np.float32))
    for player in (env._player, env._baseline):
        assert player is not None
        assert (player.state.planner.queries[FAST] == 0.0) == by_day


def test_a_replay_after_the_settings_change_plays_its_twin_again(
    three_day_cpa_scenario: Scenario,
) -> None:
    """A replayed episode's plan-alone twin was recorded with the settings of its first play;
    after a vec env's ``set_attr`` changes them (here the planner's fast memory), action 0
    throughout still earns a reward of 0, the twin played again with the new settings (its
    score was the old planner's)."""
    reward = {"components": {"score": 1.0, "baseline_score": 1.0}}
    env = BidPacingEnv(three_day_cpa_scenario, reward=reward, episode_reuse=16)

    def play() -> tuple[int, float]:
        _, start = env.reset()
        total, terminated = 0.0, False
        while not terminated:
            _, reward_value, terminated, _, _ = env.step(np.zeros(1, np.float32))
            total += float(reward_value)
        return start["episode_seed"], total

    env.reset(seed=0)
    first, total = play()
    assert total == pytest.approx(0.0, abs=1e-12)
    env.fast_memory_by_day = True
    replays = 0
    for _ in range(20):
        seed, total = play()
        assert total == pytest.approx(0.0, abs=1e-12)
        replays += seed == first
    assert replays > 0


def test_a_settings_change_mid_episode_keeps_the_play_and_its_twin(
    three_day_cpa_scenario: Scenario,
) -> None:
    """The next episode is started ahead (``prepare``) in the last steps of this one, and the
    pool may draw this very episode; when the settings changed mid-episode that start plays
    a new twin, which must not take the record of the play still running (it emptied it, and
    the play's next step failed an assertion). Each play's rewards at action 0 sum to 0."""
    reward = {"components": {"score": 1.0, "baseline_score": 1.0}}
    action = np.zeros(1, np.float32)
    for seed in range(5):
        env = BidPacingEnv(three_day_cpa_scenario, reward=reward, episode_reuse=16)
        env.reset(seed=seed)
        env.prepare()
        for play in range(3):
            total, terminated, steps = 0.0, False, 0
            while not terminated:
                _, reward_value, terminated, _, _ = env.step(action)
                env.prepare()
                total += float(reward_value)
                steps += 1
                if play and steps == 10:  # as a vec env's set_attr would
                    env.fast_memory_by_day = not env.fast_memory_by_day
            assert total == pytest.approx(0.0, abs=1e-12)
            env.reset()
            env.prepare()


def test_action_is_a_log_multiplier_around_the_plan(cpa_scenario: Scenario) -> None:
    env = BidPacingEnv(cpa_scenario, action_log_range=1.0)
    alphas = {}
    for action in (-1.0, 0.0, 1.0):
        env.reset(seed=0, options={"episode_seed": 1})
        alphas[action] = env.step(np.array([action], dtype=np.float32))[4]["alpha"]
    assert alphas[1.0] / alphas[0.0] == pytest.approx(np.e)
    assert alphas[0.0] / alphas[-1.0] == pytest.approx(np.e)


def test_a_bad_action_is_refused_by_name(cpa_scenario: Scenario) -> None:
    env = BidPacingEnv(cpa_scenario)
    env.reset(seed=0, options={"episode_seed": 1})
    for bad, message in (
        (np.zeros(2, dtype=np.float32), r"one number, got shape \(2,\)"),
        (np.zeros(0), r"one number, got shape \(0,\)"),
        ("fast", "one real number, got 'fast'"),
        ("0.3", "one real number, got '0.3'"),
        (True, "one real number, got True"),
        (np.array([True]), r"one real number, got array\(\[ True\]\)"),
        (0.3 + 0j, r"one real number, got \(0.3\+0j\)"),
        (np.array([0.3 + 0j]), "one real number, got array"),
        (None, "one real number, got None"),
        (np.array([object()], dtype=object), "one real number, got array"),
        (np.array([np.nan], dtype=np.float32), "finite number, got nan"),
    ):
        with pytest.raises(InvalidInput, match=message):
            env.step(bad)
    assert env.sim is not None and env.sim.step_index == 0  # nothing was played
    env.reset(seed=0, options={"episode_seed": 1})
    expected = env.step(np.array([0.5], dtype=np.float32))[4]["alpha"]
    for good in (np.array([[0.5]]), 0.5, [0.5]):  # one number, in other shapes
        env.reset(seed=0, options={"episode_seed": 1})
        assert env.step(good)[4]["alpha"] == expected
    env.reset(seed=0, options={"episode_seed": 1})
    top = env.step(np.array([1.0], dtype=np.float32))[4]["alpha"]
    # Clipped to the Box, as documented; ints past int64 too (numpy made them an object
    # array, refused as "one real number, got 18446744073709551616").
    for outside in (5.0, np.int64(3), 1e300, 2**64, [10**400]):
        env.reset(seed=0, options={"episode_seed": 1})
        assert env.step(outside)[4]["alpha"] == top
    env.reset(seed=0, options={"episode_seed": 1})
    bottom = env.step(np.array([-1.0], dtype=np.float32))[4]["alpha"]
    env.reset(seed=0, options={"episode_seed": 1})
    assert env.step(-(2**64))[4]["alpha"] == bottom


def test_bids_are_the_multiplier_bids_of_market_md(cpa_scenario: Scenario) -> None:
    env = BidPacingEnv(cpa_scenario)
    env.reset(seed=0, options={"episode_seed": 4})
    twin = MarketSimulator(cpa_scenario, 4)
    for action in (0.3, -0.6, 1.0):
        info = env.step(np.array([action], dtype=np.float32))[4]
        bids = np.clip(info["alpha"] * twin.keyword_values, twin.min_bid, twin.max_bid)
        assert twin.step(bids).total_cost == pytest.approx(info["cost"])


def test_calibrated_bids_are_those_the_calibrated_policy_plays(cpa_scenario: Scenario) -> None:
    """With ``keyword_calibration`` the env bids what ``CalibratedPolicy`` would on top of the
    multiplier bids (an agent trains on the bids it plays): action 0 throughout is the
    ``calibrated:prior`` policy to the cent and multiplier by multiplier (the env planning as
    the policies do, ``fast_memory_by_day``), a different game from the multiplier bids', and
    the plan-alone twin of a ``baseline_score`` reward plays calibrated too."""
    reward = {"components": {"score": 1.0, "baseline_score": 1.0}}
    env = BidPacingEnv(
        cpa_scenario, reward=reward, keyword_calibration=32.0, fast_memory_by_day=True
    )
    env.reset(seed=0, options={"episode_seed": 6})
    total, terminated, info, alphas = 0.0, False, {}, []
    while not terminated:
        _, reward_value, terminated, _, info = env.step(np.zeros(1, dtype=np.float32))
        total += float(reward_value)
        alphas.append(info["alpha"])
    result = run_episode(cpa_scenario, 6, make_policy("calibrated:prior"))
    played = result.metrics.score
    plain = run_episode(cpa_scenario, 6, make_policy("prior")).metrics.score
    np.testing.assert_array_equal(result.alpha, alphas)
    assert info["score"] == pytest.approx(played, rel=1e-12)
    assert info["baseline_score"] == pytest.approx(played, rel=1e-12)
    assert total == pytest.approx(0.0, abs=1e-12)
    assert abs(played - plain) > 1e-6 * plain


def test_calibrated_env_passes_the_checkers_without_warnings() -> None:
    env = gym.make(ENV_ID, max_daily_queries=2000.0, keyword_calibration=32.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
        sb3_check_env(BidPacingEnv(max_daily_queries=2000.0, keyword_calibration=32.0), warn=True)


@pytest.mark.parametrize("cap", [0.0, -5.0, math.nan, math.inf, True, "5000"])
def test_a_cap_on_queries_must_be_a_positive_number(cpa_scenario: Scenario, cap: Any) -> None:
    """A cap of 0, a negative one or NaN made scenarios the schema refuses (a budget of 0,
    negative query counts) that failed later inside numpy or as a division by zero."""
    with pytest.raises(InvalidInput, match="max_daily_queries must be a positive finite number"):
        cap_daily_queries(cpa_scenario, cap)


def test_a_refused_reset_leaves_no_episode(cpa_scenario: Scenario) -> None:
    """A reset refused midway (a scenario that does not load, one whose reward cannot be
    scaled) left the episode before in place: the next step played on as step 2 of it."""
    env = BidPacingEnv(cpa_scenario)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    tiny = cpa_scenario.model_copy(
        update={"campaign": cpa_scenario.campaign.model_copy(update={"daily_budget": 5e-324})}
    )
    for scenario in ("no-such-scenario", tiny):
        with pytest.raises(InvalidInput):
            env.reset(seed=9, options={"scenario": scenario})
        with pytest.raises(InvalidInput, match=r"call reset\(\) before step\(\)"):
            env.step(np.zeros(1, np.float32))
        env.reset(seed=0)
        env.step(np.zeros(1, np.float32))


def test_a_huge_roas_target_keeps_the_features_finite(roas_scenario: Scenario) -> None:
    """A ROAS target of 1e308 (the schema takes any positive ratio) times the cost is
    infinite: the ROAS-gap feature took the log of 0 and the step raised Python's "math
    domain error"; the gap is now at the bottom of its clip."""
    campaign = roas_scenario.campaign.model_copy(update={"target_roas": 1e308, "min_bid": 1.0})
    env = BidPacingEnv(roas_scenario.model_copy(update={"campaign": campaign}))
    env.reset(seed=0)
    terminated = False
    while not terminated:
        obs, reward, terminated, _, _ = env.step(np.zeros(1, np.float32))
        assert np.isfinite(obs).all() and math.isfinite(reward)


def test_capping_queries_keeps_budget_tightness(cpa_scenario: Scenario) -> None:
    from adbot.market.scenario import load_scenario

    full = load_scenario("budgeted-competitors")
    capped = cap_daily_queries(full, full.market.daily_queries / 4)
    assert capped.campaign.daily_budget == pytest.approx(full.campaign.daily_budget / 4)
    assert full.market.competitor_budget is not None
    assert capped.market.competitor_budget is not None
    assert capped.market.competitor_budget.mean == pytest.approx(
        full.market.competitor_budget.mean / 4
    )
    assert cap_daily_queries(full, None) is full


def test_training_cvr_keeps_the_auctions_with_more_conversions(cpa_scenario: Scenario) -> None:
    """``training_cvr`` raises the mean CVR by ``k`` and every price and budget with it:
    each multiplier wins the same clicks, for about ``k`` times the cost (the minimum price
    increment is not scaled) and more conversions; values and targets are kept."""
    raised = raise_conversion_rate(cpa_scenario, 0.15)
    market, campaign = cpa_scenario.market, cpa_scenario.campaign
    k = 0.15 / market.cvr.mean
    assert k > 2 and raised.market.cvr.mean == 0.15
    assert raised.market.competitor_cpc.mean == pytest.approx(market.competitor_cpc.mean * k)
    assert raised.market.reserve_cpc == pytest.approx(market.reserve_cpc * k)
    assert raised.campaign.daily_budget == pytest.approx(campaign.daily_budget * k)
    assert (raised.campaign.min_bid, raised.campaign.max_bid) == pytest.approx(
        (campaign.min_bid * k, campaign.max_bid * k)
    )
    assert raised.campaign.target_cpa == campaign.target_cpa
    assert raised.campaign.conversion_value == campaign.conversion_value
    alphas = np.geomspace(0.2, 5.0, 7)
    before, after = (evaluate_multipliers(s, 3, alphas) for s in (cpa_scenario, raised))
    np.testing.assert_array_equal(after.clicks, before.clicks)
    assert ((after.cost > 0.97 * k * before.cost) & (after.cost <= k * before.cost)).all()
    assert after.conversions.sum() > 2 * before.conversions.sum()
    assert raise_conversion_rate(cpa_scenario, 0.01) is cpa_scenario  # never lowered
    env = BidPacingEnv(cpa_scenario, training_cvr=0.15)
    env.reset(seed=0)
    assert env.sim is not None and env.sim.scenario == cpa_scenario  # a fixed scenario as is
    env = BidPacingEnv(max_daily_queries=2000.0, training_cvr=0.15)
    for seed in range(3):  # random draws get it
        env.reset(seed=seed)
        assert env.sim is not None and env.sim.scenario.market.cvr.mean >= 0.15


def test_rejects_render_modes() -> None:
    with pytest.raises(InvalidInput, match="BidPacingEnv has no render modes"):
        BidPacingEnv(render_mode="human")


def _episode(env: BidPacingEnv, action: float) -> tuple[tuple[str, int], float, dict]:  # type: ignore[type-arg]
    _, info = env.reset()
    key, total = (info["scenario"], info["episode_seed"]), 0.0
    while True:
        _, reward, terminated, truncated, last = env.step(np.array([action], dtype=np.float32))
        total += float(reward)
        if terminated or truncated:
            return key, total, last


def test_replayed_episodes_reuse_the_twin_exactly(cpa_scenario: Scenario) -> None:
    """With episode_reuse the plan-alone twin is played once per episode and read back on
    replays: the plan alone (action 0) then always sums to exactly 0 against it, and a
    replay of the same actions earns exactly the same rewards."""
    reward = {"components": {"score": 1.0, "baseline_score": 1.0}}
    env = BidPacingEnv(cpa_scenario, reward=reward, episode_reuse=4)
    env.reset(seed=3)
    seen: dict[tuple[str, int], float] = {}
    replays = 0
    for _ in range(12):
        key, total, info = _episode(env, 0.0)
        assert total == pytest.approx(0.0, abs=1e-12)
        assert info["baseline_score"] == pytest.approx(info["score"])
        replays += key in seen
        seen[key] = total
    assert replays >= 4  # about 3 of 4 resets replay an episode of the pool
    fresh = BidPacingEnv(cpa_scenario, reward=reward, episode_reuse=4)
    fresh.reset(seed=3)
    firsts: dict[tuple[str, int], float] = {}
    for _ in range(12):
        key, total, _ = _episode(fresh, 0.4)
        if key in firsts:
            assert total == firsts[key]  # same market, same actions: same rewards
        firsts[key] = total
    assert any(total != 0.0 for total in firsts.values())


def test_episode_reuse_must_be_a_positive_integer() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidInput, match="episode_reuse"):
            BidPacingEnv(max_daily_queries=2000.0, episode_reuse=bad)  # type: ignore[arg-type]


def test_replays_keep_their_market_when_the_shared_cache_moves_on(
    cpa_scenario: Scenario, value_scenario: Scenario
) -> None:
    """Several envs in one process (a vec-env worker) replay more markets than the shared
    market cache holds: each replayed episode keeps its own drawn market."""
    env = BidPacingEnv(cpa_scenario, episode_reuse=4)
    env.reset(seed=5)
    markets: dict[tuple[str, int], object] = {}
    replays = 0
    for _ in range(10):
        key, _, _ = _episode(env, 0.0)
        assert env.sim is not None
        if key in markets:
            assert env.sim.market is markets[key]
            replays += 1
        markets[key] = env.sim.market
        for seed in range(6):  # another env's markets push this one's out of the shared cache
            episode_market(value_scenario, seed)
    assert replays >= 3
    with pytest.raises(InvalidInput, match="another scenario or episode seed"):
        MarketSimulator(cpa_scenario, 1, market=episode_market(cpa_scenario, 2))
    with pytest.raises(InvalidInput, match="another scenario or episode seed"):
        MarketSimulator(value_scenario, 2, market=episode_market(cpa_scenario, 2))


def _played(env: BidPacingEnv, prepare: bool, resets: list[dict[str, Any]]) -> list[Any]:
    """Everything the env returns over a sequence of episodes, each started by
    ``reset(**kwargs)`` from ``resets`` and played with fixed pseudo-random actions, with
    or without ``prepare()`` after every reset and step."""
    rng = np.random.default_rng(0)
    out: list[Any] = []
    for kwargs in resets:
        for name, value in kwargs.pop("set", {}).items():  # as a vec env's set_attr would
            setattr(env, name, value)
        obs, info = env.reset(**kwargs)
        out.append((obs.tobytes(), info))
        while True:
            if prepare:
                env.prepare()
            action = rng.uniform(-1, 1, 1).astype(np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            out.append((obs.tobytes(), reward, terminated, truncated, info))
            if terminated or truncated:
                break
        if prepare:
            env.prepare()  # the next episode drawn ahead: kept, or put back by the reset
    return out


@pytest.mark.parametrize("calibration", [None, 32.0])
def test_work_ahead_changes_nothing(cpa_scenario: Scenario, calibration: float | None) -> None:
    """``prepare`` (a vec env's workers call it between steps) computes the next step's
    day, landscapes and twin step, and after an episode the next one, ahead of time; every
    observation, reward and info is the same as without it, also when the reset that follows
    brings a seed or options, or the env's settings changed, instead of taking the episode
    drawn ahead."""
    resets: list[dict[str, Any]] = [
        {"seed": 1},
        {},
        {},
        {"options": {"scenario": cpa_scenario, "episode_seed": 7}},
        {},
        {"seed": 2},
        {},
        {"set": {"max_daily_queries": 600.0}},
        {},
    ]
    reward = {"components": {"score": 1.0, "baseline_score": 1.0}}

    def env() -> BidPacingEnv:
        return BidPacingEnv(
            reward=reward,
            max_daily_queries=800.0,
            episode_reuse=2,
            keyword_calibration=calibration,
        )

    assert _played(env(), True, copy.deepcopy(resets)) == _played(env(), False, resets[:])
    # Without replays every plain reset draws a new scenario, capped by the current setting.
    changed = [{"seed": 3}, {"set": {"max_daily_queries": 600.0}}, {}]
    fresh_draws = {
        "reward": reward,
        "max_daily_queries": 800.0,
        "keyword_calibration": calibration,
    }
    assert _played(BidPacingEnv(**fresh_draws), True, copy.deepcopy(changed)) == _played(
        BidPacingEnv(**fresh_draws), False, changed
    )
    fresh = env()
    fresh.prepare()  # before the first reset: nothing to do
    assert _played(fresh, True, resets[:2]) == _played(env(), False, resets[:2])


def test_next_episode_is_drawn_before_the_last_step() -> None:
    """A vec env resets inside an episode's last step: ``prepare`` in the last
    ``START_AHEAD`` steps draws the next episode a stage per call (the reset then only takes
    it), also when it replays the episode being finished, whose twin is recorded first; by
    the last step its players are started and its first day drawn; the same numbers as
    without it."""
    reward = {"components": {"score": 1.0, "baseline_score": 1.0}}

    def env() -> BidPacingEnv:
        return BidPacingEnv(reward=reward, max_daily_queries=800.0, episode_reuse=3)

    resets: list[dict[str, Any]] = [{"seed": 5}] + [{} for _ in range(11)]
    played = _played(env(), True, copy.deepcopy(resets))
    assert played == _played(env(), False, resets[:])
    seeds = [entry[1]["episode_seed"] for entry in played if len(entry) == 2]
    assert any(a == b for a, b in itertools.pairwise(seeds))  # replayed at once

    ahead = env()
    ahead.reset(seed=5)
    sim = ahead.sim
    assert sim is not None
    assert sim.n_steps > START_AHEAD + 1
    while sim.step_index < sim.n_steps - START_AHEAD:
        ahead.prepare()
        assert ahead._ahead is None
        ahead.step(np.zeros(1, np.float32))
    # First the twin, a few steps per call, played to its end and kept; nothing of the next
    # episode before that.
    episode = ahead._episode
    assert episode is not None
    calls = 0
    while episode.twin is None:
        assert ahead._ahead is None
        ahead.prepare()
        calls += 1
        ahead.step(np.zeros(1, np.float32))
    assert calls == -(-START_AHEAD // TWIN_STEPS_PER_STAGE)
    while sim.step_index < sim.n_steps - 1:
        ahead.step(np.zeros(1, np.float32))
        ahead.prepare()
    drawn = ahead._ahead
    assert drawn is not None and drawn.start is not None
    assert drawn.start.player.sim.market.draw_ahead(0)  # the first day is drawn already
    _, info = ahead.step(np.zeros(1, np.float32))[-2:]
    assert "baseline_score" in info
    ahead.reset()
    assert ahead._episode is drawn.episode
