"""Performance reports and the bid history.

A performance report sums ``performance_metrics`` by period (hour, day or ISO week,
in UTC) and by campaign, ad group or keyword, and derives CTR, CPC, CPA and ROAS, all in
one SQL statement. Periods start at UTC midnight (day) and Monday 00:00 UTC (week):
PostgreSQL ``date_trunc(grain, hour, 'UTC')``; SQLite ``strftime`` on the stored UTC text
(week: back 6 days, then forward to a Monday). A week cut by the date range holds only
the days inside it.

Derived figures are NULL when their denominator is 0: ``ctr = clicks / impressions``,
``cpc_micros = cost / clicks``, ``cpa_micros = cost / conversions``,
``roas = conversion value / cost``.

Sums are exact whatever their size: PostgreSQL sums a ``bigint`` column as ``numeric``;
SQLite, whose integer ``SUM`` fails past 2^63, sums each value's high and low 32 bits
apart, and the two sums are joined in Python (ratios and sorting use their ``REAL``
combination). The integer columns are JSON integers either way.

Results can be cached in Redis, keyed by account and parameters under a per-account
generation number that every commit changing what a report shows bumps (an ingestion that
wrote rows; a campaign, ad group or keyword created, renamed, paused or removed): the
services mark their transaction with ``reports_changed``, so a cached report never outlives
the data it was computed from.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any

import redis
import redis.asyncio as aredis
from sqlalchemy import (
    ColumnElement,
    Double,
    Numeric,
    Select,
    cast,
    event,
    func,
    select,
    type_coerce,
)
from sqlalchemy.orm import Session, SessionTransaction

from adbot.db.base import UTCDateTime
from adbot.db.models import (
    AdGroup,
    BidChange,
    BidOutcome,
    BidSource,
    Campaign,
    Keyword,
    PerformanceMetric,
)
from adbot.errors import InvalidInput
from adbot.services.common import Page, ordering, paginate
from adbot.services.ratelimit import RedisHealth

_FAILED = object()

MAX_REPORT_ROWS = 100_000
MAX_REPORT_DAYS = 3_660
CACHE_TTL_SECONDS = 600


class Level(StrEnum):
    CAMPAIGN = "campaign"
    AD_GROUP = "ad_group"
    KEYWORD = "keyword"


class Grain(StrEnum):
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"


SUMS = ("impressions", "clicks", "cost_micros", "conversions", "conversion_value_micros")
# The sums of bigint columns, exact integers of any size (``conversions`` is a float sum).
WHOLE_SUMS = ("impressions", "clicks", "cost_micros", "conversion_value_micros")
# SQLite sums a value's high and low 32 bits apart: neither sum can pass 2^63 below
# 2^31 rows a group, whatever the values.
_HALF = 2**32
_HIGH, _LOW = "__high", "__low"
DERIVED = ("ctr", "cpc_micros", "cpa_micros", "roas")
_IDS = {
    Level.CAMPAIGN: ("campaign_id",),
    Level.AD_GROUP: ("campaign_id", "ad_group_id"),
    Level.KEYWORD: ("campaign_id", "ad_group_id", "keyword_id"),
}
_NAMES = {
    Level.CAMPAIGN: ("campaign",),
    Level.AD_GROUP: ("campaign", "ad_group"),
    Level.KEYWORD: ("campaign", "ad_group", "keyword", "match_type"),
}


def report_columns(level: Level) -> list[str]:
    """The columns of a report row at ``level``, in order (also the CSV header)."""
    return ["period", *_IDS[level], *_NAMES[level], *SUMS, *DERIVED]


def sort_keys(level: Level) -> list[str]:
    return ["period", *_IDS[level], *SUMS, *DERIVED]


@dataclass(frozen=True)
class ReportQuery:
    level: Level
    grain: Grain
    start: date
    end: date  # inclusive
    campaign_ids: tuple[int, ...] = ()
    ad_group_ids: tuple[int, ...] = ()
    keyword_ids: tuple[int, ...] = ()
    sort: str = "period"
    limit: int = 1_000
    offset: int = 0

    def cache_key(self) -> str:
        params = json.dumps(
            {
                "level": self.level.value,
                "grain": self.grain.value,
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "campaign_ids": sorted(self.campaign_ids),
                "ad_group_ids": sorted(self.ad_group_ids),
                "keyword_ids": sorted(self.keyword_ids),
                "sort": self.sort,
                "limit": self.limit,
                "offset": self.offset,
            },
            sort_keys=True,
        )
        return hashlib.sha256(params.encode()).hexdigest()[:32]


class Report:
    """A report: ``level``, ``grain``, ``columns``, ``rows`` (JSON-ready dicts, ``period`` as
    ISO 8601 text), ``total`` (before paging), ``limit`` and ``offset``.

    Made from the computed document, or from its JSON text as cached, in which case the
    text is served as it is and only parsed if someone reads the rows (CSV export).
    """

    def __init__(self, document: dict[str, Any] | None = None, *, text: bytes | None = None):
        if document is None and text is None:
            raise ValueError("a report needs its document or its JSON text")
        self._document = document
        self._text = text

    @property
    def cached(self) -> bool:
        return self._document is None

    @cached_property
    def document(self) -> dict[str, Any]:
        if self._document is not None:
            return self._document
        assert self._text is not None
        parsed: dict[str, Any] = json.loads(self._text)
        return parsed

    @property
    def columns(self) -> list[str]:
        columns: list[str] = self.document["columns"]
        return columns

    @property
    def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.document["rows"]
        return rows

    @property
    def total(self) -> int:
        return int(self.document["total"])

    def json_text(self) -> bytes:
        if self._text is None:
            self._text = json.dumps(self.document, separators=(",", ":"), allow_nan=False).encode()
        return self._text


def performance_report(
    *,
    session: Session,
    account_id: int,
    query: ReportQuery,
    cache: ReportCache | None = None,
) -> Report:
    """The account's performance by ``query.grain`` and ``query.level``."""
    _check(query)
    if cache is None:
        return _compute(session, account_id, query)
    found, generation = cache.lookup(account_id, query)
    if found is not None:
        return found
    if generation is None:  # Redis off: nothing to share a result through
        return _compute(session, account_id, query)
    # One computation per report and process at a time: the others wait, then read it.
    with cache.computing(account_id, query):
        found, generation = cache.lookup(account_id, query)
        if found is not None:
            return found
        report = _compute(session, account_id, query)
        if generation is not None:
            cache.put(account_id, generation, query, report)
    return report


