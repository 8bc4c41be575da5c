"""Bulk manual bid changes (the history is ``GET /api/v1/bid-history``)."""

from __future__ import annotations

from fastapi import APIRouter

from adbot.api.deps import SessionDep, SettingsDep, WriteAccess
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.bids import BulkBidResult, BulkBidUpdate
from adbot.services import bids as service

router = APIRouter(prefix="/bids", tags=["bids"], route_class=StrictJsonRoute)


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
