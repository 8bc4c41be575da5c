"""Ad groups: children of a campaign of the same account; default bids within bounds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from adbot.config import LimitSettings
from adbot.db.models import AdGroup, Campaign, EntityStatus
from adbot.errors import Conflict
from adbot.services.campaigns import get_campaign
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
from adbot.services.reports import reports_changed

SORTS = {"id": AdGroup.id, "name": AdGroup.name, "created_at": AdGroup.created_at}
AD_GROUPS = Owned(
    AdGroup, AdGroup.id, "ad group", Campaign.account_id, SORTS, AdGroup.name, (AdGroup.campaign,)
)
UPDATABLE = {"name", "status", "default_bid_micros"}
# Fields a performance report shows (or may filter by): a change empties its cache.
REPORTED = {"name", "status"}


def create_ad_group(
    *,
    session: Session,
    actor: Actor,
    limits: LimitSettings,
    campaign_id: int,
    name: str,
    status: EntityStatus = EntityStatus.ENABLED,
    default_bid_micros: int | None = None,
    external_id: str | None = None,
) -> AdGroup:
    campaign = get_campaign(session=session, actor=actor, campaign_id=campaign_id)
    refuse_removed_parent(campaign.status, "campaign", campaign_id)
    _check_bid(default_bid_micros, limits)
    ad_group = AdGroup(
        campaign_id=campaign.id,
        name=name,
        status=status,
        default_bid_micros=default_bid_micros,
        external_id=external_id,
    )
    with writing(session):
        session.add(ad_group)
        reports_changed(session, actor.account_id)
    return ad_group


def list_ad_groups(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    sort: str = "id",
    status: EntityStatus | None = None,
    campaign_id: int | None = None,
    q: str | None = None,
) -> Page[AdGroup]:
    where = [(AdGroup.status, status), (AdGroup.campaign_id, campaign_id)]
    return AD_GROUPS.page(
        session, actor.account_id, where, q=q, sort=sort, limit=limit, offset=offset
    )


def get_ad_group(*, session: Session, actor: Actor, ad_group_id: int) -> AdGroup:
    return AD_GROUPS.get(session, ad_group_id, account_id=actor.account_id)


def update_ad_group(
    *,
    session: Session,
    actor: Actor,
    limits: LimitSettings,
    ad_group_id: int,
    changes: Mapping[str, Any],
) -> AdGroup:
    ad_group = get_ad_group(session=session, actor=actor, ad_group_id=ad_group_id)
    if "status" in changes:
        check_transition(ad_group.status, changes["status"], entity="ad group")
    _check_bid(changes.get("default_bid_micros"), limits)
    with writing(session):
        apply_changes(ad_group, changes, UPDATABLE)
        if REPORTED & set(changes):
            reports_changed(session, actor.account_id)
    return ad_group


def remove_ad_group(*, session: Session, actor: Actor, ad_group_id: int) -> AdGroup:
    ad_group = get_ad_group(session=session, actor=actor, ad_group_id=ad_group_id)
    reports_changed(session, actor.account_id)
    return archive(session, ad_group)


def refuse_removed_parent(status: EntityStatus, entity: str, entity_id: int) -> None:
    if status == EntityStatus.REMOVED:
        raise Conflict(
            f"{entity} {entity_id} is removed; nothing can be added to it",
            details={"field": f"{entity.replace(' ', '_')}_id"},
        )


def _check_bid(value: int | None, limits: LimitSettings) -> None:
    check_bounds(
        value, field="default_bid_micros", low=limits.min_bid_micros, high=limits.max_bid_micros
    )
