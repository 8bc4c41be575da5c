"""Ads: children of an ad group of the same account."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from adbot.db.models import Ad, AdGroup, AdKind, Campaign, EntityStatus
from adbot.services.ad_groups import get_ad_group, refuse_removed_parent
from adbot.services.common import (
    Actor,
    Owned,
    Page,
    apply_changes,
    archive,
    check_transition,
    writing,
)

SORTS = {"id": Ad.id, "created_at": Ad.created_at, "final_url": Ad.final_url}
ADS = Owned(
    Ad, Ad.id, "ad", Campaign.account_id, SORTS, Ad.final_url, (Ad.ad_group, AdGroup.campaign)
)
UPDATABLE = {"status", "headlines", "descriptions", "final_url"}


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
    where = [
        (Ad.status, status),
        (Ad.ad_group_id, ad_group_id),
        (AdGroup.campaign_id, campaign_id),
        (Ad.kind, kind),
    ]
    return ADS.page(session, actor.account_id, where, q=q, sort=sort, limit=limit, offset=offset)


def get_ad(*, session: Session, actor: Actor, ad_id: int) -> Ad:
    return ADS.get(session, ad_id, account_id=actor.account_id)


def update_ad(*, session: Session, actor: Actor, ad_id: int, changes: Mapping[str, Any]) -> Ad:
    ad = get_ad(session=session, actor=actor, ad_id=ad_id)
    if "status" in changes:
        check_transition(ad.status, changes["status"], entity="ad")
    with writing(session):
        apply_changes(ad, changes, UPDATABLE)
    return ad


def remove_ad(*, session: Session, actor: Actor, ad_id: int) -> Ad:
    return archive(session, get_ad(session=session, actor=actor, ad_id=ad_id))
