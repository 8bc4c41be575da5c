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
    ],
)
def test_out_of_range_settings_are_named(data: dict[str, object], message: str) -> None:
    """Each would fail inside SB3, torch or numpy with a traceback, or diverge at once."""
    with pytest.raises(InvalidInput, match=re.escape(message)):
        training_config_from_dict(data)


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
    """``env.keyword_calibration`` came after agents were shipped: a config without it has
    the digest it had before the field existed (the shipped agents' checkpoints record it),
    and setting it changes the digest."""
    config = TrainingConfig()
    data = config.to_dict()
    assert data["env"].pop("keyword_calibration") is None
    before = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert config.digest() == before
    assert config.with_overrides(env={"keyword_calibration": 32.0}).digest() != before
