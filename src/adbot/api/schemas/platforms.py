"""Platform connections."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from adbot.api.schemas.common import (
    PRINTABLE,
    ExternalId,
    Filters,
    ReadModel,
    SearchText,
    ShortName,
    Strict,
    omitted,
)
from adbot.db.models import PlatformKind, PlatformStatus

CredentialsRef = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=PRINTABLE)]
# "error" is set by sync when the platform fails, never by a person.
SettableStatus = Literal["active", "paused", "disconnected"]
PlatformSort = Literal["id", "-id", "name", "-name", "created_at", "-created_at"]


class PlatformCreate(Strict):
    kind: PlatformKind
    name: ShortName
    external_customer_id: ExternalId | None = Field(
        None, description="the platform's customer id; required for google_ads"
    )
    credentials_ref: CredentialsRef | None = Field(
        None, description="where the credentials live (env var, vault path), never the secret"
    )
    status: SettableStatus = "active"


class PlatformUpdate(Strict):
    name: ShortName = omitted()
    status: SettableStatus = omitted()
    external_customer_id: ExternalId | None = None
    credentials_ref: CredentialsRef | None = None


class PlatformRead(ReadModel):
    id: int
    kind: PlatformKind
    name: str
    external_customer_id: str | None
    credentials_ref: str | None
    status: PlatformStatus
    last_sync_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class PlatformFilters(Filters):
    sort: PlatformSort = "id"
    status: PlatformStatus | None = None
    kind: PlatformKind | None = None
    q: SearchText | None = Field(None, description="name contains")
