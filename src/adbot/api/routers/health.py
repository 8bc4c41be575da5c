"""Probes and metrics for operators: ``/healthz``, ``/readyz``, ``/metrics`` (no auth).

``/healthz``: the process answers. ``/readyz``: the database answers (else 503) and
Redis, when configured, answers (else ``degraded``: the API keeps serving with
per-process rate limits and no report cache). ``/metrics``: Prometheus text format.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from adbot.api.deps import SessionDep
from adbot.api.middleware import operations_of
from adbot.api.routing import StrictJsonRoute

router = APIRouter(tags=["operations"], route_class=StrictJsonRoute)

Check = Literal["ok", "degraded", "disabled", "unavailable"]


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ok", "degraded", "unavailable"]
    checks: dict[str, Check]


@router.get("/healthz")
def healthz() -> Liveness:
    """The process is alive (no dependency is checked)."""
    return Liveness(status="ok")


@router.get(
    "/readyz",
    responses={503: {"model": Readiness, "description": "The database does not answer"}},
)
def readyz(request: Request, response: Response, session: SessionDep) -> Readiness:
    """Ready to serve: the database answers; Redis ``ok``, ``degraded`` or ``disabled``."""
    database: Check = "ok"
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        database = "unavailable"
    operations = operations_of(request.app)
    redis_check: Check = "disabled"
    if operations.cache.client is not None:
        redis_check = "ok" if operations.cache.ping() else "degraded"
    if database != "ok":
        response.status_code = 503
        status: Literal["ok", "degraded", "unavailable"] = "unavailable"
    else:
        status = "degraded" if redis_check == "degraded" else "ok"
    return Readiness(status=status, checks={"database": database, "redis": redis_check})


@router.get("/metrics", response_class=Response, include_in_schema=False)
def metrics() -> Response:
    """Prometheus metrics of this process (text exposition format)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
