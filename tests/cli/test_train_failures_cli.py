"""``adbot train`` when something fails half way: one line on stderr, the run recorded."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stable_baselines3 import PPO

import adbot.rl.train as train_module
import adbot.services.training as training_service
from cli_helpers import RunCli
from training_helpers import LONGER

pytestmark = pytest.mark.slow


@pytest.fixture
def place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: RunCli
) -> Iterator[tuple[Path, Path]]:
    """A migrated SQLite database and MLflow store under ``tmp_path``; the tiny config's
    file and the run directory to train into. The command's SIGTERM handler is undone."""
    monkeypatch.setenv("ADBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADBOT_DB__URL", f"sqlite:///{tmp_path / 'adbot.db'}")
    monkeypatch.setenv("ADBOT_MLFLOW__TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert not run_cli(["db", "upgrade"]).code
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        yield LONGER.save(tmp_path / "config"), tmp_path / "run"
    finally:
        signal.signal(signal.SIGTERM, sigterm)


def _runs(tmp_path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(tmp_path / "adbot.db") as db:
        return list(db.execute("SELECT status, error FROM training_runs ORDER BY id"))


def _error(err: str) -> str:
    """The one error line that ends stderr (after the run's progress lines), no traceback."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error:") for line in lines) == 1, err
    return lines[-1]


def test_an_output_that_cannot_be_written_is_one_line_and_a_failed_run(
    place: tuple[Path, Path], tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, out = place
    original = PPO.save
    calls = [0]

    def full_disk(self: PPO, path: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, path, *args, **kwargs)

    monkeypatch.setattr(PPO, "save", full_disk)
    result = run_cli(["train", "--config", str(config), "--output", str(out)])
    assert result.code == 1
    error = _error(result.err)
    assert error.startswith("error: training stopped at step 256: cannot write ")
    assert "(No space left on device)" in error and "--resume" in error
    [(status, recorded)] = _runs(tmp_path)
    assert status == "failed" and recorded.startswith("AdbotError: training stopped at step 256")


CANCELLED = ("cancelled", "cancelled: Ctrl-C or SIGTERM stopped the run; its checkpoints are kept")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(
    ("module", "function", "line", "runs"),
    [
        pytest.param(
            training_service,
            "check_tracking_store",
            "training cancelled before the run started; no run was recorded",
            [],
            id="checks",
        ),
        pytest.param(
            train_module,
            "evaluate_policy",
            "training cancelled; the run is recorded as cancelled",
            [CANCELLED],
            id="training",
        ),
    ],
)
def test_a_stop_says_whether_the_run_was_recorded(
    place: tuple[Path, Path],
    tmp_path: Path,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    signum: int,
    module: Any,
    function: str,
    line: str,
    runs: list[tuple[str, str]],
) -> None:
    """Ctrl-C or SIGTERM while the run was checked (the checks of a resumed run's checkpoint
    or of a tracking store take seconds) said "the run is recorded as cancelled", and
    nothing was recorded."""
    config, out = place
    original = getattr(module, function)

    def stopped(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signum)  # a KeyboardInterrupt here (SIGTERM: by the command)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, function, stopped)
    result = run_cli(["train", "--config", str(config), "--output", str(out)])
    assert (result.code, result.err_lines[-1]) == (130, line)
    assert "Traceback" not in result.err
    assert _runs(tmp_path) == runs


def _stop_at_evaluation(monkeypatch: pytest.MonkeyPatch, number: int, signum: int) -> None:
    """Ctrl-C or SIGTERM as the run's evaluation ``number`` (from 1) starts: the run wrote
    a checkpoint at each evaluation before it."""
    original = train_module.evaluate_policy
    calls = [0]

    def stopped(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == number:
            os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate_policy", stopped)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_after_a_checkpoint_says_what_to_resume(
    place: tuple[Path, Path],
    tmp_path: Path,
    run_cli: RunCli,
    monkeypatch: pytest.MonkeyPatch,
    signum: int,
) -> None:
    """The README says a stopped run's message says what to resume, as a full disk's does;
    a Ctrl-C's said only that the run was recorded cancelled. A run resumed into a new
    directory and stopped before its first checkpoint continues from the one it resumed."""
    config, out = place
    _stop_at_evaluation(monkeypatch, 2, signum)
    result = run_cli(["train", "--config", str(config), "--output", str(out)])
    latest = out / "checkpoints" / "step-000000128"
    assert (result.code, result.err_lines[-1]) == (
        130,
        "training cancelled; the run is recorded as cancelled; the checkpoints before are "
        f"kept: --resume {latest} continues the run",
    )
    assert "Traceback" not in result.err

    _stop_at_evaluation(monkeypatch, 1, signum)
    argv = ["train", "--config", str(config), "--output", str(tmp_path / "more")]
    result = run_cli([*argv, "--resume", str(latest)])
    assert (result.code, result.err_lines[-1]) == (
        130,
        "training cancelled; the run is recorded as cancelled; the checkpoints before are "
        f"kept: --resume {latest} continues the run",
    )
    assert _runs(tmp_path) == [CANCELLED, CANCELLED]


def test_a_tracking_store_that_cannot_be_used_is_one_line_naming_the_setting(
    place: tuple[Path, Path], tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, out = place
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("ADBOT_MLFLOW__TRACKING_URI", f"sqlite:///{afile / 'mlflow.db'}")
    result = run_cli(["train", "--config", str(config), "--output", str(out)])
    assert result.code == 1
    assert result.err_lines == [
        f"error: MLflow tracking store sqlite:///{afile / 'mlflow.db'} (mlflow.tracking_uri, "
        f"ADBOT_MLFLOW__TRACKING_URI) cannot be used: [Errno 17] File exists: '{afile}'; "
        "nothing was trained"
    ]
    assert _runs(tmp_path) == [] and not out.exists()


def test_a_search_with_a_tracking_store_that_cannot_be_used_is_one_line(
    place: tuple[Path, Path], tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the study and its first trial were created, then the trial failed in a
    FileExistsError traceback."""
    config, _ = place
    afile = tmp_path / "afile"
    afile.write_text("")
    monkeypatch.setenv("ADBOT_MLFLOW__TRACKING_URI", f"sqlite:///{afile / 'mlflow.db'}")
    argv = ["tune", "--config", str(config), "--trials", "1", "--timesteps", "128"]
    result = run_cli([*argv, "--study", "s", "--output", str(tmp_path / "trials")])
    assert result.code == 1
    assert result.err_lines[-1].startswith(
        f"error: MLflow tracking store sqlite:///{afile / 'mlflow.db'} (mlflow.tracking_uri, "
        "ADBOT_MLFLOW__TRACKING_URI) cannot be used: "
    )
    assert "Traceback" not in result.err and not (tmp_path / "trials").exists()
    with sqlite3.connect(tmp_path / "adbot.db") as db:  # Optuna's tables: no study, no trial
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    assert "studies" not in tables
