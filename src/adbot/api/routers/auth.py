"""Sign-in (OAuth2 password form), token refresh, sign-out everywhere, password change,
identity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Response

from adbot.api.deps import CurrentUser, SessionDep, SettingsDep
from adbot.api.routing import StrictJsonRoute
from adbot.api.schemas.auth import Me, PasswordChange, RefreshRequest, TokenResponse
from adbot.security.passwords import MAX_PASSWORD_LENGTH
from adbot.services import auth as service
from adbot.services.auth import TokenPair

NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
NO_CONTROL_OR_EMPTY = r"^[^\x00-\x1f\x7f]*$"

router = APIRouter(prefix="/auth", tags=["auth"], route_class=StrictJsonRoute)


def _token_response(pair: TokenPair) -> TokenResponse:
    seconds = int((pair.access_expires_at - datetime.now(UTC)).total_seconds())
    return TokenResponse(
        access_token=pair.access_token,
        expires_in=max(seconds, 0),
        expires_at=pair.access_expires_at,
        refresh_token=pair.refresh_token,
        refresh_expires_at=pair.refresh_expires_at,
    )


@router.post("/token")
def issue_token(
    session: SessionDep,
    settings: SettingsDep,
    username: Annotated[
        str, Form(min_length=1, max_length=320, pattern=NO_CONTROL, description="email")
    ],
    password: Annotated[str, Form(min_length=1, max_length=MAX_PASSWORD_LENGTH)],
    grant_type: Annotated[Literal["password"] | None, Form()] = None,
    scope: Annotated[str, Form(max_length=200, pattern=NO_CONTROL_OR_EMPTY)] = "",
) -> TokenResponse:
    """OAuth2 password flow: a short-lived bearer token and a refresh token."""
    pair = service.login(session=session, email=username, password=password, auth=settings.auth)
    return _token_response(pair)


@router.post("/refresh")
def refresh_token(
    body: RefreshRequest, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    """The next token pair of the refresh token's sign-in session. Each refresh token is good
    for one refresh: keep the new one. A refresh token used a second time signs its session
    out (401), for whoever holds that session's newest token too."""
    pair = service.refresh(session=session, refresh_token=body.refresh_token, auth=settings.auth)
    return _token_response(pair)


@router.post("/logout", status_code=204, response_class=Response)
def sign_out_everywhere(actor: CurrentUser, session: SessionDep) -> None:
    """Sign out everywhere: every access and refresh token issued to you so far stops working,
    this one included (sign in again for new ones). For a token that may have leaked; your API
    keys are not affected (revoke a key under /api-keys)."""
    service.sign_out_everywhere(session=session, actor=actor)


@router.get("/me")
def me(actor: CurrentUser) -> Me:
    return Me(
        account_id=actor.account_id,
        user_id=actor.user_id,
        role=actor.role,
        scopes=sorted(actor.scopes),
        api_key_id=actor.api_key_id,
    )


@router.post("/password")
def change_password(
    body: PasswordChange, actor: CurrentUser, session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    """Change your password; every token issued before stops working."""
    pair = service.change_password(
        session=session,
        actor=actor,
        current_password=body.current_password,
        new_password=body.new_password,
        auth=settings.auth,
    )
    return _token_response(pair)
