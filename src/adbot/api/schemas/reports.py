"""Performance report parameters and rows; bid history filters."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from adbot.api.schemas.common import Filters, IdFilter, in_utc_range
from adbot.db.models import BidOutcome, BidSource
from adbot.services.reports import MAX_REPORT_ROWS, Grain, Level

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso(pattern: re.Pattern[str], example: str) -> Any:
    def check(value: Any) -> Any:
        # A query parameter is text; "0.5" must not pass as a Unix timestamp.
        if isinstance(value, str) and not pattern.match(value):
            raise ValueError(f"expected ISO 8601, like {example}")
        return value

    return BeforeValidator(check)


IsoDay = Annotated[date, _iso(_ISO_DAY, "2024-05-01")]
IsoTimestamp = Annotated[
    AwareDatetime, _iso(_ISO_TIME, "2024-05-01T13:00:00Z"), AfterValidator(in_utc_range)
]

ReportSort = Literal[
    "period",
    "-period",
    "campaign_id",
    "-campaign_id",
    "ad_group_id",
    "-ad_group_id",
    "keyword_id",
    "-keyword_id",
    "impressions",
    "-impressions",
    "clicks",
    "-clicks",
    "cost_micros",
    "-cost_micros",
    "conversions",
    "-conversions",
    "conversion_value_micros",
    "-conversion_value_micros",
    "ctr",
    "-ctr",
    "cpc_micros",
    "-cpc_micros",
    "cpa_micros",
    "-cpa_micros",
    "roas",
    "-roas",
]
IdList = list[IdFilter]


class ReportParams(BaseModel):
    """Query parameters of the performance report; unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid")

    level: Level = Field(Level.CAMPAIGN, description="rows per campaign, ad group or keyword")
    grain: Grain = Field(Grain.DAY, description="periods of an hour, a day or an ISO week (UTC)")
    start: IsoDay = Field(description="first day (UTC), inclusive")
    end: IsoDay = Field(description="last day (UTC), inclusive")
    campaign_id: IdList = Field(default_factory=list, max_length=1000)
    ad_group_id: IdList = Field(default_factory=list, max_length=1000)
    keyword_id: IdList = Field(default_factory=list, max_length=1000)
    sort: ReportSort = "period"
    limit: int = Field(1_000, ge=1, le=MAX_REPORT_ROWS)
    offset: int = Field(0, ge=0, le=10**9)
    format: Literal["json", "csv"] | None = Field(
        None, description="csv for a CSV download (or send Accept: text/csv)"
    )


class ReportRow(BaseModel):
    period: datetime = Field(description="start of the period, UTC")
    campaign_id: int
    campaign: str
    ad_group_id: int | None = None
    ad_group: str | None = None
    keyword_id: int | None = None
    keyword: str | None = None
    match_type: str | None = None
    impressions: int
    clicks: int
    cost_micros: int
    conversions: float
    conversion_value_micros: int
    ctr: float | None = Field(description="clicks / impressions")
    cpc_micros: float | None = Field(description="cost / clicks")
    cpa_micros: float | None = Field(description="cost / conversions")
    roas: float | None = Field(description="conversion value / cost")


class ReportRead(BaseModel):
    level: Level
    grain: Grain
    columns: list[str]
    rows: list[ReportRow]
    total: int = Field(description="rows matching, before limit and offset")
    limit: int
    offset: int


BidHistorySort = Literal["id", "-id", "created_at", "-created_at"]


class BidHistoryParams(Filters):
    sort: BidHistorySort = "-created_at"
    campaign_id: IdFilter | None = None
    keyword_id: IdFilter | None = None
    cycle_id: uuid.UUID | None = None
    source: BidSource | None = None
    outcome: BidOutcome | None = None
    since: IsoTimestamp | None = Field(None, description="created at or after (with offset)")
    until: IsoTimestamp | None = Field(None, description="created before (with offset)")
