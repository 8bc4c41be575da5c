"""Platform connections (admin writes, everyone reads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import AdminAccess, ReadAccess, SessionDep
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.common import IdPath, Page, page_of
from adbot.api.schemas.platforms import (
    PlatformCreate,
    PlatformFilters,
    PlatformRead,
    PlatformUpdate,
)
from adbot.services import platforms as service

router = APIRouter(prefix="/platforms", tags=["platforms"], route_class=StrictJsonRoute)


@router.post("", status_code=201)
def create_platform(body: PlatformCreate, actor: AdminAccess, session: SessionDep) -> PlatformRead:
    platform = service.create_platform(session=session, actor=actor, **body.model_dump())
    return PlatformRead.model_validate(platform)


@router.get("")
def list_platforms(
    filters: Annotated[PlatformFilters, Query()], actor: ReadAccess, session: SessionDep
) -> Page[PlatformRead]:
    page = service.list_platforms(session=session, actor=actor, **filters.model_dump())
    return page_of(PlatformRead, page)


@router.get("/{platform_id}")
def get_platform(platform_id: IdPath, actor: ReadAccess, session: SessionDep) -> PlatformRead:
    platform = service.get_platform(session=session, actor=actor, platform_id=platform_id)
    return PlatformRead.model_validate(platform)


@router.patch("/{platform_id}")
def update_platform(
    platform_id: IdPath, body: PlatformUpdate, actor: AdminAccess, session: SessionDep
) -> PlatformRead:
    platform = service.update_platform(
        session=session,
        actor=actor,
        platform_id=platform_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return PlatformRead.model_validate(platform)


@router.delete("/{platform_id}")
def disconnect_platform(
    platform_id: IdPath, actor: AdminAccess, session: SessionDep
) -> PlatformRead:
    """Disconnect (archive): campaigns keep their connection; syncing stops."""
    platform = service.disconnect_platform(session=session, actor=actor, platform_id=platform_id)
    return PlatformRead.model_validate(platform)
