"""Campaign management: campaigns, ad groups, ads and keywords, mirrored from a platform.

Natural keys for idempotent sync: a campaign is unique by ``(platform_id, external_id)``;
below it ids are scoped by the parent, ``(campaign_id | ad_group_id, external_id)``,
because Google Ads reuses a keyword's criterion id across ad groups. A keyword is also
unique by ``(ad_group_id, text, match_type)``. ``external_id`` is NULL until the row
exists on the platform.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Double,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from adbot.db.base import (
    Base,
    CreatedAt,
    EnumText,
    IntPK,
    JSONType,
    Micros,
    UpdatedAt,
    children,
    non_negative,
    one_of,
)

if TYPE_CHECKING:
    from adbot.db.models.accounts import Account, Platform


class EntityStatus(StrEnum):
    ENABLED = "enabled"
    PAUSED = "paused"
    REMOVED = "removed"


class BiddingStrategy(StrEnum):
    MANUAL_CPC = "manual_cpc"
    TARGET_CPA = "target_cpa"
    TARGET_ROAS = "target_roas"
    MAXIMIZE_CLICKS = "maximize_clicks"
    MAXIMIZE_CONVERSIONS = "maximize_conversions"


class MatchType(StrEnum):
    EXACT = "exact"
    PHRASE = "phrase"
    BROAD = "broad"


class AdKind(StrEnum):
    RESPONSIVE_SEARCH = "responsive_search"
    EXPANDED_TEXT = "expanded_text"


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("platform_id", "external_id"),
        Index("ix_campaigns_account_id_status", "account_id", "status"),
        one_of("status", EntityStatus),
        one_of("bidding_strategy", BiddingStrategy),
        *non_negative("daily_budget_micros", "target_cpa_micros"),
        CheckConstraint("target_roas IS NULL OR target_roas > 0", name="target_roas_positive"),
        CheckConstraint(
            "end_date IS NULL OR start_date IS NULL OR end_date >= start_date",
            name="end_date_after_start_date",
        ),
    )

    id: Mapped[IntPK]
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # NO ACTION: a connection with synced campaigns is disconnected (status), not deleted;
    # checked at the end of the statement so deleting the whole account still cascades.
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id", ondelete="NO ACTION"))
    external_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[EntityStatus] = mapped_column(
        EnumText(EntityStatus), default=EntityStatus.ENABLED, server_default="enabled"
    )
    daily_budget_micros: Mapped[Micros]
    bidding_strategy: Mapped[BiddingStrategy] = mapped_column(
        EnumText(BiddingStrategy),
        default=BiddingStrategy.MANUAL_CPC,
        server_default="manual_cpc",
    )
    target_cpa_micros: Mapped[Micros | None]
    target_roas: Mapped[float | None] = mapped_column(Double)
    autopilot_enabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    last_synced_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    account: Mapped[Account] = relationship(back_populates="campaigns", lazy="raise")
    platform: Mapped[Platform] = relationship(lazy="raise")
    ad_groups: Mapped[list[AdGroup]] = children("campaign")


class AdGroup(Base):
    __tablename__ = "ad_groups"
    __table_args__ = (
        # Leads with campaign_id, so it also serves "ad groups of a campaign".
        UniqueConstraint("campaign_id", "external_id"),
        one_of("status", EntityStatus),
        *non_negative("default_bid_micros"),
    )

    id: Mapped[IntPK]
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[EntityStatus] = mapped_column(
        EnumText(EntityStatus), default=EntityStatus.ENABLED, server_default="enabled"
    )
    default_bid_micros: Mapped[Micros | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    campaign: Mapped[Campaign] = relationship(back_populates="ad_groups", lazy="raise")
    ads: Mapped[list[Ad]] = children("ad_group")
    keywords: Mapped[list[Keyword]] = children("ad_group")


class Ad(Base):
    __tablename__ = "ads"
    __table_args__ = (
        UniqueConstraint("ad_group_id", "external_id"),
        one_of("status", EntityStatus),
        one_of("kind", AdKind),
    )

    id: Mapped[IntPK]
    ad_group_id: Mapped[int] = mapped_column(ForeignKey("ad_groups.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[AdKind] = mapped_column(
        EnumText(AdKind), default=AdKind.RESPONSIVE_SEARCH, server_default="responsive_search"
    )
    status: Mapped[EntityStatus] = mapped_column(
        EnumText(EntityStatus), default=EntityStatus.ENABLED, server_default="enabled"
    )
    headlines: Mapped[list[str]] = mapped_column(JSONType, default=list)
    descriptions: Mapped[list[str]] = mapped_column(JSONType, default=list)
    final_url: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    ad_group: Mapped[AdGroup] = relationship(back_populates="ads", lazy="raise")


class Keyword(Base):
    __tablename__ = "keywords"
    __table_args__ = (
        UniqueConstraint("ad_group_id", "text", "match_type"),
        UniqueConstraint("ad_group_id", "external_id"),
        one_of("status", EntityStatus),
        one_of("match_type", MatchType),
        *non_negative("bid_micros"),
        CheckConstraint("quality_score BETWEEN 1 AND 10", name="quality_score_range"),
        CheckConstraint("length(trim(text)) > 0", name="text_not_blank"),
    )

    id: Mapped[IntPK]
    ad_group_id: Mapped[int] = mapped_column(ForeignKey("ad_groups.id", ondelete="CASCADE"))
    external_id: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(80))
    match_type: Mapped[MatchType] = mapped_column(EnumText(MatchType))
    status: Mapped[EntityStatus] = mapped_column(
        EnumText(EntityStatus), default=EntityStatus.ENABLED, server_default="enabled"
    )
    # NULL: the ad group's default bid applies.
    bid_micros: Mapped[Micros | None]
    quality_score: Mapped[int | None] = mapped_column(SmallInteger)
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    ad_group: Mapped[AdGroup] = relationship(back_populates="keywords", lazy="raise")
