"""Declarative base, constraint naming convention and the column types every model shares."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Stable names so migrations can refer to (and drop) constraints on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so the value is stored as
    naive UTC and made aware again when read. Naive datetimes are refused: their zone is a
    guess, and a wrong guess silently shifts hourly metrics.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: pass an aware UTC time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


E = TypeVar("E", bound=StrEnum)


class EnumText(TypeDecorator[E]):
    """A ``StrEnum`` stored as VARCHAR (paired with a CHECK from ``one_of``), never a native
    enum type, so SQLite and PostgreSQL hold the same values and adding one is a CHECK change.
    """

    impl = String(32)
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; PostgreSQL gets a 64-bit key for
# the tables that grow by the hour.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JSONType = JSON().with_variant(JSONB(), "postgresql")

IntPK = Annotated[int, mapped_column(Integer, primary_key=True)]
BigPK = Annotated[int, mapped_column(BigId, primary_key=True)]
Micros = Annotated[int, mapped_column(BigInteger)]  # money: millionths of the currency unit
Count = Annotated[int, mapped_column(BigInteger)]
UTCTime = Annotated[datetime, mapped_column(UTCDateTime())]
CreatedAt = Annotated[
    datetime,
    mapped_column(UTCDateTime(), default=utcnow, server_default=text("CURRENT_TIMESTAMP")),
]
UpdatedAt = Annotated[
    datetime,
    mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, server_default=text("CURRENT_TIMESTAMP")
    ),
]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}


def sql_list(values: Iterable[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def one_of(column: str, values: type[StrEnum], *, name: str | None = None) -> CheckConstraint:
    """``column IN (...)``: enum values are VARCHAR + CHECK so SQLite and PostgreSQL agree."""
    return CheckConstraint(
        f"{column} IN ({sql_list(member.value for member in values)})", name=name or column
    )


def non_negative(*columns: str) -> list[CheckConstraint]:
    return [CheckConstraint(f"{column} >= 0", name=f"{column}_non_negative") for column in columns]


def children(back_populates: str, **kwargs: Any) -> Any:
    """A parent's collection of rows the database deletes with it (``ON DELETE CASCADE``).

    ``passive_deletes`` leaves the cascade to the database, so deleting a parent never
    loads its children (they are ``lazy="raise"``).
    """
    return relationship(
        back_populates=back_populates,
        lazy="raise",
        cascade="all, delete-orphan",
        passive_deletes=True,
        **kwargs,
    )
