"""Keywords. Bids are integer micros; every bid change lands in ``bid_history``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from adbot.api.schemas.common import (
    PRINTABLE,
    ExternalId,
    Filters,
    Id,
    IdFilter,
    Micros,
    ReadModel,
    SearchText,
    Strict,
    omitted,
)
from adbot.db.models import EntityStatus, MatchType

KeywordText = Annotated[str, StringConstraints(min_length=1, max_length=80, pattern=PRINTABLE)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=PRINTABLE)]
KeywordSort = Literal[
    "id", "-id", "text", "-text", "created_at", "-created_at", "bid_micros", "-bid_micros"
]


class KeywordCreate(Strict):
    ad_group_id: Id
    text: KeywordText = Field(description="stored trimmed, single-spaced, lower case")
    match_type: MatchType
    bid_micros: Micros | None = Field(None, description="omit to use the ad group default")
    status: Literal["enabled", "paused"] = "enabled"
    external_id: ExternalId | None = None


class KeywordUpdate(Strict):
    status: EntityStatus = omitted("removed is final")
    bid_micros: Micros = omitted()
    reason: Reason = omitted("why the bid changed, kept in bid_history")


class KeywordRead(ReadModel):
    id: int
    ad_group_id: int
    external_id: str | None
    text: str
    match_type: MatchType
    status: EntityStatus
    bid_micros: int | None
    quality_score: int | None
    created_at: datetime
    updated_at: datetime


class KeywordFilters(Filters):
    sort: KeywordSort = "id"
    status: EntityStatus | None = None
    ad_group_id: IdFilter | None = None
    campaign_id: IdFilter | None = None
    match_type: MatchType | None = None
    q: SearchText | None = Field(None, description="text contains")
