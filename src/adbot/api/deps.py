"""Dependencies of the routes: settings, a database session, and the authenticated actor.

``get_session`` is the one place a request gets its session; tests override it to run
each request inside their rolled-back transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from adbot.config import Settings
from adbot.errors import AuthenticationFailed
from adbot.services import auth as auth_service
from adbot.services.common import Actor, Scope
from adbot.services.principals import PrincipalCache

API_PREFIX = "/api/v1"
TOKEN_URL = f"{API_PREFIX}/auth/token"

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[Session]:
    """A session that connects on first use: a request answered from caches (an
    authenticated principal, a cached report) never checks out a connection.
    """
    session: Session = request.app.state.database.sessionmaker()
    try:
        yield session
    finally:
        if session.in_transaction():  # holds a connection: its rollback is a round trip
            await run_in_threadpool(session.close)
        else:
            session.close()


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


async def current_actor(
    request: Request,
    session: SessionDep,
    token: Annotated[str | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Actor:
    """The caller, from a bearer token or an ``X-API-Key`` header (one, not both).

    A credential header that is present but empty or malformed is refused, never read as
    "no credentials". A known caller is answered from the app's principal cache on the
    event loop; an unknown one is read from the database in a worker thread.
    """
    sent_token = "authorization" in request.headers
    sent_key = "x-api-key" in request.headers
    if sent_token and sent_key:
        raise AuthenticationFailed("send a bearer token or an API key, not both")
    settings: Settings = request.app.state.settings
    principals: PrincipalCache = request.app.state.operations.principals
    await principals.follow_remote()
    if sent_token:
        if not token:
            raise AuthenticationFailed("the Authorization header must be 'Bearer <token>'")
        actor = auth_service.cached_actor_from_token(
            token=token, auth=settings.auth, principals=principals
        )
        if actor is not None:
            return actor
        return await run_in_threadpool(
            partial(
                auth_service.actor_from_token,
                session=session,
                token=token,
                auth=settings.auth,
                principals=principals,
            )
        )
    if sent_key:
        actor = auth_service.cached_actor_from_api_key(key=api_key or "", principals=principals)
        if actor is not None:
            return actor
        return await run_in_threadpool(
            partial(
                auth_service.actor_from_api_key,
                session=session,
                key=api_key or "",
                principals=principals,
            )
        )
    raise AuthenticationFailed("not authenticated: send a bearer token or an X-API-Key header")


CurrentUser = Annotated[Actor, Depends(current_actor)]


def _requiring(scope: Scope) -> Callable[[Actor], Coroutine[Any, Any, Actor]]:
    async def dependency(actor: CurrentUser) -> Actor:
        actor.require(scope)
        return actor

    dependency.__name__ = f"require_{scope}"
    return dependency


ReadAccess = Annotated[Actor, Depends(_requiring(Scope.READ))]
WriteAccess = Annotated[Actor, Depends(_requiring(Scope.WRITE))]
AdminAccess = Annotated[Actor, Depends(_requiring(Scope.ADMIN))]


# --- query strings: every parameter declared, a single value given once ---------------------

QueryShape = dict[tuple[str, str], dict[str, bool]]  # (method, path) -> {name: takes a list}


def _query_shapes(request: Request) -> QueryShape:
    """Each operation's query parameters and whether each takes a list, read once from the
    app's own OpenAPI schema (what ``/docs`` shows is what is checked)."""
    app = request.app
    shapes: QueryShape | None = getattr(app.state, "query_shapes", None)
    if shapes is None:
        shapes = {}
        for path, operations in app.openapi().get("paths", {}).items():
            for method, operation in operations.items():
                shapes[(method.upper(), path)] = {
                    parameter["name"]: _takes_list(parameter.get("schema", {}))
                    for parameter in operation.get("parameters", [])
                    if parameter.get("in") == "query"
                }
        app.state.query_shapes = shapes
    return shapes


def _takes_list(schema: dict[str, Any]) -> bool:
    kinds = [schema, *schema.get("anyOf", [])]
    return any(kind.get("type") == "array" for kind in kinds)


async def strict_query_string(request: Request) -> None:
    """Refuse a query parameter the operation does not declare (``?parital=true`` was ignored
    without a word on some routes) and a single-valued one given twice (``?status=enabled
    &status=paused`` kept the last), as request bodies refuse unknown fields: 422 naming them."""
    from adbot.api.middleware import route_template  # it imports this module's prefix

    declared = _query_shapes(request).get((request.method, route_template(request.scope)))
    if declared is None:
        return
    problems = []
    for name in dict.fromkeys(request.query_params.keys()):
        values = request.query_params.getlist(name)
        if name not in declared:
            problems.append(_query_error(name, values[0], "extra_forbidden", "not a parameter"))
        elif len(values) > 1 and not declared[name]:
            problems.append(_query_error(name, values, "too_many", "give it once"))
    if problems:
        raise RequestValidationError(problems)


def _query_error(name: str, value: object, kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("query", name), "msg": message, "input": value}


StrictQuery = Depends(strict_query_string)
