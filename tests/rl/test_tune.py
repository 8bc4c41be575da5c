"""``adbot tune``: an Optuna study in the configured database, trials as short runs."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

import adbot.rl.train as train_module
from adbot.config import Settings, load_settings
from adbot.db import migrate
from adbot.errors import InvalidInput, ScenarioError
from adbot.rl.checkpoints import CheckpointMeta
from adbot.rl.config import TrainingConfig
from adbot.rl.tune import (
    MLFLOW_RUN_ATTR,
    _PruningHooks,
    late_mean,
    open_study,
    optuna_storage,
    suggest_overrides,
    tune,
)

pytestmark = pytest.mark.slow

# Evaluated on a small random scenario where any policy scores above 0: on a draw of a few
# conversions every evaluation was 0, and so was every trial's value, whatever it computed.
BASE = TrainingConfig(
    name="tiny",
    seed=1,
    n_envs=2,
    vec_env="dummy",
    env={"max_daily_queries": 1500.0},
    ppo={"n_steps": 64, "batch_size": 64, "n_epochs": 1},
    evaluation={
        "every_timesteps": 64,
        "random_scenarios": 1,
        "max_daily_queries": 1500.0,
        "min_conversions": 10.0,
        "seed": 29,
    },
)


def _settings(tmp_path: Path) -> Settings:
    """Data and MLflow store of the test's own: the default store is ``./data/mlflow.db``,
    which two test workers would create at once (MLflow's own migration then fails)."""
    return load_settings(
        data_dir=tmp_path / "data",
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "test"},
    )


def test_study_is_stored_and_resumable(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'adbot.db'}"
    migrate.upgrade(storage, "head")  # the study lives in AdBot's own, migrated database
    settings = _settings(tmp_path)
    kwargs = {
        "storage_url": storage,
        "study_name": "t",
        "timesteps": 128,
        "output_dir": tmp_path / "trials",
        "settings": settings,
    }
    first = tune(BASE.with_overrides(), n_trials=1, **kwargs)  # type: ignore[arg-type]
    again = tune(BASE, n_trials=1, **kwargs)  # type: ignore[arg-type]
    assert (first.trials, again.trials) == (1, 2)
    with optuna_storage(storage) as rdb:
        trials = optuna.load_study(study_name="t", storage=rdb).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert [len(t.intermediate_values) for t in trials] == [2, 2]  # reported per eval
    for t in trials:  # the value: the mean of the evaluations of the run's second half
        late = [v for step, v in t.intermediate_values.items() if step >= 128 / 2]
        assert min(t.intermediate_values.values()) > 0
        assert t.value == pytest.approx(sum(late) / len(late))
        assert t.user_attrs["best_score_ratio"] == max(t.intermediate_values.values())
    assert set(again.best_params) >= {"learning_rate", "log_std_init", "action_log_range"}
    best = max(trials, key=lambda t: t.value or 0.0)
    assert (again.best_trial, again.best_value) == (best.number, best.value)
    assert again.best_checkpoint == tmp_path / "trials" / f"trial-{best.number:04d}" / "best"
    assert (again.best_checkpoint / "model.zip").is_file()
    client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    named = {
        (r.info.run_name, r.data.tags["adbot.study"], r.data.tags["adbot.trial"]) for r in runs
    }
    assert named == {("t-trial0", "t", "0"), ("t-trial1", "t", "1")}
    assert migrate.current_revisions(storage) == migrate.head_revisions()


def _meta(timesteps: int) -> CheckpointMeta:
    return CheckpointMeta(timesteps, 1, "", None, "", "", "")


def test_a_trial_is_pruned_neither_at_its_first_evaluation_nor_at_its_last(
    tmp_path: Path,
) -> None:
    """With evaluations every 64 timesteps of 256, trials were pruned at 64 (the median rule
    counted its warm-up of 1 in timesteps) and at 256 (after their whole budget, recorded
    PRUNED without their value). Three trials that scored 1.0 at every evaluation set the
    median; trials scoring 0.0 are pruned at 128 and 192 only."""
    study = open_study(optuna.storages.InMemoryStorage(), study_name="p", base=BASE, timesteps=256)
    steps = (64, 128, 192, 256)
    for _ in range(3):
        done = {step: 1.0 for step in steps}
        study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values=done))
    worse = {"eval/score_ratio": 0.0}
    for step in steps:
        trial = study.ask()
        hooks = _PruningHooks(trial, timesteps=256)
        if step in (128, 192):
            with pytest.raises(optuna.TrialPruned, match=f"pruned at {step} timesteps"):
                hooks.on_checkpoint(tmp_path, _meta(step), worse)
        else:
            hooks.on_checkpoint(tmp_path, _meta(step), worse)  # not pruned
        study.tell(trial, state=TrialState.FAIL)  # the next trial reports at the next step


