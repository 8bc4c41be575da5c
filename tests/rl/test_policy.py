"""``ppo:default``: the shipped agent, reachable through adbot.bidding's policy registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import adbot.rl  # noqa: F401  (registers the ppo: prefix)
from adbot.bidding.registry import make_policy
from adbot.bidding.runner import run_episode
from adbot.errors import InvalidInput, NotFound
from adbot.market.scenario import Scenario
from adbot.rl.checkpoints import load_checkpoint
from adbot.rl.config import load_training_config
from adbot.rl.policy import AGENTS_DIR

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "agents" / "default.yaml"


def test_shipped_agent_is_small_and_matches_its_config() -> None:
    directory = AGENTS_DIR / "default"
    size = sum(f.stat().st_size for f in directory.iterdir())
    assert size < 1_000_000
    checkpoint = load_checkpoint(directory)  # verifies the model's sha256
    shipped = checkpoint.config
    assert shipped == load_training_config(DEFAULT_CONFIG)  # reproducible from the repo file
    assert shipped.env.scenario is None  # trained on random scenarios only
    assert checkpoint.meta.timesteps <= shipped.total_timesteps


def test_ppo_default_plays_an_episode(cpa_scenario: Scenario) -> None:
    policy = make_policy("ppo:default")
    assert policy.name == "ppo:default"
    result = run_episode(cpa_scenario, 4, policy)
    assert result.metrics.cost > 0 and np.isfinite(result.alpha).all()
    assert run_episode(cpa_scenario, 4, make_policy("ppo:default")).metrics == result.metrics


def test_ppo_path_loads_a_checkpoint_directory() -> None:
    policy = make_policy(f"ppo:{AGENTS_DIR / 'default'}")
    assert policy.name.startswith("ppo:")


def test_unknown_agent_is_a_clear_error() -> None:
    with pytest.raises(NotFound, match="no agent 'nope'"):
        make_policy("ppo:nope")


def test_prior_is_the_envs_plan_alone(cpa_scenario: Scenario) -> None:
    """``prior`` bids the env's multipliers at action 0, step for step, on the same episode."""
    from adbot.rl.env import BidPacingEnv

    env = BidPacingEnv(cpa_scenario)
    env.reset(seed=0, options={"episode_seed": 4})
    alphas, done = [], False
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(1, dtype=np.float32))
        alphas.append(info["alpha"])
        done = terminated or truncated
    policy = make_policy("prior")
    assert policy.name == "prior"
    result = run_episode(cpa_scenario, 4, policy)
    np.testing.assert_array_equal(result.alpha, alphas)
    assert result.metrics.score == pytest.approx(info["score"])


def test_prior_takes_no_argument() -> None:
    with pytest.raises(InvalidInput, match="prior takes no argument"):
        make_policy("prior:fast")
