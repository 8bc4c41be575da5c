"""Every error leaves the API in one shape: ``{"error": {"code", "message", "details"}}``.

``AdbotError`` classes map to HTTP here and nowhere else (their ``http_status``/``code``).
Request validation errors name the field; an unexpected exception becomes a plain 500
and its traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adbot.db.engine import lost_write_race
from adbot.errors import AdbotError, AuthenticationFailed, RateLimited

logger = logging.getLogger("adbot.api")

_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
# Validation error types that mean "the body is not JSON", not "a field is wrong".
_MALFORMED = {"json_invalid"}
_LISTED_IN_MESSAGE = 3
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


def field_name(loc: Sequence[int | str]) -> str:
    """``("body", "changes", 3, "bid_micros")`` -> ``changes[3].bid_micros``."""
    parts = list(loc[1:]) if loc and loc[0] in {"body", "query", "path", "header"} else list(loc)
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or (str(loc[0]) if loc else "request")


def _validation_details(errors: Sequence[Any]) -> list[dict[str, str]]:
    # No "input" or "ctx": they may echo a password back or hold objects JSON cannot carry.
    return [
        {
            "field": field_name(error.get("loc", ())),
            "location": str(error.get("loc", ("body",))[0]),
            "message": str(error.get("msg", "invalid value")),
            "type": str(error.get("type", "value_error")),
        }
        for error in errors
    ]


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    details = _validation_details(errors)
    malformed = [error for error in errors if error.get("type") in _MALFORMED]
    if malformed:
        # The parser's reason (json's "Expecting value", a duplicate key) names no value.
        reason = (malformed[0].get("ctx") or {}).get("error")
        message = "request body is not valid JSON" + (f": {reason}" if reason else "")
        return error_response(400, "malformed_json", message, details)
    shown = "; ".join(f"{d['field']}: {d['message']}" for d in details[:_LISTED_IN_MESSAGE])
    more = f" (and {len(details) - _LISTED_IN_MESSAGE} more)" if len(details) > 3 else ""
    return error_response(422, "validation_error", f"invalid request: {shown}{more}", details)


async def _on_adbot_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AdbotError)
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if exc.http_status >= 500:
        logger.error("request failed: %s", exc.message)
    return error_response(exc.http_status, exc.code, exc.message, exc.details, headers or None)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = _CODES.get(status, "error")
    try:
        default = HTTPStatus(status).phrase
    except ValueError:
        default = "error"
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else default
    if status == 404 and message == "Not Found":
        message = f"no route {request.url.path}"
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
        if message == "Method Not Allowed":
            message = f"method {request.method} is not allowed on {request.url.path}"
    return error_response(status, code, message, headers=headers or None)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path. Starlette's own ``Allow`` names only the
    first matching route's, and AdBot has one route per method.
    """
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _on_database_down(request: Request, exc: Exception) -> JSONResponse:
    if lost_write_race(exc):  # SQLite, two writes at once (a refresh token sent twice, say)
        logger.warning("database busy: a concurrent write won")
        return error_response(
            503, "database_busy", "the database was busy with another change; nothing was written"
        )
    logger.error("database unavailable: %s", type(exc).__name__)
    return error_response(503, "database_unavailable", "the database is not reachable")


class CatchAll:
    """Outermost safety net: an exception nobody handled answers 500 in the error shape.

    Starlette's own server-error handler re-raises after answering; this one does not, so
    no traceback reaches a client or a test client, and the log gets the traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = error_response(500, "internal_error", "internal server error")
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(AdbotError, _on_adbot_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(OperationalError, _on_database_down)
    app.add_exception_handler(InterfaceError, _on_database_down)
    app.add_middleware(CatchAll)
