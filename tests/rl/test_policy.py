"""``ppo:default``: the shipped agent, reachable through adbot.bidding's policy registry."""

from __future__ import annotations

import base64
import copy
import errno
import gc
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import weakref
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import adbot.rl  # noqa: F401  (registers the ppo: prefix)
from adbot.bidding.calibration import CalibratedPolicy
from adbot.bidding.registry import make_policy
from adbot.bidding.runner import run_episode
from adbot.errors import InvalidInput, NotFound
from adbot.market.scenario import Scenario
from adbot.market.simulator import MarketSimulator
from adbot.rl.checkpoints import load_checkpoint, sha256_file
from adbot.rl.config import load_training_config
from adbot.rl.features import N_FEATURES, OBS_BOUND
from adbot.rl.policy import AGENTS_DIR, MeanPolicy, PpoPolicy, PriorPolicy, ensemble_members
from training_helpers import TINY

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
    policy = make_policy("ppo:default")
    # Calibrated per keyword, as its manifest says (adbot.bidding.calibration).
    assert isinstance(policy, CalibratedPolicy) and policy.prior_conversions == 32
    ensemble = policy.base
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
    multipliers for those actions (the env's planner as the checkpoint trained)."""
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


def test_a_loaded_checkpoint_is_not_kept_once_dropped() -> None:
    """Nothing holds a model after its checkpoint is dropped (a cache left on the space check
    kept every model ever loaded, in a server or a worker, for good)."""
    member = sorted((AGENTS_DIR / "default").rglob("checkpoint.json"))[0].parent
    model = weakref.ref(load_checkpoint(member, to_play=True).model)
    gc.collect()
    assert model() is None


def test_ppo_path_loads_a_checkpoint_directory(cpa_scenario: Scenario) -> None:
    """``ppo:PATH`` of the shipped agent's directory is that agent (its ensemble of three),
    named by the path, playing as ``ppo:default``."""
    path = AGENTS_DIR / "default"
    policy = make_policy(f"ppo:{path}")
    assert policy.name == f"ppo:{path}"
    assert isinstance(policy, CalibratedPolicy) and isinstance(policy.base, MeanPolicy)
    assert len(policy.base.members) == 3
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


@pytest.mark.parametrize("by_day", [True, False])
def test_prior_is_the_envs_plan_alone(cpa_scenario: Scenario, by_day: bool) -> None:
    """``prior`` bids the env's multipliers at action 0, step for step, on the same episode:
    the env with ``fast_memory_by_day`` as ``prior`` plays, the env's default (as the agents
    of ``ppo:default`` trained) as ``PriorPolicy(fast_memory_by_day=False)``; the two part."""
    from adbot.rl.env import BidPacingEnv

    env = BidPacingEnv(cpa_scenario, fast_memory_by_day=by_day)
    env.reset(seed=0, options={"episode_seed": 4})
    alphas, done = [], False
    while not done:
        _, _, terminated, truncated, info = env.step(np.zeros(1, dtype=np.float32))
        alphas.append(info["alpha"])
        done = terminated or truncated
    policy = make_policy("prior") if by_day else PriorPolicy(fast_memory_by_day=False)
    assert policy.name == "prior"
    result = run_episode(cpa_scenario, 4, policy)
    np.testing.assert_array_equal(result.alpha, alphas)
    assert result.metrics.score == pytest.approx(info["score"])
    other = run_episode(cpa_scenario, 4, PriorPolicy(fast_memory_by_day=not by_day))
    assert not np.array_equal(other.alpha, alphas)  # cpa_scenario has two days


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
    _write("normalization.json", json.dumps(stats))(agent)  # its sha256 recorded again
    with pytest.raises(InvalidInput, match=f"normalization.json: .*{message}"):
        load_checkpoint(agent)


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
    """An ensemble directory listing a copy of ``member`` alone (members lie inside it)."""
    ensemble = tmp_path / "ensemble"
    shutil.copytree(member, ensemble / "member")
    (ensemble / "ensemble.json").write_text(json.dumps({"members": ["member"]}))
    return ensemble


def _trained_calibrated(agent: Path, prior: float) -> None:
    """``agent``'s config as if it had trained on calibrated bids with ``prior``."""
    config = load_training_config(agent).with_overrides(env={"keyword_calibration": prior})
    config.save(agent)
    _rewrite_meta(agent, config_fingerprint=config.fingerprint())


def test_an_ensemble_plays_as_its_members_trained(tmp_path: Path) -> None:
    """Without its own ``keyword_calibration`` an ensemble of agents trained on calibrated
    bids plays calibrated with their prior; members that trained differently are refused by
    name, and the manifest's own prior decides over theirs."""
    agent = _agent_copy(tmp_path)
    _trained_calibrated(agent, 24.0)
    single = make_policy(f"ppo:{agent}")
    assert isinstance(single, CalibratedPolicy) and single.prior_conversions == 24.0
    ensemble = _ensemble_of(tmp_path, agent)
    played = make_policy(f"ppo:{ensemble}")
    assert isinstance(played, CalibratedPolicy) and isinstance(played.base, MeanPolicy)
    assert played.prior_conversions == 24.0
    shutil.copytree(AGENTS_DIR / "default" / "members" / "seed-1", ensemble / "other")
    (ensemble / "ensemble.json").write_text(json.dumps({"members": ["member", "other"]}))
    with pytest.raises(InvalidInput, match=r"different env.keyword_calibration \(24.0, None\)"):
        make_policy(f"ppo:{ensemble}")
    manifest = {"members": ["member", "other"], "keyword_calibration": 8}
    (ensemble / "ensemble.json").write_text(json.dumps(manifest))
    chosen = make_policy(f"ppo:{ensemble}")
    assert isinstance(chosen, CalibratedPolicy) and chosen.prior_conversions == 8.0


def test_an_agent_plans_as_it_trained_unless_its_ensemble_says(tmp_path: Path) -> None:
    """A checkpoint plays on the planner it trained on (its config's
    ``env.fast_memory_by_day``), so its recorded evaluation is what ``ppo:PATH`` plays; an
    ensemble's ``fast_memory_by_day`` decides over its members': ``ppo:default``'s agents
    trained with the fast memory kept overnight, and it plays with it holding one day."""
    shipped = make_policy("ppo:default")
    assert isinstance(shipped, CalibratedPolicy) and isinstance(shipped.base, MeanPolicy)
    assert shipped.base.fast_memory_by_day
    assert not any(member.fast_memory_by_day for member in shipped.base.members)
    agent = _agent_copy(tmp_path)
    single = make_policy(f"ppo:{agent}")
    assert isinstance(single, CalibratedPolicy | PpoPolicy)
    assert not (single.base if isinstance(single, CalibratedPolicy) else single).fast_memory_by_day
    ensemble = _ensemble_of(tmp_path, agent)
    shutil.copytree(AGENTS_DIR / "default" / "members" / "seed-1", ensemble / "other")
    config = load_training_config(ensemble / "other")
    config = config.with_overrides(env={"fast_memory_by_day": True})
    config.save(ensemble / "other")
    _rewrite_meta(ensemble / "other", config_fingerprint=config.fingerprint())
    (ensemble / "ensemble.json").write_text(json.dumps({"members": ["member", "other"]}))
    with pytest.raises(InvalidInput, match=r"trained with and without env\.fast_memory_by_day"):
        make_policy(f"ppo:{ensemble}")
    for by_day in (True, False):
        manifest = {"members": ["member", "other"], "fast_memory_by_day": by_day}
        (ensemble / "ensemble.json").write_text(json.dumps(manifest))
        played = make_policy(f"ppo:{ensemble}")
        assert isinstance(played, MeanPolicy) and played.fast_memory_by_day == by_day


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


def _damage_zip(agent: Path, change: Callable[[dict[str, bytes]], object]) -> None:
    """model.zip with its entries changed by ``change``, its sha256 recomputed."""
    model = agent / "model.zip"
    with zipfile.ZipFile(model) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    change(entries)
    with zipfile.ZipFile(model, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    _rewrite_meta(agent, model_sha256=sha256_file(model))


def _narrow_first_layer(entries: dict[str, bytes]) -> None:
    """Weights of another network (32 units where the model has 64), same file layout."""
    weights = torch.load(io.BytesIO(entries["policy.pth"]), weights_only=True)
    name = "mlp_extractor.policy_net.0.weight"
    weights[name] = weights[name][:32]
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    entries["policy.pth"] = buffer.getvalue()


def _write(relative: str, data: str | bytes) -> Callable[[Path], object]:
    """``relative`` written with ``data``; statistics with their sha256 recorded again, so
    the check of their contents is what refuses them."""

    def write(agent: Path) -> None:
        path = agent / relative
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        if relative == "normalization.json":
            _rewrite_meta(agent, normalization_sha256=sha256_file(path))

    return write


def _model_file(data: bytes) -> Callable[[Path], object]:
    """model.zip replaced by ``data``, its sha256 recomputed (checkpoint.json agrees)."""

    def write(agent: Path) -> None:
        (agent / "model.zip").write_bytes(data)
        _rewrite_meta(agent, model_sha256=sha256_file(agent / "model.zip"))

    return write


def _remove(relative: str) -> Callable[[Path], object]:
    return lambda agent: (agent / relative).unlink()


def _members(*members: str) -> Callable[[Path], object]:
    return _write("ensemble.json", json.dumps({"members": list(members)}))


def _manifest(**fields: object) -> Callable[[Path], object]:
    """The shipped manifest with ``fields`` set."""
    return _write(
        "ensemble.json",
        json.dumps({"members": [".", "members/seed-1", "members/seed-2"], **fields}),
    )


def _nested(agent: Path) -> None:
    (agent / "members" / "seed-1" / "ensemble.json").write_text('{"members": ["../seed-2"]}')


def _cycle(agent: Path) -> None:
    (agent / "members" / "seed-1" / "ensemble.json").write_text('{"members": ["../.."]}')


def _tampered(agent: Path) -> None:
    """Another model.zip (one weight changed) under the sha256 of the shipped one."""
    model = PPO.load(agent / "model.zip", device="cpu")
    with torch.no_grad():
        next(model.policy.action_net.parameters())[0, 0] += 1.0
    model.save(agent / "model.zip")


def _statistic(agent: Path, **changes: object) -> None:
    stats = json.loads((agent / "normalization.json").read_text())
    stats.update(changes)
    _write("normalization.json", json.dumps(stats))(agent)


def _other_members_statistics(agent: Path) -> None:
    """seed-1's statistics copied over the agent's own: valid numbers, another agent's."""
    shutil.copy(agent / "members" / "seed-1" / "normalization.json", agent)


def _other_features(agent: Path) -> None:
    """A valid checkpoint (model, sha256, statistics) of an untrained model taking two
    features fewer: an agent of an AdBot with other features."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from adbot.rl.checkpoints import save_checkpoint
    from adbot.rl.train import build_model

    class OtherFeatures(gym.Env[np.ndarray, np.ndarray]):
        observation_space = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (N_FEATURES - 2,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    venv = VecNormalize(DummyVecEnv([OtherFeatures]))
    model = build_model(TINY, venv)
    save_checkpoint(agent, model=model, vec_normalize=venv, config=TINY, score_ratio=None)


def _model_of(
    observation_space: gym.spaces.Space[Any], action_space: gym.spaces.Space[Any]
) -> Callable[[Path], object]:
    """model.zip replaced by an untrained PPO model of an env with these spaces (another env
    than AdBot's), its sha256 recomputed; the statistics and config stay the agent's."""

    class OtherEnv(gym.Env[Any, Any]):
        def __init__(self) -> None:
            self.observation_space = observation_space
            self.action_space = action_space

    def write(agent: Path) -> None:
        dict_observations = isinstance(observation_space, gym.spaces.Dict)
        policy = "MultiInputPolicy" if dict_observations else "MlpPolicy"
        PPO(policy, OtherEnv(), n_steps=8, batch_size=8, device="cpu").save(agent / "model.zip")
        _rewrite_meta(agent, model_sha256=sha256_file(agent / "model.zip"))

    return write


def _symlink(relative: str, target: str | Path) -> Callable[[Path], object]:
    return lambda agent: (agent / relative).symlink_to(target)


def _symlink_loop(agent: Path) -> None:
    (agent / "l1").symlink_to("l2")
    (agent / "l2").symlink_to("l1")
    _members(".", "l1")(agent)


def _link_outside(agent: Path) -> None:
    """A member that is a link to a checkpoint outside the agent (it would not be copied with
    it): the shipped seed-1."""
    _symlink("m", AGENTS_DIR / "default" / "members" / "seed-1")(agent)
    _members(".", "m")(agent)


_ACTIONS = re.escape(str(gym.spaces.Box(-1.0, 1.0, (1,), np.float32)))
_FEATURES_BOX = gym.spaces.Box(-OBS_BOUND, OBS_BOUND, (N_FEATURES,), np.float32)

# (how the copy of ppo:default is damaged, the error, what its one line says)
DAMAGED_AGENTS = [
    pytest.param(_remove("model.zip"), NotFound, r"agent has no model.zip", id="model-missing"),
    pytest.param(
        _model_file(b""),
        InvalidInput,
        r"agent/model.zip: not a loadable PPO model \(File is not a zip file\)",
        id="model-empty",
    ),
    pytest.param(
        _model_file(b"hello"),
        InvalidInput,
        r"agent/model.zip: not a loadable PPO model",
        id="model-not-a-zip",
    ),
    pytest.param(
        lambda a: _damage_zip(a, lambda entries: entries.pop("policy.pth")),
        InvalidInput,
        r"agent/model.zip: not a loadable PPO model \(Names of parameters do not match",
        id="model-without-policy-pth",
    ),
    pytest.param(
        lambda a: _damage_zip(a, _narrow_first_layer),
        InvalidInput,
        r"agent/model.zip: not a loadable PPO model \(Error\(s\) in loading state_dict for "
        r"ActorCriticPolicy: size mismatch for mlp_extractor.policy_net.0.weight: .*\[32, ",
        id="model-weights-of-another-shape",
    ),
    pytest.param(
        _other_features,
        InvalidInput,
        rf"agent: its model takes observations of shape \({N_FEATURES - 2},\), this AdBot",
        id="model-of-other-features",
    ),
    pytest.param(
        _model_of(_FEATURES_BOX, gym.spaces.Discrete(4)),
        InvalidInput,
        rf"agent: its model's action space is Discrete\(4\); an agent must act in the env's "
        rf"{_ACTIONS}$",
        id="model-of-discrete-actions",
    ),
    pytest.param(
        _model_of(_FEATURES_BOX, gym.spaces.Box(-1.0, 1.0, (3,), np.float32)),
        InvalidInput,
        rf"agent: its model's action space is Box\(-1.0, 1.0, \(3,\), float32\); .*{_ACTIONS}$",
        id="model-of-three-actions",
    ),
    pytest.param(
        _model_of(_FEATURES_BOX, gym.spaces.Box(-100.0, 100.0, (1,), np.float32)),
        InvalidInput,
        rf"agent: its model's action space is Box\(-100.0, 100.0, \(1,\), float32\); .*{_ACTIONS}",
        id="model-of-wider-actions",
    ),
    pytest.param(
        _model_of(gym.spaces.Dict({"features": _FEATURES_BOX}), gym.spaces.Box(-1.0, 1.0, (1,))),
        InvalidInput,
        rf"agent: its model's observation space is Dict\(.*\), not the env's Box of "
        rf"{N_FEATURES} features",
        id="model-of-dict-observations",
    ),
    pytest.param(
        _tampered, InvalidInput, r"agent: model.zip does not match its sha256", id="tampered"
    ),
    pytest.param(
        lambda a: _rewrite_meta(a, model_sha256="0" * 64),
        InvalidInput,
        r"agent: model.zip does not match its sha256",
        id="meta-wrong-sha256",
    ),
    pytest.param(
        _remove("checkpoint.json"), NotFound, r"agent has no checkpoint.json", id="meta-missing"
    ),
    pytest.param(
        _write("checkpoint.json", b"\xff\xfe garbage"),
        InvalidInput,
        r"agent/checkpoint.json cannot be read: 'utf-8' codec can't decode",
        id="meta-not-text",
    ),
    pytest.param(
        _write("checkpoint.json", "null"),
        InvalidInput,
        r"agent/checkpoint.json: expected an object",
        id="meta-not-an-object",
    ),
    pytest.param(
        lambda a: _rewrite_meta(a, model_sha256=5),
        InvalidInput,
        r"agent/checkpoint.json: model_sha256: Input should be a valid string",
        id="meta-sha256-a-number",
    ),
    pytest.param(
        lambda a: _rewrite_meta(a, score_ratio=float("inf")),
        InvalidInput,
        r"agent/checkpoint.json: score_ratio must be finite, got inf",
        id="meta-score-infinite",
    ),
    pytest.param(
        _members(".", "members/seed\0-1"),
        InvalidInput,
        r"agent/ensemble.json: member 'members/seed\\x00-1' holds a NUL character",
        id="ensemble-member-with-nul",
    ),
    pytest.param(
        _manifest(keyword_calibration=10**400),
        InvalidInput,
        r"keyword calibration's prior must be a positive finite number of conversions, got 1000",
        id="ensemble-calibration-huge-integer",
    ),
    pytest.param(
        lambda a: _rewrite_meta(a, score_ratio=float("nan")),
        InvalidInput,
        r"agent/checkpoint.json: score_ratio is NaN",
        id="meta-score-nan",
    ),
    pytest.param(
        lambda a: _rewrite_meta(a, timesteps=-1),
        InvalidInput,
        r"agent/checkpoint.json: timesteps must be >= 0, got -1",
        id="meta-timesteps-negative",
    ),
    pytest.param(
        _remove("normalization.json"),
        NotFound,
        r"agent has no normalization.json",
        id="stats-missing",
    ),
    # Played silently, on the same weights: 263 where the agent's own scored 265.
    pytest.param(
        _other_members_statistics,
        InvalidInput,
        r"agent: normalization.json does not match its sha256",
        id="stats-of-another-checkpoint",
    ),
    pytest.param(
        _write("normalization.json", "{not json"),
        InvalidInput,
        r"agent/normalization.json cannot be read: Expecting property name",
        id="stats-not-json",
    ),
    pytest.param(
        lambda a: _statistic(a, obs_var=[float("inf")] * N_FEATURES),
        InvalidInput,
        r"agent/normalization.json: obs_var is not finite everywhere",
        id="stats-variance-inf",
    ),
    pytest.param(
        lambda a: _statistic(a, obs_var=[1.0] * (N_FEATURES + 1)),
        InvalidInput,
        rf"agent/normalization.json: obs_var has {N_FEATURES + 1} values, the model takes",
        id="stats-too-long",
    ),
    pytest.param(
        lambda a: _statistic(a, clip_reward=float("nan")),
        InvalidInput,
        r"agent/normalization.json: clip_reward must be a positive number, got nan",
        id="stats-clip-reward-nan",
    ),
    pytest.param(
        _remove("config.yaml"), NotFound, r"agent has no config.yaml", id="config-missing"
    ),
    pytest.param(
        _write("config.yaml", "::: not yaml ["),
        InvalidInput,
        r"^training config /.*/agent/config.yaml: ::: Extra inputs are not permitted$",
        id="config-garbage",
    ),
    pytest.param(
        _members(".", "members/seed-9"),
        NotFound,
        r"not a checkpoint: .*agent/members/seed-9 does not exist",
        id="member-missing",
    ),
    pytest.param(
        _members(".", "../../etc"),
        InvalidInput,
        r"agent/ensemble.json: member '../../etc' is outside .*agent; members are paths inside",
        id="member-outside",
    ),
    pytest.param(
        _members(".", str(AGENTS_DIR / "default" / "members" / "seed-1")),
        InvalidInput,
        r"agent/ensemble.json: member '/.*seed-1' is outside",
        id="member-absolute",
    ),
    pytest.param(
        _symlink_loop,
        InvalidInput,
        r"agent/ensemble.json: member 'l1' is a symlink loop$",
        id="member-a-symlink-loop",
    ),
    pytest.param(
        _link_outside,
        InvalidInput,
        r"agent/ensemble.json: member 'm' links to /.*/default/members/seed-1, outside "
        r"/.*/agent; members are paths inside it$",
        id="member-a-link-outside",
    ),
    pytest.param(
        _manifest(keyword_calibration=0),
        InvalidInput,
        r"agent/ensemble.json: keyword_calibration: keyword calibration's prior must be a "
        r"positive finite number of conversions, got 0",
        id="calibration-zero",
    ),
    pytest.param(
        _manifest(keyword_calibration="32"),
        InvalidInput,
        r"agent/ensemble.json: keyword_calibration: keyword calibration needs a number, got '32'",
        id="calibration-text",
    ),
    pytest.param(
        _manifest(keyword_calibration=True),
        InvalidInput,
        r"keyword_calibration: keyword calibration needs a number, got True",
        id="calibration-bool",
    ),
    pytest.param(
        _write("ensemble.json", '{"members": ["."], "keyword_calibration": Infinity}'),
        InvalidInput,
        r"keyword calibration's prior must be a positive finite number of conversions, got inf",
        id="calibration-infinite",
    ),
    pytest.param(
        _manifest(fast_memory_by_day="yes"),
        InvalidInput,
        r"agent/ensemble.json: fast_memory_by_day must be true or false, got 'yes'",
        id="fast-memory-text",
    ),
    pytest.param(
        _manifest(fast_memory_by_day=1),
        InvalidInput,
        r"fast_memory_by_day must be true or false, got 1$",
        id="fast-memory-number",
    ),
    pytest.param(
        _manifest(keyword_calibraton=32),
        InvalidInput,
        r"agent/ensemble.json: unknown field\(s\) keyword_calibraton",
        id="manifest-unknown-field",
    ),
    pytest.param(
        _write("ensemble.json", '[".", "members/seed-1"]'),
        InvalidInput,
        r"agent/ensemble.json: not an ensemble manifest \(expected an object\)$",
        id="manifest-a-list",
    ),
    pytest.param(
        _write("ensemble.json", "null"),
        InvalidInput,
        r"agent/ensemble.json: not an ensemble manifest \(expected an object\)$",
        id="manifest-null",
    ),
    pytest.param(
        _write("ensemble.json", '{"member": ["."]}'),
        InvalidInput,
        r"agent/ensemble.json: not an ensemble manifest \(no 'members'\)$",
        id="manifest-without-members",
    ),
    pytest.param(
        _manifest(description=5),
        InvalidInput,
        r"agent/ensemble.json: 'description' must be text$",
        id="manifest-description-a-number",
    ),
    pytest.param(
        lambda a: _damage_zip(a, lambda entries: entries.update({"policy.pth": b"PK garbage"})),
        InvalidInput,
        # torch's own line advised loading it with weights_only=False: unsafe, and no help
        r"agent/model.zip: not a loadable PPO model \(its weights are not a file of plain",
        id="model-weights-garbage",
    ),
    pytest.param(
        _nested,
        InvalidInput,
        r"agent/ensemble.json: member 'members/seed-1' is an ensemble itself; list its",
        id="member-an-ensemble",
    ),
    pytest.param(
        _cycle, InvalidInput, r"member 'members/seed-1' is an ensemble itself", id="cycle"
    ),
    pytest.param(
        _members(".", "members/seed-1", "."),
        InvalidInput,
        r"agent/ensemble.json: member '.' is listed twice",
        id="member-twice",
    ),
    pytest.param(
        _members(".", "members/seed-1/", "members/seed-2/../seed-1"),
        InvalidInput,
        r"member 'members/seed-2/../seed-1' is listed twice",
        id="member-twice-spelled-otherwise",
    ),
    pytest.param(
        _members(".", ""),
        InvalidInput,
        r"agent/ensemble.json: 'members' must be a non-empty list of directories",
        id="member-empty-name",
    ),
    pytest.param(
        _members(".", "model.zip"),
        NotFound,
        r"not a checkpoint: .*agent/model.zip is not a directory",
        id="member-a-file",
    ),
    pytest.param(
        lambda a: ((a / "ensemble.json").unlink(), (a / "ensemble.json").mkdir()),
        InvalidInput,
        r"cannot read .*agent/ensemble.json: Is a directory",
        id="manifest-a-directory",
    ),
]


class _Touch:
    """A pickle that creates ``path`` when it is unpickled: what a crafted model.zip could
    run instead (any code at all)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def _pickle_into(entries: dict[str, bytes], key: str, path: Path) -> None:
    """model.zip's ``data`` with entry ``key`` a pickle that touches ``path``, its
    description (SB3 writes one beside each pickle) kept or made up."""
    data = json.loads(entries["data"])
    item = data.get(key) if isinstance(data.get(key), dict) else {":type:": "<class 'float'>"}
    item[":serialized:"] = base64.b64encode(pickle.dumps(_Touch(path))).decode()
    data[key] = item
    entries["data"] = json.dumps(data).encode()


@pytest.mark.parametrize("key", ["_last_episode_starts", "observation_space", "policy_class"])
def test_an_agents_pickles_are_never_unpickled(key: str, tmp_path: Path) -> None:
    """SB3 stores a model's policy class, spaces, schedules and last rollout as pickles, and
    unpickling one runs whatever code it names. An agent directory may come from anyone:
    its model.zip is loaded with AdBot's own objects in their place, so a crafted pickle
    there does nothing (here it would have created a file) and the agent plays as before."""
    agent, marker = tmp_path / "agent", tmp_path / "pwned"
    shutil.copytree(AGENTS_DIR / "default", agent)
    _damage_zip(agent, lambda entries: _pickle_into(entries, key, marker))
    policy = make_policy(f"ppo:{agent}")
    assert not marker.exists()
    assert isinstance(policy, CalibratedPolicy)  # ppo:default's bidding, loaded whole


def _set_data(**entries: object) -> Callable[[dict[str, bytes]], None]:
    """model.zip's ``data`` with ``entries`` set as plain JSON."""

    def change(zip_entries: dict[str, bytes]) -> None:
        data = json.loads(zip_entries["data"])
        data.update(entries)
        zip_entries["data"] = json.dumps(data).encode()

    return change


def test_an_agents_plain_settings_that_are_objects_are_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plain JSON entries reach SB3 too: an ``env`` named there went to ``gym.make``, which
    imports the module before the colon (here one beside the agent, on the path as a
    notebook's folder is); a ``tensorboard_log`` stopped a resumed run on a missing
    package; a ``clip_range`` of 50 replaced the config's. AdBot's own objects stand in."""
    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent, ignore=shutil.ignore_patterns("members"))
    (agent / "ensemble.json").unlink()
    (tmp_path / "payload_beside_agent.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = {"env": "payload_beside_agent:X-v0", "tensorboard_log": "/tmp", "clip_range": 50.0}
    _damage_zip(agent, _set_data(**settings))
    checkpoint = load_checkpoint(agent)
    assert "payload_beside_agent" not in sys.modules
    assert checkpoint.model.clip_range(1.0) == checkpoint.config.ppo.clip_range
    assert checkpoint.model.tensorboard_log is None


def test_an_agent_with_an_entry_sb3_does_not_write_is_refused(tmp_path: Path) -> None:
    """A ``data`` entry that ``PPO.save`` does not write for AdBot's models is refused by
    name before SB3 sees it."""
    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent)
    _damage_zip(agent, _set_data(replay_buffer_class="x"))
    with pytest.raises(InvalidInput, match=r"model.zip: holds 'replay_buffer_class', which a"):
        make_policy(f"ppo:{agent}")


def test_an_agent_with_a_pickle_adbot_does_not_know_is_refused(tmp_path: Path) -> None:
    """A pickled entry that SB3's PPO does not write for AdBot's models is refused by name,
    before anything is unpickled."""
    agent, marker = tmp_path / "agent", tmp_path / "pwned"
    shutil.copytree(AGENTS_DIR / "default", agent)
    _damage_zip(agent, lambda entries: _pickle_into(entries, "learning_rate", marker))
    with pytest.raises(InvalidInput, match=r"model.zip: holds pickled 'learning_rate', which"):
        make_policy(f"ppo:{agent}")
    assert not marker.exists()


def test_a_checkpoint_from_before_the_statistics_sha256_loads(tmp_path: Path) -> None:
    """Checkpoints written before the twenty-third session record no sha256 of their
    statistics: they load as they did (their statistics checked for sense only)."""
    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent)
    for member in (agent, agent / "members" / "seed-1", agent / "members" / "seed-2"):
        meta = json.loads((member / "checkpoint.json").read_text())
        del meta["normalization_sha256"]
        (member / "checkpoint.json").write_text(json.dumps(meta))
    assert load_checkpoint(agent).meta.normalization_sha256 is None
    make_policy(f"ppo:{agent}")


@pytest.mark.parametrize(("damage", "error", "message"), DAMAGED_AGENTS)
def test_a_damaged_agent_is_refused_in_one_line_naming_the_file(
    damage: Callable[[Path], object], error: type[Exception], message: str, tmp_path: Path
) -> None:
    """A copy of ``ppo:default`` with one thing broken is refused when it is loaded, before
    any episode, in one line naming the file and what is wrong with it."""
    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent)
    damage(agent)
    with pytest.raises(error) as refused:
        make_policy(f"ppo:{agent}")
    assert isinstance(refused.value, InvalidInput | NotFound)
    assert re.search(message, refused.value.message) and "\n" not in refused.value.message


def test_a_member_linked_inside_the_agent_plays(tmp_path: Path) -> None:
    """A link is a member when it leads to a checkpoint inside the agent directory (reached
    through a link itself): only what lies outside it is refused."""
    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent)
    _symlink("members/alias", "seed-2")(agent)
    _members(".", "members/seed-1", "members/alias")(agent)
    (tmp_path / "link").symlink_to(agent)
    policy = make_policy(f"ppo:{tmp_path / 'link'}")
    assert isinstance(policy, MeanPolicy) and len(policy.members) == 3
    assert ensemble_members(tmp_path / "link") == [
        agent,
        agent / "members" / "seed-1",
        agent / "members" / "seed-2",
    ]


def test_ppo_of_nothing_or_of_a_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"^ppo policy needs an agent: ppo:NAME or ppo:PATH$"):
        make_policy("ppo:")
    model = AGENTS_DIR / "default" / "model.zip"
    with pytest.raises(InvalidInput, match=r"model.zip is a file; ppo:PATH takes a checkpoint or"):
        make_policy(f"ppo:{model}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a directory without permission")
def test_an_unreadable_agent_directory_is_refused_by_name(tmp_path: Path) -> None:
    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent)
    agent.chmod(0)
    try:
        with pytest.raises(InvalidInput, match=r"cannot read .*agent/model.zip: Permission denied"):
            make_policy(f"ppo:{agent}")
    finally:
        agent.chmod(0o755)


def test_a_file_the_user_may_not_read_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test above as it runs everywhere: as root (CI) a chmod 000 directory stays
    readable, so the read itself fails here as it does for a user without permission."""
    import adbot.rl.checkpoints as checkpoints_module

    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent)

    def denied(path: Path) -> str:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(checkpoints_module, "sha256_file", denied)
    with pytest.raises(InvalidInput, match=r"^cannot read .*agent/model.zip: Permission denied$"):
        make_policy(f"ppo:{agent}")


def test_adbot_evaluate_refuses_a_damaged_agent_before_any_episode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI's side: exit 1, the one line on stderr after ``error:``, nothing on stdout."""
    from adbot.cli.main import main

    agent = tmp_path / "agent"
    shutil.copytree(AGENTS_DIR / "default", agent)
    _members(".", "../../etc")(agent)
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "tight-cpa", "--policy", f"ppo:{agent}", "--episodes", "1"])
    captured = capsys.readouterr()
    assert exited.value.code == 1 and captured.out == ""
    assert captured.err.strip().splitlines() == [
        f"error: {agent}/ensemble.json: member '../../etc' is outside {agent}; members are "
        "paths inside it"
    ]


def test_prior_with_a_trailing_colon_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"^policy 'prior:': prior takes no argument; drop"):
        make_policy("prior:")


