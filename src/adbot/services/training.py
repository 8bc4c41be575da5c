"""Training runs: agents, their frozen configs, runs and checkpoints, recorded as they happen.

``train_agent`` writes, each in its own short transaction: the agent (found or created by
name in the account), the config version (found by its SHA-256, else the next version),
the run (``running``, then ``succeeded``, ``failed`` with the error or ``cancelled``; one
whose process was killed outright is recorded ``failed`` by the next run into its
directory; a resumed run's metrics name the checkpoint it continues), and one
``model_checkpoints`` row per checkpoint (version, file URI, sha256, evaluation score).
When the run succeeds its best checkpoint (the row of the model ``best/`` holds, which a
resumed run may have from the run it continues) becomes the agent's active one and the
agent is ``ready``. The training itself is :func:`adbot.rl.train.train`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from adbot.config import Settings, get_settings
from adbot.db.engine import lost_write_race
from adbot.db.models import (
    Account,
    Agent,
    AgentConfig,
    AgentKind,
    AgentStatus,
    ModelCheckpoint,
    TrainingRun,
    TrainingStatus,
)
from adbot.errors import Conflict, InvalidInput, NotFound
from adbot.rl.checkpoints import CheckpointMeta, sha256_file
from adbot.rl.config import TrainingConfig
from adbot.rl.tracking import check_tracking_store, end_mlflow_run
from adbot.rl.train import TrainingResult, check_run, claim_output, resumed_from, train
from adbot.services.common import writing

LOCAL_ACCOUNT_SLUG = "local"
ALGORITHM = "ppo"
# Runs side by side (the seeds of ppo:default) share their account and agent: they race to
# create the same rows, to number their checkpoints and to write at the same moment. The
# later write fails, on PostgreSQL as a duplicate key, on SQLite as "database is locked" at
# once (``lost_write_race``). Each unit of work is tried again, from its reads, after a
# short random wait: RACE_ATTEMPTS times, waits doubling from RACE_FIRST_WAIT seconds up to
# RACE_LONGEST_WAIT (about 5 s in all).
RACE_ATTEMPTS = 8
RACE_FIRST_WAIT = 0.05
RACE_LONGEST_WAIT = 1.0
T = TypeVar("T")


def training_account(*, session: Session, slug: str | None) -> Account:
    """The account a CLI training run belongs to.

    A slug must name an existing account. Without one: the only account, or, in a fresh
    embedded install with no account yet, a new ``local`` account.
    """
    if slug is not None:
        account = session.scalar(select(Account).where(Account.slug == slug))
        if account is None:
            raise NotFound(f"no account '{slug}'")
        return account
    return _raced(session, lambda: _only_account(session))


def _only_account(session: Session) -> Account:
    with writing(session):
        accounts = session.scalars(select(Account).limit(2)).all()
        if len(accounts) > 1:
            raise InvalidInput("several accounts exist: name one with --account SLUG")
        if accounts:
            return accounts[0]
        account = Account(slug=LOCAL_ACCOUNT_SLUG, name="Local")
        session.add(account)
    return account


def _raced(session: Session, unit: Callable[[], T]) -> T:
    """``unit`` (one ``writing`` unit of work, reads included), tried again when another
    run's write raced it (see ``RACE_ATTEMPTS``)."""
    for attempt in range(RACE_ATTEMPTS):
        try:
            return unit()
        except (Conflict, OperationalError) as exc:
            session.rollback()
            if not (isinstance(exc, Conflict) or lost_write_race(exc)):
                raise
            if attempt == RACE_ATTEMPTS - 1:
                raise
            wait = min(RACE_LONGEST_WAIT, RACE_FIRST_WAIT * 2**attempt)
            time.sleep(wait * random.uniform(0.5, 1.5))  # apart, not in step again
    raise AssertionError("unreachable")  # pragma: no cover


def register_agent_config(
    *, session: Session, account_id: int, config: TrainingConfig
) -> tuple[Agent, AgentConfig]:
    """The agent named ``config.name`` and the version row of this exact config."""
    return _raced(session, lambda: _agent_and_config(session, account_id=account_id, config=config))


