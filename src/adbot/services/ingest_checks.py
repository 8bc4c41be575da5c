"""Vectorised per-row checks of an ingestion batch (a pandas frame, one row per input row).

Each ``*_column`` function turns one input column into a typed numpy array and records a
problem (row, field, reason) for every cell it cannot accept. Work that needs Python per
value (parsing timestamps, odd JSON values) runs once per *distinct* value, so a batch of
100,000 rows over a few hundred hours parses a few hundred strings.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from adbot.errors import InvalidInput

Source = Literal["json", "csv"]
# Micros and counts are 64-bit in the database; a trillion currency units is far beyond any
# real amount and leaves room for sums.
MAX_VALUE = 10**18
MICROS_PER_UNIT = 1_000_000
_NOT_SET = object()


@dataclass(frozen=True)
class Rejection:
    """One problem of one input row; ``row`` is 1-based (row 1 is the first data row)."""

    row: int
    field: str
    reason: str


class Problems:
    """Problems of a batch, collected column by column as boolean masks."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._parts: list[tuple[np.ndarray, str, np.ndarray | str]] = []

    def add(self, mask: Any, field: str, reason: np.ndarray | str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self._parts.append((mask, field, reason))

    def extend(self, other: Problems) -> None:
        self._parts.extend(other._parts)

    def bad(self, *fields: str) -> np.ndarray:
        """True for every row with a problem (in one of ``fields``, when given)."""
        bad = np.zeros(self.size, dtype=bool)
        for mask, field, _ in self._parts:
            if not fields or field in fields:
                bad |= mask
        return bad

    def listing(self) -> list[Rejection]:
        """Every problem, by row, then in the order the checks ran."""
        found: list[tuple[int, int, str, str]] = []
        for order, (mask, field, reason) in enumerate(self._parts):
            rows = np.flatnonzero(mask)
            reasons = (
                [reason] * len(rows) if isinstance(reason, str) else [str(r) for r in reason[rows]]
            )
            found.extend(
                (int(row), order, field, text) for row, text in zip(rows, reasons, strict=True)
            )
        found.sort()
        return [Rejection(row + 1, field, text) for row, _, field, text in found]


def present(frame: pd.DataFrame, *names: str) -> str | None:
    """The first of ``names`` that is a column of ``frame``."""
    return next((name for name in names if name in frame.columns), None)


def require_column(frame: pd.DataFrame, *names: str) -> str:
    name = present(frame, *names)
    if name is None:
        wanted = " or ".join(f"'{n}'" for n in names)
        raise InvalidInput(
            f"the batch has no {wanted} column", details={"field": names[0], "columns": names}
        )
    return name


def blank(values: pd.Series) -> np.ndarray:
    """Missing cells: null, NaN or an empty/whitespace string."""
    if values.dtype != object:
        return np.asarray(values.isna().to_numpy(), dtype=bool)
    # One pass: factorize marks nulls with code -1, which the table maps to True.
    codes, uniques = _factorize(values)
    empty = [isinstance(value, str) and not value.strip() for value in uniques]
    return np.asarray([*empty, True], dtype=bool)[codes]


def _factorize(values: pd.Series) -> tuple[np.ndarray, Any]:
    """Codes (-1 for missing) and distinct values; lists and objects count by their type."""
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # unhashable JSON values
        return pd.factorize(values.map(_hashable), use_na_sentinel=True)
    # True == 1 and False == 0 share a hash: told apart only when such values occur.
    if any(isinstance(value, bool | int | float) and value in (0, 1) for value in uniques):
        return pd.factorize(values.map(_hashable), use_na_sentinel=True)
    return codes, uniques


@dataclass(frozen=True)
class Opaque:
    """Stands in for an unhashable JSON value (a list or an object) so it can be counted."""

    label: str


def _hashable(value: Any) -> Any:
    if isinstance(value, list | dict | bool):
        return Opaque(_json_type(value))
    return value


@dataclass(frozen=True)
class Distinct:
    """``parse`` applied once per distinct value: ``parsed[i]`` for distinct value ``i``
    (a trailing None stands for missing cells); ``spread`` maps arrays back to rows.
    """

    codes: np.ndarray
    parsed: list[Any]

    def spread(self, per_value: list[Any], dtype: Any = object) -> np.ndarray:
        return np.asarray(per_value, dtype=dtype)[self.codes]  # code -1 -> trailing entry


def distinct(values: pd.Series, parse: Callable[[Any], Any]) -> Distinct:
    codes, uniques = _factorize(values)
    return Distinct(codes, [*(parse(value) for value in uniques), None])


def _number(value: Any, source: Source) -> float | int | str:
    """A number, or the reason it is not one."""
    if isinstance(value, bool):
        return "expected a number, got a boolean"
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and source == "csv":
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return f"'{_clip(text)}' is not a number"
        if not math.isfinite(number):
            return f"'{_clip(text)}' is not a finite number"
        if abs(number) >= 2**53 and number == math.floor(number):
            # "9007199254740993.0" or "9.007199254740993e15": the float is off by one; the
            # text says which whole number exactly.
            exact = decimal.Decimal(text)
            if exact == exact.to_integral_value():
                return int(exact)
        return number
    return f"expected a number, got {_json_type(value)}"


INEXACT_WHOLE = (
    "a whole number of 2**53 or more must be sent as an integer (no fraction or exponent): "
    "as a JSON float it is not exact"
)


_JSON_TYPES: dict[type, str] = {
    str: "a string",
    list: "a list",
    dict: "an object",
    bool: "a boolean",
}


def _json_type(value: Any) -> str:
    if isinstance(value, Opaque):
        return value.label
    return _JSON_TYPES.get(type(value), "a value")


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _numbers(
    frame: pd.DataFrame,
    name: str,
    problems: Problems,
    source: Source,
    optional: bool = False,
    whole: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Float values of column ``name``, the mask of usable cells, and the exact Python
    integers when some are too large for a float to hold exactly (else None). ``whole``: the
    column holds whole numbers, so a JSON float of 2**53 or more (which may have been rounded
    when the JSON was written or read) is refused.
    """
    values = frame[name]
    missing = blank(values)
    if not optional:
        problems.add(missing, name, "missing value")
    if values.dtype.kind in "iuf":
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        ok = ~missing & np.isfinite(numbers)
        problems.add(~missing & ~np.isfinite(numbers), name, "not a finite number")
        exact = None
        if values.dtype.kind in "iu" and (np.abs(numbers) >= 2**53).any():
            exact = np.array([int(v) for v in values.to_numpy()], dtype=object)
        return numbers, ok, exact
    if values.dtype.kind == "b":
        problems.add(~missing, name, "expected a number, got a boolean")
        return np.zeros(len(values)), np.zeros(len(values), dtype=bool), None
    found = distinct(values.where(~missing, None), lambda v: _number(v, source))
    parsed = found.parsed
    if whole and source == "json":
        parsed = [
            INEXACT_WHOLE if isinstance(v, float) and abs(v) >= 2**53 and math.isfinite(v) else v
            for v in parsed
        ]
    is_reason = found.spread([isinstance(v, str) for v in parsed], bool)
    problems.add(is_reason & ~missing, name, found.spread(parsed))
    numbers = found.spread(
        [v if isinstance(v, int | float) and not isinstance(v, bool) else np.nan for v in parsed],
        np.float64,
    )
    # Integers above 2**53 lose precision as floats; keep them exact in an object array.
    huge = any(isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53 for v in parsed)
    exact = found.spread([v if isinstance(v, int) else None for v in parsed]) if huge else None
    return numbers, ~missing & ~is_reason, exact


def int_column(
    frame: pd.DataFrame,
    name: str,
    problems: Problems,
    source: Source,
    *,
    default: int | None = None,
    field: str | None = None,
    optional: bool = False,
) -> np.ndarray:
    """A non-negative whole-number column as int64. ``default``: the value of an absent
    column or a blank cell; ``optional``: blank cells are allowed (and read as 0).
    """
    if name not in frame.columns:
        return _absent(frame, name, default, np.int64)
    numbers, ok, exact = _numbers(
        frame, name, problems, source, optional or default is not None, whole=True
    )
    if default is not None:
        numbers, ok = _fill_blanks(frame[name], numbers, ok, default)
    label = field or name
    whole = ok & (np.floor(numbers) == numbers)
    problems.add(ok & ~whole, label, "must be a whole number")
    _range_checks(numbers, whole, label, problems)
    if exact is not None:
        # Only those whose float rounds down to MAX_VALUE: the others were flagged above.
        big = np.array([isinstance(v, int) and v > MAX_VALUE for v in exact])
        problems.add(big & whole & (numbers <= MAX_VALUE), label, f"must be at most {MAX_VALUE}")
    usable = whole & (numbers >= 0) & (numbers <= MAX_VALUE)
    if exact is not None:  # exact Python ints, not their float approximations
        pairs = zip(exact, numbers, usable, strict=True)
        return np.array(
            [(v if v is not None else int(n)) if u else 0 for v, n, u in pairs], np.int64
        )
    return np.where(usable, numbers, 0).astype(np.int64)


def float_column(
    frame: pd.DataFrame,
    name: str,
    problems: Problems,
    source: Source,
    *,
    default: float | None = None,
    maximum: int = MAX_VALUE,
) -> np.ndarray:
    """A number column in [0, ``maximum``] as float64; ``default`` for an absent column or a
    blank cell.
    """
    if name not in frame.columns:
        return _absent(frame, name, default, np.float64)
    numbers, ok, _ = _numbers(frame, name, problems, source, default is not None)
    if default is not None:
        numbers, ok = _fill_blanks(frame[name], numbers, ok, default)
    _range_checks(numbers, ok, name, problems, maximum)
    return np.where(ok & (numbers >= 0) & (numbers <= maximum), numbers, 0.0)


def money_column(
    frame: pd.DataFrame,
    micros_name: str,
    unit_names: Iterable[str],
    problems: Problems,
    source: Source,
    *,
    default: int | None = None,
) -> np.ndarray:
    """Money as int64 micros, from ``<x>_micros`` or from a currency-unit column (rounded).
    A row giving the amount in two of these columns is refused, naming them.
    """
    names = [name for name in (micros_name, *unit_names) if name in frame.columns]
    if not names:
        return _absent(frame, micros_name, default, np.int64, also=tuple(unit_names))
    if len(names) == 1:
        return _money(frame, names[0], micros_name, problems, source, default)
    given = {name: ~blank(frame[name]) for name in names}
    count = np.sum(list(given.values()), axis=0)
    for name in names[1:]:
        for earlier in names[: names.index(name)]:
            problems.add(
                given[earlier] & given[name],
                name,
                f"both {earlier} and {name} given: send one of them",
            )
    if default is None:
        problems.add(count == 0, micros_name, "missing value")
    micros = np.full(len(frame), default or 0, dtype=np.int64)
    for name in names:
        use = given[name] & (count == 1)
        # Object dtype keeps large integers exact; rows not using this column are blank.
        column = pd.DataFrame({name: frame[name].astype(object).where(use, None)})
        micros = np.where(use, _money(column, name, micros_name, problems, source, 0), micros)
    return micros


def _money(
    frame: pd.DataFrame,
    name: str,
    micros_name: str,
    problems: Problems,
    source: Source,
    default: int | None,
) -> np.ndarray:
    if name == micros_name:
        return int_column(frame, name, problems, source, default=default)
    unit_default = None if default is None else default / MICROS_PER_UNIT
    # At most MAX_VALUE micros: a larger amount would wrap around in the int64 cast.
    maximum = MAX_VALUE // MICROS_PER_UNIT
    units = float_column(frame, name, problems, source, default=unit_default, maximum=maximum)
    return np.rint(units * MICROS_PER_UNIT).astype(np.int64)


def _fill_blanks(
    values: pd.Series, numbers: np.ndarray, ok: np.ndarray, default: float
) -> tuple[np.ndarray, np.ndarray]:
    missing = blank(values)
    return np.where(missing, default, numbers), ok | missing


def _range_checks(
    numbers: np.ndarray, ok: np.ndarray, field: str, problems: Problems, maximum: int = MAX_VALUE
) -> None:
    with np.errstate(invalid="ignore"):
        problems.add(ok & (numbers < 0), field, "must not be negative")
        problems.add(ok & (numbers > maximum), field, f"must be at most {maximum}")


def _absent(
    frame: pd.DataFrame,
    name: str,
    default: Any,
    dtype: Any,
    also: tuple[str, ...] = (),
) -> np.ndarray:
    if default is None:
        require_column(frame, name, *also)
    return np.full(len(frame), default, dtype=dtype)


def _timestamp(value: Any) -> datetime | str:
    """An aware UTC datetime from an ISO 8601 string with an offset, or why not."""
    if not isinstance(value, str):
        return f"expected an ISO 8601 string, got {_json_type(value)}"
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return f"'{_clip(value)}' is not an ISO 8601 timestamp"
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return f"'{_clip(value)}' has no UTC offset (add Z or +00:00)"
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        return f"'{_clip(value)}' is out of range (in UTC, years 1 to 9999)"


def timestamp_column(
    frame: pd.DataFrame, name: str, problems: Problems, *, on_the_hour: bool = False
) -> np.ndarray:
    """A timestamp column as ``datetime64[us]`` in UTC (NaT where refused)."""
    values = frame[require_column(frame, name)]
    missing = blank(values)
    problems.add(missing, name, "missing value")
    if values.dtype.kind == "M":  # already parsed (a caller's frame): must be tz-aware
        if getattr(values.dt, "tz", None) is None:
            problems.add(~missing, name, "timestamps must be timezone-aware")
            return np.full(len(values), np.datetime64("NaT"), dtype="datetime64[us]")
        stamps = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]")
    else:
        found = distinct(values, _timestamp)  # reasons for blank cells are masked below
        is_reason = found.spread([isinstance(v, str) for v in found.parsed], bool)
        problems.add(is_reason & ~missing, name, found.spread(found.parsed))
        stamps = found.spread(
            [v.replace(tzinfo=None) if isinstance(v, datetime) else None for v in found.parsed],
            "datetime64[us]",
        )
    if on_the_hour:
        aligned = stamps.astype("datetime64[h]").astype("datetime64[us]") == stamps
        valid = ~np.isnat(stamps)
        problems.add(valid & ~aligned, name, "not on the hour (minutes and seconds must be 0)")
    return stamps


def text_column(
    frame: pd.DataFrame,
    name: str,
    problems: Problems,
    *,
    max_length: int,
    default: object = _NOT_SET,
    optional: bool = False,
) -> np.ndarray:
    """A non-blank text column as an object array of ``str`` (None where refused).
    ``optional``: blank cells are allowed (and read as None).
    """
    if name not in frame.columns:
        if default is _NOT_SET:
            require_column(frame, name)
        return np.full(len(frame), default, dtype=object)
    values = frame[name]
    missing = blank(values)
    if not optional:
        problems.add(missing, name, "missing value")
    found = distinct(values.where(~missing, None), lambda v: _text(v, max_length))
    parsed = found.parsed
    is_reason = found.spread([isinstance(v, tuple) for v in parsed], bool)
    reasons = found.spread([v[0] if isinstance(v, tuple) else "" for v in parsed])
    problems.add(is_reason & ~missing, name, reasons)
    return found.spread([v if isinstance(v, str) else None for v in parsed])


def _text(value: Any, max_length: int) -> str | tuple[str]:
    # A reason is wrapped in a tuple: a text value may itself look like anything.
    if isinstance(value, bool) or not isinstance(value, str | int):
        return (f"expected text, got {_json_type(value)}",)
    text = str(value).strip()
    if len(text) > max_length:
        return (f"longer than {max_length} characters",)
    if any(ord(char) < 32 or ord(char) == 127 for char in text):
        return ("contains control characters",)
    return text


def duplicates(
    keys: pd.DataFrame, usable: np.ndarray, field: str, what: str, problems: Problems
) -> None:
    """Flag rows whose key repeats inside the batch, naming another row with the same key."""
    candidates = keys[usable].copy()
    candidates["_row"] = np.flatnonzero(usable)
    columns: list[Hashable] = list(keys.columns)
    repeated = candidates[candidates.duplicated(columns, keep=False)]
    if repeated.empty:
        return
    grouped = repeated.groupby(columns, sort=False)["_row"]
    first = grouped.transform("min").to_numpy()
    second = grouped.transform(lambda rows: rows.nsmallest(2).iloc[-1]).to_numpy()
    rows = repeated["_row"].to_numpy()
    other = np.where(rows == first, second, first) + 1
    mask = np.zeros(problems.size, dtype=bool)
    mask[rows] = True
    reasons = np.empty(problems.size, dtype=object)
    reasons[rows] = [f"duplicate {what}: same as row {n}" for n in other]
    problems.add(mask, field, reasons)
