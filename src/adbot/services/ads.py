"""Ads: children of an ad group of the same account."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from adbot.db.models import Ad, AdGroup, AdKind, Campaign, EntityStatus
from adbot.errors import NotFound
from adbot.services.ad_groups import get_ad_group, refuse_removed_parent
from adbot.services.common import (
    Actor,
    Page,
    apply_changes,
    check_transition,
    contains,
    ordering,
    paginate,
    writing,
)

SORTS = {"id": Ad.id, "created_at": Ad.created_at, "final_url": Ad.final_url}
UPDATABLE = {"status", "headlines", "descriptions", "final_url"}
_Row = TypeVar("_Row", bound=tuple[Any, ...])


def create_ad(
    *,
    session: Session,
    actor: Actor,
    ad_group_id: int,
    final_url: str,
    headlines: Sequence[str],
    descriptions: Sequence[str],
    kind: AdKind = AdKind.RESPONSIVE_SEARCH,
    status: EntityStatus = EntityStatus.ENABLED,
    external_id: str | None = None,
) -> Ad:
    ad_group = get_ad_group(session=session, actor=actor, ad_group_id=ad_group_id)
    refuse_removed_parent(ad_group.status, "ad group", ad_group_id)
    ad = Ad(
        ad_group_id=ad_group.id,
        kind=kind,
        status=status,
        headlines=list(headlines),
        descriptions=list(descriptions),
        final_url=final_url,
        external_id=external_id,
    )
    with writing(session):
        session.add(ad)
    return ad


def list_ads(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    sort: str = "id",
    status: EntityStatus | None = None,
    ad_group_id: int | None = None,
    campaign_id: int | None = None,
    kind: AdKind | None = None,
    q: str | None = None,
) -> Page[Ad]:
    stmt = in_account(select(Ad), actor)
    if status is not None:
        stmt = stmt.where(Ad.status == status)
    if ad_group_id is not None:
        stmt = stmt.where(Ad.ad_group_id == ad_group_id)
    if campaign_id is not None:
        stmt = stmt.where(AdGroup.campaign_id == campaign_id)
    if kind is not None:
        stmt = stmt.where(Ad.kind == kind)
    if q:
        stmt = stmt.where(contains(Ad.final_url, q))
    return paginate(
        session, stmt, limit=limit, offset=offset, order_by=ordering(sort, SORTS, Ad.id)
    )


def get_ad(*, session: Session, actor: Actor, ad_id: int) -> Ad:
    ad = session.scalar(in_account(select(Ad), actor).where(Ad.id == ad_id))
    if ad is None:
        raise NotFound(f"ad {ad_id} not found")
    return ad


def update_ad(*, session: Session, actor: Actor, ad_id: int, changes: Mapping[str, Any]) -> Ad:
    ad = get_ad(session=session, actor=actor, ad_id=ad_id)
    if "status" in changes:
        check_transition(ad.status, changes["status"], entity="ad")
    with writing(session):
        apply_changes(ad, changes, UPDATABLE)
    return ad


def remove_ad(*, session: Session, actor: Actor, ad_id: int) -> Ad:
    ad = get_ad(session=session, actor=actor, ad_id=ad_id)
    with writing(session):
        ad.status = EntityStatus.REMOVED
    return ad


def in_account(stmt: Select[_Row], actor: Actor) -> Select[_Row]:
    return (
        stmt.join(AdGroup, AdGroup.id == Ad.ad_group_id)
        .join(Campaign, Campaign.id == AdGroup.campaign_id)
        .where(Campaign.account_id == actor.account_id)
    )
