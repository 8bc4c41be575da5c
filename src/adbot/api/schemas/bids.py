"""Bulk bid changes and the bid history."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field

from adbot.api.schemas.common import Id, Micros, ReadModel, Strict
from adbot.api.schemas.keywords import Reason
from adbot.db.models import BidOutcome, BidSource
from adbot.services.bids import MAX_BULK_CHANGES


class BidChangeIn(Strict):
    keyword_id: Id
    bid_micros: Micros


class BulkBidUpdate(Strict):
    changes: list[BidChangeIn] = Field(min_length=1, max_length=MAX_BULK_CHANGES)
    reason: Reason | None = None


class BulkBidResult(ReadModel):
    cycle_id: uuid.UUID = Field(description="groups this batch in bid_history")
    updated: int
    unchanged: int = Field(description="keywords that already had the requested bid")


class BidChangeRead(ReadModel):
    id: int
    keyword_id: int
    cycle_id: uuid.UUID
    old_bid_micros: int | None
    new_bid_micros: int
    source: BidSource
    outcome: BidOutcome
    reason: str | None
    user_id: int | None
    agent_id: int | None
    created_at: datetime
