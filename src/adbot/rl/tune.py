"""Hyperparameter search with Optuna: each trial is a short training run.

The study lives in the configured database (Optuna's own tables beside AdBot's), so a
search can be stopped and resumed, or run by several workers. Each trial reports its
evaluation score ratio at every evaluation of training and is pruned (median rule) when
it falls behind the other trials at the same timestep, from its second evaluation on and
before its last: the first judges weights one or two updates from their random start, and
a trial at its last has run its whole budget (it completes, with its value).

A trial's value is the mean of its evaluations over the second half of its run, not its
best one: on a few dozen validation draws one evaluation moves by a point or more, and the
best of several ranks the luckiest run rather than the config that trains best (the best
evaluation is kept as the trial's ``best_score_ratio`` attribute).
"""

from __future__ import annotations

import logging
import re
import statistics
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from adbot.config import Settings
from adbot.errors import AdbotError, InvalidInput
from adbot.rl.checkpoints import CheckpointMeta
from adbot.rl.config import NAME_PATTERN, TrainingConfig
from adbot.rl.policy import BEST_DIR
from adbot.rl.tracking import check_tracking_store, end_mlflow_run, filtered_log
from adbot.rl.train import check_scenario_files, check_writable, train


def suggest_overrides(trial: optuna.Trial) -> dict[str, Any]:
    """The search space: PPO's sensitive knobs and the action's range."""
    arch = trial.suggest_categorical("net_arch", ["64x64", "128x128"])
    return {
        "ppo": {
            "learning_rate": trial.suggest_float("learning_rate", 5e-5, 1e-3, log=True),
            "n_epochs": trial.suggest_categorical("n_epochs", [3, 5, 10]),
            "gamma": trial.suggest_categorical("gamma", [0.99, 0.995, 0.999, 1.0]),
            "gae_lambda": trial.suggest_float("gae_lambda", 0.8, 1.0),
            "clip_range": trial.suggest_float("clip_range", 0.1, 0.3),
            "ent_coef": trial.suggest_float("ent_coef", 1e-6, 1e-2, log=True),
            "log_std_init": trial.suggest_float("log_std_init", -2.5, -0.5),
            "net_arch": [int(n) for n in arch.split("x")],
        },
        "env": {"action_log_range": trial.suggest_float("action_log_range", 0.3, 1.5)},
    }


MLFLOW_RUN_ATTR = "mlflow_run_id"  # the trial's user attribute naming its MLflow run


class _PruningHooks:
    def __init__(self, trial: optuna.Trial, timesteps: int) -> None:
        self.trial, self.timesteps = trial, timesteps

    def on_start(self, mlflow_run_id: str | None) -> None:
        if mlflow_run_id is not None:
            self.trial.set_user_attr(MLFLOW_RUN_ATTR, mlflow_run_id)

    def on_checkpoint(
        self, directory: Path, meta: CheckpointMeta, metrics: dict[str, float]
    ) -> None:
        self.trial.report(metrics["eval/score_ratio"], step=meta.timesteps)
        # At the end of its budget a trial has cost all it will: pruned there, it was
        # recorded PRUNED without the value it had earned.
        if meta.timesteps < self.timesteps and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at {meta.timesteps} timesteps")


@dataclass(frozen=True)
class TuneResult:
    study_name: str
    best_value: float  # the best trial's mean evaluation over the second half of its run
    best_params: dict[str, Any]
    trials: int  # in the study, this invocation's and earlier ones'
    best_trial: int
    best_checkpoint: Path  # the best trial's best checkpoint


def late_mean(history: list[dict[str, float]], timesteps: int) -> float:
    """Mean ``eval/score_ratio`` of the evaluations at or after half of ``timesteps`` (the
    last one alone if none is that late)."""
    late = [e["eval/score_ratio"] for e in history if e["timesteps"] >= timesteps / 2]
    if not late:
        late = [history[-1]["eval/score_ratio"]]
    return statistics.fmean(late)


