"""PPO training on vectorised ``BidPacing-v0`` envs (Stable-Baselines3).

One call of :func:`train` is one run: vectorised envs (domain randomisation unless the
config names a scenario) behind ``VecNormalize``; every ``evaluation.every_timesteps`` the
current policy plays the fixed evaluation pairs against the hindsight oracle and a
checkpoint is written (:mod:`adbot.rl.checkpoints`), logged to MLflow and passed to the
caller's hooks (the training service records it in the database). The checkpoint with the
best evaluation score is kept as ``best/``, the last as ``final/``.

Resuming loads a checkpoint's model and normalisation statistics and trains on to the
config's ``total_timesteps``; the environments' random streams restart from the seed, so a
resumed run is a valid continuation but not bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import gymnasium as gym
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from adbot.config import Settings, get_settings
from adbot.errors import AdbotError, Conflict, InvalidInput, ScenarioError
from adbot.market.scenario import Scenario, load_scenario
from adbot.rl.checkpoints import (
    META_FILE,
    STAGING_SUFFIX,
    Checkpoint,
    CheckpointMeta,
    NormalizationStats,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    staged_directory,
    weights_are_finite,
)
from adbot.rl.config import EvalConfig, TrainingConfig
from adbot.rl.cpu_math import PINNED, cpu_math
from adbot.rl.env import BidPacingEnv
from adbot.rl.evaluation import EvalReport, evaluate_policy, evaluation_pairs
from adbot.rl.policy import (
    BEST_DIR,
    ENSEMBLE_FILE,
    PpoPolicy,
    as_trained,
)
from adbot.rl.tracking import MlflowRun
from adbot.rl.vec_env import GroupedSubprocVecEnv, StopsWithParent


class TrainingHooks(Protocol):
    """What a caller (the training service) hears about a run as it goes."""

    def on_start(self, mlflow_run_id: str | None) -> None: ...

    def on_checkpoint(
        self, directory: Path, meta: CheckpointMeta, metrics: dict[str, float]
    ) -> None: ...


@dataclass
class TrainingResult:
    output_dir: Path
    final_checkpoint: Path
    best_checkpoint: Path
    best_score_ratio: float
    timesteps: int
    wall_seconds: float
    mlflow_run_id: str | None
    history: list[dict[str, float]] = field(default_factory=list)


def make_env(config: TrainingConfig) -> gym.Env[Any, Any]:
    env = BidPacingEnv(
        config.env.scenario,
        reward=config.reward,
        action_log_range=config.env.action_log_range,
        max_daily_queries=config.env.max_daily_queries,
        training_cvr=config.env.training_cvr,
        episode_reuse=config.env.episode_reuse,
        keyword_calibration=config.env.keyword_calibration,
        wide_draws=bool(config.env.wide_draws),
        fast_memory_by_day=bool(config.env.fast_memory_by_day),
    )
    return gym.wrappers.RecordEpisodeStatistics(env)


def _cpus() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def build_vec_env(
    config: TrainingConfig,
    *,
    training: bool = True,
    factory: Callable[[], gym.Env[Any, Any]] | None = None,
) -> VecNormalize:
    """``n_envs`` envs seeded ``seed, seed + 1, ...`` behind VecNormalize: the config's env,
    or ``factory``'s (the training benchmark runs another env with the same settings).

    ``vec_env: subproc`` steps them in ``vec_workers`` groups (default: one per CPU core):
    SB3's ``SubprocVecEnv`` (one process per env) when that is one per env, else
    :class:`GroupedSubprocVecEnv` with its first group stepped by this process."""
    factory = factory or functools.partial(make_env, config)
    fns: list[Callable[[], gym.Env[Any, Any]]] = [factory] * config.n_envs
    venv: VecEnv
    workers = min(config.n_envs, config.vec_workers or _cpus())
    if config.vec_env == "dummy" or config.n_envs == 1:
        venv = DummyVecEnv(fns)
    elif workers == config.n_envs:
        venv = SubprocVecEnv([StopsWithParent(fn) for fn in fns], start_method="fork")
    else:
        venv = GroupedSubprocVecEnv(fns, workers, start_method="fork", local_group=True)
    venv.seed(config.seed)
    return VecNormalize(
        venv,
        training=training,
        norm_obs=config.normalize_observations,
        norm_reward=config.normalize_rewards,
        gamma=config.ppo.gamma,
    )


def build_model(config: TrainingConfig, venv: VecNormalize) -> PPO:
    p = config.ppo
    return PPO(
        "MlpPolicy",
        venv,
        learning_rate=p.learning_rate,
        n_steps=p.n_steps,
        batch_size=p.batch_size,
        n_epochs=p.n_epochs,
        gamma=p.gamma,
        gae_lambda=p.gae_lambda,
        clip_range=p.clip_range,
        ent_coef=p.ent_coef,
        vf_coef=p.vf_coef,
        max_grad_norm=p.max_grad_norm,
        policy_kwargs={"net_arch": list(p.net_arch), "log_std_init": p.log_std_init},
        seed=config.seed,
        device="cpu",
        verbose=0,
    )


def _same_problem(a: TrainingConfig, b: TrainingConfig) -> bool:
    """The same env, reward, network and normalisation: a model trained on normalised
    observations would read raw ones as nonsense."""
    return (
        a.env == b.env
        and a.reward == b.reward
        and a.ppo.net_arch == b.ppo.net_arch
        and a.normalize_observations == b.normalize_observations
        and a.normalize_rewards == b.normalize_rewards
    )


# What an evaluation plays is all of ``evaluation`` but how often it is played.
_EVALUATION_SET = tuple(name for name in EvalConfig.model_fields if name != "every_timesteps")


def _check_resumable(checkpoint: Checkpoint, config: TrainingConfig) -> None:
    """``PPO.load`` keeps the checkpoint's PPO settings: other ones in the config would be
    recorded as the run's but not used, so they are refused (only ``total_timesteps`` and
    what does not shape the model may change on resume). So are another seed (the run
    would be recorded with a seed its weights did not start from) and other evaluation
    pairs (the run's best so far, ``best/``, was scored on the checkpoint's: no score of
    this run would compare with it)."""
    if not _same_problem(checkpoint.config, config):
        raise InvalidInput(
            f"checkpoint {checkpoint.path} was trained on another env, reward, network or "
            "normalisation"
        )
    if checkpoint.config.seed != config.seed:
        raise InvalidInput(
            f"checkpoint {checkpoint.path} was trained with seed {checkpoint.config.seed}, "
            f"not {config.seed}: a resumed run keeps its checkpoint's seed (--seed "
            f"{checkpoint.config.seed}), or train a new run"
        )
    saved_eval = checkpoint.config.evaluation
    moved = [n for n in _EVALUATION_SET if getattr(saved_eval, n) != getattr(config.evaluation, n)]
    if moved:
        raise InvalidInput(
            f"checkpoint {checkpoint.path} was evaluated on other pairs "
            f"({', '.join(f'evaluation.{name}' for name in moved)}); its scores would not "
            "compare with this run's: use its values, or train a new run"
        )
    saved, given = checkpoint.config.ppo, config.ppo
    differing = [
        name for name in type(given).model_fields if getattr(saved, name) != getattr(given, name)
    ]
    if differing:
        raise InvalidInput(
            f"checkpoint {checkpoint.path} was trained with other PPO settings "
            f"({', '.join(f'ppo.{name}' for name in differing)}); a resumed run keeps the "
            "checkpoint's: use its values, or train a new run"
        )


class _RunCallback(BaseCallback):
    """Evaluates, checkpoints and reports progress while PPO learns."""

    def __init__(self, run: _Run) -> None:
        super().__init__()
        self.run = run

    def _on_step(self) -> bool:
        self.run.on_step(self.num_timesteps)
        return True

    def _on_rollout_end(self) -> None:
        self.run.on_rollout_end(self.num_timesteps)

    def _on_rollout_start(self) -> None:
        self.run.check_finite(self.num_timesteps)


class _Run:
    def __init__(
        self,
        config: TrainingConfig,
        model: PPO,
        venv: VecNormalize,
        output_dir: Path,
        tracker: MlflowRun,
        hooks: TrainingHooks | None,
        progress: Progress | None,
        best: float,
        pairs: list[tuple[Scenario, int]],
    ) -> None:
        self.config, self.model, self.venv = config, model, venv
        self.output_dir, self.tracker, self.hooks = output_dir, tracker, hooks
        self.progress = progress
        self.task = (
            None
            if progress is None
            else progress.add_task("training", total=config.total_timesteps)
        )
        self.pairs = pairs
        every = config.evaluation.every_timesteps
        self.next_eval = (model.num_timesteps // every + 1) * every
        self.best = best  # the run's best evaluation so far (a resumed run's earlier ones count)
        self.history: list[dict[str, float]] = []
        self.last: tuple[int, Path] | None = None
        self.resumed_from: Path | None = None  # the checkpoint a resumed run started from
        self.last_step = -1  # the timesteps at the end of the last rollout (``learn``)

    def on_step(self, timesteps: int) -> None:
        # An evaluation due at the last rollout's last step is the final checkpoint's, made
        # after the last update: made here, before it, ``final/`` was this copy, its weights
        # one update short (a run of two rollouts kept its untrained weights as final).
        if timesteps >= self.next_eval and timesteps != self.last_step:
            self.next_eval += self.config.evaluation.every_timesteps
            self.checkpoint(timesteps)

    def on_rollout_end(self, timesteps: int) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=min(timesteps, self.config.total_timesteps))
        infos = [ep for ep in self.model.ep_info_buffer or []]
        if infos:
            mean_return = sum(float(ep["r"]) for ep in infos) / len(infos)
            self.tracker.log_metrics({"train/episode_return": mean_return}, timesteps)

    def check_finite(self, timesteps: int) -> None:
        """Stop a run whose last update left non-finite weights: its next rollout would end
        in torch's distribution-validation traceback."""
        if not weights_are_finite(self.model):
            raise InvalidInput(
                f"training diverged at step {timesteps}: the network's weights are no longer "
                "finite (a lower ppo.learning_rate or ppo.log_std_init may help); the "
                "checkpoints written before are kept"
            )

    def learn(self, timesteps: int, *, resumed: bool) -> None:
        """``model.learn`` for ``timesteps`` more steps; an update that diverges within
        itself (torch refuses the non-finite distribution) is reported as such, as is a
        worker process of the envs that died (its pipe closed under the learner)."""
        rollout = self.config.ppo.n_steps * self.config.n_envs
        self.last_step = self.model.num_timesteps + -(-timesteps // rollout) * rollout
        try:
            self.model.learn(
                timesteps, callback=_RunCallback(self), reset_num_timesteps=not resumed
            )
        except ValueError:
            self.check_finite(self.model.num_timesteps)
            raise
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise AdbotError(
                f"training stopped at step {self.model.num_timesteps}: a worker process of "
                "the envs (vec_env: subproc) died, killed or out of memory; "
                f"{self.kept()}"
            ) from None

    def kept(self) -> str:
        """What a run stopped by a failure leaves to continue from."""
        latest = latest_checkpoint(self.output_dir) or self.resumed_from
        if latest is None:
            return "no checkpoint was written before it"
        return resume_hint(latest)

    @contextmanager
    def writing(self, target: Path, timesteps: int) -> Iterator[None]:
        """An output that cannot be written (a full disk, a directory made read-only) stops
        the run in one line saying what to resume from; what was written stays whole."""
        try:
            yield
        except OSError as exc:
            raise AdbotError(
                f"training stopped at step {timesteps}: cannot write {target} "
                f"({exc.strerror or exc}); {self.kept()}"
            ) from None

    def evaluate(self) -> EvalReport:
        policy = PpoPolicy(
            self.model,
            NormalizationStats.from_vec_normalize(self.venv),
            action_log_range=self.config.env.action_log_range,
            fast_memory_by_day=bool(self.config.env.fast_memory_by_day),  # as the run trains
        )
        return evaluate_policy(as_trained(policy, self.config.env.keyword_calibration), self.pairs)

    def checkpoint(self, timesteps: int) -> Path:
        if self.last is not None and self.last[0] == timesteps:
            return self.last[1]
        self.check_finite(timesteps)
        report = self.evaluate()
        ratio = report.mean_score_ratio
        metrics = report.metrics()
        self.history.append({"timesteps": float(timesteps), **metrics})
        self.tracker.log_metrics(metrics, timesteps)
        directory = self.output_dir / "checkpoints" / f"step-{timesteps:09d}"
        with self.writing(directory, timesteps):
            meta = save_checkpoint(
                directory,
                model=self.model,
                vec_normalize=self.venv,
                config=self.config,
                score_ratio=ratio,
            )
        if ratio > self.best:
            self.best = ratio
            with self.writing(self.output_dir / BEST_DIR, timesteps):
                _replace_dir(directory, self.output_dir / BEST_DIR)
        if self.hooks is not None:
            self.hooks.on_checkpoint(directory, meta, metrics)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=f"training (eval ratio {ratio:.3f})")
        self.last = (timesteps, directory)
        return directory


