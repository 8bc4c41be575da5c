"""Types every API schema shares: strict fields, bounded ids and money, pages, errors.

Money is exchanged as integer **micros** (millionths of the account currency: 1.25 USD is
``1250000``), the unit the database and the ad platforms use, so an amount is never a
float and never rounded.

Request bodies are validated strictly: unknown fields are refused, and a number sent as a
string (or a boolean as a number) is a type error, not silently converted.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
)

from adbot.services.common import Page as ServicePage

T = TypeVar("T")

MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database
# A trillion currency units: beyond any real amount, well inside a 64-bit column.
MAX_MICROS = 10**18
MAX_PAGE = 500

# No control characters (PostgreSQL cannot store NUL, the others are never meant) and no
# leading or trailing whitespace.
PRINTABLE = r"^[^\x00-\x1f\x7f\s]([^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?$"


def _text_only(value: Any) -> Any:
    # JSON has no date type: a date travels as an ISO 8601 string, never as a number.
    if not isinstance(value, str | date | datetime):
        raise ValueError("expected an ISO 8601 string")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=PRINTABLE)]
ShortName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=PRINTABLE)]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=PRINTABLE)]
SearchText = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=PRINTABLE)]
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Micros = Annotated[StrictInt, Field(ge=0, le=MAX_MICROS)]


def in_utc_range(value: datetime) -> datetime:
    """An aware timestamp that has a UTC time (``0001-01-01T00:00:00+01:00`` has none: it
    falls before year 1, and comparing or storing it raised OverflowError, a 500)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError("must lie between 0001-01-01 and 9999-12-31 in UTC") from None
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_text_only), AfterValidator(in_utc_range)]
Day = Annotated[date, BeforeValidator(_text_only)]

IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="row id")]
IdFilter = Annotated[int, Field(ge=1, le=MAX_ID)]


def omitted(description: str | None = None) -> Any:
    """Default of a PATCH field that may be left out (unchanged) but not set to null.

    Typed ``Any`` so a non-nullable field can default to "not sent"; only the fields the
    client sent reach the service (``model_dump(exclude_unset=True)``).
    """
    return Field(default=None, description=description)


class Strict(BaseModel):
    """Request bodies: unknown fields are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Filters(BaseModel):
    """Query parameters of a list; unknown parameters are refused too."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=MAX_PAGE, description="page size")
    offset: int = Field(0, ge=0, le=MAX_ID, description="rows to skip")


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


R = TypeVar("R", bound=ReadModel)


class Page(BaseModel, Generic[T]):
    """One page of a list: ``total`` counts every row matching the filters."""

    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    code: str = Field(description="stable machine-readable error id")
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The one shape of every 4xx and 5xx answer."""

    error: ErrorBody


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("Malformed request (for example invalid JSON)"),
    401: _error("Missing, invalid or expired credentials"),
    403: _error("The credentials do not allow this operation"),
    404: _error("No such row in the caller's account"),
    409: _error("Duplicate natural key, or a state change that is not allowed"),
    422: _error("A field is missing, of the wrong type, or out of range"),
    429: _error("Too many requests; retry after the Retry-After header's seconds"),
}


def page_of(model: type[R], page: ServicePage[Any]) -> Page[R]:
    """A service page as the API ``Page`` of ``model`` items."""
    items = [model.model_validate(item) for item in page.items]
    return Page[R](items=items, total=page.total, limit=page.limit, offset=page.offset)
