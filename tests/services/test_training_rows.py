"""Training runs started at the same moment share their account, agent and config rows.

Three `adbot train` runs started together (the seeds of ppo:default side by side) on a fresh
embedded install failed two of three with a traceback: "database is locked". Each process
read the agent table, one created the agent, and the others' inserts failed. These tests play
that race between two sessions on committed databases, without training.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from adbot.db.models import (
    Account,
    Agent,
    AgentConfig,
    ModelCheckpoint,
    TrainingRun,
    TrainingStatus,
)
from adbot.rl.checkpoints import CheckpointMeta
from adbot.services.common import writing
from adbot.services.training import _RecordingHooks, register_agent_config, training_account
from training_helpers import TINY


def test_a_run_reading_before_another_registers_finds_its_rows_on_sqlite(
    own_sqlite_engine: Engine,
) -> None:
    """The second session's read snapshot starts before the first creates the account and
    the agent: its own inserts fail at once ("database is locked", no busy timeout waits
    for a snapshot), and read again it takes the first one's rows."""
    with Session(own_sqlite_engine) as first, Session(own_sqlite_engine) as second:
        assert second.scalars(select(Account)).all() == []  # its snapshot: no account yet
        account = training_account(session=first, slug=None)
        assert training_account(session=second, slug=None).id == account.id
        second.scalars(select(Agent)).all()  # a snapshot without the agent
        agent, row = register_agent_config(session=first, account_id=account.id, config=TINY)
        again, again_row = register_agent_config(session=second, account_id=account.id, config=TINY)
        assert (again.id, again_row.id, again_row.version) == (agent.id, row.id, 1)
        other = TINY.with_overrides(seed=TINY.seed + 1)
        _, seed_row = register_agent_config(session=second, account_id=account.id, config=other)
        assert seed_row.version == 2
    with Session(own_sqlite_engine) as check:
        assert len(check.scalars(select(Account)).all()) == 1
        assert len(check.scalars(select(Agent)).all()) == 1
        assert len(check.scalars(select(AgentConfig)).all()) == 2


def test_a_run_inserting_the_same_agent_waits_and_takes_it_on_postgresql(
    own_engine: Engine,
) -> None:
    """On PostgreSQL the second insert of the same agent waits for the first transaction,
    then fails as a duplicate key once it commits; read again, it is the first one's."""
    with Session(own_engine) as setup:
        account = training_account(session=setup, slug=None)
        account_id = account.id
    first = Session(own_engine)
    first.add(Agent(account_id=account_id, name=TINY.name, kind="rl", algorithm="ppo"))
    first.flush()  # inserted, not committed: the other insert of this name waits for it
    found: dict[str, object] = {}

    def second_run() -> None:
        with Session(own_engine) as second:
            try:
                agent, _ = register_agent_config(session=second, account_id=account_id, config=TINY)
                found["agent"] = agent.id
            except BaseException as exc:  # reported below
                found["error"] = exc

    thread = threading.Thread(target=second_run)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive()  # blocked on the first insert
    first.commit()
    first_id = first.scalar(select(Agent.id).where(Agent.name == TINY.name))
    first.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and "error" not in found, found.get("error")
    assert found["agent"] == first_id


def _running(session: Session, agent: Agent, config_row: AgentConfig, seed: int) -> TrainingRun:
    with writing(session):
        run = TrainingRun(
            agent_id=agent.id,
            agent_config_id=config_row.id,
            status=TrainingStatus.RUNNING,
            scenario="random",
            seed=seed,
            total_timesteps=1,
            started_at=datetime.now(UTC),
        )
        session.add(run)
    return run


def test_checkpoints_of_runs_side_by_side_are_numbered_apart_on_sqlite(
    own_sqlite_engine: Engine, tmp_path: Path
) -> None:
    """Seeds side by side share their agent, whose checkpoints are numbered in turn: the
    second run read the numbers before the first wrote its checkpoint, and its own write
    failed ("database is locked"), ending the training. Read again, it takes the next."""
    meta = CheckpointMeta(
        timesteps=25_000, seed=0, model_sha256="0" * 64, score_ratio=0.9,
        created_at="2026-11-28T00:00:00Z", adbot_version="test", config_fingerprint="f" * 16,
    )  # fmt: skip
    with Session(own_sqlite_engine) as first, Session(own_sqlite_engine) as second:
        account = training_account(session=first, slug=None)
        agent, config_row = register_agent_config(session=first, account_id=account.id, config=TINY)
        hooks = [
            _RecordingHooks(session, _running(session, agent, config_row, seed))
            for seed, session in enumerate((first, second))
        ]
        second.scalars(select(ModelCheckpoint)).all()  # its snapshot: no checkpoint yet
        hooks[0].on_checkpoint(tmp_path, meta, {})
        hooks[1].on_checkpoint(tmp_path, meta, {})
        assert [hook.checkpoints[0].version for hook in hooks] == [1, 2]
