"""What a resumed run must keep from its checkpoint (seed, evaluation pairs), what its
records say it continued, and which checkpoint its agent then plays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

import adbot.rl.train as train_module
from adbot.config import Settings
from adbot.db.models import Agent, AgentStatus, ModelCheckpoint, TrainingRun
from adbot.errors import InvalidInput
from adbot.rl.checkpoints import read_meta
from adbot.rl.train import check_run, train
from adbot.services.training import RunCancelled
from training_helpers import LONGER, TINY, set_score, train_recorded

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def final(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The final checkpoint of a TINY run (read, never written, by the tests)."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    return train(TINY, output_dir=out, track=False).final_checkpoint


def test_a_resume_on_other_evaluation_pairs_is_refused_by_name(final: Path, tmp_path: Path) -> None:
    """The run's best so far was scored on the checkpoint's pairs: kept as the best to beat,
    it was compared with scores on others, and reported as the run's best_score_ratio."""
    other = LONGER.with_overrides(evaluation={"seed": 30, "episodes": 2})
    with pytest.raises(InvalidInput) as refused:
        check_run(other, output_dir=tmp_path / "next", resume=final)
    assert refused.value.message == (
        f"checkpoint {final} was evaluated on other pairs (evaluation.episodes, "
        "evaluation.seed); its scores would not compare with this run's: use its values, "
        "or train a new run"
    )
    # How often it evaluates is not what it evaluates on.
    sooner = LONGER.with_overrides(evaluation={"every_timesteps": 64})
    assert check_run(sooner, output_dir=tmp_path / "next", resume=final).checkpoint is not None
    assert not (tmp_path / "next").exists()


def test_a_resume_keeps_its_seed_and_its_records_name_the_checkpoint(
    final: Path, tmp_path: Path, settings: Settings, sqlite_session: Session
) -> None:
    """``--seed 6 --resume`` (a checkpoint of seed 5) was recorded as seed 6's run, and
    nothing recorded which checkpoint a run continued."""
    with pytest.raises(InvalidInput) as refused:
        check_run(LONGER.with_overrides(seed=6), output_dir=tmp_path / "next", resume=final)
    assert refused.value.message == (
        f"checkpoint {final} was trained with seed 5, not 6: a resumed run keeps its "
        "checkpoint's seed (--seed 5), or train a new run"
    )
    train_recorded(sqlite_session, LONGER, tmp_path / "next", settings, resume=final)
    run = sqlite_session.scalars(select(TrainingRun)).one()
    sha256 = read_meta(final).model_sha256
    assert run.seed == 5
    assert run.metrics["resumed_from"] == str(final.resolve())
    assert run.metrics["resumed_from_sha256"] == sha256
    assert run.metrics["timesteps"] == 384  # the run's own metrics beside them
    tags = (
        mlflow.tracking.MlflowClient(settings.mlflow.tracking_uri)
        .get_run(run.mlflow_run_id or "")
        .data.tags
    )
    assert tags["adbot.resumed_from"] == str(final.resolve())
    assert tags["adbot.resumed_from_sha256"] == sha256


def test_a_resume_that_beats_no_earlier_evaluation_activates_the_earlier_best(
    tmp_path: Path, settings: Settings, sqlite_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancelled run (its checkpoints recorded, none active), resumed: ``best/`` still
    holds the cancelled run's checkpoint, which only searching this run's rows missed, and
    the agent was ``ready`` with no active checkpoint."""
    original = train_module.evaluate_policy
    calls = [0]

    def ctrl_c_at_the_second(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate_policy", ctrl_c_at_the_second)
    out = tmp_path / "run"
    with pytest.raises(RunCancelled):
        train_recorded(sqlite_session, TINY, out, settings)
    monkeypatch.setattr(train_module, "evaluate_policy", original)
    first = sqlite_session.scalars(select(ModelCheckpoint)).one()
    assert (first.timesteps, first.is_active) == (128, False)
    set_score(out / "best", 5.0)  # better than any evaluation to come

    resume = out / "checkpoints" / "step-000000128"
    train_recorded(sqlite_session, TINY, out, settings, resume=resume)
    agent = sqlite_session.scalars(select(Agent)).one()
    active = sqlite_session.scalars(
        select(ModelCheckpoint).where(ModelCheckpoint.is_active.is_(True))
    ).all()
    assert agent.status == AgentStatus.READY
    assert [row.id for row in active] == [first.id]