def _agent_and_config(
    session: Session, *, account_id: int, config: TrainingConfig
) -> tuple[Agent, AgentConfig]:
    digest = config.digest()  # its checkpoints' config_fingerprint starts it
    with writing(session):
        agent = session.scalar(
            select(Agent).where(Agent.account_id == account_id, Agent.name == config.name)
        )
        if agent is None:
            agent = Agent(
                account_id=account_id,
                name=config.name,
                kind=AgentKind.RL,
                algorithm=ALGORITHM,
                description="PPO bid-pacing agent (adbot train)",
            )
            session.add(agent)
            session.flush()
        row = session.scalar(
            select(AgentConfig).where(
                AgentConfig.agent_id == agent.id, AgentConfig.config_hash == digest
            )
        )
        if row is None:
            latest = session.scalar(
                select(func.max(AgentConfig.version)).where(AgentConfig.agent_id == agent.id)
            )
            row = AgentConfig(
                agent_id=agent.id,
                version=(latest or 0) + 1,
                config=config.to_dict(),
                config_hash=digest,
                seed=config.seed,
            )
            session.add(row)
    return agent, row


class _RecordingHooks:
    """Writes the run's MLflow id and each checkpoint as training reports them."""

    def __init__(self, session: Session, run: TrainingRun) -> None:
        self.session, self.run = session, run
        self.checkpoints: list[ModelCheckpoint] = []

    def on_start(self, mlflow_run_id: str | None) -> None:
        with writing(self.session):
            self.run.mlflow_run_id = mlflow_run_id

    def on_checkpoint(
        self, directory: Path, meta: CheckpointMeta, metrics: dict[str, float]
    ) -> None:
        def numbered() -> ModelCheckpoint:
            # Numbered per agent, which the seeds side by side share: another run may take
            # the same number first, and the unit reads the highest again.
            with writing(self.session):
                latest = self.session.scalar(
                    select(func.max(ModelCheckpoint.version)).where(
                        ModelCheckpoint.agent_id == self.run.agent_id
                    )
                )
                row = ModelCheckpoint(
                    agent_id=self.run.agent_id,
                    training_run_id=self.run.id,
                    version=(latest or 0) + 1,
                    uri=directory.resolve().as_uri(),
                    sha256=meta.model_sha256,
                    timesteps=meta.timesteps,
                    metrics={**metrics, "score_ratio": meta.score_ratio},
                )
                self.session.add(row)
            return row

        self.checkpoints.append(_raced(self.session, numbered))


