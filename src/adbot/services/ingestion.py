"""Bulk ingestion of hourly keyword metrics and conversion events (API, CLI and sync).

A batch is a table of rows (JSON objects or CSV lines, or a file written by
``adbot simulate``). Every row is checked, column by column with numpy/pandas: unknown
keyword (or one of another account), missing or malformed values, negative numbers,
clicks above impressions, conversions above clicks, an hour that is not on the hour, and
the same natural key twice in one batch. Each problem is reported with its 1-based row
number, field and reason.

A batch with problems writes nothing unless ``partial`` is set, in which case the good
rows are written and the bad ones reported. Writing is one transaction: a failure half
way leaves no row of the batch. Rows are upserted on their natural keys, so sending a
batch again changes nothing and a corrected row replaces the old one (see
``ingest_store``).

Metric columns: ``keyword_id`` or ``keyword`` (+ optional ``match_type``,
``ad_group_id``/``ad_group``, ``campaign_id``/``campaign``), ``hour``, ``impressions``,
``clicks``, ``cost_micros`` (or ``cost`` in currency units), ``conversions`` (default 0),
``conversion_value_micros`` (or ``conversion_value``/``value``, default 0).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from adbot import jsonbody
from adbot.db.models import Account, ConversionSource
from adbot.errors import InvalidInput, NotFound
from adbot.services.common import writing
from adbot.services.ingest_checks import (
    Problems,
    Rejection,
    Source,
    blank,
    duplicates,
    float_column,
    int_column,
    money_column,
    text_column,
    timestamp_column,
)
from adbot.services.ingest_refs import (
    Targets,
    has_keyword_reference,
    resolve_campaigns,
    resolve_keywords,
)
from adbot.services.ingest_store import (
    CONVERSION_COLUMNS,
    METRIC_COLUMNS,
    Progress,
    WriteCounts,
    upsert_conversions,
    upsert_metrics,
)
from adbot.services.reports import reports_changed

MAX_API_ROWS = 100_000
REFERENCE_COLUMNS = (
    "keyword_id",
    "keyword",
    "match_type",
    "ad_group_id",
    "ad_group",
    "campaign_id",
    "campaign",
)
METRIC_INPUT_COLUMNS = (
    *REFERENCE_COLUMNS,
    "hour",
    "impressions",
    "clicks",
    "cost_micros",
    "cost",
    "conversions",
    "conversion_value_micros",
    "conversion_value",
    "value",
)
CONVERSION_INPUT_COLUMNS = (
    *REFERENCE_COLUMNS,
    "conversion_action",
    "external_id",
    "occurred_at",
    "quantity",
    "value_micros",
    "value",
    "source",
)
# Read as text from CSV even when they look like numbers ("2024" is a fine keyword).
_TEXT_COLUMNS = (
    "keyword",
    "match_type",
    "ad_group",
    "campaign",
    "hour",
    "timestamp",
    "conversion_action",
    "external_id",
    "occurred_at",
    "source",
)
# A trace of ``adbot simulate`` has these columns; its ``keyword_id`` is the simulator's
# keyword index and its ``hour`` the hour of the day, so neither is used.
TRACE_COLUMNS = frozenset({"scenario", "episode_seed", "policy", "step", "timestamp"})
_SOURCES = {member.value for member in ConversionSource}


@dataclass(frozen=True)
class Batch:
    frame: pd.DataFrame
    source: Source


@dataclass(frozen=True)
class IngestResult:
    kind: str
    received: int
    accepted: int
    rejected_rows: int
    inserted: int
    updated: int
    unchanged: int
    written: bool
    rejected: list[Rejection] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RowsRejected(InvalidInput):
    """Some rows were refused and ``partial`` was not set: nothing was written."""

    code = "rows_rejected"

    def __init__(self, result: IngestResult, *, partial_option: str = "partial=true") -> None:
        # ``partial_option``: how the caller asks for partial writes (the CLI's ``--partial``).
        super().__init__(
            f"{result.rejected_rows} of {result.received} rows rejected; nothing was written "
            f"(fix them, or send {partial_option} to write the others)",
            details=result.as_dict(),
        )
        self.result = result


# --- reading ------------------------------------------------------------------------------


def read_body(body: bytes, content_type: str | None) -> Batch:
    """A batch from a request body: ``application/json`` ``{"rows": [...]}`` or ``text/csv``."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in {"text/csv", "application/csv"}:
        return Batch(read_csv(io.BytesIO(body)), "csv")
    if media == "application/json" or media.endswith("+json"):
        return Batch(_read_json(body), "json")
    raise UnsupportedMedia(media or "none")


