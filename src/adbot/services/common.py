"""What every management service shares: the acting principal, rows scoped to an account,
pages, sorting, search, archiving, transactions and the translation of database constraint
errors into AdBot errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from adbot.db.models import Ad, AdGroup, Campaign, EntityStatus, Keyword, Role
from adbot.errors import Conflict, InvalidInput, NotFound, PermissionDenied

T = TypeVar("T")
S = TypeVar("S", Campaign, AdGroup, Ad, Keyword)  # the tables with an EntityStatus


class Scope(StrEnum):
    """What a request may do: read data, change campaigns and bids, administer the account."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.ANALYST: frozenset({Scope.READ, Scope.WRITE}),
    Role.VIEWER: frozenset({Scope.READ}),
}


@dataclass(frozen=True)
class Actor:
    """Who is acting, inside which account, allowed to do what.

    A user's scopes come from the role; an API key's are the key's scopes limited by the
    role of the user who owns it. Every service query is filtered by ``account_id``.
    """

    account_id: int
    user_id: int | None
    role: Role | None
    scopes: frozenset[Scope]
    api_key_id: int | None = None

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes:
            via = "this API key" if self.api_key_id is not None else f"role {self.role}"
            raise PermissionDenied(
                f"{via} does not allow '{scope}' operations", details={"required_scope": scope}
            )


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def paginate(
    session: Session,
    stmt: Select[tuple[T]],
    *,
    limit: int,
    offset: int,
    order_by: Sequence[ColumnElement[Any]],
) -> Page[T]:
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = list(session.scalars(stmt.order_by(*order_by).limit(limit).offset(offset)))
    return Page(items=items, total=int(total or 0), limit=limit, offset=offset)


def ordering(
    sort: str,
    columns: Mapping[str, InstrumentedAttribute[Any]],
    tiebreak: InstrumentedAttribute[Any],
) -> list[ColumnElement[Any]]:
    """``"name"`` or ``"-name"`` as ORDER BY, then the primary key so pages are stable."""
    descending = sort.startswith("-")
    column = columns.get(sort.removeprefix("-"))
    if column is None:
        raise InvalidInput(
            f"cannot sort by '{sort}'", details={"field": "sort", "allowed": sorted(columns)}
        )
    # Rows without a value (a keyword using its ad group's bid) go last either way.
    first = (column.desc() if descending else column.asc()).nulls_last()
    return [first, tiebreak.desc() if descending else tiebreak.asc()]


def contains(column: InstrumentedAttribute[str], text: str) -> ColumnElement[bool]:
    """Case-insensitive substring match; ``%`` and ``_`` in the text match themselves."""
    escaped = re.sub(r"([\\%_])", r"\\\1", text)
    return column.ilike(f"%{escaped}%", escape="\\")


@dataclass(frozen=True)
class Owned(Generic[T]):
    """Rows of an account: ``account_id`` is the model's column or that of the last table on
    the relationship path ``via``; ``label`` names a row in messages, ``sorts`` and ``search``
    serve its lists.
    """

    model: type[T]
    id: InstrumentedAttribute[int]
    label: str
    account_id: InstrumentedAttribute[int]
    sorts: Mapping[str, InstrumentedAttribute[Any]]
    search: InstrumentedAttribute[str]
    via: tuple[InstrumentedAttribute[Any], ...] = ()

    def select(self, account_id: int) -> Select[tuple[T]]:
        stmt = select(self.model)
        for relationship in self.via:
            stmt = stmt.join(relationship)
        return stmt.where(self.account_id == account_id)

    def get(self, session: Session, row_id: int, *, account_id: int) -> T:
        """Another account's row is as absent as a missing one."""
        row = session.scalar(self.select(account_id).where(self.id == row_id))
        if row is None:
            raise NotFound(f"{self.label} {row_id} not found")
        return row

    def page(
        self,
        session: Session,
        account_id: int,
        where: Sequence[tuple[InstrumentedAttribute[Any], object]],
        *,
        q: str | None,
        sort: str,
        limit: int,
        offset: int,
    ) -> Page[T]:
        """Each ``where`` column equals its value unless that is None; a non-empty ``q`` is a
        substring of the ``search`` column.
        """
        stmt = self.select(account_id)
        for column, value in where:
            if value is not None:
                stmt = stmt.where(column == value)
        if q:
            stmt = stmt.where(contains(self.search, q))
        order_by = ordering(sort, self.sorts, self.id)
        return paginate(session, stmt, limit=limit, offset=offset, order_by=order_by)


