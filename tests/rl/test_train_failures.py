"""A run that goes wrong half way (a full disk, Ctrl-C, a tracking store gone, a dead
worker): what it says, and that it leaves a consistent run directory a resume continues."""

from __future__ import annotations

import errno
import fcntl
import gc
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stable_baselines3 import PPO

import adbot.rl.tracking as tracking
import adbot.rl.train as train_module
import adbot.services.training as training_service
from adbot.config import Settings, load_settings
from adbot.db.models import TrainingRun, TrainingStatus
from adbot.errors import AdbotError, ConfigError, Conflict, InvalidInput
from adbot.rl.checkpoints import load_checkpoint
from adbot.rl.train import check_run, train
from adbot.services.training import train_agent, training_account
from training_helpers import LONGER, TINY, train_recorded, tree

pytestmark = pytest.mark.slow

CLAIM_FILE = ".adbot-train.lock"  # train.CLAIM_FILE, the file a run directory is held by


def _hidden(directory: Path) -> list[str]:
    """Staging directories left behind."""
    return [str(p.relative_to(directory)) for p in directory.rglob(".*.partial")]


def test_a_checkpoint_cut_short_leaves_no_half_written_directory(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The third checkpoint's model cannot be written: before, its directory stayed with
    part of its files, and a resume from the latest complete checkpoint was refused (the
    incomplete one came after it) while the incomplete one could not be loaded."""
    out = tmp_path / "run"
    original = PPO.save
    calls = [0]

    def full_disk(self: PPO, path: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 3:
            Path(path).write_bytes(b"PK\3\4 half a model")
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, path, *args, **kwargs)

    monkeypatch.setattr(PPO, "save", full_disk)
    with pytest.raises(Exception, match="No space left on device"):
        train(LONGER, output_dir=out, settings=settings, track=False)
    monkeypatch.setattr(PPO, "save", original)
    steps = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert steps == ["step-000000128", "step-000000256"] and not _hidden(out)
    load_checkpoint(out / "best")
    latest = out / "checkpoints" / "step-000000256"
    resumed = train(LONGER, output_dir=out, resume=latest, settings=settings, track=False)
    assert resumed.timesteps == 384
    assert load_checkpoint(out / "final").meta.timesteps == 384


def test_best_cut_short_while_replaced_stays_the_earlier_best(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """best/ was removed, then copied anew: a copy cut short left no best/ or half of one."""
    out = tmp_path / "run"
    train(TINY, output_dir=out, settings=settings, track=False)
    before = tree(out / "best")
    copytree = shutil.copytree

    def cut_short(source: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(source) / "model.zip", Path(target) / "model.zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copytree", cut_short)
    with pytest.raises(KeyboardInterrupt):
        train_module._replace_dir(out / "checkpoints" / "step-000000128", out / "best")
    monkeypatch.setattr(shutil, "copytree", copytree)
    assert tree(out / "best") == before and not _hidden(out)
    load_checkpoint(out / "best")


def test_a_run_killed_in_its_first_checkpoint_may_be_retried(
    tmp_path: Path, settings: Settings
) -> None:
    """SIGKILL gives Python no chance to remove the staging directory: what is left is a
    config.yaml and a hidden partial checkpoint, nothing to lose, so a retry is not refused."""
    out = tmp_path / "run"
    (out / "checkpoints" / ".step-000000128.99.partial").mkdir(parents=True)
    TINY.save(out)
    result = train(TINY, output_dir=out, settings=settings, track=False)
    assert result.final_checkpoint.is_dir()


def test_an_output_that_cannot_be_written_mid_run_says_what_to_resume(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the OSError went out as a traceback; now one line: the step, the directory,
    the reason and the checkpoint to resume from."""
    out = tmp_path / "run"
    original = PPO.save
    calls = [0]

    def read_only(self: PPO, path: Any, *args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.EROFS, "Read-only file system")
        original(self, path, *args, **kwargs)

    monkeypatch.setattr(PPO, "save", read_only)
    latest = out / "checkpoints" / "step-000000128"
    with pytest.raises(AdbotError) as stopped:
        train(LONGER, output_dir=out, settings=settings, track=False)
    assert stopped.value.message == (
        f"training stopped at step 256: cannot write {out / 'checkpoints' / 'step-000000256'} "
        f"(Read-only file system); the checkpoints before are kept: --resume {latest} "
        "continues the run"
    )
    load_checkpoint(latest)


def test_a_tracking_store_that_cannot_be_used_is_named_before_anything_is_written(
    tmp_path: Path, sqlite_session: Session
) -> None:
    """A SQLite store under a file: before, a FileExistsError traceback once the run
    directory was written and the run recorded as failed."""
    afile = tmp_path / "afile"
    afile.write_text("")
    uri = f"sqlite:///{afile / 'mlflow.db'}"
    broken = load_settings(data_dir=tmp_path / "data", mlflow={"tracking_uri": uri})
    expected = (
        rf"^MLflow tracking store {uri} \(mlflow.tracking_uri, ADBOT_MLFLOW__TRACKING_URI\) "
        "cannot be used: "
    )
    with pytest.raises(ConfigError, match=expected):
        train(TINY, output_dir=tmp_path / "run", settings=broken)
    assert not (tmp_path / "run").exists()
    account = training_account(session=sqlite_session, slug=None)
    with pytest.raises(ConfigError, match=expected):
        train_agent(
            session=sqlite_session,
            account_id=account.id,
            config=TINY,
            output_dir=tmp_path / "run",
            settings=broken,
        )
    assert sqlite_session.scalar(select(func.count()).select_from(TrainingRun)) == 0
    assert not (tmp_path / "run").exists()


class _MuteServer:
    """A tracking server at a port that takes connections and answers none: it closes each
    at once (a server restarting behind a proxy) or holds it open (a hung one)."""

    def __init__(self, *, hold: bool) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.uri = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.taken: list[socket.socket] = []
        self.hold = hold
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.taken.append(connection)
            if not self.hold:
                connection.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self.listener.close()
        for connection in self.taken:
            connection.close()


@pytest.fixture(params=["closes", "hangs"])
def mute_server(request: pytest.FixtureRequest) -> Iterator[_MuteServer]:
    server = _MuteServer(hold=request.param == "hangs")
    try:
        yield server
    finally:
        server.close()


def test_a_tracking_server_that_does_not_answer_is_named_after_one_try(
    tmp_path: Path,
    sqlite_session: Session,
    monkeypatch: pytest.MonkeyPatch,
    mute_server: _MuteServer,
) -> None:
    """MLflow's HTTP client tried such a server 8 times with a growing backoff before the
    check failed: some four minutes (``adbot train`` with nothing at the port: 255 s to its
    error), twenty for a server that holds the connections (120 s a try)."""
    monkeypatch.setattr(tracking, "CHECK_HTTP_TIMEOUT", 1)  # the hung server's wait
    unanswered = load_settings(data_dir=tmp_path / "data", mlflow={"tracking_uri": mute_server.uri})
    expected = (
        rf"^MLflow tracking store {mute_server.uri} \(mlflow.tracking_uri, "
        r"ADBOT_MLFLOW__TRACKING_URI\) cannot be used: .*; nothing was trained$"
    )
    with pytest.raises(ConfigError, match=expected):
        train_recorded(sqlite_session, TINY, tmp_path / "run", unanswered)
    assert len(mute_server.taken) == 1
    assert sqlite_session.scalar(select(func.count()).select_from(TrainingRun)) == 0
    assert not (tmp_path / "run").exists()


def _fail_mlflow_from_call(monkeypatch: pytest.MonkeyPatch, name: str, n: int) -> None:
    """``MlflowClient.name`` fails from its ``n``-th call on, as a store gone away does."""
    original = getattr(MlflowClient, name)
    calls = [0]

    def failing(self: MlflowClient, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] >= n:
            raise MlflowException("(sqlite3.OperationalError) attempt to write a readonly database")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, name, failing)


