"""Ad groups: children of a campaign of the same account; default bids within bounds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from adbot.config import LimitSettings
from adbot.db.models import AdGroup, Campaign, EntityStatus
from adbot.errors import Conflict, NotFound
from adbot.services.campaigns import get_campaign
from adbot.services.common import (
    Actor,
    Page,
    apply_changes,
    check_bounds,
    check_transition,
    contains,
    ordering,
    paginate,
    writing,
)

SORTS = {"id": AdGroup.id, "name": AdGroup.name, "created_at": AdGroup.created_at}
UPDATABLE = {"name", "status", "default_bid_micros"}
_Row = TypeVar("_Row", bound=tuple[Any, ...])


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
    stmt = in_account(select(AdGroup), actor)
    if status is not None:
        stmt = stmt.where(AdGroup.status == status)
    if campaign_id is not None:
        stmt = stmt.where(AdGroup.campaign_id == campaign_id)
    if q:
        stmt = stmt.where(contains(AdGroup.name, q))
    return paginate(
        session, stmt, limit=limit, offset=offset, order_by=ordering(sort, SORTS, AdGroup.id)
    )


def get_ad_group(*, session: Session, actor: Actor, ad_group_id: int) -> AdGroup:
    ad_group = session.scalar(in_account(select(AdGroup), actor).where(AdGroup.id == ad_group_id))
    if ad_group is None:
        raise NotFound(f"ad group {ad_group_id} not found")
    return ad_group


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
    if "default_bid_micros" in changes:
        _check_bid(changes["default_bid_micros"], limits)
    with writing(session):
        apply_changes(ad_group, changes, UPDATABLE)
    return ad_group


def remove_ad_group(*, session: Session, actor: Actor, ad_group_id: int) -> AdGroup:
    ad_group = get_ad_group(session=session, actor=actor, ad_group_id=ad_group_id)
    with writing(session):
        ad_group.status = EntityStatus.REMOVED
    return ad_group


def in_account(stmt: Select[_Row], actor: Actor) -> Select[_Row]:
    """Restrict a query over ad groups (or their children) to the actor's account."""
    return stmt.join(Campaign, Campaign.id == AdGroup.campaign_id).where(
        Campaign.account_id == actor.account_id
    )


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
