"""MLflow logging of a training run: parameters, evaluation metrics over time, the model.

The tracking URI is ``settings.mlflow.tracking_uri`` (by default a SQLite store under
``./data``); artifacts of a local store go under ``<data_dir>/mlartifacts``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from adbot.config import Settings
from adbot.rl.config import TrainingConfig


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
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


class MlflowRun:
    """One MLflow run; every call is a no-op when tracking is disabled."""

    def __init__(
        self,
        settings: Settings,
        config: TrainingConfig,
        *,
        enabled: bool = True,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.run_id: str | None = None
        self._client: Any = None
        if not enabled:
            return
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = settings.mlflow.tracking_uri
        _prepare_local_store(uri)
        client = MlflowClient(tracking_uri=uri)
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

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self._client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items()]
        self._client.log_batch(self.run_id, metrics=batch)

    def log_checkpoint(self, directory: Path, artifact_path: str) -> None:
        if self._client is not None:
            self._client.log_artifacts(self.run_id, str(directory), artifact_path)

    def finish(self, status: str) -> None:
        if self._client is not None:
            self._client.set_terminated(self.run_id, status=status)