class MalformedBody(InvalidInput):
    """The body cannot be read as JSON or CSV at all."""

    code = "malformed_body"
    http_status = 400


class UnsupportedMedia(InvalidInput):
    code = "unsupported_media_type"
    http_status = 415

    def __init__(self, media: str) -> None:
        super().__init__(
            f"content type '{media}' is not supported: send application/json or text/csv",
            details={"content_type": media, "supported": ["application/json", "text/csv"]},
        )


def _read_json(body: bytes) -> pd.DataFrame:
    try:
        document = jsonbody.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(
            f"the body is not valid JSON: {exc}", details={"field": "body"}
        ) from None
    except RecursionError:
        raise MalformedBody(
            "the body is not valid JSON: nested too deeply", details={"field": "body"}
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise InvalidInput(
            'the JSON body must be an object {"rows": [...]}', details={"field": "rows"}
        )
    rows = document["rows"]
    extra = sorted(set(document) - {"rows"})
    if extra:
        raise InvalidInput(f"unknown field(s) {', '.join(extra)}", details={"fields": extra})
    not_objects = [index for index, row in enumerate(rows) if not isinstance(row, dict)]
    if not_objects:
        raise InvalidInput(
            f"rows[{not_objects[0]}] is not an object",
            details={"field": "rows", "indexes": not_objects[:100]},
        )
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records(rows)
    for name in _rounded_columns(frame):  # their JSON numbers, as parsed: exact integers
        frame[name] = pd.Series([row.get(name) for row in rows], index=frame.index, dtype=object)
    return frame


# How every CSV is read: blank cells only are missing, a BOM is dropped, spaces after a comma
# skipped; ``index_col=False``: a row longer than the header is never read as an index column
# plus shifted values (pandas warns on the first row or fails on later ones instead).
_CSV_OPTIONS: dict[str, Any] = {
    "keep_default_na": False,
    "na_values": [""],
    "encoding": "utf-8-sig",
    "skipinitialspace": True,
    "index_col": False,
}


def read_csv(source: io.BytesIO | Path) -> pd.DataFrame:
    """A CSV batch; numbers parsed by pandas' C reader, text columns kept as text."""
    _no_unreadable_characters(source)
    header = _csv_header(source)
    _no_repeated_columns(header)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            frame = pd.read_csv(
                source,
                dtype={name: str for name in header if name.strip().lower() in _TEXT_COLUMNS},
                **_CSV_OPTIONS,
            )
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except pd.errors.ParserError as exc:
        _no_long_rows(source, len(header))
        raise MalformedBody(f"cannot read the CSV: {_first_line(exc)}") from None
    except (UnicodeDecodeError, csv.Error, ValueError, IndexError) as exc:
        raise MalformedBody(f"cannot read the CSV: {_first_line(exc)}") from None
    # pandas drops a trailing empty field silently when the first row has one.
    if caught or _first_row_width(source) > len(header):
        _no_long_rows(source, len(header))
    rounded = _rounded_columns(frame)
    if rounded:  # their cells again, as text: parsed exactly by the column checks
        if isinstance(source, io.BytesIO):
            source.seek(0)
        positions = [frame.columns.get_loc(name) for name in rounded]  # names may be pandas'
        text = pd.read_csv(source, usecols=positions, dtype=str, **_CSV_OPTIONS)
        for name, column in zip(rounded, text.columns, strict=True):
            frame[name] = text[column].astype(object)
    frame.columns = [str(name).strip().lower() for name in frame.columns]
    return frame


def _rounded_columns(frame: pd.DataFrame) -> list[str]:
    """Float columns holding a number of 2**53 or more: a whole number there may have been
    rounded (a fraction or a blank elsewhere in the column makes pandas read it all as
    float64, where 2**53 + 1 is 2**53). Rare, so the usual batch keeps pandas' fast path."""
    return [
        name
        for name in frame.columns
        if frame[name].dtype.kind == "f"
        and bool(((frame[name].abs() >= 2**53) & np.isfinite(frame[name])).any())
    ]


def _no_repeated_columns(header: list[str]) -> None:
    names = [name.strip().lower() for name in header]
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise InvalidInput(
            f"column '{repeated[0]}' appears more than once in the CSV header",
            details={"field": repeated[0], "repeated_columns": repeated},
        )


def _csv_records(source: io.BytesIO | Path) -> Generator[list[str]]:
    """The CSV's non-blank records, header first, split by the csv module as pandas splits
    them (spaces after a delimiter skipped, as ``read_csv`` is told)."""
    raw = io.BytesIO(source.getvalue()) if isinstance(source, io.BytesIO) else source.open("rb")
    with io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="") as text:
        try:
            yield from (record for record in csv.reader(text, skipinitialspace=True) if record)
        except csv.Error as exc:
            raise MalformedBody(f"cannot read the CSV: {_first_line(exc)}") from None


