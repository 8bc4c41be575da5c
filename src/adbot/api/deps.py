"""Dependencies of the routes: settings, a database session, and the authenticated actor.

``get_session`` is the one place a request gets its session; tests override it to run
each request inside their rolled-back transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session

from adbot.config import Settings
from adbot.errors import AuthenticationFailed
from adbot.services import auth as auth_service
from adbot.services.common import Actor, Scope

API_PREFIX = "/api/v1"
TOKEN_URL = f"{API_PREFIX}/auth/token"

_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.database.sessionmaker() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


def current_actor(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Actor:
    """The caller, from a bearer token or an ``X-API-Key`` header (one, not both).

    A credential header that is present but empty or malformed is refused, never read as
    "no credentials".
    """
    sent_token = "authorization" in request.headers
    sent_key = "x-api-key" in request.headers
    if sent_token and sent_key:
        raise AuthenticationFailed("send a bearer token or an API key, not both")
    if sent_token:
        if not token:
            raise AuthenticationFailed("the Authorization header must be 'Bearer <token>'")
        return auth_service.actor_from_token(session=session, token=token, auth=settings.auth)
    if sent_key:
        return auth_service.actor_from_api_key(session=session, key=api_key or "")
    raise AuthenticationFailed("not authenticated: send a bearer token or an X-API-Key header")


CurrentUser = Annotated[Actor, Depends(current_actor)]


def _requiring(scope: Scope) -> Callable[[Actor], Actor]:
    def dependency(actor: CurrentUser) -> Actor:
        actor.require(scope)
        return actor

    dependency.__name__ = f"require_{scope}"
    return dependency


ReadAccess = Annotated[Actor, Depends(_requiring(Scope.READ))]
WriteAccess = Annotated[Actor, Depends(_requiring(Scope.WRITE))]
AdminAccess = Annotated[Actor, Depends(_requiring(Scope.ADMIN))]