async def cached_performance_report(
    *, account_id: int, query: ReportQuery, cache: ReportCache
) -> Report | None:
    """The report from the cache without a thread or a database session; None when it is
    not cached (then ``performance_report``).
    """
    _check(query)
    return await cache.lookup_async(account_id, query)


def _check(query: ReportQuery) -> None:
    if query.end < query.start:
        raise InvalidInput("end is before start", details={"field": "end"})
    if (query.end - query.start).days >= MAX_REPORT_DAYS:
        raise InvalidInput(
            f"the date range may span at most {MAX_REPORT_DAYS} days", details={"field": "end"}
        )
    if not 1 <= query.limit <= MAX_REPORT_ROWS:
        raise InvalidInput(f"limit must be 1 to {MAX_REPORT_ROWS}", details={"field": "limit"})
    if query.sort.removeprefix("-") not in sort_keys(query.level):
        raise InvalidInput(
            f"cannot sort a {query.level} report by '{query.sort}'",
            details={"field": "sort", "allowed": sort_keys(query.level)},
        )


def _compute(session: Session, account_id: int, query: ReportQuery) -> Report:
    stmt = report_statement(session.get_bind().dialect.name, account_id, query)
    columns = report_columns(query.level)
    rows: list[dict[str, Any]] = []
    total = 0
    for row in session.execute(stmt).mappings():
        total = int(row["total"])
        values = {name: _json_value(row[name]) for name in columns}
        values.update((name, _whole_sum(row, name)) for name in WHOLE_SUMS)
        rows.append(values)
    if not rows and query.offset:
        total = _count(session, account_id, query)
    return Report(
        {
            "level": query.level.value,
            "grain": query.grain.value,
            "columns": columns,
            "rows": rows,
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
        }
    )


def _count(session: Session, account_id: int, query: ReportQuery) -> int:
    """Total groups when the page itself is past the end (so no row carried the total)."""
    stmt = report_statement(session.get_bind().dialect.name, account_id, query)
    counted = select(func.count()).select_from(stmt.limit(None).offset(None).subquery())
    return int(session.scalar(counted) or 0)


