"""``ppo:NAME`` / ``ppo:PATH``: a trained agent as an ``adbot.bidding`` policy.

``NAME`` is an agent shipped in the package (``src/adbot/rl/agents/NAME/``, e.g.
``ppo:default``); ``PATH`` is any checkpoint directory (see :mod:`adbot.rl.checkpoints`).
The agent sees the same features as in training (:class:`PacingState`), normalised with
the statistics saved beside its model, and acts deterministically (the policy's mean).

``prior``: the plan an agent's action is relative to, alone (action 0 at every step: the
``baseline_score`` twin of an env with ``fast_memory_by_day``), to measure the prior apart
from any agent.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from stable_baselines3 import PPO

from adbot.bidding.base import bids_from_alpha
from adbot.bidding.calibration import CalibratedPolicy, check_prior_conversions
from adbot.config import get_settings
from adbot.errors import InvalidInput, NotFound
from adbot.market.simulator import MarketSimulator, StepOutcome
from adbot.rl.checkpoints import (
    MODEL_FILE,
    Checkpoint,
    NormalizationStats,
    load_checkpoint,
    os_errors_named,
)
from adbot.rl.config import TRAINED_AGENTS
from adbot.rl.features import PacingState

AGENTS_DIR = Path(__file__).resolve().parent / "agents"
POLICY_PREFIX = "ppo"
BEST_DIR = "best"  # a training run's best checkpoint (rl.train keeps it there)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class PriorPolicy:
    """The planner's prior alone: :class:`PacingState` with action 0 at every step.

    The base of :class:`PpoPolicy`, which takes its action from a model instead.
    ``fast_memory_by_day=False`` plans as the agents of ``ppo:default`` trained
    (``PacingState``)."""

    def __init__(
        self, *, action_log_range: float = 0.0, name: str = "prior", fast_memory_by_day: bool = True
    ) -> None:
        self.name = name
        self.action_log_range = action_log_range
        self.fast_memory_by_day = fast_memory_by_day
        self.alpha: float | None = None
        self._state: PacingState | None = None

    def reset(self, sim: MarketSimulator) -> None:
        self._state = PacingState(
            sim, self.action_log_range, fast_memory_by_day=self.fast_memory_by_day
        )
        self.alpha = None

    def action(self) -> float:
        """The action in [-1, 1] for the coming step: 0, the plan itself."""
        self._reset_state()
        return 0.0

    def _reset_state(self) -> PacingState:
        """The episode's state; ``InvalidInput`` before ``reset``."""
        if self._state is None:
            raise InvalidInput("reset the policy before asking for bids")
        return self._state

    def bids(self, sim: MarketSimulator) -> np.ndarray:
        action = self.action()
        assert self._state is not None  # action() checked it
        self.alpha = self._state.alpha_for(action)
        return bids_from_alpha(self.alpha, sim)

    def observe(self, outcome: StepOutcome) -> None:
        if self._state is None or self.alpha is None:
            raise InvalidInput("observe() before bids()")
        self._state.record(self.alpha, outcome)


class PpoPolicy(PriorPolicy):
    """A PPO model driving the bid multiplier through :class:`PacingState`."""

    def __init__(
        self,
        model: PPO,
        normalization: NormalizationStats,
        *,
        action_log_range: float,
        name: str = "ppo",
        fast_memory_by_day: bool = True,
    ) -> None:
        super().__init__(
            action_log_range=action_log_range, name=name, fast_memory_by_day=fast_memory_by_day
        )
        self.model = model
        self.normalization = normalization

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint, name: str) -> PpoPolicy:
        """The checkpoint's agent (``load_checkpoint`` has checked that its model takes the
        env's observations and acts in its action space)."""
        return cls(
            checkpoint.model,
            checkpoint.normalization,
            action_log_range=checkpoint.config.env.action_log_range,
            name=name,
            fast_memory_by_day=bool(checkpoint.config.env.fast_memory_by_day),  # as it trained
        )

    def action(self) -> float:
        """The agent's action in [-1, 1] for the coming step."""
        return float(self.act(self._reset_state().observation()))

    def act(self, obs: np.ndarray) -> np.float32:
        """The model's deterministic action for a raw observation (normalised here);
        ``InvalidInput`` naming the agent if its network's output is not finite.

        The Gaussian policy's mean through the actor's layers, clipped to the action space:
        what ``model.predict(obs, deterministic=True)`` returns, the same floats (tested),
        without its per-call checks and distribution (445 us against 196 us a member here).
        """
        policy = self.model.policy
        with torch.no_grad():
            observation = torch.as_tensor(self.normalization.normalize(obs)).reshape(1, -1)
            features = policy.extract_features(observation, policy.pi_features_extractor)
            assert isinstance(features, torch.Tensor)  # the actor's own extractor: one tensor
            mean = policy.action_net(policy.mlp_extractor.forward_actor(features))
        value = np.clip(mean.numpy().reshape(-1), -1.0, 1.0)[0]
        if not np.isfinite(value):
            raise InvalidInput(f"agent {self.name}: its network's output is not finite")
        return value