def test_a_model_loaded_to_play_acts_as_the_trainable_one() -> None:
    """Loaded to play, a checkpoint's model has no optimizer (the first torch optimizer of a
    process imports torch._dynamo: 2.2 to 2.5 s on every ``ppo:`` evaluation); it acts
    exactly as the model loaded to train on."""
    member = AGENTS_DIR / "default"
    playing, training = (load_checkpoint(member, to_play=mode) for mode in (True, False))
    assert isinstance(training.model.policy.optimizer, torch.optim.Adam)
    assert not isinstance(playing.model.policy.optimizer, torch.optim.Optimizer)
    observations = np.random.default_rng(0).uniform(-3, 3, (64, N_FEATURES)).astype(np.float32)
    acted = [c.model.predict(observations, deterministic=True)[0] for c in (playing, training)]
    np.testing.assert_array_equal(*acted)


def test_playing_an_agent_imports_no_compiler() -> None:
    """``ppo:default`` chosen and played in a fresh process leaves torch._dynamo unimported."""
    script = (
        "import sys, adbot.rl\n"
        "from adbot.bidding.registry import make_policy\n"
        "from adbot.bidding.runner import run_episode\n"
        "from adbot.market.scenario import load_scenario\n"
        "scenario = load_scenario('value-only')\n"
        "run_episode(scenario, 0, make_policy('ppo:default'))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600
    )
    assert done.stdout.strip() == "False", done.stderr


def test_an_agent_acts_as_its_model_predicts() -> None:
    """``act`` runs the actor's layers itself (SB3's ``predict`` cost twice as much a step):
    the same floats as ``predict(deterministic=True)`` on observations over the whole
    normalised range and past it (where the normalisation clips them)."""
    checkpoint = load_checkpoint(AGENTS_DIR / "default", to_play=True)
    policy = PpoPolicy.from_checkpoint(checkpoint, name="ppo:default")
    rng = np.random.default_rng(3)
    stats = checkpoint.normalization
    raw = rng.normal(0.0, 3.0, (400, N_FEATURES)) * np.sqrt(np.array(stats.obs_var))
    raw = (raw + np.array(stats.obs_mean)).astype(np.float32)
    acted = np.array([policy.act(obs) for obs in raw])
    model = checkpoint.model
    predicted = np.array([model.predict(stats.normalize(x), deterministic=True)[0][0] for x in raw])
    np.testing.assert_array_equal(acted, predicted)
    assert acted.dtype == np.float32 and np.abs(acted).max() <= 1.0