def _replace_dir(source: Path, target: Path) -> None:
    """``target`` becomes a copy of ``source``; cut short, it stays what it was."""
    with staged_directory(target) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def check_scenario_files(config: TrainingConfig) -> None:
    """Load the config's scenario files (``env.scenario``, ``evaluation.scenario_files``)
    once here: a bad one is a ``ScenarioError`` naming the config field and the file before
    anything starts, not a traceback from inside a worker process."""
    fields = [("env.scenario", config.env.scenario)] if config.env.scenario is not None else []
    fields += [
        (f"evaluation.scenario_files[{i}]", source)
        for i, source in enumerate(config.evaluation.scenario_files)
    ]
    for field_name, source in fields:
        try:
            load_scenario(source)
        except ScenarioError as exc:
            where = field_name if source in exc.message else f"{field_name} ({source})"
            raise ScenarioError(f"training config {where}: {exc.message}") from None


RUN_FILES = ("checkpoints", BEST_DIR, "final")


def holds_run(directory: Path) -> bool:
    """Whether ``directory`` already holds a training run's models. A ``config.yaml`` alone
    (a run stopped before its first checkpoint) holds nothing to lose: a retry may reuse it,
    as it may a ``checkpoints/`` with only a killed write's hidden staging directory in it."""
    checkpoints = directory / "checkpoints"
    if checkpoints.is_dir():
        saved = any(not entry.name.startswith(".") for entry in checkpoints.iterdir())
    else:
        saved = checkpoints.exists()
    return saved or any((directory / name).exists() for name in RUN_FILES[1:])


