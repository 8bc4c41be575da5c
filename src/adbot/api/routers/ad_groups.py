"""Ad groups (analysts and admins write, everyone reads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import ReadAccess, SessionDep, SettingsDep, WriteAccess
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.ad_groups import AdGroupCreate, AdGroupFilters, AdGroupRead, AdGroupUpdate
from adbot.api.schemas.common import IdPath, Page, page_of
from adbot.services import ad_groups as service

router = APIRouter(prefix="/ad-groups", tags=["ad groups"], route_class=StrictJsonRoute)


@router.post("", status_code=201)
def create_ad_group(
    body: AdGroupCreate, actor: WriteAccess, session: SessionDep, settings: SettingsDep
) -> AdGroupRead:
    ad_group = service.create_ad_group(
        session=session, actor=actor, limits=settings.limits, **body.model_dump()
    )
    return AdGroupRead.model_validate(ad_group)


@router.get("")
def list_ad_groups(
    filters: Annotated[AdGroupFilters, Query()], actor: ReadAccess, session: SessionDep
) -> Page[AdGroupRead]:
    page = service.list_ad_groups(session=session, actor=actor, **filters.model_dump())
    return page_of(AdGroupRead, page)


@router.get("/{ad_group_id}")
def get_ad_group(ad_group_id: IdPath, actor: ReadAccess, session: SessionDep) -> AdGroupRead:
    ad_group = service.get_ad_group(session=session, actor=actor, ad_group_id=ad_group_id)
    return AdGroupRead.model_validate(ad_group)


@router.patch("/{ad_group_id}")
def update_ad_group(
    ad_group_id: IdPath,
    body: AdGroupUpdate,
    actor: WriteAccess,
    session: SessionDep,
    settings: SettingsDep,
) -> AdGroupRead:
    ad_group = service.update_ad_group(
        session=session,
        actor=actor,
        limits=settings.limits,
        ad_group_id=ad_group_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return AdGroupRead.model_validate(ad_group)


@router.delete("/{ad_group_id}")
def remove_ad_group(ad_group_id: IdPath, actor: WriteAccess, session: SessionDep) -> AdGroupRead:
    """Remove (archive): status becomes ``removed``, which is final."""
    ad_group = service.remove_ad_group(session=session, actor=actor, ad_group_id=ad_group_id)
    return AdGroupRead.model_validate(ad_group)
