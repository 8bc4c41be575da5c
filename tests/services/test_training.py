"""The training service: bad input records nothing; a failed run leaves a ready agent ready."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adbot.config import Settings, load_settings
from adbot.db.models import Agent, AgentStatus, ModelCheckpoint, TrainingRun, TrainingStatus
from adbot.errors import InvalidInput, ScenarioError
from adbot.rl.config import TrainingConfig
from adbot.services.training import train_agent, training_account

pytestmark = pytest.mark.slow

TINY = TrainingConfig(
    name="tiny",
    seed=5,
    total_timesteps=128,
    n_envs=2,
    vec_env="dummy",
    env={"max_daily_queries": 1500.0},
    ppo={"n_steps": 64, "batch_size": 64, "n_epochs": 1, "net_arch": (16, 16)},
    evaluation={
        "every_timesteps": 128,
        "random_scenarios": 1,
        "max_daily_queries": 1500.0,
        "min_conversions": 0.0,
    },
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "test"},
    )


def _train(session: Session, config: TrainingConfig, output: Path, settings: Settings) -> None:
    account = training_account(session=session, slug=None)
    train_agent(
        session=session, account_id=account.id, config=config, output_dir=output, settings=settings
    )


def _state(session: Session) -> tuple[int, AgentStatus | None, int]:
    runs = session.scalar(select(func.count()).select_from(TrainingRun)) or 0
    agent = session.scalar(select(Agent).where(Agent.name == "tiny"))
    active = session.scalar(select(func.count()).where(ModelCheckpoint.is_active.is_(True)))
    return runs, None if agent is None else agent.status, active or 0


@pytest.mark.parametrize("bad", ["output-is-a-file", "output-holds-a-run", "bad-scenario"])
def test_bad_input_records_nothing(
    bad: str, tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    _train(sqlite_session, TINY, tmp_path / "first", settings)
    before = _state(sqlite_session)
    assert before[1:] == (AgentStatus.READY, 1)
    afile = tmp_path / "afile"
    afile.write_text("")
    config, output = {
        "output-is-a-file": (TINY, afile),
        "output-holds-a-run": (TINY, tmp_path / "first"),
        "bad-scenario": (TINY.with_overrides(env={"scenario": "no-such"}), tmp_path / "x"),
    }[bad]
    with pytest.raises((InvalidInput, ScenarioError)):
        _train(sqlite_session, config, output, settings)
    assert _state(sqlite_session) == before


def test_a_failed_run_leaves_an_agent_with_a_model_ready(
    tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    _train(sqlite_session, TINY, tmp_path / "first", settings)
    runs, _, _ = _state(sqlite_session)
    diverging = TINY.with_overrides(total_timesteps=256, ppo={"learning_rate": 50.0})
    with pytest.raises(InvalidInput, match="training diverged"):
        _train(sqlite_session, diverging, tmp_path / "second", settings)
    assert _state(sqlite_session) == (runs + 1, AgentStatus.READY, 1)
    last = sqlite_session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc())).first()
    assert last is not None and last.status == TrainingStatus.FAILED


def test_a_failed_first_run_leaves_a_draft(
    tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    diverging = TINY.with_overrides(total_timesteps=256, ppo={"learning_rate": 50.0})
    with pytest.raises(InvalidInput, match="training diverged"):
        _train(sqlite_session, diverging, tmp_path / "run", settings)
    assert _state(sqlite_session)[1:] == (AgentStatus.DRAFT, 0)
