"""MLflow logging of a training run: parameters, evaluation metrics over time, the model.

The tracking URI is ``settings.mlflow.tracking_uri`` (by default a SQLite store under
``./data``); artifacts of a local store go under ``<data_dir>/mlartifacts``.

A store that cannot be used when a run starts is a ``ConfigError`` naming the setting,
before anything is trained. One that fails later (a server gone, a file made read-only)
does not end the training: the checkpoints on disk are the run's record, so tracking stops
with one warning and the run goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from adbot.config import Settings
from adbot.errors import ConfigError
from adbot.rl.config import TrainingConfig

SETTING = "mlflow.tracking_uri, ADBOT_MLFLOW__TRACKING_URI"
_log = logging.getLogger(__name__)


def _reason(exc: BaseException) -> str:
    """The first line of the error at the root of ``exc`` (MLflow wraps the store's)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# MLflow's SQL store logs a database error with its traceback before raising it.
_STORE_LOGGER = "mlflow.store.db.utils"


def _without_traceback(record: logging.LogRecord) -> bool:
    return record.exc_info is None  # the error is reported once, by the caller, in one line


@contextlib.contextmanager
def filtered_log(name: str, keep: Callable[[logging.LogRecord], bool]) -> Iterator[None]:
    """While inside, the records of logger ``name`` go through ``keep`` (which may drop a
    record, returning False, or change it): a library's log of an error that AdBot
    reports itself, in one line."""
    logger = logging.getLogger(name)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _quiet_store() -> contextlib.AbstractContextManager[None]:
    return filtered_log(_STORE_LOGGER, _without_traceback)


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat


def _prepare_local_store(uri: str) -> None:
    """A local SQLite store's directory and, the first time, the store itself, made whole
    beside it and then moved into place: MLflow creates its tables and runs its migrations
    on first use (a second or two), and a Ctrl-C in those seconds left a half-made store that
    every later run refused ("table ... already exists")."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphaned_stagings(path)
    if path.exists():
        return
    from mlflow.tracking import MlflowClient

    # A name of its own each time: MLflow keeps an engine per store URI for the process.
    staging = path.with_name(f".{path.name}.creating-{os.getpid()}-{time.monotonic_ns()}")
    try:
        MlflowClient(tracking_uri=f"sqlite:///{staging}").search_experiments(max_results=1)
        if not path.exists():  # another process may have made it meanwhile: theirs stands
            os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def _remove_orphaned_stagings(path: Path) -> None:
    """The stores other processes were making beside ``path`` and left when killed outright
    (SIGKILL gives ``_prepare_local_store`` no chance to remove its staging file); a staging
    file whose process still runs, or cannot be told, is left alone."""
    for staging in path.parent.glob(f".{path.name}.creating-*"):
        pid_text = staging.name.removeprefix(f".{path.name}.creating-").split("-")[0]
        if not pid_text.isdigit() or _process_runs(int(pid_text)):
            continue
        with contextlib.suppress(OSError):  # another process may have removed it first
            staging.unlink()


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process (EPERM), an id out of range
        return True
    return True


def _unusable(uri: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"MLflow tracking store {uri} ({SETTING}) cannot be used: {_reason(exc)}; "
        "nothing was trained"
    )


def _client(settings: Settings) -> Any:
    from mlflow.tracking import MlflowClient

    uri = settings.mlflow.tracking_uri
    _prepare_local_store(uri)
    return MlflowClient(tracking_uri=uri)


# The check asks a server once and waits a few seconds for it: by default MLflow's HTTP client
# retries one that does not answer 7 times with a growing backoff, some four minutes before
# the error, and waits 120 s for each answer (twenty minutes for a server that hangs).
CHECK_HTTP_RETRIES = 0
CHECK_HTTP_TIMEOUT = 5  # seconds
# A run's own calls retry a little (at once, then after about 4 and 8 s: they ride out a
# server's restart) and wait 30 s an answer: a server lost mid-run holds the training up some
# 15 s (refused) to two and a half minutes (hung) once, then tracking stops with a warning.
RUN_HTTP_RETRIES = 3
RUN_HTTP_TIMEOUT = 30  # seconds


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` while inside, as it was after."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _http_limits(retries: int, timeout: float) -> contextlib.AbstractContextManager[None]:
    """MLflow's documented settings of its HTTP requests (read at each request), while
    inside: how often a request is retried and how long each waits for an answer."""
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    return _environment(
        {
            MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: str(retries),
            MLFLOW_HTTP_REQUEST_TIMEOUT.name: str(timeout),
        }
    )


def check_tracking_store(settings: Settings) -> None:
    """``ConfigError`` naming the setting if the tracking store cannot be opened and read
    (a SQLite path under a file, a server that does not answer): checked before a run is
    recorded, as other bad input is, within seconds."""
    try:
        with _quiet_store(), _http_limits(CHECK_HTTP_RETRIES, CHECK_HTTP_TIMEOUT):
            _client(settings).get_experiment_by_name(settings.mlflow.experiment)
    except Exception as exc:  # MLflow, SQLAlchemy, Alembic, OSError, requests: all "unusable"
        raise _unusable(settings.mlflow.tracking_uri, exc) from None


def end_mlflow_run(settings: Settings, run_id: str, status: str) -> None:
    """End a run left ``RUNNING`` by a process killed outright, if the store still has it
    and takes the change (a best effort: the store is not the run's record)."""
    with contextlib.suppress(Exception), _quiet_store():
        client = _client(settings)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status=status)


class MlflowRun:
    """One MLflow run; every call is a no-op when tracking is disabled, or once the store
    has failed mid-run (``warn`` is told once; by default a logged warning)."""

    def __init__(
        self,
        settings: Settings,
        config: TrainingConfig,
        *,
        enabled: bool = True,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.run_id: str | None = None
        self._client: Any = None
        self._uri = settings.mlflow.tracking_uri
        self._warn = warn or _log.warning
        if not enabled:
            return
        try:
            with _quiet_store(), _http_limits(RUN_HTTP_RETRIES, RUN_HTTP_TIMEOUT):
                self._start(settings, config, run_name, tags)
        except Exception as exc:  # as in check_tracking_store
            self._abandon()
            raise _unusable(self._uri, exc) from None

    def _start(
        self,
        settings: Settings,
        config: TrainingConfig,
        run_name: str | None,
        tags: dict[str, str] | None,
    ) -> None:
        from mlflow.entities import Param

        client = _client(settings)
        experiment = client.get_experiment_by_name(settings.mlflow.experiment)
        if experiment is None:
            artifacts = (settings.data_dir / "mlartifacts").resolve()
            artifacts.mkdir(parents=True, exist_ok=True)
            experiment_id = client.create_experiment(
                settings.mlflow.experiment, artifact_location=artifacts.as_uri()
            )
        else:
            experiment_id = experiment.experiment_id
        run = client.create_run(
            experiment_id, run_name=run_name or f"{config.name}-seed{config.seed}", tags=tags
        )
        self._client, self.run_id = client, run.info.run_id
        params = [Param(k, v) for k, v in _flatten(config.to_dict()).items()]
        for start in range(0, len(params), 100):
            client.log_batch(self.run_id, params=params[start : start + 100])

    def _abandon(self) -> None:
        """A run created before its parameters failed is ended as FAILED if the store
        still takes that."""
        if self._client is not None and self.run_id is not None:
            with contextlib.suppress(Exception):  # the store is the problem being reported
                self._client.set_terminated(self.run_id, status="FAILED")
        self._client = None

    def _call(self, what: str, step: int | None, call: Callable[[Any], None]) -> None:
        if self._client is None:
            return
        try:
            with _quiet_store(), _http_limits(RUN_HTTP_RETRIES, RUN_HTTP_TIMEOUT):
                call(self._client)
        except Exception as exc:  # the store failed: stop tracking, keep training
            self._client = None
            at = "" if step is None else f" at step {step}"
            self._warn(
                f"warning: MLflow tracking stopped{at}: cannot {what} in {self._uri} "
                f"({SETTING}): {_reason(exc)}; training goes on and writes its checkpoints "
                f"as before, MLflow run {self.run_id} stays incomplete"
            )

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self._client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self._call("log metrics", step, lambda c: c.log_batch(self.run_id, metrics=batch))

    def log_checkpoint(self, directory: Path, artifact_path: str) -> None:
        self._call(
            f"log {artifact_path}/",
            None,
            lambda c: c.log_artifacts(self.run_id, str(directory), artifact_path),
        )

    def finish(self, status: str) -> None:
        """End the run: ``FINISHED``, ``FAILED`` or ``KILLED`` (Ctrl-C, SIGTERM)."""
        self._call("end the run", None, lambda c: c.set_terminated(self.run_id, status=status))
        self._client = None
