"""Ad groups."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from adbot.api.schemas.common import (
    ExternalId,
    Filters,
    Id,
    IdFilter,
    Micros,
    Name,
    ReadModel,
    SearchText,
    Strict,
    omitted,
)
from adbot.db.models import EntityStatus

AdGroupSort = Literal["id", "-id", "name", "-name", "created_at", "-created_at"]


class AdGroupCreate(Strict):
    campaign_id: Id
    name: Name
    status: Literal["enabled", "paused"] = "enabled"
    default_bid_micros: Micros | None = Field(
        None, description="bid of keywords without their own, in micros"
    )
    external_id: ExternalId | None = None


class AdGroupUpdate(Strict):
    name: Name = omitted()
    status: EntityStatus = omitted("removed is final")
    default_bid_micros: Micros | None = None


class AdGroupRead(ReadModel):
    id: int
    campaign_id: int
    external_id: str | None
    name: str
    status: EntityStatus
    default_bid_micros: int | None
    created_at: datetime
    updated_at: datetime


class AdGroupFilters(Filters):
    sort: AdGroupSort = "id"
    status: EntityStatus | None = None
    campaign_id: IdFilter | None = None
    q: SearchText | None = Field(None, description="name contains")