def _whole_sum(row: Any, name: str) -> int:
    """The exact sum of ``name``: the numeric sum (PostgreSQL), or its high and low halves
    joined (SQLite).
    """
    if name + _HIGH in row:
        return int(row[name + _HIGH]) * _HALF + int(row[name + _LOW])
    value = row[name]
    return int(value) if isinstance(value, Decimal | int) else int(Decimal(str(value)))


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if hasattr(value, "value"):  # enums
        return value.value
    return value


def period_expression(dialect: str, grain: Grain, hour: Any) -> ColumnElement[datetime]:
    """The start of ``hour``'s period, as a UTC timestamp, per backend."""
    if dialect == "postgresql":
        return type_coerce(func.date_trunc(grain.value, hour, "UTC"), UTCDateTime())
    modifiers: tuple[str, ...] = ("-6 days", "weekday 1") if grain == Grain.WEEK else ()
    pattern = "%Y-%m-%d %H:00:00" if grain == Grain.HOUR else "%Y-%m-%d 00:00:00"
    return type_coerce(func.strftime(pattern, hour, *modifiers), UTCDateTime())


def report_statement(dialect: str, account_id: int, query: ReportQuery) -> Select[Any]:
    """One statement: aggregate in a subquery, then names, ratios, total and the page."""
    metrics = PerformanceMetric.__table__
    period = period_expression(dialect, query.grain, metrics.c.hour).label("period")
    ids = [metrics.c[name] for name in _IDS[query.level]]
    sums: list[ColumnElement[Any]] = [func.sum(metrics.c.conversions).label("conversions")]
    for name in WHOLE_SUMS:
        sums += _exact_sum(dialect, metrics.c[name], name)
    aggregate = (
        select(period, *ids, *sums)
        .where(
            metrics.c.account_id == account_id,
            *_hours_between(metrics.c.hour, query.start, query.end),
            *_filters(metrics, query),
        )
        .group_by(period, *ids)
        .subquery("aggregate")
    )
    return _decorate(aggregate, query)


def _hours_between(hour: Any, first: date, last: date) -> list[ColumnElement[bool]]:
    """Hours from ``first`` 00:00 UTC to the end of ``last``; the last day Python can
    hold (9999-12-31) has no next midnight to stop before, and needs none.
    """
    bounds = [hour >= datetime.combine(first, time(), tzinfo=UTC)]
    if last < date.max:
        bounds.append(hour < datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC))
    return bounds