def check_writable(output_dir: Path) -> None:
    """``output_dir`` can be a run directory: a directory, or creatable as one. Probed by
    making (and removing) a directory in its nearest existing ancestor, since permission
    bits do not tell (root, read-only or immutable file systems, /proc)."""
    existing = output_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == output_dir else f" ({existing} is a file)"
        raise InvalidInput(f"output {output_dir} is not a directory{where}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".adbot-probe-", dir=existing))
    except OSError as exc:
        reason = exc.strerror or exc
        raise InvalidInput(f"output {output_dir}: cannot write in {existing} ({reason})") from None


def resume_hint(checkpoint: Path) -> str:
    """How a run stopped before its end (a failure, Ctrl-C) continues from ``checkpoint``."""
    return f"the checkpoints before are kept: --resume {checkpoint} continues the run"


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The run directory's last whole checkpoint (``checkpoints/step-N``), if any. A run
    never writes into another's directory (:func:`check_run`), so these are the run's own,
    or those of the run it continues, up to the one it resumed."""
    whole = [path for path in _saved_checkpoints(output_dir) if (path / META_FILE).is_file()]
    return whole[-1] if whole else None


def _saved_checkpoints(output_dir: Path) -> list[Path]:
    """The run directory's ``checkpoints/step-N`` folders, oldest first."""
    folder = output_dir / "checkpoints"
    return sorted(folder.glob("step-*")) if folder.is_dir() else []


def _later_checkpoints(output_dir: Path, timesteps: int) -> list[str]:
    names = [path.name for path in _saved_checkpoints(output_dir)]
    return [name for name in names if name > f"step-{timesteps:09d}"]


def _check_resume_place(output_dir: Path, checkpoint: Checkpoint) -> bool:
    """Whether the resumed checkpoint lies in ``output_dir`` (the run continues there);
    ``InvalidInput`` if resuming into ``output_dir`` would overwrite another run's files."""
    _refuse_a_place_in_a_run(output_dir)
    inside = checkpoint.path.resolve().is_relative_to(output_dir.resolve())
    if holds_run(output_dir) and not inside:
        raise InvalidInput(
            f"output {output_dir} already holds another run: give another --output, or "
            "--resume one of its own checkpoints to continue it"
        )
    later = _later_checkpoints(output_dir, checkpoint.meta.timesteps) if inside else []
    if later:
        raise InvalidInput(
            f"output {output_dir} has checkpoints after {checkpoint.path} ({later[-1]}): "
            "resume from its latest checkpoint, or give another --output"
        )
    return inside


def _refuse_a_place_in_a_run(output_dir: Path) -> None:
    """A run directory is never a checkpoint (its ``config.yaml`` would replace the
    checkpoint's, which then no longer loads), nor inside one or inside another run's
    ``checkpoints/`` (its files would be taken for that run's)."""
    if (output_dir / META_FILE).exists():
        raise InvalidInput(
            f"output {output_dir} is a checkpoint, not a run directory: give another --output"
        )
    for parent in output_dir.resolve().parents:
        if (parent / META_FILE).exists():
            raise InvalidInput(
                f"output {output_dir} is inside checkpoint {parent}: give another --output"
            )
        if parent.name == "checkpoints" and holds_run(parent.parent):
            raise InvalidInput(
                f"output {output_dir} is inside the checkpoints of run {parent.parent}: give "
                "another --output"
            )


def _refuse_another_run(output_dir: Path) -> None:
    _refuse_a_place_in_a_run(output_dir)
    if holds_run(output_dir):
        raise InvalidInput(
            f"output {output_dir} already holds a run: give another --output, or "
            "--resume one of its checkpoints to continue it"
        )


@dataclass(frozen=True)
class RunStart:
    """What a run starts from, known before anything is written."""

    checkpoint: Checkpoint | None  # the resumed one
    best_score: float  # the best evaluation of the run so far
    seed_best: bool  # resumed into a new directory: its best/ starts as the checkpoint
    pairs: list[tuple[Scenario, int]]  # what every evaluation plays (``evaluation_pairs``)


def resumed_from(start: RunStart) -> dict[str, str]:
    """The checkpoint a resumed run continues, as the run's records keep it (its MLflow
    run's tags, its database row): the directory and its model's sha256 (a directory is
    overwritten, a later run's ``final/``; the sha256 says which model it was)."""
    if start.checkpoint is None:
        return {}
    return {
        "resumed_from": str(start.checkpoint.path.resolve()),
        "resumed_from_sha256": start.checkpoint.meta.model_sha256,
    }


def check_run(config: TrainingConfig, *, output_dir: Path, resume: Path | None) -> RunStart:
    """Everything about a run that can be checked before it writes or records anything:
    the scenario files, the output directory (never another run's, which would be
    overwritten) and the resumed checkpoint (a model of this AdBot's features, the same
    problem and PPO settings)."""
    check_scenario_files(config)
    pairs = evaluation_pairs(config.evaluation)  # or refused: settings no draw can fill
    check_writable(output_dir)
    if resume is None:
        _refuse_another_run(output_dir)
        return RunStart(checkpoint=None, best_score=float("-inf"), seed_best=False, pairs=pairs)
    if (resume / ENSEMBLE_FILE).exists():  # its own checkpoint is one member of several
        raise InvalidInput(
            f"checkpoint {resume} is an ensemble ({ENSEMBLE_FILE}): a run resumes one agent; "
            "give one member's checkpoint directory"
        )
    checkpoint = load_checkpoint(resume, n_envs=config.n_envs)  # fits the env, or refused
    done = checkpoint.model.num_timesteps
    if done >= config.total_timesteps:
        raise InvalidInput(
            f"checkpoint is at {done} timesteps, config total is "
            f"{config.total_timesteps}: nothing to train"
        )
    _check_resumable(checkpoint, config)
    inside = _check_resume_place(output_dir, checkpoint)
    best_dir = output_dir / BEST_DIR
    if inside and (best_dir / META_FILE).is_file():
        earlier = read_meta(best_dir).score_ratio
    else:
        earlier = checkpoint.meta.score_ratio
    best = float("-inf") if earlier is None else earlier
    return RunStart(
        checkpoint=checkpoint, best_score=best, seed_best=not best_dir.exists(), pairs=pairs
    )


def _continued_model(checkpoint: Checkpoint, venv: VecNormalize) -> PPO:
    """The resumed checkpoint's model, as :func:`check_run` loaded and checked it, set to
    learn on ``venv`` with the checkpoint's normalisation statistics. Not read from
    ``model.zip`` again: that copy would be a second load, and not the one whose sha256
    was checked."""
    checkpoint.normalization.restore_into(venv)
    try:
        checkpoint.model.set_env(venv)
    except ValueError as exc:  # SB3's check of the spaces: a model of another AdBot's env
        reason = str(exc).splitlines()[0]
        raise InvalidInput(f"checkpoint {checkpoint.path}: {reason}") from None
    return checkpoint.model


CLAIM_FILE = ".adbot-train.lock"


class OutputClaim:
    """A run directory held by this process for one run: an exclusive ``flock`` on a file
    in it, which the kernel drops when the process ends however it ends (a killed run
    leaves no stale claim). The file says which run held it (:meth:`note`); ``previous``
    is what it said when claimed, a run that ended without releasing it, if any."""

    def __init__(self, handle: IO[str], previous: dict[str, Any]) -> None:
        self._handle: IO[str] | None = handle
        self.previous = previous

    def note(self, **fields: Any) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.write(json.dumps({"pid": os.getpid(), **fields}))
            self._handle.flush()

    def release(self) -> None:
        """Clear the note (the run ended, as its record says) and let the directory go."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.truncate(0)
            self._handle.close()
            self._handle = None


def _read_note(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        note = json.loads(handle.read() or "{}")
    except ValueError:  # a write cut short: it says nothing
        return {}
    return note if isinstance(note, dict) else {}


def _lock(handle: IO[str]) -> None:
    """An exclusive lock on ``handle``'s file, or ``BlockingIOError`` if another process
    holds it. Where there is no ``flock`` (Windows) there is no lock: two runs started
    together into one directory are not refused there."""
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def claim_output(output_dir: Path, start: RunStart) -> OutputClaim:
    """Hold ``output_dir`` for a run :func:`check_run` passed, and check its place again
    now that no other process can write there: two runs started at the same moment both
    passed the check before either wrote, and trained into one directory."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        handle = (output_dir / CLAIM_FILE).open("a+")
    except OSError as exc:
        raise InvalidInput(f"output {output_dir}: cannot write ({exc.strerror})") from None
    try:
        _lock(handle)
    except BlockingIOError:
        pid = _read_note(handle).get("pid", "?")
        handle.close()
        raise Conflict(
            f"output {output_dir} is in use by another training run (process {pid}): give "
            "another --output, or wait for that run to end"
        ) from None
    try:
        if start.checkpoint is None:
            _refuse_another_run(output_dir)
        else:
            _check_resume_place(output_dir, start.checkpoint)
    except InvalidInput:
        handle.close()
        raise
    claim = OutputClaim(handle, _read_note(handle))
    claim.note()
    return claim


def _prepare_output(config: TrainingConfig, output_dir: Path, start: RunStart) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        config.save(output_dir)
    except OSError as exc:
        raise InvalidInput(f"output {output_dir}: cannot write ({exc.strerror})") from None
    if start.checkpoint is not None and start.seed_best:
        _replace_dir(start.checkpoint.path, output_dir / BEST_DIR)
    # What writes killed outright left (see staged_directory); the claim keeps out others'.
    for folder in (output_dir, output_dir / "checkpoints"):
        for leftover in folder.glob(f".*{STAGING_SUFFIX}"):
            shutil.rmtree(leftover, ignore_errors=True)


_UNPINNED = (
    "note: torch runs on this CPU's own math ({math[aten_capability]}, MKL_CBWR={math[mkl_cbwr]}), "
    "so this run reproduces only on the same kind of CPU; for any CPU, start from a process "
    "that imports adbot.rl before torch, or set "
    + " ".join(f"{name}={value}" for name, value in PINNED.items())
)


def train(
    config: TrainingConfig,
    *,
    output_dir: Path,
    resume: Path | None = None,
    settings: Settings | None = None,
    hooks: TrainingHooks | None = None,
    console: Console | None = None,
    track: bool = True,
    start: RunStart | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    claim: OutputClaim | None = None,
) -> TrainingResult:
    """Train (or resume) a PPO agent; see the module docstring. ``start``: what
    :func:`check_run` found for these arguments, if the caller checked them already;
    ``claim``: ``output_dir`` as :func:`claim_output` holds it for them, if they did (it is
    released at the end); ``run_name`` and ``tags``: the MLflow run's (default name
    ``NAME-seedN``)."""
    start = start or check_run(config, output_dir=output_dir, resume=resume)
    if console is not None:  # only once the checks passed: an error is then the only line
        console.print(f"training '{config.name}' into {output_dir}", highlight=False)
    settings = settings or get_settings()
    torch.set_num_threads(config.torch_threads)
    math = cpu_math()
    if console is not None and math["pinned"] != "True":
        console.print(_UNPINNED.format(math=math), highlight=False)
    tags = {
        **(tags or {}),
        **{f"cpu_math.{key}": value for key, value in math.items()},
        **{f"adbot.{key}": value for key, value in resumed_from(start).items()},
    }
    # Opened before anything is written (a store that cannot be used stops the run before
    # its first file), and before the seeding: nothing it does can move a random draw.
    warn = None if console is None else functools.partial(console.print, highlight=False)
    tracker = MlflowRun(settings, config, enabled=track, run_name=run_name, tags=tags, warn=warn)
    status = "FAILED"
    try:
        if hooks is not None:  # first: a process killed from here on leaves its run's id
            hooks.on_start(tracker.run_id)
        claim = claim or claim_output(output_dir, start)
        set_random_seed(config.seed)
        _prepare_output(config, output_dir, start)
        venv = build_vec_env(config)
        try:
            result = _run_to_the_end(
                config, venv, output_dir, start, tracker, hooks, console, resume is not None
            )
            status = "FINISHED"
        finally:
            _close(venv, quietly=status != "FINISHED")
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.finish(status)
        if claim is not None:
            claim.release()
    return result


def _run_to_the_end(
    config: TrainingConfig,
    venv: VecNormalize,
    output_dir: Path,
    start: RunStart,
    tracker: MlflowRun,
    hooks: TrainingHooks | None,
    console: Console | None,
    resumed: bool,
) -> TrainingResult:
    if start.checkpoint is not None:
        model = _continued_model(start.checkpoint, venv)
    else:
        model = build_model(config, venv)
    started = time.perf_counter()
    progress = _progress(console) if console is not None else None
    run = _Run(
        config, model, venv, output_dir, tracker, hooks, progress, start.best_score, start.pairs
    )
    run.resumed_from = None if start.checkpoint is None else start.checkpoint.path
    if progress is not None:
        progress.start()
    try:
        run.learn(config.total_timesteps - model.num_timesteps, resumed=resumed)
        final = run.checkpoint(model.num_timesteps)
    finally:
        if progress is not None:
            progress.stop()
    with run.writing(output_dir / "final", int(model.num_timesteps)):
        _replace_dir(final, output_dir / "final")
    tracker.log_checkpoint(output_dir / BEST_DIR, BEST_DIR)
    return TrainingResult(
        output_dir=output_dir,
        final_checkpoint=output_dir / "final",
        best_checkpoint=output_dir / BEST_DIR,
        best_score_ratio=run.best,
        timesteps=int(model.num_timesteps),
        wall_seconds=time.perf_counter() - started,
        mlflow_run_id=tracker.run_id,
        history=run.history,
    )


def _close(venv: VecNormalize, *, quietly: bool) -> None:
    """Close the envs; after a failure, a worker already gone (the failure, or killed
    with the run) must not replace the run's own error, and what is left is stopped."""
    try:
        venv.close()
    except Exception:
        if not quietly:
            raise
        for process in getattr(venv.venv, "processes", []):
            process.kill()
            process.join()
