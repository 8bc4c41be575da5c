"""Operations around every request: request ids, JSON access logs, Prometheus metrics and
rate limits; and ``install_operations``, which wires them (and Redis) into the app.

Request ids: an incoming ``X-Request-ID`` of up to 128 safe characters is kept, anything
else is replaced by a new one; it is bound to every log line of the request and echoed
in the response. Metrics label requests by *route template* (``/api/v1/keywords/{keyword_id}``),
never by raw path, so their number stays bounded.

Rate limits: every ``/api/v1`` request counts against its caller: the API key (by its
public prefix), else the user of a valid bearer token, else the client address. Over the
limit the answer is 429 in the one error shape, with ``Retry-After``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aredis
import structlog
from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adbot.api.deps import API_PREFIX
from adbot.api.errors import error_response
from adbot.config import Settings
from adbot.errors import AuthenticationFailed, RateLimited
from adbot.observability import HTTP_LATENCY, HTTP_REQUESTS, RATE_LIMITED, configure_logging
from adbot.security.api_keys import parse_key
from adbot.services.principals import PrincipalCache, RemoteGeneration
from adbot.services.ratelimit import RateLimiter, RedisHealth, async_client, sync_client
from adbot.services.reports import ReportCache

log = structlog.get_logger("adbot.api.access")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
RATE_WINDOW_SECONDS = 60.0
UNMATCHED_ROUTE = "unmatched"


@dataclass
class Operations:
    """Per-app Redis state: shared health, the report cache, the authenticated-principal
    cache and the rate limiter. The asyncio Redis client (limits, cached reports, the
    credentials generation) is made on first use inside the serving event loop; every
    client is closed at shutdown.
    """

    settings: Settings
    health: RedisHealth
    cache: ReportCache = field(init=False)
    principals: PrincipalCache = field(init=False)
    _redis: aredis.Redis | None = field(default=None, init=False, repr=False)
    _limiter: RateLimiter | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        url = self.settings.redis.url
        client = sync_client(url) if url else None
        self.cache = ReportCache(client, self.health, async_client=self.async_redis)
        self.principals = PrincipalCache(
            self.settings.auth.principal_cache_seconds,
            remote=RemoteGeneration(self.health, client, self.async_redis),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Operations:
        return cls(settings=settings, health=RedisHealth(settings.redis.url))

    def async_redis(self) -> aredis.Redis | None:
        url = self.settings.redis.url
        if self._redis is None and url:
            self._redis = async_client(url)
        return self._redis

    def limiter(self) -> RateLimiter:
        if self._limiter is None:
            self._limiter = RateLimiter(
                limit=self.settings.api.rate_limit_per_minute,
                window=RATE_WINDOW_SECONDS,
                health=self.health,
                client=self.async_redis(),
            )
        return self._limiter

    async def close(self) -> None:
        self._limiter = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self.cache.client is not None:
            self.cache.client.close()


def operations_of(app: Any) -> Operations:
    operations: Operations = app.state.operations
    return operations


# --- request context: ids, access logs, metrics -------------------------------------------


def route_template(scope: Scope) -> str:
    """The matched route's template with its router prefix (``/api/v1/keywords/{id}``).

    FastAPI hands over the route of the included router, whose path lacks the prefix; the
    prefix is what the request path has in front of the route's filled-in template.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return UNMATCHED_ROUTE
    params = {name: str(value) for name, value in scope.get("path_params", {}).items()}
    try:
        concrete = template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template
    path = str(scope.get("path", ""))
    return path[: len(path) - len(concrete)] + template if path.endswith(concrete) else template


def request_id_of(headers: Headers) -> str:
    given = headers.get(REQUEST_ID_HEADER, "")
    return given if _SAFE_REQUEST_ID.match(given) else uuid.uuid4().hex


class RequestContextMiddleware:
    """Outermost: binds the request id, times the request, logs it and counts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(Headers(scope=scope))
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            self._record(scope, status, seconds)
            structlog.contextvars.unbind_contextvars("request_id")

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        method = str(scope.get("method", ""))
        route = route_template(scope)
        HTTP_REQUESTS.labels(method, route, str(status)).inc()
        HTTP_LATENCY.labels(method, route).observe(seconds)
        client = scope.get("client")
        log.info(
            "request",
            method=method,
            path=scope.get("path", ""),
            route=route,
            status=status,
            duration_ms=round(seconds * 1000, 3),
            client=client[0] if client else None,
        )


# --- rate limits --------------------------------------------------------------------------


def caller_identity(headers: Headers, client: Any, operations: Operations) -> str:
    """Who a request counts against, without touching the database."""
    key = headers.get("x-api-key")
    if key:
        parsed = parse_key(key.strip())
        if parsed is not None:
            return f"key:{parsed[0]}"
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            claims = operations.principals.access_claims(token.strip(), operations.settings.auth)
        except AuthenticationFailed:
            pass
        else:
            return f"user:{claims.user_id}"
    return f"ip:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    """Counts each ``/api/v1`` request; answers 429 once a caller is over the limit."""

    def __init__(self, app: ASGIApp, operations: Callable[[], Operations]) -> None:
        self.app = app
        self.operations = operations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        operations = self.operations()
        identity = caller_identity(Headers(scope=scope), scope.get("client"), operations)
        allowance = await operations.limiter().hit(identity)
        try:
            allowance.raise_if_exceeded()
        except RateLimited as exc:
            RATE_LIMITED.inc()
            response = error_response(
                429,
                exc.code,
                exc.message,
                exc.details,
                headers={
                    "Retry-After": str(exc.retry_after),
                    "X-RateLimit-Limit": str(allowance.limit),
                    "X-RateLimit-Remaining": "0",
                },
            )
            await response(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-RateLimit-Limit"] = str(allowance.limit)
                headers["X-RateLimit-Remaining"] = str(allowance.remaining)
            await send(message)

        await self.app(scope, receive, send_with_limits)


# --- wiring -------------------------------------------------------------------------------


def install_operations(app: FastAPI) -> None:
    """Logging, the health/metrics routes, rate limits, request context and Redis clean-up.

    Call after the routers are included: it also documents the 429 answer on every
    ``/api/v1`` operation of the OpenAPI schema.
    """
    from adbot.api.routers import health

    settings: Settings = app.state.settings
    configure_logging(settings.log_level)
    app.state.operations = Operations.from_settings(settings)
    app.include_router(health.router)
    app.add_middleware(RateLimitMiddleware, operations=lambda: operations_of(app))
    app.add_middleware(RequestContextMiddleware)
    _close_at_shutdown(app)
    _document_rate_limit(app)


def _close_at_shutdown(app: FastAPI) -> None:
    serve = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(inner: Any) -> AsyncIterator[Any]:
        try:
            async with serve(inner) as state:
                yield state
        finally:
            await operations_of(app).close()

    app.router.lifespan_context = lifespan


_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds until the caller's rate window resets",
        "schema": {"type": "integer"},
    }
}


def _document_rate_limit(app: FastAPI) -> None:
    """Every ``/api/v1`` answer may be a 429 (``ERROR_RESPONSES``); add its header."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            if not path.startswith(API_PREFIX):
                continue
            for operation in operations.values():
                too_many = operation.get("responses", {}).get("429")
                if too_many is not None:
                    too_many.setdefault("headers", _RETRY_AFTER)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
