"""Ads (analysts and admins write, everyone reads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import ReadAccess, SessionDep, WriteAccess
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.ads import AdCreate, AdFilters, AdRead, AdUpdate
from adbot.api.schemas.common import IdPath, Page, page_of
from adbot.services import ads as service

router = APIRouter(prefix="/ads", tags=["ads"], route_class=StrictJsonRoute)


@router.post("", status_code=201)
def create_ad(body: AdCreate, actor: WriteAccess, session: SessionDep) -> AdRead:
    return AdRead.model_validate(
        service.create_ad(session=session, actor=actor, **body.model_dump())
    )


@router.get("")
def list_ads(
    filters: Annotated[AdFilters, Query()], actor: ReadAccess, session: SessionDep
) -> Page[AdRead]:
    return page_of(AdRead, service.list_ads(session=session, actor=actor, **filters.model_dump()))


@router.get("/{ad_id}")
def get_ad(ad_id: IdPath, actor: ReadAccess, session: SessionDep) -> AdRead:
    return AdRead.model_validate(service.get_ad(session=session, actor=actor, ad_id=ad_id))


@router.patch("/{ad_id}")
def update_ad(ad_id: IdPath, body: AdUpdate, actor: WriteAccess, session: SessionDep) -> AdRead:
    ad = service.update_ad(
        session=session, actor=actor, ad_id=ad_id, changes=body.model_dump(exclude_unset=True)
    )
    return AdRead.model_validate(ad)


@router.delete("/{ad_id}")
def remove_ad(ad_id: IdPath, actor: WriteAccess, session: SessionDep) -> AdRead:
    """Remove (archive): status becomes ``removed``, which is final."""
    return AdRead.model_validate(service.remove_ad(session=session, actor=actor, ad_id=ad_id))
