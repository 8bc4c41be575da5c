"""``ppo:default``: the shipped agent, reachable through adbot.bidding's policy registry."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import adbot.rl  # noqa: F401  (registers the ppo: prefix)
from adbot.bidding.registry import make_policy
from adbot.bidding.runner import run_episode
from adbot.errors import InvalidInput, NotFound
from adbot.market.scenario import Scenario
from adbot.market.simulator import MarketSimulator
from adbot.rl.checkpoints import load_checkpoint, sha256_file
from adbot.rl.config import load_training_config
from adbot.rl.features import N_FEATURES, OBS_BOUND
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


def test_an_agent_acts_as_its_model_behind_the_vec_normalize_it_trained_with(
    cpa_scenario: Scenario,
) -> None:
    """Step for step, a checkpoint's agent takes the action SB3's model (``PPO.load`` of its
    model.zip) takes on the env's observation normalised by a ``VecNormalize`` holding the
    statistics of its normalization.json (SB3's own transform), and bids the env's
    multipliers for those actions."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from adbot.rl.env import BidPacingEnv

    directory = AGENTS_DIR / "default"
    stats = json.loads((directory / "normalization.json").read_text())
    action_log_range = load_training_config(directory).env.action_log_range
    assert stats["norm_obs"] and action_log_range != 1.0
    model = PPO.load(directory / "model.zip", device="cpu")
    env = BidPacingEnv(cpa_scenario, action_log_range=action_log_range)
    vec = VecNormalize(
        DummyVecEnv([lambda: env]),
        training=False,
        norm_reward=False,
        clip_obs=stats["clip_obs"],
        epsilon=stats["epsilon"],
    )
    vec.obs_rms.mean = np.asarray(stats["obs_mean"])
    vec.obs_rms.var = np.asarray(stats["obs_var"])
    checkpoint = load_checkpoint(directory)
    policy = PpoPolicy.from_checkpoint(checkpoint, name="ppo:seed-0")
    obs, _ = env.reset(seed=0, options={"episode_seed": 4})
    actions, alphas, done = [], [], False
    while not done:
        expected, _ = model.predict(vec.normalize_obs(obs[None]), deterministic=True)
        assert policy.act(obs) == expected[0, 0]
        actions.append(float(expected[0, 0]))
        obs, _, terminated, truncated, info = env.step(expected[0])
        alphas.append(info["alpha"])
        done = terminated or truncated
    assert len(set(actions)) > 1
    for bound in (-OBS_BOUND, OBS_BOUND):  # far outside the statistics: clipped alike
        extreme = np.full((1, N_FEATURES), bound, np.float32)
        normalized = checkpoint.normalization.normalize(extreme[0])
        np.testing.assert_array_equal(normalized, vec.normalize_obs(extreme)[0])
    result = run_episode(cpa_scenario, 4, policy)
    np.testing.assert_array_equal(result.alpha, alphas)
    assert result.metrics.score == pytest.approx(info["score"])


def test_ppo_path_loads_a_checkpoint_directory(cpa_scenario: Scenario) -> None:
    """``ppo:PATH`` of the shipped agent's directory is that agent (its ensemble of three),
    named by the path, playing as ``ppo:default``."""
    path = AGENTS_DIR / "default"
    policy = make_policy(f"ppo:{path}")
    assert policy.name == f"ppo:{path}"
    assert isinstance(policy, MeanPolicy) and len(policy.members) == 3
    expected = run_episode(cpa_scenario, 4, make_policy("ppo:default")).metrics
    assert run_episode(cpa_scenario, 4, policy).metrics == expected
    member = make_policy(f"ppo:{path / 'members' / 'seed-1'}")
    assert isinstance(member, PpoPolicy) and member.name == f"ppo:{path / 'members' / 'seed-1'}"


def test_unknown_agent_is_a_clear_error() -> None:
    with pytest.raises(NotFound, match="no agent 'nope'"):
        make_policy("ppo:nope")


def test_a_trained_run_plays_by_name_or_directory_as_its_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cpa_scenario: Scenario
) -> None:
    """``ppo:NAME`` finds a run of ``adbot train`` under the data dir, and a run directory
    (what ``adbot train`` prints) plays as its ``best/``; both used to be "not found"."""
    trained = tmp_path / "agents"
    shutil.copytree(AGENTS_DIR / "default", trained / "mine" / "best")
    monkeypatch.setattr("adbot.rl.policy.trained_agents_dir", lambda: trained)
    expected = run_episode(cpa_scenario, 2, make_policy("ppo:default")).metrics
    for spec in ("mine", str(trained / "mine"), str(trained / "mine" / "best")):
        assert run_episode(cpa_scenario, 2, make_policy(f"ppo:{spec}")).metrics == expected
    with pytest.raises(NotFound, match=r"shipped: default; trained in .*agents: mine; or a"):
        make_policy("ppo:yours")


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
        (
            lambda d: d.update(obs_count=float("nan")),
            re.escape("obs_count must be a finite number >= 0"),
        ),
        (
            lambda d: d.update(obs_count=-5.0),
            re.escape("obs_count must be a finite number >= 0, got -5.0"),
        ),
        (lambda d: d.update(obs_mean="abc"), re.escape("obs_mean: Input should be a valid list")),
        (lambda d: d.update(clip_obs=True), re.escape("clip_obs: Input should be a valid number")),
        (
            lambda d: d["obs_var"].__setitem__(0, "x"),
            re.escape("obs_var.0: Input should be a valid number"),
        ),
    ],
    ids=[
        "shape",
        "nan",
        "negative",
        "epsilon",
        "missing",
        "count-nan",
        "count-negative",
        "mean-string",
        "clip-bool",
        "var-item",
    ],
)
def test_bad_normalisation_statistics_are_refused_by_name(
    change: Callable[[dict[str, Any]], object], message: str, tmp_path: Path
) -> None:
    """Statistics the model cannot use, or of the wrong kind, are a one-line error naming the
    file, not a torch or numpy traceback at the first step."""
    agent = _agent_copy(tmp_path)
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