def test_search_space_gives_valid_configs() -> None:
    """Every sampled parameter lands in the config field it names (none sampled and dropped),
    and the rest of the config is the base's."""
    study = optuna.create_study()
    for _ in range(5):
        trial = study.ask()
        config = BASE.with_overrides(**suggest_overrides(trial))
        params = dict(trial.params)
        assert 0.3 <= params["action_log_range"] <= 1.5
        assert config.env.action_log_range == params.pop("action_log_range")
        arch = params.pop("net_arch")
        assert arch in ("64x64", "128x128")
        assert config.ppo.net_arch == tuple(int(n) for n in arch.split("x"))
        assert params.keys() == {
            "learning_rate", "n_epochs", "gamma", "gae_lambda", "clip_range", "ent_coef",
            "log_std_init",
        }  # fmt: skip
        for name, value in params.items():
            assert getattr(config.ppo, name) == value, name
        searched = {*params, "net_arch"}
        assert config.ppo.model_dump(exclude=searched) == BASE.ppo.model_dump(exclude=searched)
        assert config.env.model_dump(exclude={"action_log_range"}) == BASE.env.model_dump(
            exclude={"action_log_range"}
        )


def test_a_trials_value_is_the_mean_of_its_late_evaluations() -> None:
    history = [
        {"timesteps": 10.0, "eval/score_ratio": 0.99},  # early, lucky: not counted
        {"timesteps": 60.0, "eval/score_ratio": 0.7},
        {"timesteps": 100.0, "eval/score_ratio": 0.9},
    ]
    assert late_mean(history, 100) == pytest.approx(0.8)
    assert late_mean(history[:1], 100) == pytest.approx(0.99)  # none late: the last one


