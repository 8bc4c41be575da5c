"""Campaigns (analysts and admins write, everyone reads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import ReadAccess, SessionDep, SettingsDep, WriteAccess
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.campaigns import (
    CampaignCreate,
    CampaignFilters,
    CampaignRead,
    CampaignUpdate,
)
from adbot.api.schemas.common import IdPath, Page, page_of
from adbot.services import campaigns as service

router = APIRouter(prefix="/campaigns", tags=["campaigns"], route_class=StrictJsonRoute)


@router.post("", status_code=201)
def create_campaign(
    body: CampaignCreate, actor: WriteAccess, session: SessionDep, settings: SettingsDep
) -> CampaignRead:
    campaign = service.create_campaign(
        session=session, actor=actor, limits=settings.limits, **body.model_dump()
    )
    return CampaignRead.model_validate(campaign)


@router.get("")
def list_campaigns(
    filters: Annotated[CampaignFilters, Query()], actor: ReadAccess, session: SessionDep
) -> Page[CampaignRead]:
    page = service.list_campaigns(session=session, actor=actor, **filters.model_dump())
    return page_of(CampaignRead, page)


@router.get("/{campaign_id}")
def get_campaign(campaign_id: IdPath, actor: ReadAccess, session: SessionDep) -> CampaignRead:
    campaign = service.get_campaign(session=session, actor=actor, campaign_id=campaign_id)
    return CampaignRead.model_validate(campaign)


@router.patch("/{campaign_id}")
def update_campaign(
    campaign_id: IdPath,
    body: CampaignUpdate,
    actor: WriteAccess,
    session: SessionDep,
    settings: SettingsDep,
) -> CampaignRead:
    campaign = service.update_campaign(
        session=session,
        actor=actor,
        limits=settings.limits,
        campaign_id=campaign_id,
        changes=body.model_dump(exclude_unset=True),
    )
    return CampaignRead.model_validate(campaign)


@router.delete("/{campaign_id}")
def remove_campaign(campaign_id: IdPath, actor: WriteAccess, session: SessionDep) -> CampaignRead:
    """Remove (archive): status becomes ``removed``, which is final."""
    campaign = service.remove_campaign(session=session, actor=actor, campaign_id=campaign_id)
    return CampaignRead.model_validate(campaign)
