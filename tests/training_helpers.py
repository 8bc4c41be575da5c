"""What the training tests share (tests/rl, tests/cli): the tiny config, a run through the
training service, and a directory's files."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session

from adbot.config import Settings
from adbot.rl.config import TrainingConfig
from adbot.services.training import train_agent, training_account

# Evaluated on one small random scenario with enough conversions (and a value goal) for
# score ratios that differ between checkpoints: a draw of a few conversions scored every
# checkpoint 0, so the best checkpoint and its recorded ratio were 0 whatever was played.
TINY = TrainingConfig(
    name="tiny",
    seed=5,
    total_timesteps=256,
    n_envs=2,
    vec_env="dummy",
    env={"max_daily_queries": 1500.0},
    ppo={"n_steps": 64, "batch_size": 64, "n_epochs": 1, "net_arch": (16, 16)},
    evaluation={
        "every_timesteps": 128,
        "random_scenarios": 1,
        "max_daily_queries": 1500.0,
        "min_conversions": 10.0,
        "seed": 29,
    },
)
LONGER = TINY.with_overrides(total_timesteps=384)  # checkpoints at 128, 256, 384


def diverging(config: TrainingConfig) -> TrainingConfig:
    """``config`` with a learning rate of 50: its first update leaves non-finite weights.
    Above the schema's bound (1), so copied without validation; a run within the bounds can
    diverge too, only not as surely in 256 timesteps."""
    ppo = config.ppo.model_copy(update={"learning_rate": 50.0})
    return config.model_copy(update={"ppo": ppo})


def train_recorded(
    session: Session,
    config: TrainingConfig,
    output: Path,
    settings: Settings,
    resume: Path | None = None,
) -> None:
    """A run through the training service, recorded in ``session``'s database."""
    account = training_account(session=session, slug=None)
    train_agent(
        session=session,
        account_id=account.id,
        config=config,
        output_dir=output,
        resume=resume,
        settings=settings,
    )


def set_score(checkpoint: Path, score: float) -> None:
    """``checkpoint.json``'s evaluation score edited (the model and its sha256 unchanged)."""
    meta_file = checkpoint / "checkpoint.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "score_ratio": score}))


def tree(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` and its bytes."""
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }
