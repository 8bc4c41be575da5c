"""The one frozen, serialisable training config (saved beside every checkpoint with its seed)."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from adbot.errors import InvalidInput
from adbot.market.simulator import EPISODE_SEED_MAX
from adbot.rl.features import N_FEATURES
from adbot.rl.rewards import RewardSpec
from adbot.yamlfile import dump_yaml, read_yaml

CONFIG_FILE_NAME = "config.yaml"
TRAINED_AGENTS = "agents"  # under the data dir: where runs go by default
# The config ppo:default was trained from, found wherever the command runs.
DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "agents" / "default.yaml"
# NumPy's global seeding (SB3's set_random_seed, at the start of every run) refuses a larger
# seed: past it a run would be recorded, then fail in a traceback.
SEED_MAX = 2**32 - 1
# Upper bounds no real run comes near, so that a typo is refused by name before the run is
# recorded rather than failing inside SB3, torch or the database with a traceback after it.
# Timesteps: the database's BIGINT columns take any int64 (SQLite raised OverflowError past
# it, with the config's row already written); 2**53 also stays exact as a float (progress).
TIMESTEPS_MAX = 2**53
# torch.set_num_threads refuses more than its int32 takes; no machine has more cores.
TORCH_THREADS_MAX = 1024
# Weights of one of the policy's two networks (actor, critic) from the features to the
# output: 2**26 is about 1 GB to train both with Adam (64x64: 5 000); past a few GB torch's
# allocator failed with a traceback.
NETWORK_WEIGHTS_MAX = 2**26
# Envs (each a simulator, in worker processes): far past a machine's cores and memory.
ENVS_MAX = 1024
# Steps of one rollout (n_steps x n_envs): SB3's buffer keeps about 150 bytes a step, so
# 2**24 is some 2.5 GB before the first update.
ROLLOUT_MAX = 2**24
# Evaluation draws and episodes: each is a full-volume episode at every evaluation (a run
# uses 12 to 128); 10**9 drew scenarios for minutes before anything was recorded.
EVALUATION_MAX = 10_000
# A config's name, which names its run directory (and a tuning study's by default).
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


# Fields added to the config after agents had been trained and shipped: left out of the
# digest while they are None (their default), so those agents keep their fingerprint.
ADDED_FIELDS = (
    ("env", "keyword_calibration"),
    ("env", "wide_draws"),
    ("evaluation", "wide_draws"),
    ("env", "fast_memory_by_day"),
)


# A switch added after agents were trained: false is stored as null, what the config did
# before the switch, so it keeps the config's digest. wide_draws: random_scenario(wide=True)
# for the random draws (env: training, evaluation: checkpoint choice).
AddedSwitch = Annotated[
    bool | None, Field(strict=True), AfterValidator(lambda on: True if on else None)
]


class _Frozen(BaseModel):
    # No NaN or infinity in any number of a config. Every number field is also strict
    # (``strict=True``): a bool or a string is not taken for a number (``n_envs: true`` was
    # one env, ``total_timesteps: "2048"`` a number), as in a scenario file.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EnvConfig(_Frozen):
    """How the training env draws scenarios and maps actions to bids. ``BidPacingEnv``
    checks its own settings with it too; the numbers are strict (a bool or a string is not
    taken for a number)."""

    scenario: str | None = None  # a scenario file; None: domain randomisation
    # cap for randomised draws (speed)
    max_daily_queries: float | None = Field(6000.0, ge=1, strict=True)
    # denoise draws (same auctions)
    training_cvr: float | None = Field(0.15, gt=0, le=0.3, strict=True)
    # action 1 multiplies the prior by e^range
    action_log_range: float = Field(1.5, gt=0, le=5, strict=True)
    # Each randomised market is played about this many times (its draws computed once).
    episode_reuse: int = Field(1, ge=1, le=16, strict=True)
    # Bids calibrated and spread per keyword (adbot.bidding.calibration) with this prior, in
    # predicted conversions, as the agent will play; None: every keyword bids the multiplier.
    keyword_calibration: float | None = Field(None, gt=0, strict=True)
    # some draws with 1-12 steps a day, 1-4 keywords, closed days or hours, shocks of x0.2-5
    wide_draws: AddedSwitch = None
    # The planner's fast memory holds one day (emptied at each day's start, at 12 steps a day
    # or more), as every policy plays; unset: kept overnight, as ppo:default's agents trained.
    # The run's checkpoint evaluations follow it too.
    fast_memory_by_day: AddedSwitch = None


class PpoConfig(_Frozen):
    """SB3 PPO's settings; the numbers are strict like :class:`EnvConfig`'s (a bool or a
    string is not taken for a number)."""

    # Adam moves each weight by about the learning rate a step: above 1 training only
    # diverges, and past about 1e3 it overflowed in torch with a traceback.
    learning_rate: float = Field(3e-4, gt=0, le=1, strict=True)
    n_steps: int = Field(336, ge=8, le=ROLLOUT_MAX, strict=True)
    batch_size: int = Field(672, ge=8, le=ROLLOUT_MAX, strict=True)
    n_epochs: int = Field(10, ge=1, le=EVALUATION_MAX, strict=True)
    gamma: float = Field(0.999, gt=0, le=1, strict=True)
    gae_lambda: float = Field(0.95, gt=0, le=1, strict=True)
    # PPO clips the probability ratio to [1 - clip_range, 1 + clip_range]: past 10 nothing
    # is clipped any more, and near float's maximum torch overflowed with a traceback.
    clip_range: float = Field(0.2, gt=0, le=10, strict=True)
    ent_coef: float = Field(0.0, ge=0, strict=True)
    vf_coef: float = Field(0.5, gt=0, strict=True)
    max_grad_norm: float = Field(0.5, gt=0, strict=True)
    # The policy's initial log standard deviation: e^2 is already several times the whole
    # action range [-1, 1]; far above it the first rollout's log-probabilities overflow.
    log_std_init: float = Field(-1.0, ge=-20, le=2, strict=True)
    # hidden layer sizes (empty: a linear policy), NETWORK_WEIGHTS_MAX weights in all
    net_arch: tuple[Annotated[int, Field(ge=1, strict=True)], ...] = (64, 64)

    @field_validator("net_arch")
    @classmethod
    def _network_fits_in_memory(cls, net_arch: tuple[int, ...]) -> tuple[int, ...]:
        widths = (N_FEATURES, *net_arch, 1)
        weights = sum(a * b for a, b in itertools.pairwise(widths))
        if weights > NETWORK_WEIGHTS_MAX:
            raise ValueError(
                f"{list(net_arch)} is {weights} weights per network, at most "
                f"{NETWORK_WEIGHTS_MAX} (2**26) can be trained in memory"
            )
        return net_arch


class EvalConfig(_Frozen):
    """Periodic evaluation against the hindsight oracle on fixed (scenario, seed) pairs.

    Every evaluation also writes a checkpoint; the best one is kept as ``best/``.
    """

    every_timesteps: int = Field(50_000, ge=1, le=TIMESTEPS_MAX, strict=True)
    # drawn once from eval seed, never trained on
    random_scenarios: int = Field(12, ge=0, le=EVALUATION_MAX, strict=True)
    # None: the draws' full volume
    max_daily_queries: float | None = Field(None, ge=1, strict=True)
    # skip draws too small to judge (see evaluation)
    min_conversions: float = Field(30.0, ge=0, strict=True)
    scenario_files: tuple[str, ...] = ()
    episodes: int = Field(1, ge=1, le=EVALUATION_MAX, strict=True)
    # numpy seeds are non-negative; episode i plays episode seed ``seed + i``, which the
    # simulator takes up to EPISODE_SEED_MAX (_last_episode_seed_fits)
    seed: int = Field(10_000, ge=0, le=EPISODE_SEED_MAX, strict=True)
    wide_draws: AddedSwitch = None

    @model_validator(mode="after")
    def _last_episode_seed_fits(self) -> EvalConfig:
        if self.seed + self.episodes - 1 > EPISODE_SEED_MAX:
            raise ValueError(
                f"seed ({self.seed}) + episodes ({self.episodes}) - 1 is the last episode "
                "seed, at most 2**63 - 1"
            )
        return self

    @model_validator(mode="after")
    def _has_scenarios(self) -> EvalConfig:
        # With none, every evaluation would score 0.0, and that invented score would pick
        # the best checkpoint, make it the agent's active one and rank tuning trials.
        if self.random_scenarios == 0 and not self.scenario_files:
            raise ValueError("needs at least one scenario: random_scenarios >= 1 or scenario_files")
        return self


class TrainingConfig(_Frozen):
    """Everything that determines a training run; one file reproduces the agent."""

    name: str = Field("default", pattern=NAME_PATTERN)
    # numpy and torch seeds are non-negative
    seed: int = Field(0, ge=0, le=SEED_MAX, strict=True)
    total_timesteps: int = Field(500_000, ge=1, le=TIMESTEPS_MAX, strict=True)
    n_envs: int = Field(8, ge=1, le=ENVS_MAX, strict=True)
    vec_env: Literal["dummy", "subproc"] = "dummy"
    # subproc: groups of envs, each stepped in turn by a worker process, the first by the
    # learner's; None: one per CPU core (at most n_envs). Results do not depend on it, only
    # speed does.
    vec_workers: int | None = Field(None, ge=1, le=ENVS_MAX, strict=True)
    torch_threads: int = Field(1, ge=1, le=TORCH_THREADS_MAX, strict=True)
    normalize_observations: bool = Field(True, strict=True)  # nor is a number a bool
    normalize_rewards: bool = Field(False, strict=True)
    env: EnvConfig = EnvConfig()
    reward: RewardSpec = RewardSpec()
    ppo: PpoConfig = PpoConfig()
    evaluation: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _batch_fits_rollout(self) -> TrainingConfig:
        rollout = self.ppo.n_steps * self.n_envs
        if rollout > ROLLOUT_MAX:
            raise ValueError(
                f"ppo.n_steps x n_envs ({rollout}) is more steps a rollout than fit in memory: "
                f"at most {ROLLOUT_MAX} (2**24)"
            )
        if rollout % self.ppo.batch_size:
            raise ValueError(
                f"ppo.batch_size ({self.ppo.batch_size}) must divide n_steps x n_envs ({rollout})"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """SHA-256 of the config's canonical JSON (same config, same digest): the
        database's ``agent_configs.config_hash``."""
        data = self.to_dict()
        for section, name in ADDED_FIELDS:
            if data[section][name] is None:
                del data[section][name]
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def fingerprint(self) -> str:
        """A short stable id of the config, kept in ``checkpoint.json``: the first 16 digits
        of :meth:`digest`, so a checkpoint can be matched to its database row."""
        return self.digest()[:16]

    def with_overrides(self, **changes: Any) -> TrainingConfig:
        """A validated copy with top-level or nested (``ppo``, ``env`` ...) fields changed."""
        data = self.to_dict()
        for key, change in changes.items():
            if isinstance(change, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **change}
            else:
                data[key] = change
        return training_config_from_dict(data)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / CONFIG_FILE_NAME
        path.write_text(dump_yaml(self.to_dict()))
        return path


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "config"
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


_Model = TypeVar("_Model", bound=BaseModel)


def validated(model: type[_Model], data: object, what: str) -> _Model:
    """``model`` validated from ``data``; else ``InvalidInput`` naming ``what`` and each
    field with its problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"{what}: {_describe(exc)}") from None


def training_config_from_dict(data: dict[str, Any]) -> TrainingConfig:
    return validated(TrainingConfig, data, "training config")


def load_training_config(path: Path | str) -> TrainingConfig:
    """Read a config YAML (a file, or a checkpoint directory holding ``config.yaml``)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE_NAME
    if not path.is_file():
        raise InvalidInput(f"training config not found: {path}")
    try:
        data = read_yaml(path)
    except ValueError as exc:
        raise InvalidInput(f"training config {path}: {exc}") from None
    if data is None:  # an empty file would silently train the whole default config
        raise InvalidInput(f"training config {path}: the file is empty")
    if not isinstance(data, dict):
        raise InvalidInput(f"training config {path}: expected a mapping")
    return validated(TrainingConfig, data, f"training config {path}")
