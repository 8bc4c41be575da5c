"""Experiments: A/B tests and bandits over campaigns, ad groups or keywords.

Arms (``bandit_arms``) are the variants of any experiment: control and treatment of an
A/B test, or the arms of a bandit with their Beta posterior. An assignment puts one
entity (exactly one of campaign, ad group or keyword, matching ``experiments.unit``) in
one arm; each entity is assigned at most once per experiment.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from adbot.db.base import (
    Base,
    BigPK,
    Count,
    CreatedAt,
    EnumText,
    IntPK,
    Micros,
    UpdatedAt,
    children,
    non_negative,
    one_of,
    utcnow,
)

if TYPE_CHECKING:
    from adbot.db.models.accounts import Account, User
    from adbot.db.models.campaigns import AdGroup, Campaign, Keyword
    from adbot.db.models.ml import Agent


class ExperimentKind(StrEnum):
    AB_TEST = "ab_test"
    BANDIT = "bandit"


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"


class ExperimentUnit(StrEnum):
    CAMPAIGN = "campaign"
    AD_GROUP = "ad_group"
    KEYWORD = "keyword"


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        Index("ix_experiments_account_id_status", "account_id", "status"),
        Index("ix_experiments_created_by_id", "created_by_id"),
        one_of("kind", ExperimentKind),
        one_of("status", ExperimentStatus),
        one_of("unit", ExperimentUnit),
        CheckConstraint(
            "ended_at IS NULL OR started_at IS NULL OR ended_at >= started_at",
            name="ended_after_started",
        ),
    )

    id: Mapped[IntPK]
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ExperimentKind] = mapped_column(EnumText(ExperimentKind))
    status: Mapped[ExperimentStatus] = mapped_column(
        EnumText(ExperimentStatus), default=ExperimentStatus.DRAFT, server_default="draft"
    )
    unit: Mapped[ExperimentUnit] = mapped_column(EnumText(ExperimentUnit))
    hypothesis: Mapped[str] = mapped_column(Text, default="", server_default="")
    primary_metric: Mapped[str] = mapped_column(String(64))
    # Salt of the deterministic assignment hash: a new salt reshuffles the split.
    salt: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    account: Mapped[Account] = relationship(back_populates="experiments", lazy="raise")
    created_by: Mapped[User | None] = relationship(lazy="raise")
    arms: Mapped[list[BanditArm]] = children("experiment")
    assignments: Mapped[list[ExperimentAssignment]] = children("experiment")
    results: Mapped[list[ExperimentResult]] = children("experiment")


_CONTROL = text("is_control")


class BanditArm(Base):
    """A variant of an experiment: which policy it runs, its traffic share, bandit state."""

    __tablename__ = "bandit_arms"
    __table_args__ = (
        UniqueConstraint("experiment_id", "name"),
        Index(
            "uq_bandit_arms_one_control_per_experiment",
            "experiment_id",
            unique=True,
            postgresql_where=_CONTROL,
            sqlite_where=_CONTROL,
        ),
        Index("ix_bandit_arms_agent_id", "agent_id"),
        CheckConstraint("traffic_weight BETWEEN 0 AND 1", name="traffic_weight_range"),
        CheckConstraint("alpha > 0 AND beta > 0", name="beta_prior_positive"),
        *non_negative("pulls"),
    )

    id: Mapped[IntPK]
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    is_control: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # SET NULL: the arm's record (and its results) survive the agent.
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    # A baseline policy name when the arm runs no stored agent.
    policy: Mapped[str | None] = mapped_column(String(64))
    traffic_weight: Mapped[float] = mapped_column(Double, default=0.5, server_default="0.5")
    alpha: Mapped[float] = mapped_column(Double, default=1.0, server_default="1")
    beta: Mapped[float] = mapped_column(Double, default=1.0, server_default="1")
    pulls: Mapped[Count] = mapped_column(default=0, server_default="0")
    reward_sum: Mapped[float] = mapped_column(Double, default=0.0, server_default="0")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    experiment: Mapped[Experiment] = relationship(back_populates="arms", lazy="raise")
    agent: Mapped[Agent | None] = relationship(lazy="raise")


_ONE_TARGET = (
    "(CASE WHEN campaign_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN ad_group_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN keyword_id IS NULL THEN 0 ELSE 1 END) = 1"
)


class ExperimentAssignment(Base):
    __tablename__ = "experiment_assignments"
    __table_args__ = (
        UniqueConstraint("experiment_id", "campaign_id"),
        UniqueConstraint("experiment_id", "ad_group_id"),
        UniqueConstraint("experiment_id", "keyword_id"),
        Index("ix_experiment_assignments_arm_id", "arm_id"),
        Index("ix_experiment_assignments_campaign_id", "campaign_id"),
        Index("ix_experiment_assignments_ad_group_id", "ad_group_id"),
        Index("ix_experiment_assignments_keyword_id", "keyword_id"),
        CheckConstraint(_ONE_TARGET, name="exactly_one_target"),
    )

    id: Mapped[BigPK]
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("bandit_arms.id", ondelete="CASCADE"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    ad_group_id: Mapped[int | None] = mapped_column(ForeignKey("ad_groups.id", ondelete="CASCADE"))
    keyword_id: Mapped[int | None] = mapped_column(ForeignKey("keywords.id", ondelete="CASCADE"))
    assigned_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )

    experiment: Mapped[Experiment] = relationship(back_populates="assignments", lazy="raise")
    arm: Mapped[BanditArm] = relationship(lazy="raise")
    campaign: Mapped[Campaign | None] = relationship(lazy="raise")
    ad_group: Mapped[AdGroup | None] = relationship(lazy="raise")
    keyword: Mapped[Keyword | None] = relationship(lazy="raise")


class ExperimentResult(Base):
    """One arm's estimate of one metric over one period (recomputed by upsert)."""

    __tablename__ = "experiment_results"
    __table_args__ = (
        UniqueConstraint(
            "experiment_id",
            "arm_id",
            "metric",
            "period_start",
            "period_end",
            name="uq_experiment_results_arm_metric_period",
        ),
        Index("ix_experiment_results_arm_id", "arm_id"),
        *non_negative("sample_size", "cost_micros", "value_micros"),
        CheckConstraint("p_value BETWEEN 0 AND 1", name="p_value_range"),
        CheckConstraint("period_end > period_start", name="period_ordered"),
        CheckConstraint("ci_low <= ci_high", name="ci_ordered"),
    )

    id: Mapped[IntPK]
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("bandit_arms.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(64))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    sample_size: Mapped[Count]
    estimate: Mapped[float] = mapped_column(Double)
    std_error: Mapped[float | None] = mapped_column(Double)
    ci_low: Mapped[float | None] = mapped_column(Double)
    ci_high: Mapped[float | None] = mapped_column(Double)
    p_value: Mapped[float | None] = mapped_column(Double)
    lift: Mapped[float | None] = mapped_column(Double)
    cost_micros: Mapped[Micros] = mapped_column(default=0, server_default="0")
    value_micros: Mapped[Micros] = mapped_column(default=0, server_default="0")
    computed_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )

    experiment: Mapped[Experiment] = relationship(back_populates="results", lazy="raise")
    arm: Mapped[BanditArm] = relationship(lazy="raise")
