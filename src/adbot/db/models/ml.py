"""Machine learning: bidding agents, their frozen configs, training runs and checkpoints."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from adbot.db.base import (
    Base,
    CreatedAt,
    EnumText,
    IntPK,
    JSONType,
    UpdatedAt,
    children,
    non_negative,
    one_of,
)

if TYPE_CHECKING:
    from adbot.db.models.accounts import Account, User


class AgentKind(StrEnum):
    RL = "rl"
    BASELINE = "baseline"


class AgentStatus(StrEnum):
    DRAFT = "draft"
    TRAINING = "training"
    READY = "ready"
    ACTIVE = "active"
    RETIRED = "retired"


class TrainingStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


def _sha256_hex(column: str) -> CheckConstraint:
    return CheckConstraint(f"length({column}) = 64", name=f"{column}_length")


class Agent(Base):
    """A named bidding agent of an account: a trained policy or a baseline (pid, fixed...)."""

    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        one_of("kind", AgentKind),
        one_of("status", AgentStatus),
    )

    id: Mapped[IntPK]
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[AgentKind] = mapped_column(EnumText(AgentKind))
    # Open set (ppo, pid, onlinelp, fixed, ...): new algorithms need no migration.
    algorithm: Mapped[str] = mapped_column(String(32))
    status: Mapped[AgentStatus] = mapped_column(
        EnumText(AgentStatus), default=AgentStatus.DRAFT, server_default="draft"
    )
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    account: Mapped[Account] = relationship(back_populates="agents", lazy="raise")
    configs: Mapped[list[AgentConfig]] = children("agent")
    training_runs: Mapped[list[TrainingRun]] = children("agent")
    checkpoints: Mapped[list[ModelCheckpoint]] = children("agent")


class AgentConfig(Base):
    """One frozen, versioned hyperparameter set (with its seed) of an agent."""

    __tablename__ = "agent_configs"
    __table_args__ = (
        UniqueConstraint("agent_id", "version"),
        UniqueConstraint("agent_id", "config_hash"),
        Index("ix_agent_configs_created_by_id", "created_by_id"),
        CheckConstraint("version >= 1", name="version_positive"),
        *non_negative("seed"),
        _sha256_hex("config_hash"),
    )

    id: Mapped[IntPK]
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # SHA-256 of the canonical JSON, so saving the same config twice finds the existing row.
    config_hash: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(BigInteger)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[CreatedAt]

    agent: Mapped[Agent] = relationship(back_populates="configs", lazy="raise")
    created_by: Mapped[User | None] = relationship(lazy="raise")


class TrainingRun(Base):
    __tablename__ = "training_runs"
    __table_args__ = (
        UniqueConstraint("mlflow_run_id"),
        Index("ix_training_runs_agent_id_created_at", "agent_id", "created_at"),
        Index("ix_training_runs_agent_config_id", "agent_config_id"),
        Index("ix_training_runs_status", "status"),
        one_of("status", TrainingStatus),
        *non_negative("total_timesteps", "seed"),
        CheckConstraint(
            "finished_at IS NULL OR started_at IS NULL OR finished_at >= started_at",
            name="finished_after_started",
        ),
    )

    id: Mapped[IntPK]
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    # NO ACTION: the config a run trained with must stay (reproducibility).
    agent_config_id: Mapped[int] = mapped_column(
        ForeignKey("agent_configs.id", ondelete="NO ACTION")
    )
    status: Mapped[TrainingStatus] = mapped_column(
        EnumText(TrainingStatus), default=TrainingStatus.QUEUED, server_default="queued"
    )
    scenario: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(BigInteger)
    total_timesteps: Mapped[int] = mapped_column(BigInteger)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]

    agent: Mapped[Agent] = relationship(back_populates="training_runs", lazy="raise")
    agent_config: Mapped[AgentConfig] = relationship(lazy="raise")


_ACTIVE = text("is_active")


class ModelCheckpoint(Base):
    """A saved policy, versioned per agent; at most one is the agent's active checkpoint."""

    __tablename__ = "model_checkpoints"
    __table_args__ = (
        UniqueConstraint("agent_id", "version"),
        Index(
            "uq_model_checkpoints_one_active_per_agent",
            "agent_id",
            unique=True,
            postgresql_where=_ACTIVE,
            sqlite_where=_ACTIVE,
        ),
        Index("ix_model_checkpoints_training_run_id", "training_run_id"),
        CheckConstraint("version >= 1", name="version_positive"),
        *non_negative("timesteps"),
        _sha256_hex("sha256"),
    )

    id: Mapped[IntPK]
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    # SET NULL: a checkpoint stays usable when its run record is cleaned up.
    training_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL")
    )
    version: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    timesteps: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[CreatedAt]

    agent: Mapped[Agent] = relationship(back_populates="checkpoints", lazy="raise")
    training_run: Mapped[TrainingRun | None] = relationship(lazy="raise")
