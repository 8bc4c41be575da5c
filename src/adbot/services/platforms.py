"""Platform connections of an account (the simulator, or one Google Ads customer)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adbot.db.models import Platform, PlatformKind, PlatformStatus
from adbot.errors import InvalidInput, NotFound
from adbot.services.common import Actor, Page, apply_changes, contains, ordering, paginate, writing

SORTS = {"id": Platform.id, "name": Platform.name, "created_at": Platform.created_at}
UPDATABLE = {"name", "status", "credentials_ref", "external_customer_id"}


def create_platform(
    *,
    session: Session,
    actor: Actor,
    kind: PlatformKind,
    name: str,
    external_customer_id: str | None = None,
    credentials_ref: str | None = None,
    status: PlatformStatus = PlatformStatus.ACTIVE,
) -> Platform:
    _check_customer_id(kind, external_customer_id)
    platform = Platform(
        account_id=actor.account_id,
        kind=kind,
        name=name,
        external_customer_id=external_customer_id,
        credentials_ref=credentials_ref,
        status=status,
    )
    with writing(session):
        session.add(platform)
    return platform


def list_platforms(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    offset: int,
    sort: str = "id",
    status: PlatformStatus | None = None,
    kind: PlatformKind | None = None,
    q: str | None = None,
) -> Page[Platform]:
    stmt = select(Platform).where(Platform.account_id == actor.account_id)
    if status is not None:
        stmt = stmt.where(Platform.status == status)
    if kind is not None:
        stmt = stmt.where(Platform.kind == kind)
    if q:
        stmt = stmt.where(contains(Platform.name, q))
    return paginate(
        session, stmt, limit=limit, offset=offset, order_by=ordering(sort, SORTS, Platform.id)
    )


def get_platform(*, session: Session, actor: Actor, platform_id: int) -> Platform:
    platform = session.scalar(
        select(Platform).where(Platform.id == platform_id, Platform.account_id == actor.account_id)
    )
    if platform is None:
        raise NotFound(f"platform {platform_id} not found")
    return platform


def update_platform(
    *, session: Session, actor: Actor, platform_id: int, changes: Mapping[str, Any]
) -> Platform:
    platform = get_platform(session=session, actor=actor, platform_id=platform_id)
    if "external_customer_id" in changes:
        _check_customer_id(platform.kind, changes["external_customer_id"])
    with writing(session):
        apply_changes(platform, changes, UPDATABLE)
    return platform


def disconnect_platform(*, session: Session, actor: Actor, platform_id: int) -> Platform:
    """Archive: campaigns synced through the connection keep it; syncing stops."""
    platform = get_platform(session=session, actor=actor, platform_id=platform_id)
    with writing(session):
        platform.status = PlatformStatus.DISCONNECTED
    return platform


def _check_customer_id(kind: PlatformKind, customer_id: str | None) -> None:
    if kind == PlatformKind.GOOGLE_ADS and not customer_id:
        raise InvalidInput(
            "a google_ads connection needs external_customer_id",
            details={"field": "external_customer_id"},
        )
