"""``POST /conversions``: bulk conversion events, as JSON or CSV."""

from __future__ import annotations

from fastapi import APIRouter, Request

from adbot.api.deps import SessionDep, WriteAccess
from adbot.api.routers.metrics import (
    INGEST_RESPONSES,
    MAX_BODY_BYTES,
    Partial,
    RawBody,
    counted,
    read_batch,
)
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.ingestion import ConversionRowIn, IngestResultRead, batch_body
from adbot.db.models import ConversionSource
from adbot.services import ingestion as service

router = APIRouter(prefix="/conversions", tags=["performance data"], route_class=StrictJsonRoute)

CONVERSIONS_CSV_HEADER = (
    "conversion_action,external_id,occurred_at[,keyword_id|keyword,match_type,"
    "ad_group_id|ad_group,campaign_id|campaign,quantity,value_micros|value,source]"
)


@router.post(
    "",
    openapi_extra=batch_body(ConversionRowIn, CONVERSIONS_CSV_HEADER),
    responses=INGEST_RESPONSES,
    max_body_size=MAX_BODY_BYTES,
)
def ingest_conversions(
    request: Request,
    body: RawBody,
    actor: WriteAccess,
    session: SessionDep,
    partial: Partial = False,
) -> IngestResultRead:
    """Upsert up to 100,000 conversion events, keyed by `(conversion_action, external_id)`.

    A row names a keyword (its campaign follows) or a campaign; `source` defaults to `api`.
    """
    batch = read_batch(request, body)
    return counted(
        "conversions",
        lambda: service.ingest_conversions(
            session=session,
            account_id=actor.account_id,
            batch=batch,
            partial=partial,
            default_source=ConversionSource.API,
        ),
    )