class RunCancelled(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a recorded run, which is now recorded ``cancelled``; a
    plain ``KeyboardInterrupt`` from :func:`train_agent` came before a run was recorded."""


@dataclass(frozen=True)
class TrainingRecord:
    run: TrainingRun
    agent: Agent
    active_checkpoint: ModelCheckpoint | None
    result: TrainingResult


def _model_sha256(checkpoint_dir: Path) -> str | None:
    model = checkpoint_dir / "model.zip"
    return sha256_file(model) if model.is_file() else None


def _best_checkpoint(
    session: Session, agent: Agent, checkpoints: list[ModelCheckpoint], digest: str | None
) -> ModelCheckpoint | None:
    """The row of the model ``best/`` holds (``digest``): this run's, else the agent's
    latest with it. A resumed run none of whose evaluations beat the earlier best keeps
    that checkpoint of the run it continues as ``best/``: only its rows hold it."""
    if digest is None:
        return None
    mine = next((c for c in reversed(checkpoints) if c.sha256 == digest), None)
    return mine or session.scalar(
        select(ModelCheckpoint)
        .where(ModelCheckpoint.agent_id == agent.id, ModelCheckpoint.sha256 == digest)
        .order_by(ModelCheckpoint.version.desc())
        .limit(1)
    )


def _activate(session: Session, agent: Agent, checkpoint: ModelCheckpoint | None) -> None:
    if checkpoint is None:
        return
    session.execute(
        update(ModelCheckpoint)
        .where(ModelCheckpoint.agent_id == agent.id, ModelCheckpoint.is_active.is_(True))
        .values(is_active=False)
    )
    session.flush()
    checkpoint.is_active = True


def train_agent(
    *,
    session: Session,
    account_id: int,
    config: TrainingConfig,
    output_dir: Path,
    resume: Path | None = None,
    settings: Settings | None = None,
    console: Console | None = None,
) -> TrainingRecord:
    """Train ``config`` (or resume a checkpoint) and record every step of it. What can be
    checked before training (scenario files, output directory, resumed checkpoint, the
    MLflow tracking store) is checked before anything is recorded."""
    start = check_run(config, output_dir=output_dir, resume=resume)
    settings = settings or get_settings()
    check_tracking_store(settings)
    claim = claim_output(output_dir, start)  # two runs into one directory: one is refused
    try:
        agent, agent_config = register_agent_config(
            session=session, account_id=account_id, config=config
        )

        def started() -> tuple[TrainingRun, AgentStatus]:
            with writing(session):
                run = TrainingRun(
                    agent_id=agent.id,
                    agent_config_id=agent_config.id,
                    status=TrainingStatus.RUNNING,
                    scenario=config.env.scenario or "random",
                    seed=config.seed,
                    total_timesteps=config.total_timesteps,
                    started_at=datetime.now(UTC),
                    metrics=resumed_from(start),  # kept whatever way the run ends
                )
                session.add(run)
                before = agent.status
                agent.status = AgentStatus.TRAINING
            return run, before

        run, before = _raced(session, started)
    except BaseException:
        claim.release()
        raise
    hooks = _RecordingHooks(session, run)
    try:  # the run is recorded: however it stops now, it is recorded stopped
        _end_interrupted(session, claim.previous, settings, by=run)
        claim.note(training_run_id=run.id, agent_id=run.agent_id, seed=run.seed)
        result = train(
            config,
            output_dir=output_dir,
            resume=resume,
            settings=settings,
            hooks=hooks,
            console=console,
            start=start,
            claim=claim,
        )
    except BaseException as exc:
        _record_failure(session, run, agent, before, exc)
        claim.release()  # train released it already, unless it stopped before train began
        if isinstance(exc, KeyboardInterrupt):
            raise RunCancelled from None
        raise
    best_sha256 = _model_sha256(result.best_checkpoint)
    best: ModelCheckpoint | None = None

    def succeeded() -> None:
        nonlocal best
        with writing(session):
            best = _best_checkpoint(session, agent, hooks.checkpoints, best_sha256)
            run.status = TrainingStatus.SUCCEEDED
            run.finished_at = datetime.now(UTC)
            run.metrics = {**run.metrics, **_run_metrics(result)}
            agent.status = AgentStatus.READY
            _activate(session, agent, best)

    _raced(session, succeeded)
    return TrainingRecord(run=run, agent=agent, active_checkpoint=best, result=result)


def _end_interrupted(
    session: Session, previous: dict[str, Any], settings: Settings, *, by: TrainingRun
) -> None:
    """The run that last held this run directory, if it is still recorded as running: its
    process ended without saying how (killed outright: SIGKILL, the OOM killer, a power
    cut), as the directory could be claimed. Recorded as failed, its MLflow run as killed.
    The note's agent and seed must match the row (a note from another database does not)."""
    run_id = previous.get("training_run_id")
    row = session.get(TrainingRun, run_id) if isinstance(run_id, int) else None
    if (
        row is None
        or row.status != TrainingStatus.RUNNING
        or (row.agent_id, row.seed) != (previous.get("agent_id"), previous.get("seed"))
    ):
        return
    with writing(session):
        row.status = TrainingStatus.FAILED
        row.error = (
            "interrupted: the process training it ended without recording how (killed, "
            f"out of memory, the machine stopped); found by training run {by.id}"
        )
        row.finished_at = datetime.now(UTC)
    if row.mlflow_run_id is not None:
        end_mlflow_run(settings, row.mlflow_run_id, "KILLED")


def _run_metrics(result: TrainingResult) -> dict[str, Any]:
    return {
        "best_score_ratio": result.best_score_ratio,
        "timesteps": result.timesteps,
        "wall_seconds": round(result.wall_seconds, 1),
        "output_dir": str(result.output_dir.resolve()),
        "history": result.history,
    }


def _record_failure(
    session: Session, run: TrainingRun, agent: Agent, before: AgentStatus, exc: BaseException
) -> None:
    """The run failed or was cancelled; its agent goes back to ``draft`` only if it has no
    active checkpoint (an earlier run's model stays usable: the agent keeps its status from
    before the run, ``ready`` if that was a draft or an interrupted training)."""
    session.rollback()
    cancelled = isinstance(exc, KeyboardInterrupt)

    def recorded() -> None:
        with writing(session):
            run.status = TrainingStatus.CANCELLED if cancelled else TrainingStatus.FAILED
            run.error = (
                "cancelled: Ctrl-C or SIGTERM stopped the run; its checkpoints are kept"
                if cancelled
                else f"{type(exc).__name__}: {exc}"[:2000]
            )
            run.finished_at = datetime.now(UTC)
            active = session.scalar(
                select(ModelCheckpoint.id).where(
                    ModelCheckpoint.agent_id == agent.id, ModelCheckpoint.is_active.is_(True)
                )
            )
            if active is None:
                agent.status = AgentStatus.DRAFT
            elif before in (AgentStatus.DRAFT, AgentStatus.TRAINING):
                agent.status = AgentStatus.READY
            else:
                agent.status = before

    _raced(session, recorded)
