"""``GET /bid-history``: every bid change of the account, filtered and paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from adbot.api.deps import ReadAccess, SessionDep
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.bids import BidChangeRead
from adbot.api.schemas.common import Page, page_of
from adbot.api.schemas.reports import BidHistoryParams
from adbot.services import reports as service

router = APIRouter(prefix="/bid-history", tags=["bids"], route_class=StrictJsonRoute)


@router.get("")
def list_bid_history(
    params: Annotated[BidHistoryParams, Query()], actor: ReadAccess, session: SessionDep
) -> Page[BidChangeRead]:
    """Bid changes, newest first: filter by campaign, keyword, cycle, source, outcome and
    creation time (`since` inclusive, `until` exclusive).
    """
    page = service.list_bid_history(
        session=session, account_id=actor.account_id, **params.model_dump()
    )
    return page_of(BidChangeRead, page)
