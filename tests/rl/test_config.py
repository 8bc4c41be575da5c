"""The frozen, serialisable training config."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pydantic
import pytest

from adbot.errors import InvalidInput
from adbot.rl.config import (
    SEED_MAX,
    TrainingConfig,
    load_training_config,
    training_config_from_dict,
)
from adbot.rl.features import N_FEATURES

DEFAULT = Path(__file__).resolve().parents[2] / "configs" / "agents" / "default.yaml"


def test_default_agent_config_loads() -> None:
    config = load_training_config(DEFAULT)
    assert config.name == "default"
    assert config.env.scenario is None  # domain randomisation only
    assert config.evaluation.scenario_files == ()  # never selected on the bundled scenarios
    assert config.reward.components == {"score": 1.0, "baseline_score": 1.0}


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    config = TrainingConfig(seed=42, ppo={"learning_rate": 1e-4, "net_arch": (32, 32)})
    path = config.save(tmp_path)
    loaded = load_training_config(path)
    assert loaded == config and loaded.seed == 42
    assert load_training_config(tmp_path) == config  # a checkpoint directory works too
    assert loaded.fingerprint() == config.fingerprint()


def test_frozen_and_strict() -> None:
    config = TrainingConfig()
    with pytest.raises(pydantic.ValidationError):
        config.seed = 3  # type: ignore[misc]
    with pytest.raises(InvalidInput, match="unknown_field"):
        training_config_from_dict({"unknown_field": 1})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ppo": {"learning_rate": float("nan")}}, "ppo.learning_rate: Input should be a finite"),
        ({"env": {"max_daily_queries": float("inf")}}, "env.max_daily_queries: Input should be a"),
        ({"env": {"episode_reuse": True}}, "env.episode_reuse: Input should be a valid integer"),
        ({"env": {"action_log_range": "1.5"}}, "env.action_log_range: Input should be a valid"),
        ({"ppo": {"learning_rate": "0.001"}}, "ppo.learning_rate: Input should be a valid"),
        ({"ppo": {"n_steps": True}}, "ppo.n_steps: Input should be a valid integer"),
        ({"ppo": {"net_arch": [64, True]}}, "ppo.net_arch.1: Input should be a valid integer"),
    ],
)
def test_no_nan_infinity_or_stand_in_number(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        training_config_from_dict(data)


STAND_INS = [
    (field, value)
    for field in (
        "seed",
        "total_timesteps",
        "n_envs",
        "vec_workers",
        "torch_threads",
        "evaluation.every_timesteps",
        "evaluation.random_scenarios",
        "evaluation.max_daily_queries",
        "evaluation.min_conversions",
        "evaluation.episodes",
        "evaluation.seed",
    )
    for value in (True, "2")
]


def _nested(field: str, value: object) -> dict[str, object]:
    group, _, name = field.rpartition(".")
    return {group: {name: value}} if group else {field: value}


@pytest.mark.parametrize(("field", "value"), STAND_INS)
def test_every_number_of_the_config_is_strict(field: str, value: object) -> None:
    """Only env's and ppo's numbers were strict: ``evaluation.every_timesteps: true`` trained
    with a checkpoint every step, ``n_envs: true`` was one env (then blamed on
    ``ppo.batch_size``) and ``total_timesteps: "2048"`` a number."""
    with pytest.raises(InvalidInput, match=rf"training config: {re.escape(field)}: Input should"):
        training_config_from_dict(_nested(field, value))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"torch_threads": 2.0}, "torch_threads: Input should be a valid integer"),
        ({"normalize_observations": 1}, "normalize_observations: Input should be a valid bool"),
        ({"normalize_rewards": "yes"}, "normalize_rewards: Input should be a valid boolean"),
        ({"reward": {"components": {"score": "1.0"}}}, "reward.components.score: Input should"),
        ({"reward": {"components": {"score": True}}}, "reward.components.score: Input should"),
        ({"env": {"wide_draws": "true"}}, "env.wide_draws: Input should be a valid boolean"),
        ({"env": {"fast_memory_by_day": 1}}, "env.fast_memory_by_day: Input should be a valid"),
        ({"evaluation": {"wide_draws": 0}}, "evaluation.wide_draws: Input should be a valid"),
    ],
)
def test_no_other_stand_ins_either(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        training_config_from_dict(data)


def test_a_yaml_1_1_number_is_a_string_refused_by_name(tmp_path: Path) -> None:
    """``2_048`` is a string in YAML 1.2, as the config loader reads it, not 2048."""
    path = tmp_path / "config.yaml"
    path.write_text("total_timesteps: 2_048\n")
    with pytest.raises(InvalidInput, match="total_timesteps: Input should be a valid integer"):
        load_training_config(path)


def test_numbers_still_take_their_own_kind() -> None:
    config = training_config_from_dict(
        {
            "vec_workers": 2,
            "normalize_rewards": True,
            "reward": {"components": {"score": 1, "baseline_score": 0.5}},
            "evaluation": {"max_daily_queries": 1500, "min_conversions": 10},
        }
    )
    assert config.reward.components == {"score": 1.0, "baseline_score": 0.5}
    assert config.evaluation.max_daily_queries == 1500.0 and config.normalize_rewards


def test_the_shipped_configs_keep_their_fingerprints() -> None:
    """Strict numbers refuse stand-ins only: the shipped agent's configs load unchanged."""
    agents = Path(__file__).resolve().parents[2] / "src" / "adbot" / "rl" / "agents" / "default"
    digest = load_training_config(DEFAULT).digest()
    assert digest.startswith("0efa7321cc55f94a")
    assert load_training_config(agents / "config.yaml").digest() == digest
    members = {
        p.parent.name: load_training_config(p).digest() for p in agents.rglob("*/config.yaml")
    }
    assert {name: d[:16] for name, d in members.items()} == {
        "seed-1": "d29fa46d358e0194",
        "seed-2": "6f2aa4e6587e0030",
    }


