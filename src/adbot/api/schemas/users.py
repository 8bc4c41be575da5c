"""People of the caller's account."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StringConstraints

from adbot.api.schemas.auth import Password
from adbot.api.schemas.common import Filters, ReadModel, SearchText, Strict, omitted
from adbot.db.models import Role

Email = Annotated[
    str,
    StringConstraints(
        min_length=3, max_length=320, pattern=r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$"
    ),
]
FullName = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
UserSort = Literal[
    "id", "-id", "email", "-email", "full_name", "-full_name", "created_at", "-created_at"
]


class UserCreate(Strict):
    email: Email = Field(description="sign-in name, stored in lower case")
    password: Password
    role: Role = Role.VIEWER
    full_name: FullName = ""


class UserUpdate(Strict):
    full_name: FullName = omitted()
    role: Role = omitted()
    is_active: StrictBool = omitted()
    password: Password = omitted()


class UserRead(ReadModel):
    id: int
    email: str
    full_name: str
    role: Role
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime


class UserFilters(Filters):
    sort: UserSort = "id"
    role: Role | None = None
    is_active: bool | None = None
    q: SearchText | None = Field(None, description="email or full name contains")
