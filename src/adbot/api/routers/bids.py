"""Bulk manual bid changes and the bid history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import ReadAccess, SessionDep, SettingsDep, WriteAccess
from adbot.api.schemas.bids import BidChangeRead, BidHistoryFilters, BulkBidResult, BulkBidUpdate
from adbot.api.schemas.common import Page, page_of
from adbot.services import bids as service

router = APIRouter(prefix="/bids", tags=["bids"])


@router.post("/bulk")
def bulk_update_bids(
    body: BulkBidUpdate, actor: WriteAccess, session: SessionDep, settings: SettingsDep
) -> BulkBidResult:
    """Set up to 10,000 keyword bids at once, all or nothing; each change is logged in
    ``bid_history`` with source ``manual`` and the caller as user.
    """
    result = service.bulk_update_bids(
        session=session,
        actor=actor,
        limits=settings.limits,
        changes=[(change.keyword_id, change.bid_micros) for change in body.changes],
        reason=body.reason,
    )
    return BulkBidResult.model_validate(result)


@router.get("/history")
def list_bid_history(
    filters: Annotated[BidHistoryFilters, Query()], actor: ReadAccess, session: SessionDep
) -> Page[BidChangeRead]:
    page = service.list_bid_history(session=session, actor=actor, **filters.model_dump())
    return page_of(BidChangeRead, page)
