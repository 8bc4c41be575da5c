"""``ppo:default``: the shipped agent, reachable through adbot.bidding's policy registry."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import adbot.rl  # noqa: F401  (registers the ppo: prefix)
from adbot.bidding.registry import make_policy
from adbot.bidding.runner import run_episode
from adbot.errors import InvalidInput, NotFound
from adbot.market.scenario import Scenario
from adbot.market.simulator import MarketSimulator
from adbot.rl.checkpoints import load_checkpoint
from adbot.rl.config import load_training_config
from adbot.rl.features import N_FEATURES
from adbot.rl.policy import AGENTS_DIR, MeanPolicy, PpoPolicy, ensemble_members

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "agents" / "default.yaml"


def test_shipped_agent_is_small_and_matches_its_config() -> None:
    """``ppo:default`` is the ensemble of the agents trained from the repo's default config
    with seeds 0, 1 and 2 (``adbot train --seed N``), each a verified checkpoint."""
    directory = AGENTS_DIR / "default"
    size = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
    assert size < 1_000_000
    members = ensemble_members(directory)
    assert members is not None and members[0] == directory.resolve()
    config = load_training_config(DEFAULT_CONFIG)
    seeds = []
    for member in members:
        checkpoint = load_checkpoint(member)  # verifies the model's sha256
        shipped = checkpoint.config
        seeds.append(shipped.seed)
        # Reproducible from the repo file, with its seed or the one given to adbot train.
        assert shipped == config.with_overrides(seed=shipped.seed)
        assert checkpoint.meta.seed == shipped.seed
        assert shipped.env.scenario is None  # trained on random scenarios only
        assert checkpoint.meta.timesteps <= shipped.total_timesteps
    assert seeds == [config.seed, 1, 2]


def test_ppo_default_is_the_mean_of_its_members(cpa_scenario: Scenario) -> None:
    """The ensemble plays the mean of its members' actions; a member's directory alone is a
    single agent; a broken manifest is a clear error."""
    ensemble = make_policy("ppo:default")
    assert isinstance(ensemble, MeanPolicy) and len(ensemble.members) == 3
    single = make_policy(f"ppo:{AGENTS_DIR / 'default' / 'members' / 'seed-1'}")
    assert isinstance(single, PpoPolicy)
    sim = MarketSimulator(cpa_scenario, 4)
    ensemble.reset(sim)
    actions = []
    for member in ensemble.members:
        member.reset(sim)
        actions.append(member.action())
    assert ensemble.action() == pytest.approx(float(np.mean(actions)), abs=1e-7)
    assert len(set(actions)) > 1  # the members do differ


def test_a_broken_ensemble_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ensemble.json").write_text('{"members": []}')
    with pytest.raises(InvalidInput, match="non-empty list"):
        make_policy(f"ppo:{tmp_path}")
    (tmp_path / "ensemble.json").write_text("not json")
    with pytest.raises(InvalidInput, match="not an ensemble manifest"):
        make_policy(f"ppo:{tmp_path}")


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


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(obs_mean=d["obs_mean"][:5]), "obs_mean has 5 values, the model takes"),
        (lambda d: d["obs_var"].__setitem__(2, float("nan")), "obs_var is not finite everywhere"),
        (lambda d: d["obs_var"].__setitem__(2, -1.0), "obs_var has negative values"),
        (lambda d: d.update(epsilon=0), "epsilon must be a positive number, got 0"),
        (lambda d: d.pop("clip_obs"), r"fields missing \['clip_obs'\], unknown \[\]"),
    ],
    ids=["shape", "nan", "negative", "epsilon", "missing"],
)
def test_bad_normalisation_statistics_are_refused_by_name(
    change: Callable[[dict[str, Any]], object], message: str, tmp_path: Path
) -> None:
    """Statistics the model cannot use are a one-line error naming the file, not a torch or
    numpy traceback at the first step."""
    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent, ignore=shutil.ignore_patterns("members"))
    (agent / "ensemble.json").unlink()
    stats_file = agent / "normalization.json"
    stats = json.loads(stats_file.read_text())
    change(stats)
    stats_file.write_text(json.dumps(stats))
    with pytest.raises(InvalidInput, match=f"normalization.json: .*{message}"):
        load_checkpoint(agent)


def test_an_agent_of_other_features_is_refused_by_name() -> None:
    """A checkpoint whose model takes another observation (trained by an AdBot with other
    features) is refused when loaded as a policy, not at its first step."""
    checkpoint = load_checkpoint(AGENTS_DIR / "default")
    model = checkpoint.model
    original = model.observation_space
    model.observation_space = gym.spaces.Box(-1.0, 1.0, (N_FEATURES - 2,), np.float32)
    try:
        with pytest.raises(InvalidInput, match=f"shape \\({N_FEATURES - 2},\\), this AdBot"):
            PpoPolicy.from_checkpoint(checkpoint, name="ppo:old")
    finally:
        model.observation_space = original
