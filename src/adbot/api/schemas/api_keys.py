"""API keys: the plaintext key appears once, in ``ApiKeyCreated``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from adbot.api.schemas.common import Filters, ReadModel, SearchText, ShortName, Strict, Timestamp
from adbot.services.common import Scope

ApiKeySort = Literal["id", "-id", "name", "-name", "created_at", "-created_at"]


class ApiKeyCreate(Strict):
    name: ShortName
    scopes: list[Scope] = Field(min_length=1, max_length=3, json_schema_extra={"uniqueItems": True})
    expires_at: Timestamp | None = Field(None, description="omit for a key that never expires")

    @field_validator("scopes")
    @classmethod
    def _each_scope_once(cls, scopes: list[Scope]) -> list[Scope]:
        # The schema says uniqueItems; a repeated scope is a client's mistake, not a wish.
        repeated = sorted({scope for scope in scopes if scopes.count(scope) > 1})
        if repeated:
            raise ValueError(f"each scope may appear once; repeated: {', '.join(repeated)}")
        return scopes


class ApiKeyRead(ReadModel):
    id: int
    name: str
    prefix: str = Field(description="public part of the key, shown in lists")
    scopes: list[Scope]
    user_id: int | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="send as X-API-Key; shown only now, store it safely")


class ApiKeyFilters(Filters):
    sort: ApiKeySort = "id"
    revoked: bool | None = None
    q: SearchText | None = Field(None, description="name contains (case-insensitive)")
