"""Checkpoint format: one directory per checkpoint.

``model.zip``          the SB3 PPO model (``PPO.save``); its pickled entries (the policy
                       class, the spaces, schedules, buffers) are never unpickled: a pickle
                       runs code as it loads, and an agent directory may come from anyone
                       (:func:`load_model` gives SB3 AdBot's own objects instead)
``normalization.json`` the observation/return normalisation statistics (VecNormalize),
                       as JSON rather than a pickle so a shipped agent loads nothing executable
``config.yaml``        the frozen :class:`TrainingConfig`, seed included
``checkpoint.json``    timesteps, evaluation score, sha256 of ``model.zip`` and of
                       ``normalization.json`` (absent from checkpoints written before the
                       twenty-third session: not checked), creation time,
                       the CPU math it was trained on (:func:`adbot.rl.cpu_math.cpu_math`;
                       absent from checkpoints written before the twelfth session)

A checkpoint directory appears whole or not at all (:func:`staged_directory`): its files
are written into a hidden staging directory beside it, renamed into place once complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import numpy as np
import torch
from gymnasium import spaces
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from adbot import __version__
from adbot.errors import InvalidInput, NotFound
from adbot.rl.config import CONFIG_FILE_NAME, TrainingConfig, load_training_config
from adbot.rl.cpu_math import cpu_math
from adbot.rl.env import action_space
from adbot.rl.features import N_FEATURES, OBS_BOUND

MODEL_FILE = "model.zip"
NORMALIZATION_FILE = "normalization.json"
META_FILE = "checkpoint.json"


def _obs_rms(vec: VecNormalize) -> RunningMeanStd:
    rms = vec.obs_rms
    if not isinstance(rms, RunningMeanStd):
        raise InvalidInput("only flat (Box) observation spaces are supported")
    return rms


@dataclass(frozen=True)
class NormalizationStats:
    """VecNormalize's running statistics, enough to normalise observations at inference."""

    obs_mean: list[float]
    obs_var: list[float]
    obs_count: float
    ret_var: float
    ret_count: float
    clip_obs: float
    clip_reward: float
    epsilon: float
    norm_obs: bool
    norm_reward: bool

    @classmethod
    def from_vec_normalize(cls, vec: VecNormalize) -> NormalizationStats:
        obs_rms = _obs_rms(vec)
        return cls(
            obs_mean=[float(x) for x in np.asarray(obs_rms.mean)],
            obs_var=[float(x) for x in np.asarray(obs_rms.var)],
            obs_count=float(obs_rms.count),
            ret_var=float(vec.ret_rms.var),
            ret_count=float(vec.ret_rms.count),
            clip_obs=float(vec.clip_obs),
            clip_reward=float(vec.clip_reward),
            epsilon=float(vec.epsilon),
            norm_obs=bool(vec.norm_obs),
            norm_reward=bool(vec.norm_reward),
        )

    def problems(self, n_features: int) -> list[str]:
        """What makes these statistics unusable for a model of ``n_features`` inputs."""
        found = []
        for name in ("obs_mean", "obs_var"):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.shape != (n_features,):
                found.append(f"{name} has {values.size} values, the model takes {n_features}")
            elif not np.isfinite(values).all():
                found.append(f"{name} is not finite everywhere")
        if (np.asarray(self.obs_var, dtype=np.float64) < 0).any():
            found.append("obs_var has negative values")
        for name in ("obs_count", "ret_var", "ret_count"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                found.append(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("epsilon", "clip_obs", "clip_reward"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                found.append(f"{name} must be a positive number, got {value!r}")
        return found

    def restore_into(self, vec: VecNormalize) -> None:
        """Put these statistics into a freshly built VecNormalize (resume, evaluation)."""
        obs_rms = _obs_rms(vec)
        if np.shape(obs_rms.mean) != (len(self.obs_mean),):
            raise InvalidInput("normalisation statistics do not match the observation space")
        obs_rms.mean = np.asarray(self.obs_mean, dtype=np.float64)
        obs_rms.var = np.asarray(self.obs_var, dtype=np.float64)
        obs_rms.count = self.obs_count
        vec.ret_rms.var = np.asarray(self.ret_var, dtype=np.float64)
        vec.ret_rms.count = self.ret_count

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """The same transform VecNormalize applies to observations."""
        if not self.norm_obs:
            return obs.astype(np.float32)
        mean = np.asarray(self.obs_mean)
        scaled = (obs - mean) / np.sqrt(np.asarray(self.obs_var) + self.epsilon)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)


@dataclass(frozen=True)
class CheckpointMeta:
    timesteps: int
    seed: int
    model_sha256: str
    score_ratio: float | None
    created_at: str
    adbot_version: str
    config_fingerprint: str
    cpu_math: dict[str, str] | None = None
    normalization_sha256: str | None = None  # None: written before it was recorded

    def problems(self) -> list[str]:
        """What makes this record unusable: a resume compares its score with the run's
        best (NaN compares false with everything, and no evaluation beats an infinite one,
        so ``best/`` would never move again) and its timesteps with later ones."""
        found = []
        if self.timesteps < 0:
            found.append(f"timesteps must be >= 0, got {self.timesteps}")
        if self.score_ratio is not None and math.isnan(self.score_ratio):
            found.append("score_ratio is NaN")
        elif self.score_ratio is not None and math.isinf(self.score_ratio):
            found.append(f"score_ratio must be finite, got {self.score_ratio}")
        return found


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint; ``model`` has no env attached."""

    path: Path
    config: TrainingConfig
    model: PPO
    normalization: NormalizationStats
    meta: CheckpointMeta


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


STAGING_SUFFIX = ".partial"


def staging_name(name: str) -> str:
    """The hidden directory ``name`` is written in before it is renamed into place (the
    process id keeps two writers apart). Listings of checkpoints (``step-*``) skip it."""
    return f".{name}.{os.getpid()}{STAGING_SUFFIX}"


@contextmanager
def staged_directory(directory: Path) -> Iterator[Path]:
    """A directory to fill that becomes ``directory`` (replacing one there) only once the
    block completes: a write cut short (a full disk, Ctrl-C, a kill) leaves ``directory`` as
    it was, never half written; Python removes the staging directory unless killed outright.
    ``directory`` is missing for a moment between two renames when it is replaced."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / staging_name(directory.name)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
        if directory.exists():
            old = directory.parent / staging_name(f"{directory.name}.old")
            directory.rename(old)
            staging.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_checkpoint(
    directory: Path,
    *,
    model: PPO,
    vec_normalize: VecNormalize,
    config: TrainingConfig,
    score_ratio: float | None,
) -> CheckpointMeta:
    """Write the four checkpoint files, all or none (:func:`staged_directory`); returns
    what ``checkpoint.json`` holds."""
    with staged_directory(directory) as staging:
        model.save(staging / MODEL_FILE)
        stats = NormalizationStats.from_vec_normalize(vec_normalize)
        (staging / NORMALIZATION_FILE).write_text(json.dumps(asdict(stats), indent=1))
        config.save(staging)
        meta = CheckpointMeta(
            timesteps=int(model.num_timesteps),
            seed=config.seed,
            model_sha256=sha256_file(staging / MODEL_FILE),
            score_ratio=None if score_ratio is None else float(score_ratio),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            adbot_version=__version__,
            config_fingerprint=config.fingerprint(),
            cpu_math=cpu_math(),
            normalization_sha256=sha256_file(staging / NORMALIZATION_FILE),
        )
        (staging / META_FILE).write_text(json.dumps(asdict(meta), indent=1))
    return meta


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
        raise InvalidInput(f"checkpoint file {path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"checkpoint file {path}: expected an object")
    return data


_Record = TypeVar("_Record", NormalizationStats, CheckpointMeta)


def _read_record(path: Path, kind: type[_Record]) -> _Record:
    """``kind`` from the JSON file ``path``: its fields (those with a default may be
    absent), nothing else, each of its type."""
    data = _read_json(path)
    fields = dataclasses.fields(kind)
    required = {f.name for f in fields if f.default is dataclasses.MISSING}
    unknown = sorted(set(data) - {f.name for f in fields})
    missing = sorted(required - set(data))
    if missing or unknown:
        raise InvalidInput(f"checkpoint file {path}: fields missing {missing}, unknown {unknown}")
    problems: list[str] = []
    for name, hint in get_type_hints(kind).items():
        if name not in data:
            continue
        try:  # strict: a bool or a string is not taken for a number
            TypeAdapter(hint).validate_python(data[name], strict=True)
        except ValidationError as exc:
            first: ErrorDetails = exc.errors()[0]
            where = ".".join([name, *(str(part) for part in first["loc"])])
            problems.append(f"{where}: {first['msg']}")
    if problems:
        raise InvalidInput(f"checkpoint file {path}: {'; '.join(problems)}")
    return kind(**data)


def read_meta(directory: Path) -> CheckpointMeta:
    """A checkpoint's ``checkpoint.json``."""
    path = directory / META_FILE
    meta = _read_record(path, CheckpointMeta)
    problems = meta.problems()
    if problems:
        raise InvalidInput(f"checkpoint file {path}: {'; '.join(problems)}")
    return meta


class _NoOptimizer:
    """The optimizer of a model loaded to play, which never takes a gradient step: a torch
    optimizer's first construction in a process imports ``torch._dynamo`` (2.2 to 2.5 s
    here), which every ``ppo:`` policy paid on load. Its saved state is not read."""

    def __init__(self, params: Any, **settings: Any) -> None:
        del settings
        # As torch's: SB3's loader compares it with the saved optimizer's groups.
        self.param_groups = [{"params": list(params)}]

    def load_state_dict(self, state: Any, **options: Any) -> None:
        del state, options


def read_model_data(path: Path) -> dict[str, Any]:
    """The ``data`` entry of a ``model.zip`` as JSON, nothing unpickled: SB3's settings, and
    each pickled entry as the description SB3 writes beside its pickle."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        reason = _first_line(str(exc)) or type(exc).__name__
        raise InvalidInput(f"checkpoint file {path}: not a loadable PPO model ({reason})") from None
    if not isinstance(data, dict):
        raise InvalidInput(
            f"checkpoint file {path}: not a loadable PPO model (data is not an object)"
        )
    return data


# What ``PPO.save`` writes as plain JSON for AdBot's models (settings, counters), taken as
# they are; any entry outside these and the replaced ones is refused.
_PLAIN_ENTRIES = frozenset(
    {
        "verbose", "policy_kwargs", "num_timesteps", "_total_timesteps",
        "_num_timesteps_at_start", "seed", "start_time", "learning_rate", "_episode_num",
        "use_sde", "sde_sample_freq", "_current_progress_remaining", "_stats_window_size",
        "_n_updates", "n_envs", "n_steps", "gamma", "gae_lambda", "ent_coef", "vf_coef",
        "max_grad_norm", "batch_size", "n_epochs", "clip_range_vf", "normalize_advantage",
        "target_kl",
    }
)  # fmt: skip


def _safe_objects(path: Path, data: dict[str, Any], clip_range: float) -> dict[str, Any]:
    """What SB3 takes instead of ``data``'s entries that are objects rather than settings
    (``custom_objects``: SB3 then skips their pickles), pickled or not: the env's spaces,
    SB3's policy and buffer classes, the config's clip range (wrapped in its schedule as the
    model is set up; the learning rate's schedule is made again from the stored rate), no
    env (SB3 would ``gym.make`` a name given there, importing the module it names), no
    TensorBoard log, no action noise, and no leftovers of the last rollout (a resumed run
    resets its envs). An entry outside these and ``_PLAIN_ENTRIES``, or a pickled one among
    the plain ones, is refused."""
    replacements: dict[str, Any] = {
        "policy_class": ActorCriticPolicy,
        "observation_space": spaces.Box(-OBS_BOUND, OBS_BOUND, (N_FEATURES,), np.float32),
        "action_space": action_space(),
        "rollout_buffer_class": RolloutBuffer,
        "rollout_buffer_kwargs": {},
        "clip_range": clip_range,
        "lr_schedule": None,
        "env": None,
        "tensorboard_log": None,
        "action_noise": None,
        "_last_obs": None,
        "_last_original_obs": None,
        "_last_episode_starts": None,
        "ep_info_buffer": None,
        "ep_success_buffer": None,
    }
    pickled = sorted(key for key in set(data) - set(replacements) if _is_pickled(data[key]))
    if pickled:
        raise InvalidInput(
            f"checkpoint file {path}: holds pickled {', '.join(map(repr, pickled))}, which "
            "AdBot does not load (a pickle runs code as it loads); not a model of adbot train"
        )
    unknown = sorted(set(data) - _PLAIN_ENTRIES - set(replacements))
    if unknown:
        raise InvalidInput(
            f"checkpoint file {path}: holds {', '.join(map(repr, unknown))}, which a model of "
            "adbot train does not; AdBot does not load it"
        )
    return {key: value for key, value in replacements.items() if key in data}


def _is_pickled(item: object) -> bool:
    return isinstance(item, dict) and ":serialized:" in item


def load_model(
    path: Path,
    data: dict[str, Any],
    *,
    clip_range: float,
    n_envs: int | None = None,
    to_play: bool = False,
) -> PPO:
    """``PPO.load`` of a checkpoint's model, none of its pickled entries unpickled
    (:func:`_safe_objects`); a file SB3 cannot read (truncated, not a model) is
    ``InvalidInput`` naming it, as is a model whose weights are not finite.

    ``data``: the file's settings as :func:`read_model_data` read them.
    ``clip_range``: the PPO clip range of the checkpoint's config. ``n_envs``: how many
    envs a resumed run will step (SB3 sizes the rollout buffer when it loads, and
    ``set_env`` takes only that many); None keeps the checkpoint's. ``to_play``: the model
    only acts (no optimizer: it cannot be trained further)."""
    objects = _safe_objects(path, data, clip_range)
    if to_play:
        kwargs = data.get("policy_kwargs")
        kwargs = kwargs if isinstance(kwargs, dict) else {}
        objects["policy_kwargs"] = {**kwargs, "optimizer_class": _NoOptimizer}
    changes: dict[str, Any] = {} if n_envs is None else {"n_envs": n_envs}
    try:
        model = PPO.load(path, device="cpu", custom_objects=objects, **changes)
    except Exception as exc:  # SB3 and torch raise anything from AssertionError to KeyError
        reason = _first_line(str(exc)) or type(exc).__name__
        if "weights_only" in str(exc):  # torch's advice to load it unsafely: never
            reason = "its weights are not a file of plain tensors"
        raise InvalidInput(f"checkpoint file {path}: not a loadable PPO model ({reason})") from None
    if not weights_are_finite(model):
        raise InvalidInput(f"checkpoint file {path}: the model has non-finite weights")
    return model


def _first_line(message: str) -> str:
    """An exception's first line, with the next one when it only introduces it (torch's
    "Error(s) in loading state_dict for ActorCriticPolicy:" then "size mismatch for ...")."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""


@contextmanager
def os_errors_named() -> Iterator[None]:
    """An ``OSError`` in the block (a directory or file without read permission, a directory
    where a file should be) as a one-line ``InvalidInput`` naming the path, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise InvalidInput(f"cannot read {exc.filename}: {exc.strerror or exc}") from None


def weights_are_finite(model: PPO) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.policy.parameters())


def check_model_spaces(directory: Path, data: dict[str, Any]) -> None:
    """``InvalidInput`` naming the checkpoint ``directory`` if its model (``data``, as
    :func:`read_model_data` reads it: the spaces as SB3 describes them beside their pickles)
    does not take the env's observations (an agent trained by an AdBot with other features,
    or a model of another env) or does not act in its action space (its actions would be
    clipped to [-1, 1], or taken from a discrete index, silently)."""
    space = _SpaceText.of(data.get("observation_space"))
    if space.kind != "Box":
        raise InvalidInput(
            f"checkpoint {directory}: its model's observation space is {space}, not the env's "
            f"Box of {N_FEATURES} features"
        )
    if space.shape != (N_FEATURES,):
        raise InvalidInput(
            f"checkpoint {directory}: its model takes observations of shape {space.shape}, "
            f"this AdBot's features are of shape {(N_FEATURES,)}; retrain it with this version"
        )
    actions = action_space()
    taken = _SpaceText.of(data.get("action_space"))
    if str(taken) != str(actions):
        raise InvalidInput(
            f"checkpoint {directory}: its model's action space is {taken}; an agent must act "
            f"in the env's {actions}"
        )


@dataclass(frozen=True)
class _SpaceText:
    """A space as SB3 describes it beside its pickle (``:type:``, ``_shape``, ``dtype``,
    ``low_repr``, ``high_repr``, ``n``), printed as gymnasium prints it."""

    kind: str
    shape: tuple[int, ...] | None = None
    fields: tuple[str, ...] = ()

    @classmethod
    def of(cls, item: object) -> _SpaceText:
        if not isinstance(item, dict):
            return cls("unknown")
        kind = str(item.get(":type:", "")).rstrip("'>").rpartition(".")[2] or "unknown"
        try:
            shape = tuple(int(n) for n in json.loads(str(item.get("_shape"))))
        except (ValueError, TypeError):
            shape = None
        if kind == "Box" and shape is not None:
            low, high = str(item.get("low_repr")), str(item.get("high_repr"))
            return cls(kind, shape, (low, high, str(shape), str(item.get("dtype"))))
        if kind == "Discrete":
            return cls(kind, shape, (str(item.get("n")),))
        return cls(kind, shape, ("...",))

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(self.fields)})"


def _read_config(directory: Path, meta: CheckpointMeta) -> TrainingConfig:
    config = load_training_config(directory)
    if config.fingerprint() != meta.config_fingerprint:
        raise InvalidInput(
            f"checkpoint file {directory / CONFIG_FILE_NAME}: not the config the model was "
            f"trained with (fingerprint {config.fingerprint()}, {META_FILE} says "
            f"{meta.config_fingerprint})"
        )
    return config


def _check_timesteps(directory: Path, meta: CheckpointMeta, data: dict[str, Any]) -> None:
    """``checkpoint.json``'s timesteps are the model's own (``num_timesteps`` in its data):
    an edited count passes the sha256 check (it covers ``model.zip`` only), and what reads
    it (a resume's check for later checkpoints in its run directory, what the agent says it
    was trained for) would disagree with the weights, which train on from their own."""
    trained = data.get("num_timesteps")
    if trained != meta.timesteps:
        raise InvalidInput(
            f"checkpoint {directory}: {META_FILE} says {meta.timesteps} timesteps, its "
            f"{MODEL_FILE} was trained for {trained}"
        )


def load_checkpoint(
    directory: Path | str, *, n_envs: int | None = None, to_play: bool = False
) -> Checkpoint:
    """Load a checkpoint directory; its model's sha256 and its config's fingerprint must
    match ``checkpoint.json``, and the model must fit the env (:func:`check_model_spaces`).
    ``n_envs`` and ``to_play``: see :func:`load_model`."""
    directory = Path(directory)
    with os_errors_named():
        if not directory.is_dir():
            state = "is not a directory" if directory.exists() else "does not exist"
            raise NotFound(f"not a checkpoint: {directory} {state}")
        for name in (MODEL_FILE, NORMALIZATION_FILE, CONFIG_FILE_NAME, META_FILE):
            if not (directory / name).is_file():
                raise NotFound(f"not a checkpoint: {directory} has no {name}")
        meta = read_meta(directory)
        model_sha256 = sha256_file(directory / MODEL_FILE)
        stats_sha256 = sha256_file(directory / NORMALIZATION_FILE)
    if model_sha256 != meta.model_sha256:
        raise InvalidInput(f"checkpoint {directory}: model.zip does not match its sha256")
    # Another checkpoint's statistics (a file copied over) play the same weights on other
    # inputs, silently: a few points of score on a bundled scenario.
    if meta.normalization_sha256 is not None and stats_sha256 != meta.normalization_sha256:
        raise InvalidInput(
            f"checkpoint {directory}: {NORMALIZATION_FILE} does not match its sha256"
        )
    stats = _read_record(directory / NORMALIZATION_FILE, NormalizationStats)
    config = _read_config(directory, meta)
    data = read_model_data(directory / MODEL_FILE)
    check_model_spaces(directory, data)
    _check_timesteps(directory, meta, data)
    model = load_model(
        directory / MODEL_FILE,
        data,
        clip_range=config.ppo.clip_range,
        n_envs=n_envs,
        to_play=to_play,
    )
    problems = stats.problems(N_FEATURES)
    if problems:
        where = directory / NORMALIZATION_FILE
        raise InvalidInput(f"checkpoint file {where}: {'; '.join(problems)}")
    return Checkpoint(directory, config, model, stats, meta)