# A running trial records a heartbeat every HEARTBEAT seconds; one silent for STALE seconds
# belongs to a worker that was killed outright (SIGKILL, the OOM killer) and is failed by
# the next worker or resumed search, instead of staying RUNNING forever.
HEARTBEAT = 60
STALE = 3 * HEARTBEAT


def _ending_mlflow_runs(settings: Settings) -> Callable[[optuna.Study, FrozenTrial], None]:
    """What a stale trial is failed with: its MLflow run, which its killed worker could not
    end, is ended ``KILLED`` (as a killed training run's is by the next run into its
    directory)."""

    def end(study: optuna.Study, trial: FrozenTrial) -> None:
        run_id = trial.user_attrs.get(MLFLOW_RUN_ATTR)
        if isinstance(run_id, str):
            end_mlflow_run(settings, run_id, "KILLED")

    return end


@contextmanager
def optuna_storage(
    url: str, *, heartbeat: int = HEARTBEAT, stale: int = STALE, settings: Settings | None = None
) -> Iterator[optuna.storages.RDBStorage]:
    """Optuna's storage on ``url``, with heartbeats; its pooled connections closed at the
    end rather than left to the garbage collector. With ``settings``, the MLflow run of a
    stale trial it fails is ended in their tracking store."""
    on_stale = None if settings is None else _ending_mlflow_runs(settings)
    with warnings.catch_warnings():  # Optuna marks heartbeats experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # failed_trial_callback: Optuna 4.9 renamed it, the old name stays until 6.0 (we
        # pin <5), and 3.6 to 4.8 know only it.
        warnings.simplefilter("ignore", FutureWarning)
        storage = optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat, grace_period=stale, failed_trial_callback=on_stale
        )
    try:
        yield storage
    finally:
        storage.scoped_session.remove()
        storage.engine.dispose()


# Optuna logs a failed trial's exception with its traceback before re-raising it.
_TRIAL_LOGGER = "optuna.study._optimize"


def _strip_user_error_traceback(record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    if isinstance(error, AdbotError | KeyboardInterrupt):
        record.exc_info, record.exc_text = None, None
    return True


def _no_traceback_for_user_errors() -> AbstractContextManager[None]:
    """A trial stopped by bad input (say, a diverged run) or Ctrl-C is reported in one
    line by the CLI; Optuna's warning about it keeps its line but not the traceback."""
    return filtered_log(_TRIAL_LOGGER, _strip_user_error_traceback)


def check_study_name(name: str) -> None:
    """A study's name is written as is in the database and names its trials' directory
    (``<data_dir>/tune/<name>``): it follows a config name's rule, so that ``../..`` or
    ``a/b`` cannot put the trials elsewhere."""
    if re.fullmatch(NAME_PATTERN, name) is None:
        raise InvalidInput(
            f"--study {name!r}: a study name is lower-case letters, digits, '-' and '_', "
            "starting with a letter or digit"
        )


def _trial_dir(output_dir: Path, number: int) -> Path:
    return output_dir / f"trial-{number:04d}"


def tune(
    base: TrainingConfig,
    *,
    storage_url: str,
    study_name: str,
    n_trials: int,
    timesteps: int,
    output_dir: Path,
    settings: Settings,
) -> TuneResult:
    """Run ``n_trials`` more trials of the study (created on first use) and report the best."""

    def objective(trial: optuna.Trial) -> float:
        config = base.with_overrides(total_timesteps=timesteps, **suggest_overrides(trial))
        result = train(
            config,
            output_dir=_trial_dir(output_dir, trial.number),
            settings=settings,
            hooks=_PruningHooks(trial, timesteps),
            run_name=f"{study_name}-trial{trial.number}",
            tags={"adbot.study": study_name, "adbot.trial": str(trial.number)},
        )
        trial.set_user_attr("best_score_ratio", result.best_score_ratio)
        return late_mean(result.history, timesteps)

    check_study_name(study_name)  # bad input fails here, before a study or trial is recorded
    check_scenario_files(base)
    check_writable(output_dir)
    check_tracking_store(settings)
    with optuna_storage(storage_url, settings=settings) as storage:
        study = open_study(storage, study_name=study_name, base=base, timesteps=timesteps)
        with _no_traceback_for_user_errors():
            study.optimize(objective, n_trials=n_trials, catch=())
        best = study.best_trial
        return TuneResult(
            study_name=study.study_name,
            best_value=float(study.best_value),
            best_params=dict(best.params),
            trials=len(study.trials),
            best_trial=best.number,
            best_checkpoint=_trial_dir(output_dir, best.number) / BEST_DIR,
        )


def open_study(
    storage: optuna.storages.BaseStorage, *, study_name: str, base: TrainingConfig, timesteps: int
) -> optuna.Study:
    """The study as one worker runs it: created on first use, else loaded (another
    worker's, or an earlier search's); its config and trial length checked; its sampler
    and pruner set."""
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        pruner=_pruner(base),
    )
    _check_study(study, base, timesteps)
    study.sampler = TrialSeededSampler(base.seed)
    _fail_stale_trials(study)
    return study