def _first_row_width(source: io.BytesIO | Path) -> int:
    records = _csv_records(source)
    first = next(itertools.islice(records, 1, 2), [])
    records.close()
    return len(first)


def _no_long_rows(source: io.BytesIO | Path, width: int) -> None:
    """Refuse the first row with more fields than the header, naming it."""
    records = _csv_records(source)
    try:
        for row, record in enumerate(itertools.islice(records, 1, None), start=1):
            if len(record) > width:
                raise MalformedBody(
                    f"row {row} has {len(record)} fields, the header has {width}",
                    details={"row": row, "fields": len(record), "header_fields": width},
                )
    finally:
        records.close()


def _no_unreadable_characters(source: io.BytesIO | Path) -> None:
    """Refuse, naming its line, a character pandas' reader mishandles: a NUL ends a field
    and drops the rest ("1\\x002" read as 1; UTF-16 text is full of them), and a carriage
    return without a line feed (old Mac line ends) can make it read the header again as a
    row, or invent thousands of empty rows."""
    line = 1
    carried = b""
    for chunk in _byte_chunks(source):
        data = carried + chunk
        # A final \r may be the first half of a \r\n split between two chunks.
        carried = b"\r" if data.endswith(b"\r") else b""
        end = len(data) - len(carried)
        found = _UNREADABLE.search(data, 0, end)
        if found is not None:
            at = found.start()
            _unreadable(data[at : at + 1], line + data.count(b"\n", 0, at))
        line += data.count(b"\n", 0, end)
    if carried:
        _unreadable(carried, line)


_UNREADABLE = re.compile(rb"\x00|\r(?!\n)")


def _unreadable(character: bytes, line: int) -> NoReturn:
    if character == b"\x00":
        problem = "a NUL character (byte 0)"
        advice = "send UTF-8 text"
    else:
        problem = "a carriage return without a line feed"
        advice = "end lines with \\n or \\r\\n"
    raise MalformedBody(
        f"cannot read the CSV: {problem} on line {line}; {advice}", details={"line": line}
    )


def _byte_chunks(source: io.BytesIO | Path) -> Iterator[bytes]:
    if isinstance(source, io.BytesIO):
        yield source.getvalue()
        return
    with source.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


def _csv_header(source: io.BytesIO | Path) -> list[str]:
    """The column names as pandas reads them (before it renames repeated ones): the first
    record, which a quoted line break spans and a bare carriage return ends."""
    records = _csv_records(source)
    try:
        return next(records, [])
    finally:
        records.close()