def test_a_tracking_store_failing_mid_run_loses_no_training(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the first failed log_batch ended the run (a traceback, the error of the
    failed set_terminated in the finally block replacing it); now tracking stops with one
    warning naming the setting and the run trains to its end."""
    _fail_mlflow_from_call(monkeypatch, "log_batch", 3)  # parameters, one metric batch
    _fail_mlflow_from_call(monkeypatch, "set_terminated", 1)
    out = io.StringIO()
    result = train(
        LONGER, output_dir=tmp_path / "run", settings=settings, console=Console(file=out)
    )
    assert result.timesteps == 384 and load_checkpoint(result.final_checkpoint)
    warnings = [line for line in out.getvalue().splitlines() if "warning" in line]
    assert len(warnings) == 1, out.getvalue()
    assert "MLflow tracking stopped at step" in warnings[0]
    assert "ADBOT_MLFLOW__TRACKING_URI" in out.getvalue()


def test_ctrl_c_ends_the_mlflow_run_as_killed_and_stays_ctrl_c(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "evaluate_policy", interrupted)
    run_ids: list[str | None] = []

    class Hooks:
        def on_start(self, mlflow_run_id: str | None) -> None:
            run_ids.append(mlflow_run_id)

        def on_checkpoint(self, *args: Any) -> None:
            raise AssertionError("no checkpoint expected")

    with pytest.raises(KeyboardInterrupt):
        train(TINY, output_dir=tmp_path / "run", settings=settings, hooks=Hooks())
    client = MlflowClient(settings.mlflow.tracking_uri)
    assert client.get_run(run_ids[0] or "").info.status == "KILLED"
    # The store failing as well does not replace the interruption with its error.
    _fail_mlflow_from_call(monkeypatch, "set_terminated", 1)
    with pytest.raises(KeyboardInterrupt):
        train(TINY, output_dir=tmp_path / "again", settings=settings)


def test_a_dead_env_worker_is_one_line_and_leaves_no_process(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker killed (the OOM killer) after the first checkpoint: before, an EOFError with
    no message (``Aborted.`` from the CLI, "EOFError: " in the database)."""
    killed: list[Any] = []
    on_rollout_end = train_module._Run.on_rollout_end

    def kill_a_worker(self: Any, timesteps: int) -> None:
        on_rollout_end(self, timesteps)
        if self.last is not None and not killed:
            killed.append(self.venv.venv.processes)
            os.kill(self.venv.venv.processes[0].pid, signal.SIGKILL)

    monkeypatch.setattr(train_module._Run, "on_rollout_end", kill_a_worker)
    out = tmp_path / "run"
    subproc = LONGER.with_overrides(vec_env="subproc", vec_workers=2)
    with pytest.raises(AdbotError) as stopped:
        train(subproc, output_dir=out, settings=settings, track=False)
    assert stopped.value.message.startswith("training stopped at step ")
    assert stopped.value.message.endswith(
        ": a worker process of the envs (vec_env: subproc) died, killed or out of memory; the "
        f"checkpoints before are kept: --resume {out / 'checkpoints' / 'step-000000128'} "
        "continues the run"
    )
    assert not any(process.is_alive() for process in killed[0])


def test_a_run_that_checked_before_another_wrote_is_refused(
    tmp_path: Path, settings: Settings
) -> None:
    """Two runs started together both pass check_run before either writes; the second to
    get there is refused (it trained into the first's directory, their checkpoints and
    database rows mixed) and leaves the first's files as they were."""
    out = tmp_path / "run"
    second = check_run(TINY.with_overrides(seed=6), output_dir=out, resume=None)
    train(TINY, output_dir=out, settings=settings, track=False)
    before = tree(out)
    with pytest.raises(InvalidInput, match="already holds a run"):
        train(TINY.with_overrides(seed=6), output_dir=out, settings=settings, start=second)
    assert tree(out) == before


def test_a_directory_a_live_run_holds_is_refused(tmp_path: Path, settings: Settings) -> None:
    out = tmp_path / "run"
    out.mkdir()
    with (out / CLAIM_FILE).open("a+") as held:  # as the run started a moment before holds it
        held.write('{"pid": 4242}')
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(Conflict, match=r"in use by another training run \(process 4242\)"):
            train(TINY, output_dir=out, settings=settings, track=False)
    assert sorted(p.name for p in out.iterdir()) == [CLAIM_FILE]


def test_a_run_killed_outright_is_recorded_failed_by_the_next_run_into_its_directory(
    tmp_path: Path, settings: Settings, sqlite_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL gives the run no chance to record its end: it stayed ``running`` forever,
    its MLflow run RUNNING. Killed here as SIGKILL would: no failure recorded, the claim's
    note left, after its first checkpoint."""
    evaluate = train_module.evaluate_policy
    calls = [0]

    def killed_at_the_second(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise SystemExit("killed")
        return evaluate(*args, **kwargs)

    with monkeypatch.context() as kill:
        kill.setattr(train_module, "evaluate_policy", killed_at_the_second)
        kill.setattr(training_service, "_record_failure", lambda *args: None)
        kill.setattr(train_module.OutputClaim, "release", lambda self: None)
        kill.setattr(MlflowClient, "set_terminated", lambda *args, **kwargs: None)
        with pytest.raises(SystemExit):
            train_recorded(sqlite_session, LONGER, tmp_path / "run", settings)
    killed = sqlite_session.scalars(select(TrainingRun)).one()
    assert killed.status == TrainingStatus.RUNNING
    gc.collect()  # the killed run's claim file closes, as the kernel closes it at a kill

    latest = tmp_path / "run" / "checkpoints" / "step-000000128"
    train_recorded(sqlite_session, LONGER, tmp_path / "run", settings, resume=latest)
    sqlite_session.refresh(killed)
    assert killed.status == TrainingStatus.FAILED and killed.finished_at is not None
    assert killed.error is not None and killed.error.startswith("interrupted: the process")
    client = MlflowClient(settings.mlflow.tracking_uri)
    assert client.get_run(killed.mlflow_run_id or "").info.status == "KILLED"
    runs = sqlite_session.scalars(select(TrainingRun).order_by(TrainingRun.id)).all()
    assert [run.status for run in runs] == [TrainingStatus.FAILED, TrainingStatus.SUCCEEDED]


def test_a_cancelled_run_is_recorded_as_cancelled_in_words(
    tmp_path: Path, settings: Settings, sqlite_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its error said "KeyboardInterrupt: " (the exception's empty message)."""

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "evaluate_policy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_recorded(sqlite_session, TINY, tmp_path / "run", settings)
    run = sqlite_session.scalars(select(TrainingRun)).one()
    assert run.status == TrainingStatus.CANCELLED
    assert run.error == "cancelled: Ctrl-C or SIGTERM stopped the run; its checkpoints are kept"


def test_a_run_stopped_between_its_record_and_its_training_is_recorded_cancelled(
    tmp_path: Path, settings: Settings, sqlite_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the run's directory was checked for an earlier run killed outright, after
    the run was recorded: it stayed ``running`` for good."""

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(training_service, "_end_interrupted", interrupted)
    with pytest.raises(training_service.RunCancelled):
        train_recorded(sqlite_session, TINY, tmp_path / "run", settings)
    run = sqlite_session.scalars(select(TrainingRun)).one()
    assert run.status == TrainingStatus.CANCELLED
    with (tmp_path / "run" / CLAIM_FILE).open() as claim:  # the directory is free again
        fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_store_cut_short_while_mlflow_creates_it_is_not_left_half_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C while MLflow creates a new SQLite store (its tables, then its migrations) left
    a half-made store that every later run refused ("table ... already exists"): the store
    is made beside its path and moved into place whole, so nothing is left and the next
    check makes it."""
    import mlflow.store.db.utils as mlflow_db

    store = tmp_path / "data" / "mlflow.db"
    settings = load_settings(
        data_dir=tmp_path / "data", mlflow={"tracking_uri": f"sqlite:///{store}"}
    )

    def interrupted(engine: Any) -> None:  # after the first tables, before the migrations
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(mlflow_db, "_upgrade_db", interrupted)
        with pytest.raises(KeyboardInterrupt):
            tracking.check_tracking_store(settings)
    assert list(store.parent.iterdir()) == []
    tracking.check_tracking_store(settings)
    assert [p.name for p in store.parent.iterdir()] == ["mlflow.db"]
    assert MlflowClient(tracking_uri=f"sqlite:///{store}").search_experiments()


def test_a_store_left_half_made_by_a_killed_process_is_removed(tmp_path: Path) -> None:
    """SIGKILL while MLflow creates a store leaves its staging file beside the store's path;
    the next run removes those of processes that are gone and leaves a running one's."""
    store = tmp_path / "data" / "mlflow.db"
    store.parent.mkdir()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    orphan = store.parent / f".mlflow.db.creating-{int(gone.stdout)}-1"
    running = store.parent / f".mlflow.db.creating-{os.getpid()}-2"
    unrelated = store.parent / ".mlflow.db.creating-nonsense"
    for path in (orphan, running, unrelated):
        path.write_bytes(b"half a store")
    settings = load_settings(
        data_dir=tmp_path / "data", mlflow={"tracking_uri": f"sqlite:///{store}"}
    )
    tracking.check_tracking_store(settings)
    assert sorted(p.name for p in store.parent.iterdir()) == sorted(
        ["mlflow.db", running.name, unrelated.name]
    )


def test_a_tracking_server_lost_mid_run_holds_the_training_up_a_few_tries(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, mute_server: _MuteServer
) -> None:
    """A run's calls to a server that stops answering mid-run: MLflow's own retries took some
    four minutes (a refused connection) to twenty (a hung server, 120 s a try) before the
    warning. Now 4 tries (RUN_HTTP_RETRIES 3) of at most RUN_HTTP_TIMEOUT each, then one
    warning, and the run's later calls are no-ops."""
    monkeypatch.setattr(tracking, "RUN_HTTP_TIMEOUT", 1)  # the hung server's wait
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")  # tries, not their waits
    warnings: list[str] = []
    run = tracking.MlflowRun(settings, TINY, warn=warnings.append)
    run._client = MlflowClient(tracking_uri=mute_server.uri)  # the server goes away
    run.log_metrics({"eval/score_ratio": 0.9}, step=100)
    run.log_metrics({"eval/score_ratio": 0.9}, step=200)
    assert len(mute_server.taken) == 1 + tracking.RUN_HTTP_RETRIES
    assert len(warnings) == 1 and "MLflow tracking stopped at step 100" in warnings[0]
