"""Campaigns: created on a platform connection of the same account, budgets within the
configured bounds, status changes that follow the platform rules (removed is final).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from adbot.config import LimitSettings
from adbot.db.models import BiddingStrategy, Campaign, EntityStatus, PlatformStatus
from adbot.errors import Conflict, InvalidInput
from adbot.services.common import (
    Actor,
    Owned,
    Page,
    apply_changes,
    archive,
    check_bounds,
    check_transition,
    writing,
)
from adbot.services.platforms import get_platform
from adbot.services.reports import reports_changed

SORTS = {
    "id": Campaign.id,
    "name": Campaign.name,
    "created_at": Campaign.created_at,
    "daily_budget_micros": Campaign.daily_budget_micros,
}
CAMPAIGNS = Owned(Campaign, Campaign.id, "campaign", Campaign.account_id, SORTS, Campaign.name)
UPDATABLE = {
    "name",
    "status",
    "daily_budget_micros",
    "bidding_strategy",
    "target_cpa_micros",
    "target_roas",
    "autopilot_enabled",
    "start_date",
    "end_date",
}
# Fields a performance report shows (or may filter by): a change empties its cache.
REPORTED = {"name", "status"}


def create_campaign(
    *,
    session: Session,
    actor: Actor,
    limits: LimitSettings,
    platform_id: int,
    name: str,
    daily_budget_micros: int,
    bidding_strategy: BiddingStrategy = BiddingStrategy.MANUAL_CPC,
    status: EntityStatus = EntityStatus.ENABLED,
    target_cpa_micros: int | None = None,
    target_roas: float | None = None,
    autopilot_enabled: bool = False,
    start_date: date | None = None,
    end_date: date | None = None,
    external_id: str | None = None,
) -> Campaign:
    platform = get_platform(session=session, actor=actor, platform_id=platform_id)
    if platform.status == PlatformStatus.DISCONNECTED:
        raise Conflict(f"platform {platform_id} is disconnected", details={"field": "platform_id"})
    campaign = Campaign(
        account_id=actor.account_id,
        platform_id=platform.id,
        external_id=external_id,
        name=name,
        status=status,
        daily_budget_micros=daily_budget_micros,
        bidding_strategy=bidding_strategy,
        target_cpa_micros=target_cpa_micros,
        target_roas=target_roas,
        autopilot_enabled=autopilot_enabled,
        start_date=start_date,
        end_date=end_date,
    )
    _check(campaign, limits)
    with writing(session):
        session.add(campaign)
        reports_changed(session, actor.account_id)
    return campaign


def list_campaigns(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    sort: str = "id",
    status: EntityStatus | None = None,
    platform_id: int | None = None,
    q: str | None = None,
) -> Page[Campaign]:
    where = [(Campaign.status, status), (Campaign.platform_id, platform_id)]
    return CAMPAIGNS.page(
        session, actor.account_id, where, q=q, sort=sort, limit=limit, offset=offset
    )


def get_campaign(*, session: Session, actor: Actor, campaign_id: int) -> Campaign:
    return CAMPAIGNS.get(session, campaign_id, account_id=actor.account_id)


def update_campaign(
    *,
    session: Session,
    actor: Actor,
    limits: LimitSettings,
    campaign_id: int,
    changes: Mapping[str, Any],
) -> Campaign:
    campaign = get_campaign(session=session, actor=actor, campaign_id=campaign_id)
    if "status" in changes:
        check_transition(campaign.status, changes["status"], entity="campaign")
    with writing(session):
        apply_changes(campaign, changes, UPDATABLE)
        _check(campaign, limits)
        if REPORTED & set(changes):
            reports_changed(session, actor.account_id)
    return campaign


def remove_campaign(*, session: Session, actor: Actor, campaign_id: int) -> Campaign:
    """Archive: status ``removed``; the row and its history stay."""
    campaign = get_campaign(session=session, actor=actor, campaign_id=campaign_id)
    reports_changed(session, actor.account_id)
    return archive(session, campaign)


def _check(campaign: Campaign, limits: LimitSettings) -> None:
    check_bounds(
        campaign.daily_budget_micros,
        field="daily_budget_micros",
        low=limits.min_daily_budget_micros,
        high=limits.max_daily_budget_micros,
    )
    if campaign.bidding_strategy == BiddingStrategy.TARGET_CPA and not campaign.target_cpa_micros:
        raise InvalidInput(
            "bidding_strategy target_cpa needs target_cpa_micros",
            details={"field": "target_cpa_micros"},
        )
    if campaign.bidding_strategy == BiddingStrategy.TARGET_ROAS and not campaign.target_roas:
        raise InvalidInput(
            "bidding_strategy target_roas needs target_roas", details={"field": "target_roas"}
        )
    if campaign.start_date and campaign.end_date and campaign.end_date < campaign.start_date:
        raise InvalidInput("end_date is before start_date", details={"field": "end_date"})
