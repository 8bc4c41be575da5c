"""``GET /reports/performance``: sums and ratios by period and campaign, ad group or
keyword, as JSON or CSV.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from adbot.api.deps import ReadAccess, SessionDep
from adbot.api.middleware import operations_of
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.reports import ReportParams, ReportRead
from adbot.services import reports as service

router = APIRouter(prefix="/reports", tags=["reports"], route_class=StrictJsonRoute)

CSV_MEDIA = "text/csv"


def wants_csv(params: ReportParams, accept: str | None) -> bool:
    if params.format is not None:
        return params.format == "csv"
    accepted = [part.split(";")[0].strip().lower() for part in (accept or "").split(",")]
    return CSV_MEDIA in accepted and "application/json" not in accepted


@router.get(
    "/performance",
    response_model=ReportRead,
    responses={200: {"content": {CSV_MEDIA: {"schema": {"type": "string"}}}}},
)
async def performance_report(
    params: Annotated[ReportParams, Query()],
    request: Request,
    actor: ReadAccess,
    session: SessionDep,
) -> Response:
    """Impressions, clicks, cost, conversions, value, CTR, CPC, CPA and ROAS per period.

    Periods are UTC hours, days or ISO weeks (Monday); `start` and `end` are inclusive
    days. Ratios are null when their denominator is 0. Money is micros.
    """
    query = service.ReportQuery(
        level=params.level,
        grain=params.grain,
        start=params.start,
        end=params.end,
        campaign_ids=tuple(params.campaign_id),
        ad_group_ids=tuple(params.ad_group_id),
        keyword_ids=tuple(params.keyword_id),
        sort=params.sort,
        limit=params.limit,
        offset=params.offset,
    )
    cache = operations_of(request.app).cache
    csv = wants_csv(params, request.headers.get("accept"))
    if not csv:
        # The busy path: a cached report's stored JSON text, straight from the event loop.
        cached = await service.cached_performance_report(
            account_id=actor.account_id, query=query, cache=cache
        )
        if cached is not None:
            return Response(cached.json_text(), media_type="application/json")
    report = await run_in_threadpool(
        partial(
            service.performance_report,
            session=session,
            account_id=actor.account_id,
            query=query,
            cache=cache,
        )
    )
    if csv:
        filename = f"performance-{params.level}-{params.grain}-{params.start}-{params.end}.csv"
        return Response(
            await run_in_threadpool(service.report_csv, report),
            media_type=f"{CSV_MEDIA}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    # JSON-ready already (as cached, or just computed): sent without re-validation.
    return Response(report.json_text(), media_type="application/json")