@pytest.mark.parametrize("files", [(), ("tight-budget",)])
def test_an_evaluation_needs_a_scenario(files: tuple[str, ...]) -> None:
    """With none, every evaluation scored 0.0: the run made a checkpoint scored on nothing
    its agent's active one, and a search ranked its trials by it."""
    evaluation = {"random_scenarios": 0, "scenario_files": list(files)}
    if files:
        assert training_config_from_dict({"evaluation": evaluation}).evaluation.scenario_files
        return
    with pytest.raises(InvalidInput) as error:
        training_config_from_dict({"evaluation": evaluation})
    assert error.value.message == (
        "training config: evaluation: needs at least one scenario: random_scenarios >= 1 "
        "or scenario_files"
    )


def test_batch_size_must_divide_the_rollout() -> None:
    with pytest.raises(InvalidInput, match="batch_size"):
        training_config_from_dict({"n_envs": 3, "ppo": {"n_steps": 100, "batch_size": 64}})


def test_overrides_are_validated_and_nested() -> None:
    config = TrainingConfig().with_overrides(seed=7, ppo={"gamma": 0.99})
    assert config.seed == 7 and config.ppo.gamma == 0.99
    assert config.ppo.n_epochs == TrainingConfig().ppo.n_epochs
    assert config.fingerprint() != TrainingConfig().fingerprint()
    with pytest.raises(InvalidInput, match="gamma"):
        TrainingConfig().with_overrides(ppo={"gamma": 2.0})
    with pytest.raises(InvalidInput, match="seed"):  # adbot train --seed -1
        TrainingConfig().with_overrides(seed=-1)


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found"):
        load_training_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1, 2\n")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_training_config(bad)
    bad.write_text("- 1\n")
    with pytest.raises(InvalidInput, match="mapping"):
        load_training_config(bad)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ppo": {"net_arch": [-5]}}, "ppo.net_arch.0: Input should be greater than or equal to 1"),
        ({"ppo": {"net_arch": [64, 0]}}, "ppo.net_arch.1: Input should be greater than or equal"),
        ({"ppo": {"log_std_init": 1000.0}}, "ppo.log_std_init: Input should be less than or equal"),
        ({"evaluation": {"seed": -5}}, "evaluation.seed: Input should be greater than or equal"),
        ({"seed": 2**32}, "config: seed: Input should be less than or equal to 4294967295"),
        ({"ppo": {"clip_range": 1e308}}, "ppo.clip_range: Input should be less than or equal to"),
        ({"ppo": {"learning_rate": 1e300}}, "ppo.learning_rate: Input should be less than or"),
        ({"torch_threads": 10**11}, "torch_threads: Input should be less than or equal to 1024"),
        (
            {"ppo": {"net_arch": [10**8, 10**8]}},
            f"ppo.net_arch: [100000000, 100000000] is {N_FEATURES * 10**8 + 10**16 + 10**8} "
            "weights per network, at most 67108864 (2**26) can be trained in memory",
        ),
        ({"total_timesteps": 10**23}, "total_timesteps: Input should be less than or equal to"),
        ({"evaluation": {"every_timesteps": 2**53 + 1}}, "evaluation.every_timesteps: Input"),
        ({"evaluation": {"seed": 10**20}}, "evaluation.seed: Input should be less than or equal"),
        ({"n_envs": 10**6}, "n_envs: Input should be less than or equal to 1024"),
        ({"vec_workers": 10**6}, "vec_workers: Input should be less than or equal to 1024"),
        (
            {"n_envs": 1024, "ppo": {"n_steps": 2**15, "batch_size": 2**15}},
            "ppo.n_steps x n_envs (33554432) is more steps a rollout than fit in memory",
        ),
        ({"ppo": {"n_epochs": 10**9}}, "ppo.n_epochs: Input should be less than or equal"),
        ({"evaluation": {"random_scenarios": 10**9}}, "evaluation.random_scenarios: Input"),
        ({"evaluation": {"episodes": 10**9}}, "evaluation.episodes: Input should be less than"),
        ({"env": {"max_daily_queries": 1e-300}}, "env.max_daily_queries: Input should be greater"),
        ({"evaluation": {"max_daily_queries": 0.5}}, "evaluation.max_daily_queries: Input should"),
        (
            {"evaluation": {"seed": 2**63 - 1, "episodes": 2}},
            f"evaluation: seed ({2**63 - 1}) + episodes (2) - 1 is the last episode seed, at most",
        ),
    ],
)
def test_out_of_range_settings_are_named(data: dict[str, object], message: str) -> None:
    """Each would fail inside SB3, torch, numpy or the database with a traceback (after the
    run was recorded), or diverge at once."""
    with pytest.raises(InvalidInput, match=re.escape(message)):
        training_config_from_dict(data)