class MeanPolicy(PriorPolicy):
    """Several PPO agents acting as one: the mean of their actions at every step.

    Agents trained from one config with other seeds differ by a few points per scenario;
    the mean of their actions has less of that variance. Each member normalises the shared
    observation with its own statistics and acts deterministically."""

    def __init__(
        self, members: list[PpoPolicy], *, name: str, fast_memory_by_day: bool | None = None
    ) -> None:
        """``fast_memory_by_day`` None: as the members plan, which must agree."""
        if not members:
            raise InvalidInput(f"{name}: an ensemble needs at least one agent")
        ranges = {member.action_log_range for member in members}
        if len(ranges) != 1:
            raise InvalidInput(f"{name}: the agents' action ranges differ ({sorted(ranges)})")
        if fast_memory_by_day is None:
            planned = {member.fast_memory_by_day for member in members}
            if len(planned) > 1:
                raise InvalidInput(
                    f"{name}: its members trained with and without env.fast_memory_by_day; "
                    "give the ensemble's own fast_memory_by_day"
                )
            fast_memory_by_day = planned.pop()
        super().__init__(
            action_log_range=ranges.pop(), name=name, fast_memory_by_day=fast_memory_by_day
        )
        self.members = members

    def action(self) -> float:
        """The mean of the members' actions in [-1, 1] for the coming step."""
        obs = self._reset_state().observation()
        return float(np.mean([member.act(obs) for member in self.members]))


ENSEMBLE_FILE = "ensemble.json"
_MANIFEST_FIELDS = {"description", "members", "keyword_calibration", "fast_memory_by_day"}


class Ensemble(NamedTuple):
    """An agent directory's ``ensemble.json``: its member checkpoint directories and, when
    it says so, the prior of the keyword calibration the agent plays with
    (:mod:`adbot.bidding.calibration`) and whether its planner's fast memory holds one day
    (:mod:`adbot.rl.planner`)."""

    members: list[Path]
    keyword_calibration: float | None
    fast_memory_by_day: bool | None = None


def read_ensemble(directory: Path) -> Ensemble | None:
    """An agent directory's ``ensemble.json`` (``{"members": [relative paths],
    "keyword_calibration": prior conversions (optional), "fast_memory_by_day": true or false
    (optional)}``), or None for a single agent. Without either optional field the agent plays
    as its members trained.

    Members lie inside the directory, links followed (an agent is copied and shipped whole),
    each listed once; ``.`` is the directory's own checkpoint, and any other member with an
    ``ensemble.json`` of its own (a nested ensemble, or a cycle) is refused."""
    manifest = directory / ENSEMBLE_FILE
    with os_errors_named():
        if not manifest.exists():
            return None
        try:
            data = json.loads(manifest.read_text())
        except ValueError as error:
            raise InvalidInput(f"{manifest}: not an ensemble manifest ({error})") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"{manifest}: not an ensemble manifest (expected an object)")
        if "members" not in data:
            raise InvalidInput(f"{manifest}: not an ensemble manifest (no 'members')")
        members = data["members"]
        if not isinstance(data.get("description", ""), str):
            raise InvalidInput(f"{manifest}: 'description' must be text")
        if (
            not isinstance(members, list)
            or not members
            or not all(isinstance(m, str) and m for m in members)
        ):
            raise InvalidInput(f"{manifest}: 'members' must be a non-empty list of directories")
        unknown = sorted(set(data) - _MANIFEST_FIELDS)
        if unknown:
            raise InvalidInput(f"{manifest}: unknown field(s) {', '.join(unknown)}")
        calibration = data.get("keyword_calibration")
        if calibration is not None:
            calibration = check_prior_conversions(calibration, f"{manifest}: keyword_calibration")
        by_day = data.get("fast_memory_by_day")
        if by_day is not None and not isinstance(by_day, bool):
            raise InvalidInput(
                f"{manifest}: fast_memory_by_day must be true or false, got {by_day!r}"
            )
        paths: list[Path] = []
        for member in members:
            paths.append(_member_directory(manifest, member, paths))
    return Ensemble(paths, calibration, by_day)


def ensemble_members(directory: Path) -> list[Path] | None:
    """The member checkpoint directories of an agent directory's ``ensemble.json``, or None
    for a single agent (see :func:`read_ensemble`)."""
    ensemble = read_ensemble(directory)
    return None if ensemble is None else ensemble.members


def _member_directory(manifest: Path, member: str, earlier: list[Path]) -> Path:
    """The directory ``member`` of ``manifest`` names, if it may be one (see
    :func:`ensemble_members`)."""
    directory = manifest.parent
    if "\0" in member:  # no path holds one (resolve() raised ValueError's traceback)
        raise InvalidInput(f"{manifest}: member {member!r} holds a NUL character")
    if Path(member).is_absolute() or Path(os.path.normpath(member)).parts[:1] == ("..",):
        raise InvalidInput(
            f"{manifest}: member {member!r} is outside {directory}; members are paths inside it"
        )
    try:
        path = (directory / member).resolve()
    except RuntimeError:  # Python 3.11's and 3.12's word for a symlink loop
        path = None
    if path is None or path.is_symlink():  # 3.13 leaves a loop's link unresolved
        raise InvalidInput(f"{manifest}: member {member!r} is a symlink loop")
    inside = directory.resolve()
    if path != inside and inside not in path.parents:
        raise InvalidInput(
            f"{manifest}: member {member!r} links to {path}, outside {directory}; members are "
            "paths inside it"
        )
    if path in earlier:
        raise InvalidInput(f"{manifest}: member {member!r} is listed twice")
    if path != inside and (path / ENSEMBLE_FILE).exists():
        raise InvalidInput(
            f"{manifest}: member {member!r} is an ensemble itself; list its checkpoints instead"
        )
    return path


