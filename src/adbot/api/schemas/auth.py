"""Tokens, refresh, password change and the caller's identity."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from adbot.api.schemas.common import Strict
from adbot.db.models import Role
from adbot.security.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from adbot.services.common import Scope

Password = Annotated[
    str, StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
]
AnyPassword = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
TokenText = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class TokenResponse(BaseModel):
    """OAuth2 bearer token; ``refresh_token`` gets a new pair from ``/auth/refresh``."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


class RefreshRequest(Strict):
    refresh_token: TokenText


class PasswordChange(Strict):
    current_password: AnyPassword
    new_password: Password


class Me(BaseModel):
    account_id: int
    user_id: int | None
    role: Role | None
    scopes: list[Scope]
    api_key_id: int | None