def _pruner(base: TrainingConfig) -> optuna.pruners.MedianPruner:
    """The median rule once three trials completed, from a trial's second evaluation on.
    Optuna counts ``n_warmup_steps`` in the steps trials report, timesteps here: the second
    evaluation is due at twice ``evaluation.every_timesteps`` (it was 1, so the first
    evaluation, at ``every_timesteps``, could prune a trial still near its random start)."""
    return optuna.pruners.MedianPruner(
        n_startup_trials=3, n_warmup_steps=2 * base.evaluation.every_timesteps
    )


def _fail_stale_trials(study: optuna.Study) -> None:
    """Fail the trials of workers that died without a word (no heartbeat for ``STALE``
    seconds) now, not only when this worker starts its first trial (``optimize`` does it
    then too). Optuna leaves a storage without heartbeats alone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _check_study(study: optuna.Study, base: TrainingConfig, timesteps: int) -> None:
    """A study's trials are only comparable under one base config and one trial length:
    the first invocation records them, a later one with others is refused by name."""
    expected: dict[str, Any] = {"config_fingerprint": base.fingerprint(), "timesteps": timesteps}
    recorded = study.user_attrs
    differing = [k for k, v in expected.items() if k in recorded and recorded[k] != v]
    if differing:
        found = ", ".join(f"{k} {recorded[k]} (now {expected[k]})" for k in differing)
        raise InvalidInput(
            f"study '{study.study_name}' was started with another config or trial length: "
            f"{found}; name another --study"
        )
    for key, value in expected.items():
        if key not in recorded:
            study.set_user_attr(key, value)


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of the study's trial ``number``: the config's seed and the number
    mixed (so that the streams of seeds 1 and 2 do not overlap shifted by one trial)."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Optuna's TPE with one random stream per trial, seeded by :func:`trial_seed`.

    A TPE seeded once per worker gave two workers that started together (or resumed a study
    at the same count of trials) one stream, so they proposed the same trials. A trial's
    number is assigned by the storage as the trial is created (Optuna locks the study's row
    for it), so no two trials of a study share a stream whichever worker runs them, a
    resumed search continues with new ones, and a fresh search run again alone proposes the
    same trials. TPE keeps nothing else between trials: it reads the study's trials."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._running: dict[int, optuna.samplers.TPESampler] = {}

    def _tpe(self, trial: FrozenTrial) -> optuna.samplers.TPESampler:
        if trial.number not in self._running:
            seed = trial_seed(self.seed, trial.number)
            self._running[trial.number] = optuna.samplers.TPESampler(seed=seed)
        return self._running[trial.number]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe(trial).before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._tpe(trial).infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._tpe(trial).sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._tpe(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._tpe(trial).after_trial(study, trial, state, values)
        del self._running[trial.number]
