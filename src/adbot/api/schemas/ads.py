"""Ads: headlines and descriptions with the platforms' length limits."""

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
    ReadModel,
    SearchText,
    Strict,
    omitted,
)
from adbot.db.models import AdKind, EntityStatus

Headline = Annotated[str, StringConstraints(min_length=1, max_length=30, pattern=PRINTABLE)]
Description = Annotated[str, StringConstraints(min_length=1, max_length=90, pattern=PRINTABLE)]
Url = Annotated[
    str, StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$")
]
Headlines = Annotated[list[Headline], Field(min_length=3, max_length=15)]
Descriptions = Annotated[list[Description], Field(min_length=2, max_length=4)]
AdSort = Literal["id", "-id", "created_at", "-created_at", "final_url", "-final_url"]


class AdCreate(Strict):
    ad_group_id: Id
    final_url: Url
    headlines: Headlines
    descriptions: Descriptions
    kind: AdKind = AdKind.RESPONSIVE_SEARCH
    status: Literal["enabled", "paused"] = "enabled"
    external_id: ExternalId | None = None


class AdUpdate(Strict):
    final_url: Url = omitted()
    headlines: Headlines = omitted()
    descriptions: Descriptions = omitted()
    status: EntityStatus = omitted("removed is final")


class AdRead(ReadModel):
    id: int
    ad_group_id: int
    external_id: str | None
    kind: AdKind
    status: EntityStatus
    headlines: list[str]
    descriptions: list[str]
    final_url: str
    created_at: datetime
    updated_at: datetime


class AdFilters(Filters):
    sort: AdSort = "id"
    status: EntityStatus | None = None
    ad_group_id: IdFilter | None = None
    campaign_id: IdFilter | None = None
    kind: AdKind | None = None
    q: SearchText | None = Field(None, description="final URL contains")
