"""Performance: hourly metrics, conversions, the bid change log and detected anomalies."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    Uuid,
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
    JSONType,
    Micros,
    UpdatedAt,
    non_negative,
    one_of,
    utcnow,
)

if TYPE_CHECKING:
    from adbot.db.models.accounts import User
    from adbot.db.models.campaigns import Campaign, Keyword
    from adbot.db.models.ml import Agent


class ConversionSource(StrEnum):
    PLATFORM = "platform"
    IMPORT = "import"
    API = "api"
    SIM = "sim"


class BidSource(StrEnum):
    MANUAL = "manual"
    AUTOPILOT = "autopilot"
    ROLLBACK = "rollback"
    RULE = "rule"
    API = "api"
    EXPERIMENT = "experiment"


class BidOutcome(StrEnum):
    APPLIED = "applied"
    DRY_RUN = "dry_run"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AnomalyStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


# "hour" is an hour start in UTC. Each backend spells "no minutes or seconds" its own way;
# ``ddl_if`` emits the one that matches (the initial migration does the same).
HOUR_ALIGNED_SQL = {
    "postgresql": "date_trunc('hour', hour AT TIME ZONE 'UTC') = hour AT TIME ZONE 'UTC'",
    "sqlite": "strftime('%M:%f', hour) = '00:00.000'",
}


def _hour_aligned() -> list[CheckConstraint]:
    return [
        CheckConstraint(sql, name="hour_aligned").ddl_if(dialect=dialect)
        for dialect, sql in HOUR_ALIGNED_SQL.items()
    ]


class PerformanceMetric(Base):
    """One keyword's figures for one UTC hour. Campaign and ad group are copied from the
    keyword at ingestion so roll-ups by campaign or ad group need no joins.

    The primary key ``(account_id, hour, keyword_id)`` is the natural key (a keyword
    belongs to one account, so it is as unique as ``(keyword_id, hour)``): upserts use
    ``ON CONFLICT`` on it, and reports, which always filter by account and hour range, read
    it in order. The table has no other index and no foreign key: this is AdBot's largest
    and most written table, and a foreign key costs a trigger call per row and key (~4 us
    per row each on PostgreSQL), an index a B-tree insert per row.

    References are kept by triggers that migration 0002 creates, instead: on PostgreSQL,
    statement-level triggers with transition tables check each INSERT and UPDATE once per
    statement (lock the distinct keywords ``FOR KEY SHARE``, as a foreign key would, then
    refuse with ``foreign_key_violation`` any row whose keyword does not exist or whose
    account, campaign or ad group are not the keyword's), and deleting a keyword, ad group,
    campaign or account deletes its metrics (one set-based delete per statement, each
    within one account's range of the key). SQLite, which has no statement-level triggers,
    does the same per row. So a metric's copied ids always are its keyword's, which a
    foreign key per column did not ensure; for the same reason a keyword, ad group or
    campaign cannot move to another parent.
    """

    __tablename__ = "performance_metrics"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", "hour", "keyword_id"),
        # 0 <= conversions <= clicks <= impressions: the chain makes clicks and impressions
        # non-negative too, so they need no checks of their own.
        *non_negative("conversions", "cost_micros", "conversion_value_micros"),
        CheckConstraint("clicks <= impressions", name="clicks_le_impressions"),
        CheckConstraint("conversions <= clicks", name="conversions_le_clicks"),
        *_hour_aligned(),
    )

    account_id: Mapped[int] = mapped_column(autoincrement=False)
    campaign_id: Mapped[int]
    ad_group_id: Mapped[int]
    keyword_id: Mapped[int] = mapped_column(autoincrement=False)
    hour: Mapped[datetime]
    impressions: Mapped[Count] = mapped_column(default=0, server_default="0")
    clicks: Mapped[Count] = mapped_column(default=0, server_default="0")
    # Platforms report fractional conversions (attribution models); a count, not money.
    conversions: Mapped[float] = mapped_column(Double, default=0.0, server_default="0")
    cost_micros: Mapped[Micros] = mapped_column(default=0, server_default="0")
    conversion_value_micros: Mapped[Micros] = mapped_column(default=0, server_default="0")
    updated_at: Mapped[UpdatedAt]


class Conversion(Base):
    """A single conversion event (platform report, offline import, API or simulator)."""

    __tablename__ = "conversion_data"
    __table_args__ = (
        UniqueConstraint("account_id", "conversion_action", "external_id"),
        Index("ix_conversion_data_campaign_id_occurred_at", "campaign_id", "occurred_at"),
        Index("ix_conversion_data_keyword_id", "keyword_id"),
        one_of("source", ConversionSource),
        *non_negative("quantity", "value_micros"),
    )

    id: Mapped[BigPK]
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    # SET NULL: the conversion still counts for the campaign if the keyword goes away.
    keyword_id: Mapped[int | None] = mapped_column(ForeignKey("keywords.id", ondelete="SET NULL"))
    conversion_action: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime]
    quantity: Mapped[float] = mapped_column(Double, default=1.0, server_default="1")
    value_micros: Mapped[Micros] = mapped_column(default=0, server_default="0")
    source: Mapped[ConversionSource] = mapped_column(EnumText(ConversionSource))
    # Order id or click id from the source; NULL when the source has none (no dedupe).
    external_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[CreatedAt]

    campaign: Mapped[Campaign] = relationship(lazy="raise")
    keyword: Mapped[Keyword | None] = relationship(lazy="raise")


class BidChange(Base):
    """One row of ``bid_history``: every bid change AdBot made, tried or rolled back.

    ``cycle_id`` groups the changes of one autopilot cycle (or one manual batch) so the
    whole cycle can be rolled back; a rollback row points at the change it reverts.
    """

    __tablename__ = "bid_history"
    __table_args__ = (
        Index("ix_bid_history_keyword_id_created_at", "keyword_id", "created_at"),
        Index("ix_bid_history_account_id_created_at", "account_id", "created_at"),
        Index("ix_bid_history_cycle_id", "cycle_id"),
        Index("ix_bid_history_user_id", "user_id"),
        Index("ix_bid_history_agent_id", "agent_id"),
        Index("ix_bid_history_reverts_id", "reverts_id"),
        one_of("source", BidSource),
        one_of("outcome", BidOutcome),
        *non_negative("old_bid_micros", "new_bid_micros"),
    )

    id: Mapped[BigPK]
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # NO ACTION: the audit trail outlives nothing but its account; a keyword with history
    # is set to "removed", never deleted.
    keyword_id: Mapped[int] = mapped_column(ForeignKey("keywords.id", ondelete="NO ACTION"))
    cycle_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    old_bid_micros: Mapped[Micros | None]
    new_bid_micros: Mapped[Micros]
    source: Mapped[BidSource] = mapped_column(EnumText(BidSource))
    outcome: Mapped[BidOutcome] = mapped_column(EnumText(BidOutcome))
    reason: Mapped[str | None] = mapped_column(Text)
    # SET NULL: the change stays in the log when the person or agent is deleted.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    reverts_id: Mapped[int | None] = mapped_column(
        ForeignKey("bid_history.id", ondelete="SET NULL")
    )
    created_at: Mapped[CreatedAt]

    keyword: Mapped[Keyword] = relationship(lazy="raise")
    user: Mapped[User | None] = relationship(lazy="raise")
    agent: Mapped[Agent | None] = relationship(lazy="raise")
    reverts: Mapped[BidChange | None] = relationship(remote_side="BidChange.id", lazy="raise")


_OPEN = text("status = 'open'")


class Anomaly(Base):
    """A detected anomaly (table ``anomaly_detection``); open ones can freeze a campaign.

    ``fingerprint`` identifies (detector, metric, scope, window), so re-running detection
    over the same window updates the alert instead of adding a duplicate.
    """

    __tablename__ = "anomaly_detection"
    __table_args__ = (
        UniqueConstraint("account_id", "fingerprint"),
        Index(
            "ix_anomaly_detection_open_by_account",
            "account_id",
            "detected_at",
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
        Index(
            "ix_anomaly_detection_open_by_campaign",
            "campaign_id",
            "severity",
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
        Index("ix_anomaly_detection_campaign_id_detected_at", "campaign_id", "detected_at"),
        Index("ix_anomaly_detection_resolved_by_id", "resolved_by_id"),
        one_of("severity", Severity),
        one_of("status", AnomalyStatus),
        CheckConstraint("window_end >= window_start", name="window_ordered"),
        CheckConstraint(
            "status NOT IN ('resolved', 'dismissed') OR resolved_at IS NOT NULL",
            name="closed_has_resolved_at",
        ),
    )

    id: Mapped[IntPK]
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # NULL: an account-wide anomaly.
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    detector: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(64))
    severity: Mapped[Severity] = mapped_column(EnumText(Severity))
    status: Mapped[AnomalyStatus] = mapped_column(
        EnumText(AnomalyStatus), default=AnomalyStatus.OPEN, server_default="open"
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    observed_value: Mapped[float] = mapped_column(Double)
    expected_value: Mapped[float | None] = mapped_column(Double)
    score: Mapped[float | None] = mapped_column(Double)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    detected_at: Mapped[datetime] = mapped_column(
        default=utcnow, server_default=text("CURRENT_TIMESTAMP")
    )
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    campaign: Mapped[Campaign | None] = relationship(lazy="raise")
    resolved_by: Mapped[User | None] = relationship(lazy="raise")