def make_prior_policy(spec: str) -> PriorPolicy:
    """The ``prior`` factory (``make_policy("prior")``); it takes no argument."""
    if spec:
        raise InvalidInput(f"policy 'prior:{spec}': prior takes no argument")
    return PriorPolicy()


def trained_agents_dir() -> Path:
    """Where ``adbot train`` puts runs by default: ``<data_dir>/agents/<run>``."""
    return get_settings().data_dir / TRAINED_AGENTS


def _best_of_run(directory: Path) -> Path:
    """A run directory plays as its best checkpoint (what the database holds as active);
    any other directory is taken as a checkpoint itself."""
    is_checkpoint = (directory / MODEL_FILE).exists() or (directory / ENSEMBLE_FILE).exists()
    best = directory / BEST_DIR
    return best if not is_checkpoint and best.is_dir() else directory


def agent_directory(spec: str) -> Path:
    """The checkpoint directory a ``ppo:`` argument names: a shipped agent, a checkpoint or
    run directory, or the name of a run under :func:`trained_agents_dir` (``ppo:tiny``,
    ``ppo:default-seed1``), a run playing as its best checkpoint."""
    if not spec:
        raise InvalidInput("ppo policy needs an agent: ppo:NAME or ppo:PATH")
    named = _NAME.match(spec) is not None
    if named and (AGENTS_DIR / spec).is_dir():
        return AGENTS_DIR / spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return _best_of_run(path)
    trained = trained_agents_dir()
    if named and (trained / spec / BEST_DIR).is_dir():
        return trained / spec / BEST_DIR
    if path.exists():
        raise InvalidInput(
            f"ppo:{spec}: {path} is a file; ppo:PATH takes a checkpoint or run directory"
        )
    shipped = ", ".join(sorted(p.name for p in AGENTS_DIR.iterdir() if p.is_dir()))
    runs = sorted(p.parent.name for p in trained.glob(f"*/{BEST_DIR}") if p.is_dir())
    raise NotFound(
        f"no agent '{spec}' (shipped: {shipped or 'none'}; trained in {trained}: "
        f"{', '.join(runs) or 'none'}; or a checkpoint or run directory)"
    )


@lru_cache(maxsize=8)
def _load(directory: Path) -> Checkpoint:
    return load_checkpoint(directory, to_play=True)


def as_trained(
    policy: PpoPolicy | MeanPolicy, keyword_calibration: float | None
) -> PpoPolicy | MeanPolicy | CalibratedPolicy:
    """``policy`` bidding as its agents trained (or as their ensemble says): calibrated per
    keyword with that prior, or, with None, the multiplier bids themselves."""
    if keyword_calibration is None:
        return policy
    return CalibratedPolicy(policy, keyword_calibration, name=policy.name)


def make_ppo_policy(spec: str) -> PpoPolicy | MeanPolicy | CalibratedPolicy:
    """The ``ppo:`` factory: ``make_policy("ppo:default")`` ends here. A directory with an
    ``ensemble.json`` is a :class:`MeanPolicy` of the checkpoints it lists, calibrated per
    keyword when the manifest says so, or else when its members trained calibrated."""
    with os_errors_named():  # a directory without permission to read, on the way to it
        directory = agent_directory(spec).resolve()
    name = f"{POLICY_PREFIX}:{spec}"
    ensemble = read_ensemble(directory)
    if ensemble is None:
        checkpoint = _load(directory)
        agent = PpoPolicy.from_checkpoint(checkpoint, name=name)
        return as_trained(agent, checkpoint.config.env.keyword_calibration)
    checkpoints = [_load(member) for member in ensemble.members]
    policy = MeanPolicy(
        [PpoPolicy.from_checkpoint(checkpoint, name=name) for checkpoint in checkpoints],
        name=name,
        fast_memory_by_day=ensemble.fast_memory_by_day,
    )
    prior = ensemble.keyword_calibration
    if prior is None:  # as its members trained, if they did on calibrated bids
        trained = {checkpoint.config.env.keyword_calibration for checkpoint in checkpoints}
        if len(trained) > 1:
            raise InvalidInput(
                f"{directory / ENSEMBLE_FILE}: its members trained with different "
                f"env.keyword_calibration ({', '.join(sorted(map(str, trained)))}); give the "
                "ensemble's own keyword_calibration"
            )
        prior = trained.pop()
    return as_trained(policy, prior)
