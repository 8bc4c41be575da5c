"""The caller's account."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import StringConstraints

from adbot.api.schemas.common import Filters, Name, ReadModel, Strict, omitted
from adbot.db.models import AccountStatus

Slug = Annotated[
    str, StringConstraints(min_length=2, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
]
TimeZone = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")
]


class AccountRead(ReadModel):
    id: int
    slug: str
    name: str
    status: AccountStatus
    currency_code: str
    time_zone: str
    created_at: datetime
    updated_at: datetime


class AccountUpdate(Strict):
    name: Name = omitted()
    slug: Slug = omitted()
    time_zone: TimeZone = omitted("IANA name, e.g. Europe/Paris")


class AccountFilters(Filters):
    pass
