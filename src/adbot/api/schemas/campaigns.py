"""Campaigns. Budgets and CPA targets are integer micros."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictFloat

from adbot.api.schemas.common import (
    Day,
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
from adbot.db.models import BiddingStrategy, EntityStatus

NewStatus = Literal["enabled", "paused"]
Roas = Annotated[StrictFloat, Field(gt=0, le=1000, allow_inf_nan=False)]
CampaignSort = Literal[
    "id",
    "-id",
    "name",
    "-name",
    "created_at",
    "-created_at",
    "daily_budget_micros",
    "-daily_budget_micros",
]


class CampaignCreate(Strict):
    platform_id: Id
    name: Name
    daily_budget_micros: Micros = Field(description="daily budget in micros of the currency")
    bidding_strategy: BiddingStrategy = BiddingStrategy.MANUAL_CPC
    status: NewStatus = "enabled"
    target_cpa_micros: Micros | None = Field(None, description="required for target_cpa")
    target_roas: Roas | None = Field(None, description="required for target_roas")
    autopilot_enabled: StrictBool = False
    start_date: Day | None = None
    end_date: Day | None = None
    external_id: ExternalId | None = Field(None, description="the platform's id, once synced")


class CampaignUpdate(Strict):
    name: Name = omitted()
    status: EntityStatus = omitted("removed is final")
    daily_budget_micros: Micros = omitted()
    bidding_strategy: BiddingStrategy = omitted()
    target_cpa_micros: Micros | None = None
    target_roas: Roas | None = None
    autopilot_enabled: StrictBool = omitted()
    start_date: Day | None = None
    end_date: Day | None = None


class CampaignRead(ReadModel):
    id: int
    platform_id: int
    external_id: str | None
    name: str
    status: EntityStatus
    daily_budget_micros: int
    bidding_strategy: BiddingStrategy
    target_cpa_micros: int | None
    target_roas: float | None
    autopilot_enabled: bool
    start_date: date | None
    end_date: date | None
    last_synced_at: datetime | None
    created_at: datetime
    updated_at: datetime


class CampaignFilters(Filters):
    sort: CampaignSort = "id"
    status: EntityStatus | None = None
    platform_id: IdFilter | None = None
    q: SearchText | None = Field(None, description="name contains")