def test_a_study_keeps_one_config_and_does_not_repeat_itself(tmp_path: Path) -> None:
    """A resumed search proposes new parameters (each trial's sampler is seeded by its
    number, and a resumed search's numbers are new), and a study named again with another
    config or trial length is refused rather than mixing trials that cannot be compared."""
    storage = f"sqlite:///{tmp_path / 'adbot.db'}"
    migrate.upgrade(storage, "head")
    settings = _settings(tmp_path)
    kwargs = {"storage_url": storage, "study_name": "t", "output_dir": tmp_path / "trials"}
    tune(BASE, n_trials=1, timesteps=64, settings=settings, **kwargs)  # type: ignore[arg-type]
    tune(BASE, n_trials=1, timesteps=64, settings=settings, **kwargs)  # type: ignore[arg-type]
    with optuna_storage(storage) as rdb:
        study = optuna.load_study(study_name="t", storage=rdb)
        first, second = (t.params for t in study.trials)
        assert study.user_attrs == {"config_fingerprint": BASE.fingerprint(), "timesteps": 64}
    assert first != second
    with pytest.raises(InvalidInput, match=r"study 't' was started with another config .*finger"):
        tune(BASE.with_overrides(seed=2), n_trials=1, timesteps=64, settings=settings, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"timesteps 64 \(now 128\); name another --study"):
        tune(BASE, n_trials=1, timesteps=128, settings=settings, **kwargs)  # type: ignore[arg-type]


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_workers_starting_together_run_different_first_trials(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Two ``adbot tune --study t`` started at the same instant: both open the study before
    either has a trial, then ask for their first trial together. Each proposes its own
    parameters (a sampler seeded per worker at start-up gave both the same)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'adbot.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    migrate.upgrade(url, "head")  # the study lives in AdBot's own, migrated database
    barrier = threading.Barrier(2)

    def first_trial(storage: optuna.storages.RDBStorage) -> tuple[int, dict[str, Any]]:
        study = open_study(storage, study_name="t", base=BASE, timesteps=64)
        barrier.wait()  # both started, neither has asked yet
        trial = study.ask()
        return trial.number, suggest_overrides(trial)

    with (
        optuna_storage(url) as one,  # a storage each, as in two processes
        optuna_storage(url) as two,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        (number_a, params_a), (number_b, params_b) = pool.map(first_trial, (one, two))
    assert {number_a, number_b} == {0, 1}
    assert params_a != params_b


def test_a_fresh_search_is_seeded_by_its_config() -> None:
    """A trial's parameters follow from the config's seed and the trial's number: a search
    run again alone proposes the same trials, each other than the one before, and another
    seed other ones."""

    def first_trials(seed: int) -> list[dict[str, Any]]:
        base = BASE.with_overrides(seed=seed)
        storage = optuna.storages.InMemoryStorage()
        study = open_study(storage, study_name="t", base=base, timesteps=64)
        return [suggest_overrides(study.ask()) for _ in range(2)]

    first, second = first_trials(7)
    assert first_trials(7) == [first, second] and first != second
    assert first_trials(8)[0] != first


def test_a_trial_stopped_by_bad_input_logs_no_traceback(tmp_path: Path) -> None:
    """Optuna logs a failed trial's exception with its traceback; for an AdBot error (or
    Ctrl-C) the CLI's one line says it all."""
    storage = f"sqlite:///{tmp_path / 'adbot.db'}"
    migrate.upgrade(storage, "head")
    taken = tmp_path / "trials"
    taken.mkdir()
    (taken / "trial-0000").write_text("")  # the first trial's directory: a file
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("optuna.study._optimize")
    logger.addHandler(handler)
    try:
        with pytest.raises(InvalidInput, match="is not a directory"):
            tune(
                BASE,
                storage_url=storage,
                study_name="t",
                n_trials=1,
                timesteps=64,
                output_dir=taken,
                settings=_settings(tmp_path),
            )
    finally:
        logger.removeHandler(handler)
    failed = [r for r in records if "failed with parameters" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is None


def test_bad_input_is_refused_before_a_study_is_recorded(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'adbot.db'}"
    migrate.upgrade(storage, "head")
    afile = tmp_path / "afile"
    afile.write_text("")
    common = {"storage_url": storage, "study_name": "t", "n_trials": 1, "timesteps": 64}
    with pytest.raises(InvalidInput, match="is not a directory"):
        tune(BASE, output_dir=afile, settings=_settings(tmp_path), **common)  # type: ignore[arg-type]
    with pytest.raises(
        ScenarioError, match=r"^training config env.scenario: scenario file not found: no-such"
    ):
        tune(
            BASE.with_overrides(env={"scenario": "no-such"}),
            output_dir=tmp_path / "trials",
            settings=_settings(tmp_path),
            **common,  # type: ignore[arg-type]
        )
    with optuna_storage(storage) as rdb:
        assert optuna.get_all_study_summaries(storage=rdb) == []


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)
def test_a_trial_of_a_worker_killed_outright_is_failed_by_the_next(tmp_path: Path) -> None:
    """A worker killed outright (SIGKILL, the OOM killer) cannot end its trial, which stayed
    RUNNING for good; with heartbeats the next worker or resumed search fails it."""
    url = f"sqlite:///{tmp_path / 'adbot.db'}"
    migrate.upgrade(url, "head")
    with optuna_storage(url, heartbeat=1, stale=1) as storage:
        killed = open_study(storage, study_name="t", base=BASE, timesteps=64).ask()
        storage.record_heartbeat(killed._trial_id)  # what optimize's heartbeat thread does
        alive = open_study(storage, study_name="t", base=BASE, timesteps=64)
        assert alive.trials[killed.number].state == TrialState.RUNNING  # not stale yet
        time.sleep(2.5)  # no heartbeat for longer than ``stale``: the worker is gone
    with optuna_storage(url, heartbeat=1, stale=1) as storage:
        study = open_study(storage, study_name="t", base=BASE, timesteps=64)
        assert study.trials[killed.number].state == TrialState.FAIL


@pytest.mark.filterwarnings(
    "ignore:Heartbeat of storage is supposed to be used with Study.optimize"
)
def test_the_mlflow_run_of_a_trial_killed_outright_is_ended_as_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial of a worker killed outright was failed by the next worker, but its MLflow
    run stayed RUNNING for good. Killed here as SIGKILL would (nothing ends the runs) while
    its envs are built: its run's id was only recorded once they were."""
    url = f"sqlite:///{tmp_path / 'adbot.db'}"
    migrate.upgrade(url, "head")
    settings = _settings(tmp_path)
    kwargs: dict[str, Any] = {"storage_url": url, "study_name": "t", "timesteps": 64}

    def killed(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("killed")

    with monkeypatch.context() as kill:
        kill.setattr(train_module, "build_vec_env", killed)
        kill.setattr(MlflowClient, "set_terminated", lambda *args, **kwargs: None)
        with pytest.raises(SystemExit):
            tune(BASE, n_trials=1, output_dir=tmp_path / "trials", settings=settings, **kwargs)
    client = MlflowClient(tracking_uri=settings.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "RUNNING"
    time.sleep(2.5)  # silent for longer than ``stale`` below (SQLite's clock: whole seconds)
    with optuna_storage(url, heartbeat=1, stale=1, settings=settings) as storage:
        study = open_study(storage, study_name="t", base=BASE, timesteps=64)  # a resumed search
        [trial] = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs[MLFLOW_RUN_ATTR] == run.info.run_id
    assert client.get_run(run.info.run_id).info.status == "KILLED"
