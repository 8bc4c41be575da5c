"""Ingestion batches (documentation of the JSON body) and the ingestion result.

The rows are checked one by one by the ingestion service, not by these models, so that a
bad row is reported with its row number instead of failing the whole request; the models
describe the body for the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from adbot.api.schemas.common import MAX_ID, ReadModel
from adbot.services.ingestion import MAX_API_ROWS

MatchTypeName = Literal["exact", "phrase", "broad"]
SourceName = Literal["platform", "import", "api", "sim"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow")

    keyword_id: int | None = Field(None, ge=1, le=MAX_ID, description="or `keyword`")
    keyword: str | None = Field(None, max_length=80, description="keyword text")
    match_type: MatchTypeName | None = None
    ad_group_id: int | None = Field(None, ge=1, le=MAX_ID)
    ad_group: str | None = Field(None, max_length=255, description="ad group name")
    campaign_id: int | None = Field(None, ge=1, le=MAX_ID)
    campaign: str | None = Field(None, max_length=255, description="campaign name")


class MetricRowIn(_Row):
    """One keyword's figures for one UTC hour. Money in micros, or in currency units as
    ``cost`` and ``conversion_value``.
    """

    hour: AwareDatetime = Field(description="start of the hour, with a UTC offset")
    impressions: int = Field(ge=0)
    clicks: int = Field(ge=0, description="at most impressions")
    cost_micros: int = Field(ge=0)
    conversions: float = Field(0.0, ge=0, description="at most clicks")
    conversion_value_micros: int = Field(0, ge=0)


class ConversionRowIn(_Row):
    """One conversion event, upserted on ``(conversion_action, external_id)``; the campaign
    comes from the keyword when one is named.
    """

    conversion_action: str = Field(min_length=1, max_length=100)
    external_id: str = Field(min_length=1, max_length=128, description="order or click id")
    occurred_at: AwareDatetime
    quantity: float = Field(1.0, ge=0)
    value_micros: int = Field(0, ge=0)
    source: SourceName = "api"


def batch_body(row: type[BaseModel], csv_header: str) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON ``{"rows": [...]}`` or a CSV request body."""
    row_schema = row.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["rows"],
                        "additionalProperties": False,
                        "properties": {
                            "rows": {"type": "array", "maxItems": MAX_API_ROWS, "items": row_schema}
                        },
                    }
                },
                "text/csv": {
                    "schema": {"type": "string", "description": f"header line: {csv_header}"}
                },
            },
        }
    }


class RejectionRead(ReadModel):
    row: int = Field(description="1-based: row 1 is the first data row (rows[0] in JSON)")
    field: str
    reason: str


class IngestResultRead(ReadModel):
    kind: Literal["metrics", "conversions"]
    received: int
    accepted: int = Field(description="rows that passed every check")
    rejected_rows: int
    inserted: int
    updated: int = Field(description="existing rows whose values changed")
    unchanged: int = Field(description="existing rows already holding these values")
    written: bool
    rejected: list[RejectionRead]
    ignored_columns: list[str] = Field(description="input columns AdBot does not use")