def read_file(path: Path) -> Batch:
    """A batch from a ``.csv`` or ``.parquet`` file (for example a simulator trace)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    if suffix == ".csv":
        return Batch(read_csv(path), "csv")
    if suffix in {".parquet", ".pq"}:
        try:
            return Batch(pd.read_parquet(path), "json")
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read {path}: {_first_line(exc)}") from None
    raise InvalidInput(f"{path.name}: expected a .csv or .parquet file")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def from_trace(frame: pd.DataFrame) -> pd.DataFrame:
    """An ``adbot simulate`` trace as metric rows: its ``timestamp`` is the hour, its
    ``keyword`` text names the keyword; its simulator ``keyword_id`` and hour-of-day go.
    """
    if not set(frame.columns) >= TRACE_COLUMNS:
        return frame
    return frame.drop(columns=["keyword_id", "hour"], errors="ignore").rename(
        columns={"timestamp": "hour"}
    )


def account_id_for(*, session: Session, reference: str) -> int:
    """The id of the account with this id or slug (for the operator's CLI)."""
    text = reference.strip()
    condition = Account.slug == text
    if text.isdigit():
        condition = or_(condition, Account.id == int(text))
    found = session.scalar(select(Account.id).where(condition).limit(1))
    if found is None:
        raise NotFound(f"no account with id or slug '{text}'")
    return int(found)


# --- metrics ------------------------------------------------------------------------------


def ingest_metrics(
    *,
    session: Session,
    account_id: int,
    batch: Batch,
    partial: bool = False,
    progress: Progress | None = None,
) -> IngestResult:
    """Check and upsert hourly keyword metrics of ``account_id``."""
    frame = from_trace(batch.frame).reset_index(drop=True)
    ignored = _ignored(frame, METRIC_INPUT_COLUMNS)
    if len(frame.columns) == 0:  # no rows and not even a header: nothing to check
        return _empty("metrics", ignored)
    problems = Problems(len(frame))
    hour = timestamp_column(frame, "hour", problems, on_the_hour=True)
    impressions = int_column(frame, "impressions", problems, batch.source)
    clicks = int_column(frame, "clicks", problems, batch.source)
    conversions = float_column(frame, "conversions", problems, batch.source, default=0.0)
    cost = money_column(frame, "cost_micros", ("cost",), problems, batch.source)
    value = money_column(
        frame,
        "conversion_value_micros",
        ("conversion_value", "value"),
        problems,
        batch.source,
        default=0,
    )
    counted = ~problems.bad("impressions", "clicks")
    problems.add(counted & (clicks > impressions), "clicks", "clicks exceed impressions")
    converted = ~problems.bad("clicks", "conversions")
    problems.add(converted & (conversions > clicks), "conversions", "conversions exceed clicks")
    targets = resolve_keywords(session, account_id, frame, problems, batch.source)
    keys = pd.DataFrame({"keyword_id": targets.keyword_id, "hour": hour})
    usable = targets.ok & ~problems.bad("hour")
    duplicates(keys, usable, "hour", "keyword and hour", problems)
    rows = pd.DataFrame(
        {
            "account_id": account_id,
            "campaign_id": targets.campaign_id,
            "ad_group_id": targets.ad_group_id,
            "keyword_id": targets.keyword_id,
            "hour": hour,
            "impressions": impressions,
            "clicks": clicks,
            "conversions": conversions,
            "cost_micros": cost,
            "conversion_value_micros": value,
        },
        columns=list(METRIC_COLUMNS),
    )
    return _write(
        "metrics",
        session=session,
        account_id=account_id,
        rows=rows,
        problems=problems,
        partial=partial,
        ignored=ignored,
        upsert=upsert_metrics,
        progress=progress,
    )


# --- conversions --------------------------------------------------------------------------


def ingest_conversions(
    *,
    session: Session,
    account_id: int,
    batch: Batch,
    partial: bool = False,
    default_source: ConversionSource = ConversionSource.API,
    progress: Progress | None = None,
) -> IngestResult:
    """Check and upsert conversion events of ``account_id``, keyed by
    ``(conversion_action, external_id)``: ``external_id`` (an order or click id) is
    required, as it is what makes sending an event twice harmless.
    """
    frame = batch.frame.reset_index(drop=True)
    ignored = _ignored(frame, CONVERSION_INPUT_COLUMNS)
    if len(frame.columns) == 0:  # no rows and not even a header: nothing to check
        return _empty("conversions", ignored)
    problems = Problems(len(frame))
    action = text_column(frame, "conversion_action", problems, max_length=100)
    external_id = text_column(frame, "external_id", problems, max_length=128)
    occurred_at = timestamp_column(frame, "occurred_at", problems)
    quantity = float_column(frame, "quantity", problems, batch.source, default=1.0)
    value = money_column(frame, "value_micros", ("value",), problems, batch.source, default=0)
    source = _conversion_source(frame, problems, default_source)
    targets = _conversion_targets(session, account_id, frame, problems, batch.source)
    keys = pd.DataFrame({"conversion_action": action, "external_id": external_id})
    usable = ~problems.bad("conversion_action", "external_id")
    duplicates(keys, usable, "external_id", "conversion_action and external_id", problems)
    rows = pd.DataFrame(
        {
            "account_id": account_id,
            "conversion_action": action,
            "external_id": external_id,
            "campaign_id": targets.campaign_id,
            "keyword_id": pd.array(
                np.where(targets.keyword_id > 0, targets.keyword_id, 0), dtype="Int64"
            ),
            "occurred_at": occurred_at,
            "quantity": quantity,
            "value_micros": value,
            "source": source,
        },
        columns=list(CONVERSION_COLUMNS),
    )
    rows.loc[targets.keyword_id <= 0, "keyword_id"] = pd.NA
    return _write(
        "conversions",
        session=session,
        account_id=account_id,
        rows=rows,
        problems=problems,
        partial=partial,
        ignored=ignored,
        upsert=upsert_conversions,
        progress=progress,
    )


def _conversion_source(
    frame: pd.DataFrame, problems: Problems, default: ConversionSource
) -> np.ndarray:
    values = text_column(frame, "source", problems, max_length=32, default=None, optional=True)
    values = np.where(pd.isna(values), default.value, values).astype(object)
    known = np.isin(values, sorted(_SOURCES))
    problems.add(~known, "source", f"must be one of {', '.join(sorted(_SOURCES))}")
    return values


def _conversion_targets(
    session: Session, account_id: int, frame: pd.DataFrame, problems: Problems, source: Source
) -> Targets:
    """A keyword when the row names one (its campaign follows), else a campaign."""
    named = np.zeros(len(frame), dtype=bool)
    if has_keyword_reference(frame):
        for column in ("keyword_id", "keyword"):
            if column in frame.columns:
                named |= ~blank(frame[column])
    by_keyword = resolve_keywords(session, account_id, frame, problems, source, rows=named)
    by_campaign = resolve_campaigns(session, account_id, frame, problems, source, rows=~named)
    return Targets(
        keyword_id=np.where(named, by_keyword.keyword_id, 0),
        ad_group_id=np.where(named, by_keyword.ad_group_id, 0),
        campaign_id=np.where(named, by_keyword.campaign_id, by_campaign.campaign_id),
        ok=np.where(named, by_keyword.ok, by_campaign.ok),
    )


# --- shared -------------------------------------------------------------------------------


def _ignored(frame: pd.DataFrame, known: tuple[str, ...]) -> list[str]:
    return sorted(str(name) for name in frame.columns if name not in known)


def _empty(kind: str, ignored: list[str]) -> IngestResult:
    return IngestResult(kind, 0, 0, 0, 0, 0, 0, written=False, ignored_columns=ignored)


def _write(
    kind: str,
    *,
    session: Session,
    account_id: int,
    rows: pd.DataFrame,
    problems: Problems,
    partial: bool,
    ignored: list[str],
    upsert: Callable[[Session, pd.DataFrame, Progress], WriteCounts],
    progress: Progress | None,
) -> IngestResult:
    bad = problems.bad()
    rejected_rows = int(bad.sum())
    listing = problems.listing()
    # ``partial`` keeps the good rows; with none left the batch failed like any other.
    if rejected_rows and (not partial or rejected_rows == len(rows)):
        session.rollback()
        raise RowsRejected(
            IngestResult(
                kind,
                received=len(rows),
                accepted=len(rows) - rejected_rows,
                rejected_rows=rejected_rows,
                inserted=0,
                updated=0,
                unchanged=0,
                written=False,
                rejected=listing,
                ignored_columns=ignored,
            )
        )
    good = rows[~bad] if rejected_rows else rows
    with writing(session):
        counts = upsert(session, good, progress or _no_progress)
        if counts.inserted + counts.updated:
            reports_changed(session, account_id)  # cached reports dropped once it commits
    return IngestResult(
        kind,
        received=len(rows),
        accepted=len(good),
        rejected_rows=rejected_rows,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        written=True,
        rejected=listing,
        ignored_columns=ignored,
    )


def _no_progress(_rows: int) -> None:
    return None
