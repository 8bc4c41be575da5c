"""``POST /metrics/hourly``: bulk hourly keyword metrics, as JSON or CSV."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from adbot.api.deps import SessionDep, WriteAccess
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.common import ErrorResponse
from adbot.api.schemas.ingestion import IngestResultRead, MetricRowIn, batch_body
from adbot.errors import InvalidInput
from adbot.observability import ROWS_INGESTED, ROWS_REJECTED
from adbot.services import ingestion as service

router = APIRouter(prefix="/metrics", tags=["performance data"], route_class=StrictJsonRoute)

# A 100,000-row JSON batch is about 20 MB; anything far beyond is refused unread.
MAX_BODY_BYTES = 64 * 1024 * 1024
METRICS_CSV_HEADER = (
    "keyword_id|keyword[,match_type,ad_group_id|ad_group,campaign_id|campaign],hour,"
    "impressions,clicks,cost_micros|cost[,conversions,conversion_value_micros|conversion_value]"
)
INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "More than 100,000 rows, or a body too large"},
    415: {"model": ErrorResponse, "description": "Neither application/json nor text/csv"},
    422: {
        "model": ErrorResponse,
        "description": "Rejected rows (`rows_rejected`: details list each row, field and "
        "reason; nothing was written) or a malformed batch",
    },
}
Partial = Annotated[
    bool,
    Query(description="write the valid rows even when some are rejected (default: none)"),
]


class TooManyRows(InvalidInput):
    code = "payload_too_large"
    http_status = 413


async def raw_body(request: Request) -> bytes:
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]


def read_batch(request: Request, body: bytes) -> service.Batch:
    batch = service.read_body(body, request.headers.get("content-type"))
    if len(batch.frame) > service.MAX_API_ROWS:
        raise TooManyRows(
            f"{len(batch.frame):,} rows: send at most {service.MAX_API_ROWS:,} per request",
            details={"rows": len(batch.frame), "max_rows": service.MAX_API_ROWS},
        )
    return batch


def counted(kind: str, ingest: Callable[[], service.IngestResult]) -> IngestResultRead:
    """Run an ingestion, counting accepted and rejected rows for ``/metrics``."""
    try:
        result = ingest()
    except service.RowsRejected as exc:
        ROWS_REJECTED.labels(kind).inc(exc.result.rejected_rows)
        raise
    ROWS_REJECTED.labels(kind).inc(result.rejected_rows)
    ROWS_INGESTED.labels(kind).inc(result.accepted)
    return IngestResultRead.model_validate(result.as_dict())


@router.post(
    "/hourly",
    openapi_extra=batch_body(MetricRowIn, METRICS_CSV_HEADER),
    responses=INGEST_RESPONSES,
    max_body_size=MAX_BODY_BYTES,
)
def ingest_hourly_metrics(
    request: Request,
    body: RawBody,
    actor: WriteAccess,
    session: SessionDep,
    partial: Partial = False,
) -> IngestResultRead:
    """Upsert up to 100,000 hourly keyword rows (JSON `{"rows": [...]}` or CSV).

    Each row is checked; rejected rows are listed with row number, field and reason.
    Sending a batch again changes nothing; a corrected row replaces the stored one.
    """
    batch = read_batch(request, body)
    return counted(
        "metrics",
        lambda: service.ingest_metrics(
            session=session,
            account_id=actor.account_id,
            batch=batch,
            partial=partial,
        ),
    )