def test_the_upper_bounds_themselves_are_taken() -> None:
    config = training_config_from_dict(
        {
            "total_timesteps": 2**53,
            "torch_threads": 1024,
            "n_envs": 1024,
            "vec_workers": 1024,
            "ppo": {
                "learning_rate": 1,
                "clip_range": 10,
                "net_arch": [4096, 16000],
                "n_steps": 2**14,
                "batch_size": 2**14,
                "n_epochs": 10_000,
            },
            "env": {"max_daily_queries": 1},
            "evaluation": {
                "seed": 2**63 - 10_000,
                "episodes": 10_000,
                "every_timesteps": 2**53,
                "random_scenarios": 10_000,
                "max_daily_queries": 1,
            },
        }
    )
    assert config.ppo.net_arch == (4096, 16000)  # N_FEATURES x 4096 + 4096 x 16000 + 16000


def test_the_largest_seed_is_numpys() -> None:
    """A run seeds NumPy's global generator with the config's seed (SB3's
    ``set_random_seed``): the config takes every seed it takes and no other."""
    assert TrainingConfig(seed=SEED_MAX).seed == SEED_MAX
    np.random.RandomState(SEED_MAX)  # np.random.seed's generator, not reseeded here
    with pytest.raises(ValueError, match=r"between 0 and 2\*\*32 - 1"):
        np.random.RandomState(SEED_MAX + 1)


def test_numbers_written_as_integers_still_load() -> None:
    config = training_config_from_dict({"ppo": {"learning_rate": 1, "gamma": 1, "net_arch": []}})
    assert config.ppo.learning_rate == 1.0 and config.ppo.net_arch == ()


def test_a_field_added_later_keeps_the_old_fingerprints_while_unset() -> None:
    """``env.keyword_calibration``, ``env.wide_draws``, ``evaluation.wide_draws`` and
    ``env.fast_memory_by_day`` came after agents were shipped: a config without them has the
    digest it had before the fields existed (the shipped agents' checkpoints record it), and
    setting one changes the digest."""
    config = TrainingConfig()
    data = config.to_dict()
    assert data["env"].pop("keyword_calibration") is None
    assert data["env"].pop("wide_draws") is None
    assert data["evaluation"].pop("wide_draws") is None
    assert data["env"].pop("fast_memory_by_day") is None
    before = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert config.digest() == before
    for changed in (
        {"env": {"keyword_calibration": 32.0}},
        {"env": {"wide_draws": True}},
        {"evaluation": {"wide_draws": True}},
        {"env": {"fast_memory_by_day": True}},
    ):
        assert config.with_overrides(**changed).digest() != before
    unset = config.with_overrides(
        env={"wide_draws": False, "fast_memory_by_day": False}, evaluation={"wide_draws": False}
    )
    assert unset.env.wide_draws is None and unset.digest() == before  # false is the default
    assert unset.env.fast_memory_by_day is None


def test_the_wide_candidate_config_is_the_default_on_wide_draws() -> None:
    """``configs/agents/wide.yaml`` changes the default config in its name and its draws only,
    so its agents compare with ppo:default's on everything else."""
    default = load_training_config(DEFAULT)
    wide = load_training_config(DEFAULT.parent / "wide.yaml")
    assert wide.env.wide_draws and wide.evaluation.wide_draws and wide.name == "wide"
    same = wide.with_overrides(
        name="default", env={"wide_draws": None}, evaluation={"wide_draws": None}
    )
    assert same.digest() == default.digest()