def check_transition(current: EntityStatus, new: EntityStatus, *, entity: str) -> None:
    """enabled <-> paused, anything -> removed; removed is final, as on the ad platforms."""
    if current == EntityStatus.REMOVED and new != EntityStatus.REMOVED:
        raise Conflict(
            f"a removed {entity} cannot be {new}",
            details={"field": "status", "from": current, "to": new},
        )


def check_bounds(value: int | None, *, field: str, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise InvalidInput(
            f"{field}: {value} is outside the configured bounds [{low}, {high}]",
            details={"field": field, "min": low, "max": high},
        )


def apply_changes(row: object, changes: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(
            f"cannot change {', '.join(sorted(unknown))}", details={"fields": sorted(unknown)}
        )
    for name, value in changes.items():
        setattr(row, name, value)


# Natural keys by table, as (columns, what a person would call the key).
NATURAL_KEYS: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "accounts": [(("slug",), "slug")],
    "users": [(("email",), "email")],
    "platforms": [
        (("account_id", "name"), "name"),
        (("account_id", "kind", "external_customer_id"), "kind + external_customer_id"),
    ],
    "campaigns": [(("platform_id", "external_id"), "platform_id + external_id")],
    "ad_groups": [(("campaign_id", "external_id"), "campaign_id + external_id")],
    "ads": [(("ad_group_id", "external_id"), "ad_group_id + external_id")],
    "keywords": [
        (("ad_group_id", "text", "match_type"), "ad_group_id + text + match_type"),
        (("ad_group_id", "external_id"), "ad_group_id + external_id"),
    ],
    "api_keys": [(("prefix",), "prefix")],
}

_UNIQUE_VIOLATION = "23505"
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")


def error_from_integrity(exc: IntegrityError) -> Conflict | InvalidInput:
    """A duplicate natural key names the key; anything else is a generic conflict."""
    key = _violated_key(exc)
    if key is not None:
        table, label = key
        singular = table.removesuffix("s").replace("_", " ")
        return Conflict(
            f"a {singular} with this {label} already exists", details={"key": label.split(" + ")}
        )
    return Conflict("the change conflicts with existing data")


def _violated_key(exc: IntegrityError) -> tuple[str, str] | None:
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    if getattr(orig, "sqlstate", None) == _UNIQUE_VIOLATION and constraint:
        for table, keys in NATURAL_KEYS.items():
            for columns, label in keys:
                if constraint == f"uq_{table}_{'_'.join(columns)}":
                    return table, label
    match = _SQLITE_UNIQUE.search(str(orig))
    if match:
        qualified = [part.strip().split(".") for part in match.group(1).split(",")]
        table = qualified[0][0]
        columns = tuple(part[-1] for part in qualified)
        for key_columns, label in NATURAL_KEYS.get(table, []):
            if key_columns == columns:
                return table, label
    return None


@contextmanager
def writing(session: Session) -> Iterator[None]:
    """One unit of work: committed when the block ends, rolled back on any error, so a
    failed request leaves nothing half-written.
    """
    try:
        yield
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise error_from_integrity(exc) from None
    except BaseException:
        session.rollback()
        raise


def archive(session: Session, row: S) -> S:
    """Status ``removed``, which is final; the row and everything that refers to it stay."""
    with writing(session):
        row.status = EntityStatus.REMOVED
    return row