def _agent_copy(tmp_path: Path) -> Path:
    """The shipped seed-0 agent alone, as a checkpoint directory to break."""
    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent, ignore=shutil.ignore_patterns("members"))
    (agent / "ensemble.json").unlink()
    return agent


def _rewrite_meta(agent: Path, **changes: object) -> None:
    meta_file = agent / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    meta.update(changes)
    meta_file.write_text(json.dumps(meta))


def _nan_weights(agent: Path) -> None:
    """The agent's model with every weight NaN, its sha256 recomputed (a diverged run)."""
    model = PPO.load(agent / "model.zip", device="cpu")
    with torch.no_grad():
        for parameter in model.policy.parameters():
            parameter.fill_(float("nan"))
    model.save(agent / "model.zip")
    _rewrite_meta(agent, model_sha256=sha256_file(agent / "model.zip"))


def _ensemble_of(tmp_path: Path, member: Path) -> Path:
    """An ensemble directory listing ``member`` alone."""
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    (ensemble / "ensemble.json").write_text(json.dumps({"members": [str(member)]}))
    return ensemble


def test_non_finite_weights_are_refused_at_load(tmp_path: Path) -> None:
    agent = _agent_copy(tmp_path)
    _nan_weights(agent)
    with pytest.raises(InvalidInput, match=r"agent/model.zip: the model has non-finite weights"):
        make_policy(f"ppo:{agent}")
    ensemble = _ensemble_of(tmp_path, agent)
    with pytest.raises(InvalidInput, match="non-finite weights"):
        make_policy(f"ppo:{ensemble}")


def test_a_non_finite_action_names_the_agent(cpa_scenario: Scenario) -> None:
    """Weights that go bad after loading (or an output that overflows) are one line naming
    the agent, not torch's distribution-validation traceback."""
    policy = PpoPolicy.from_checkpoint(load_checkpoint(AGENTS_DIR / "default"), name="ppo:x")
    policy.model = copy.deepcopy(policy.model)
    with torch.no_grad():
        for parameter in policy.model.policy.action_net.parameters():
            parameter.fill_(float("inf"))
    policy.reset(MarketSimulator(cpa_scenario, 0))
    with pytest.raises(InvalidInput, match="agent ppo:x: its network's output is not finite"):
        policy.action()


def test_checkpoint_meta_with_other_fields_is_refused_by_name(tmp_path: Path) -> None:
    agent = _agent_copy(tmp_path)
    _rewrite_meta(agent, extra=1)
    with pytest.raises(InvalidInput, match=r"checkpoint.json: fields missing \[\], unknown \['ex"):
        load_checkpoint(agent)
    meta = json.loads((agent / "checkpoint.json").read_text())
    del meta["extra"], meta["seed"]
    (agent / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidInput, match=r"fields missing \['seed'\], unknown \[\]"):
        load_checkpoint(agent)
    _rewrite_meta(agent, seed="0")
    with pytest.raises(InvalidInput, match=r"json: seed: Input should be a valid integer"):
        load_checkpoint(agent)
    _rewrite_meta(agent, seed=0, cpu_math={"threads": 1})
    with pytest.raises(InvalidInput, match=r"json: cpu_math.threads: Input should be a valid str"):
        load_checkpoint(agent)


def test_a_checkpoint_from_before_cpu_math_was_recorded_loads(tmp_path: Path) -> None:
    agent = _agent_copy(tmp_path)
    meta = json.loads((agent / "checkpoint.json").read_text())
    meta.pop("cpu_math", None)
    (agent / "checkpoint.json").write_text(json.dumps(meta))
    assert load_checkpoint(agent).meta.cpu_math is None


def test_a_truncated_model_is_refused_by_name(tmp_path: Path) -> None:
    agent = _agent_copy(tmp_path)
    model = agent / "model.zip"
    model.write_bytes(model.read_bytes()[:2000])
    _rewrite_meta(agent, model_sha256=sha256_file(model))
    with pytest.raises(InvalidInput, match=r"agent/model.zip: not a loadable PPO model"):
        load_checkpoint(agent)


def test_an_edited_config_beside_the_model_is_refused(tmp_path: Path) -> None:
    """checkpoint.json records the config's fingerprint; a config.yaml changed after
    training (another action range, say) would play the model wrongly, silently."""
    agent = _agent_copy(tmp_path)
    config = load_training_config(agent)
    config.with_overrides(env={"action_log_range": 0.9}).save(agent)
    with pytest.raises(InvalidInput, match=r"agent/config.yaml: not the config the model was"):
        make_policy(f"ppo:{agent}")
    ensemble = _ensemble_of(tmp_path, agent)
    with pytest.raises(InvalidInput, match="not the config the model was trained with"):
        make_policy(f"ppo:{ensemble}")
