"""Writing checked batches: idempotent upserts on the natural keys, per backend.

PostgreSQL: rows are COPYed into a temporary staging table and merged with one
``INSERT ... SELECT ... ON CONFLICT DO UPDATE``. One shortcut: when the table holds nothing
in the batch's key range (one index probe; new hours, the common case of a sync), the rows
are COPYed straight into the table, whose key and triggers check them like any insert; if a
concurrent writer stored one of those keys meanwhile, the COPY fails on the key and the
batch takes the staging path instead. Metrics travel in PostgreSQL's binary COPY format,
built with numpy in one pass (every field is fixed-width), so the client spends almost
nothing per row, and in the order of the table's primary key, so its B-tree grows at the
right edge instead of splitting pages all over (twice as fast for a batch sorted by
keyword). SQLite: batched ``INSERT ... ON CONFLICT DO UPDATE``.

Both update a row only when a value differs, so re-sending a batch writes nothing (not
even ``updated_at``), and the counts say which rows were new, changed or unchanged. The
caller owns the transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    Insert,
    Integer,
    MetaData,
    String,
    Table,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adbot.db.models import Conversion, PerformanceMetric

Progress = Callable[[int], None]

# The primary key of ``performance_metrics`` (a keyword belongs to one account, so this is
# the natural key (keyword, hour)); campaign and ad group always are the keyword's.
METRIC_KEY = ("account_id", "hour", "keyword_id")
METRIC_VALUES = ("impressions", "clicks", "conversions", "cost_micros", "conversion_value_micros")
METRIC_COLUMNS = ("account_id", "campaign_id", "ad_group_id", "keyword_id", "hour", *METRIC_VALUES)
CONVERSION_KEY = ("account_id", "conversion_action", "external_id")
CONVERSION_COLUMNS = (
    *CONVERSION_KEY,
    "campaign_id",
    "keyword_id",
    "occurred_at",
    "quantity",
    "value_micros",
    "source",
)

# PostgreSQL binary COPY: signature, flags, header extension length; -1 ends the data.
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
_BINARY = {"int4": ">i4", "int8": ">i8", "float8": ">f8", "timestamptz": ">i8"}
_STAGE_TYPES: dict[str, Any] = {
    "int4": Integer,
    "int8": BigInteger,
    "float8": Double,
    "timestamptz": DateTime(timezone=True),
    "text": String,
}
_METRIC_TYPES: tuple[str, ...] = (
    *("int4", "int4", "int4", "int4", "timestamptz"),
    *("int8", "int8", "float8", "int8", "int8"),
)
_CONVERSION_TYPES: tuple[str, ...] = (
    *("int4", "text", "text", "int4", "int4"),
    *("timestamptz", "float8", "int8", "text"),
)
COPY_CHUNK = 100_000  # rows per COPY write (and per progress step)
SQLITE_CHUNK = 5_000


@dataclass(frozen=True)
class WriteCounts:
    inserted: int
    updated: int
    unchanged: int


def upsert_metrics(session: Session, batch: pd.DataFrame, progress: Progress) -> WriteCounts:
    """Upsert hourly metric rows (columns ``METRIC_COLUMNS``; ``hour`` as naive UTC)."""
    if batch.empty:
        return WriteCounts(0, 0, 0)
    batch = in_key_order(batch, METRIC_KEY)
    if _dialect(session) == "postgresql":
        return _pg_upsert(
            session,
            batch,
            target=PerformanceMetric.__table__,  # type: ignore[arg-type]
            columns=METRIC_COLUMNS,
            types=_METRIC_TYPES,
            key=METRIC_KEY,
            compared=METRIC_VALUES,
            copy=_copy_binary,
            progress=progress,
            touch="updated_at",
        )
    return _sqlite_upsert(
        session,
        batch,
        target=PerformanceMetric.__table__,  # type: ignore[arg-type]
        key=METRIC_KEY,
        compared=METRIC_VALUES,
        progress=progress,
        touch="updated_at",
    )


def in_key_order(batch: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """``batch`` sorted by ``key`` (numeric or datetime columns); unchanged if it is."""
    codes = [batch[name].to_numpy().astype(np.int64, copy=False) for name in key]
    order = np.lexsort(codes[::-1])
    if np.array_equal(order, np.arange(len(order))):
        return batch
    return batch.take(order)


def upsert_conversions(session: Session, batch: pd.DataFrame, progress: Progress) -> WriteCounts:
    """Upsert conversion events (columns ``CONVERSION_COLUMNS``; times as naive UTC)."""
    if batch.empty:
        return WriteCounts(0, 0, 0)
    compared = ("campaign_id", "keyword_id", "occurred_at", "quantity", "value_micros", "source")
    if _dialect(session) == "postgresql":
        return _pg_upsert(
            session,
            batch,
            target=Conversion.__table__,  # type: ignore[arg-type]
            columns=CONVERSION_COLUMNS,
            types=_CONVERSION_TYPES,
            key=CONVERSION_KEY,
            compared=compared,
            copy=_copy_rows,
            progress=progress,
            touch=None,
        )
    return _sqlite_upsert(
        session,
        batch,
        target=Conversion.__table__,  # type: ignore[arg-type]
        key=CONVERSION_KEY,
        compared=compared,
        progress=progress,
        touch=None,
    )


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# --- PostgreSQL ---------------------------------------------------------------------------

Copier = Callable[[Any, str, pd.DataFrame, Sequence[str], Sequence[str], Progress], None]


def _pg_upsert(
    session: Session,
    batch: pd.DataFrame,
    *,
    target: Table,
    columns: Sequence[str],
    types: Sequence[str],
    key: Sequence[str],
    compared: Sequence[str],
    copy: Copier,
    progress: Progress,
    touch: str | None,
) -> WriteCounts:
    connection = session.connection()
    cursor_connection = connection.connection.driver_connection
    ranges = _key_ranges(batch, key)
    if not _any_stored(connection, target, ranges):
        # Nothing stored in the batch's key range (new hours, say): COPY straight into the
        # table, which its key and triggers check like any insert.
        try:
            with connection.begin_nested():
                copy(cursor_connection, target.name, batch, columns, types, progress)
            return WriteCounts(len(batch), 0, 0)
        except psycopg.errors.UniqueViolation:
            pass  # a concurrent writer stored one of the keys since: merge as below
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(f"COPY {target.name}", None, exc) from exc
    stage = Table(
        f"ingest_stage_{secrets.token_hex(6)}",
        MetaData(),
        *(Column(name, _STAGE_TYPES[kind]) for name, kind in zip(columns, types, strict=True)),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    stage.create(connection)
    copy(cursor_connection, stage.name, batch, columns, types, progress)
    merge = _Merge(target, stage, columns, key, compared, touch)
    inserted, updated = merge.on_conflict(connection)
    stage.drop(connection)
    return WriteCounts(inserted, updated, len(batch) - inserted - updated)


def _any_stored(connection: Connection, target: Table, ranges: dict[str, Any]) -> bool:
    """Whether ``target`` holds a row inside the key ranges: one probe of its key index."""
    inside = [target.c[name].between(low, high) for name, (low, high) in ranges.items()]
    return bool(connection.execute(select(exists().where(*inside))).scalar())


def _key_ranges(batch: pd.DataFrame, key: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    """The smallest and largest value of each key column: the part of the target's key
    that the merge has to look at (one account, the batch's hours and keywords).
    """
    ranges = {}
    for name in key:
        values = batch[name]
        low, high = values.min(), values.max()
        if values.dtype.kind == "M":
            low, high = (stamp.tz_localize(UTC).to_pydatetime() for stamp in (low, high))
        elif values.dtype.kind in "iu" or isinstance(low, np.integer):
            low, high = int(low), int(high)
        ranges[name] = (low, high)
    return ranges


@dataclass(frozen=True)
class _Merge:
    """The statements that merge the staging table into the target."""

    target: Table
    stage: Table
    columns: Sequence[str]
    key: Sequence[str]
    compared: Sequence[str]
    touch: str | None

    def on_conflict(self, connection: Connection) -> tuple[int, int]:
        """One ``INSERT ... ON CONFLICT DO UPDATE``: correct under concurrent writers."""
        insert: Insert = postgresql.insert(self.target).from_select(
            self._merged(), select(*self._staged())
        )
        excluded = insert.excluded  # type: ignore[attr-defined]
        changed = [*self.compared, self.touch] if self.touch else list(self.compared)
        upsert = insert.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=list(self.key),
            set_={name: excluded[name] for name in changed},
            where=or_(
                *(self.target.c[name].is_distinct_from(excluded[name]) for name in self.compared)
            ),
        ).returning(literal_column("xmax = 0", Boolean).label("inserted"))
        written = upsert.cte("written")
        counts = select(
            func.count().filter(written.c.inserted), func.count().filter(~written.c.inserted)
        )
        inserted, updated = connection.execute(counts).one()
        return int(inserted), int(updated)

    def _merged(self) -> list[str]:
        return [*self.columns, self.touch] if self.touch else list(self.columns)

    def _staged(self) -> list[Any]:
        staged: list[Any] = [self.stage.c[name] for name in self.columns]
        return [*staged, func.now()] if self.touch else staged


def _copy_statement(table: str, columns: Sequence[str]) -> str:
    # ``table`` is generated here and ``columns`` are constants of this module.
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"


def _copy_binary(
    raw: Any,
    table: str,
    batch: pd.DataFrame,
    columns: Sequence[str],
    types: Sequence[str],
    progress: Progress,
) -> None:
    """COPY fixed-width rows, encoded by numpy in PostgreSQL's binary format."""
    rows = binary_rows(
        [(kind, batch[name].to_numpy()) for name, kind in zip(columns, types, strict=True)]
    )
    with raw.cursor() as cursor, cursor.copy(_copy_statement(table, columns)) as copy:
        copy.write(_SIGNATURE)
        for start in range(0, len(rows), COPY_CHUNK):
            chunk = rows[start : start + COPY_CHUNK]
            copy.write(chunk.tobytes())
            progress(len(chunk))
        copy.write(_TRAILER)


def binary_rows(fields: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
    """One record per row in PostgreSQL binary COPY layout (without signature/trailer).

    Types: ``int4``, ``int8``, ``float8`` and ``timestamptz`` (``datetime64`` values taken
    as UTC). No NULLs: every field is fixed-width, so the layout is a numpy record.
    """
    size = len(fields[0][1]) if fields else 0
    layout: list[tuple[str, str]] = [("count", ">i2")]
    for index, (kind, _) in enumerate(fields):
        layout += [(f"size{index}", ">i4"), (f"value{index}", _BINARY[kind])]
    rows = np.empty(size, dtype=np.dtype(layout))
    rows["count"] = len(fields)
    for index, (kind, values) in enumerate(fields):
        rows[f"size{index}"] = np.dtype(_BINARY[kind]).itemsize
        if kind == "timestamptz":
            values = (values.astype("datetime64[us]") - _PG_EPOCH).astype(np.int64)
        rows[f"value{index}"] = values
    return rows


def _copy_rows(
    raw: Any,
    table: str,
    batch: pd.DataFrame,
    columns: Sequence[str],
    types: Sequence[str],
    progress: Progress,
) -> None:
    """COPY rows with NULLs and text, one ``write_row`` per row (psycopg's C encoder)."""
    values = [_python_values(batch[name], kind) for name, kind in zip(columns, types, strict=True)]
    with raw.cursor() as cursor, cursor.copy(_copy_statement(table, columns)) as copy:
        copy.set_types(list(types))
        for number, row in enumerate(zip(*values, strict=True), start=1):
            copy.write_row(row)
            if number % COPY_CHUNK == 0:
                progress(COPY_CHUNK)
    progress(len(batch) % COPY_CHUNK)


def _python_values(column: pd.Series, kind: str) -> list[Any]:
    if kind == "timestamptz":
        return [
            None if stamp is None else stamp.replace(tzinfo=UTC)
            for stamp in column.to_numpy("datetime64[us]").tolist()
        ]
    if kind in {"int4", "int8"}:
        return [None if pd.isna(v) else int(v) for v in column.tolist()]
    return column.tolist()


# --- SQLite -------------------------------------------------------------------------------


def _sqlite_upsert(
    session: Session,
    batch: pd.DataFrame,
    *,
    target: Table,
    key: Sequence[str],
    compared: Sequence[str],
    progress: Progress,
    touch: str | None,
) -> WriteCounts:
    insert = sqlite.insert(target)
    changed = [*compared, touch] if touch else list(compared)
    upsert = insert.on_conflict_do_update(
        index_elements=list(key),
        set_={name: insert.excluded[name] for name in changed},
        where=or_(*(target.c[name].is_distinct_from(insert.excluded[name]) for name in compared)),
    )
    records = _records(batch, touch)
    inserted = written = 0
    for start in range(0, len(records), SQLITE_CHUNK):
        chunk = records[start : start + SQLITE_CHUNK]
        existing = _existing_keys(session, target, key, chunk)
        inserted += sum(tuple(row[name] for name in key) not in existing for row in chunk)
        before = session.execute(text("SELECT total_changes()")).scalar_one()
        session.execute(upsert, chunk)
        written += session.execute(text("SELECT total_changes()")).scalar_one() - before
        progress(len(chunk))
    updated = written - inserted
    return WriteCounts(inserted, updated, len(batch) - written)


def _records(batch: pd.DataFrame, touch: str | None) -> list[dict[str, Any]]:
    frame = batch.astype(object).where(batch.notna(), None)
    for name in frame.columns:
        if batch[name].dtype.kind == "M":
            frame[name] = [
                None if stamp is None else stamp.replace(tzinfo=UTC)
                for stamp in batch[name].to_numpy("datetime64[us]").tolist()
            ]
    records: list[dict[str, Any]] = frame.to_dict("records")
    if touch:
        now = pd.Timestamp.now(tz=UTC).to_pydatetime()
        for record in records:
            record[touch] = now
    return records


def _existing_keys(
    session: Session, target: Table, key: Sequence[str], chunk: Sequence[dict[str, Any]]
) -> set[tuple[Any, ...]]:
    """Keys of ``chunk`` already in ``target``: one query, each key column narrowed to the
    chunk's distinct values (at most ``SQLITE_CHUNK`` each, well under SQLite's limit).
    """
    stmt = select(*(target.c[name] for name in key)).where(
        *(target.c[name].in_({row[name] for row in chunk}) for name in key)
    )
    wanted = {tuple(row[name] for name in key) for row in chunk}
    return {tuple(found) for found in session.execute(stmt)} & wanted