def _exact_sum(dialect: str, column: Any, name: str) -> list[ColumnElement[Any]]:
    """The sum of a bigint column that cannot overflow, as ``name`` (and, on SQLite, its
    exact halves as ``name__high`` and ``name__low``, see ``_whole_sum``).
    """
    if dialect == "postgresql":  # sum(bigint) is numeric; a cast back to bigint overflows
        return [cast(func.sum(column), Numeric).label(name)]
    high, low = func.sum(column // _HALF), func.sum(column % _HALF)
    return [
        (cast(high, Double) * float(_HALF) + cast(low, Double)).label(name),
        high.label(name + _HIGH),
        low.label(name + _LOW),
    ]


def _filters(metrics: Any, query: ReportQuery) -> list[ColumnElement[bool]]:
    filters = []
    for column, values in (
        ("campaign_id", query.campaign_ids),
        ("ad_group_id", query.ad_group_ids),
        ("keyword_id", query.keyword_ids),
    ):
        if values:
            filters.append(metrics.c[column].in_(values))
    return filters


def _ratio(numerator: Any, denominator: Any) -> ColumnElement[Any]:
    return cast(numerator, Double) / func.nullif(cast(denominator, Double), 0, type_=Double)


def _decorate(aggregate: Any, query: ReportQuery) -> Select[Any]:
    a = aggregate.c
    derived = [
        _ratio(a.clicks, a.impressions).label("ctr"),
        _ratio(a.cost_micros, a.clicks).label("cpc_micros"),
        _ratio(a.cost_micros, a.conversions).label("cpa_micros"),
        _ratio(a.conversion_value_micros, a.cost_micros).label("roas"),
    ]
    names: list[ColumnElement[Any]] = [Campaign.name.label("campaign")]
    stmt = select(aggregate, *derived, func.count().over().label("total")).join(
        Campaign, Campaign.id == a.campaign_id
    )
    if query.level in (Level.AD_GROUP, Level.KEYWORD):
        stmt = stmt.join(AdGroup, AdGroup.id == a.ad_group_id)
        names.append(AdGroup.name.label("ad_group"))
    if query.level == Level.KEYWORD:
        stmt = stmt.join(Keyword, Keyword.id == a.keyword_id)
        names += [Keyword.text.label("keyword"), Keyword.match_type.label("match_type")]
    stmt = stmt.add_columns(*names)
    by_name = {column.name: column for column in stmt.selected_columns}
    descending = query.sort.startswith("-")
    first = by_name[query.sort.removeprefix("-")]
    order = [(first.desc() if descending else first.asc()).nulls_last()]
    order += [by_name[name].asc() for name in ("period", *_IDS[query.level])]
    return stmt.order_by(*order).limit(query.limit).offset(query.offset)


# --- cache --------------------------------------------------------------------------------


class ReportCache:
    """Reports in Redis under ``adbot:report:<account>:<generation>:<params hash>``.

    ``invalidate`` bumps the account's generation, so every older entry is unreachable at
    once (and expires on its own); an entry computed before an ingestion committed is
    stored under the old generation and never served. Redis failures turn the cache off
    (``RedisHealth``), never the report.
    """

    def __init__(
        self,
        client: redis.Redis | None,
        health: RedisHealth,
        ttl: int = CACHE_TTL_SECONDS,
        *,
        async_client: Callable[[], aredis.Redis | None] | None = None,
    ) -> None:
        self.client = client
        self.health = health
        self.ttl = ttl
        # The event loop's client (made inside the loop, so a factory), for lookups that
        # must not take a thread: a cached report is answered without leaving the loop.
        self.async_client = async_client
        self._locks: dict[tuple[int, str], threading.Lock] = {}
        self._guard = threading.Lock()
        _CACHES.add(self)

    @contextmanager
    def computing(self, account_id: int, query: ReportQuery) -> Iterator[None]:
        """Hold the per-process lock of one report (no stampede of identical queries)."""
        key = (account_id, query.cache_key())
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield
        with self._guard:
            if not lock.locked():
                self._locks.pop(key, None)

    def _use(self, action: Callable[[redis.Redis], Any]) -> Any:
        """``action``'s result, or ``_FAILED`` when Redis is off or fails."""
        if self.client is None or not self.health.usable():
            return _FAILED
        try:
            result = action(self.client)
        except (redis.RedisError, OSError) as exc:
            self.health.failed(exc)
            return _FAILED
        self.health.succeeded()
        return result

    def ping(self) -> bool:
        """Whether Redis answers now (tried even while the cache is skipping it)."""
        if self.client is None:
            return False
        try:
            self.client.ping()
        except (redis.RedisError, OSError) as exc:
            self.health.failed(exc)
            return False
        self.health.succeeded()
        return True

    def lookup(self, account_id: int, query: ReportQuery) -> tuple[Report | None, int | None]:
        """The cached report if any, and the generation to store a fresh one under
        (None: do not store, Redis is not usable).
        """
        keys = [_generation_key(account_id)]
        args = [_entry_prefix(account_id), query.cache_key()]
        found = self._use(lambda client: client.eval(_LOOKUP, 1, *keys, *args))
        return _looked_up(found)

    async def lookup_async(self, account_id: int, query: ReportQuery) -> Report | None:
        """The cached report if any, read on the event loop; None also when Redis is off."""
        client = self.async_client() if self.async_client is not None else None
        if client is None or not self.health.usable():
            return None
        keys = [_generation_key(account_id)]
        args = [_entry_prefix(account_id), query.cache_key()]
        try:
            found = await client.eval(_LOOKUP, 1, *keys, *args)  # type: ignore[misc]
        except (redis.RedisError, OSError) as exc:
            self.health.failed(exc)
            return None
        self.health.succeeded()
        return _looked_up(found)[0]

    def put(self, account_id: int, generation: int, query: ReportQuery, report: Report) -> None:
        key = _entry_key(account_id, generation, query)
        payload = report.json_text()
        self._use(lambda client: client.set(key, payload, ex=self.ttl))

    def invalidate(self, account_id: int) -> None:
        """Called after a commit that changed what ``account_id``'s reports show
        (``reports_changed``).
        """
        self._use(lambda client: client.incr(_generation_key(account_id)))


# Every report cache of the process (one per app), told when a marked transaction commits.
_CACHES: weakref.WeakSet[ReportCache] = weakref.WeakSet()
_CHANGED = "adbot.reports_changed"


def reports_changed(session: Session, account_id: int) -> None:
    """Mark the session's transaction as changing what ``account_id``'s reports show
    (metrics written; a campaign, ad group or keyword created, renamed, paused or removed).
    When it commits, every report cache of the process (each Redis once) invalidates the
    account's cached reports (``ReportCache.invalidate``); when it rolls back, none does.
    """
    session.info.setdefault(_CHANGED, set()).add(account_id)


@event.listens_for(Session, "after_commit")
def _invalidate_changed(session: Session) -> None:
    accounts: set[int] | None = session.info.pop(_CHANGED, None)
    if not accounts:
        return
    by_redis: dict[str, ReportCache] = {}
    for cache in list(_CACHES):
        if cache.client is not None and cache.health.url is not None:
            by_redis.setdefault(cache.health.url, cache)  # one bump per Redis is enough
    for cache in by_redis.values():
        for account_id in sorted(accounts):
            cache.invalidate(account_id)


@event.listens_for(Session, "after_soft_rollback")
def _forget_changed(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction is gone, and its changes with it
        session.info.pop(_CHANGED, None)


def _looked_up(found: Any) -> tuple[Report | None, int | None]:
    if found is _FAILED:
        return None, None
    generation, raw = int(found[0]), found[1]
    return (None if raw is None else Report(text=raw)), generation


def _generation_key(account_id: int) -> str:
    return f"adbot:report-generation:{account_id}"


def _entry_prefix(account_id: int) -> str:
    return f"adbot:report:{account_id}:"


def _entry_key(account_id: int, generation: int, query: ReportQuery) -> str:
    return f"{_entry_prefix(account_id)}{generation}:{query.cache_key()}"


# One round trip: the account's generation and the entry stored under it. KEYS[1]: the
# generation counter; ARGV: the entry key's prefix and the parameters' hash. (The entry key
# depends on the generation, so it cannot be a declared key: single-node Redis only.)
_LOOKUP = """
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2])}
"""


# --- bid history --------------------------------------------------------------------------

BID_HISTORY_SORTS = {"id": BidChange.id, "created_at": BidChange.created_at}


def list_bid_history(
    *,
    session: Session,
    account_id: int,
    limit: int,
    offset: int,
    sort: str = "-created_at",
    campaign_id: int | None = None,
    keyword_id: int | None = None,
    cycle_id: uuid.UUID | None = None,
    source: BidSource | None = None,
    outcome: BidOutcome | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Page[BidChange]:
    """The account's bid changes, newest first by default; ``until`` is exclusive."""
    stmt = select(BidChange).where(BidChange.account_id == account_id)
    if campaign_id is not None:
        in_campaign = (
            select(Keyword.id)
            .join(AdGroup, AdGroup.id == Keyword.ad_group_id)
            .where(AdGroup.campaign_id == campaign_id)
        )
        stmt = stmt.where(BidChange.keyword_id.in_(in_campaign))
    equal: Sequence[tuple[Any, Any]] = (
        (BidChange.keyword_id, keyword_id),
        (BidChange.cycle_id, cycle_id),
        (BidChange.source, source),
        (BidChange.outcome, outcome),
    )
    stmt = stmt.where(*(column == value for column, value in equal if value is not None))
    if since is not None:
        stmt = stmt.where(BidChange.created_at >= since)
    if until is not None:
        stmt = stmt.where(BidChange.created_at < until)
    return paginate(
        session,
        stmt,
        limit=limit,
        offset=offset,
        order_by=ordering(sort, BID_HISTORY_SORTS, BidChange.id),
    )


def report_csv(report: Report) -> str:
    """The report as CSV: a header of ``report.columns``, empty cells for NULL."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(report.columns)
    for row in report.rows:
        writer.writerow(["" if row[name] is None else row[name] for name in report.columns])
    return buffer.getvalue()
