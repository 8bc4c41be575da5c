"""Odd input to ``POST /metrics/hourly`` and ``POST /conversions``: timestamps at the
calendar's edge, deeply nested JSON, CSV rows longer than the header, repeated or
conflicting columns, huge integers. Each is a clear rejection, never a 500 or a shifted row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from api_helpers import Tenant, assert_error
from ingest_helpers import (
    CONVERSIONS,
    METRICS,
    Shop,
    build_shop,
    iso,
    metric,
    metric_values,
    post_csv,
    post_rows,
    to_csv,
    utc,
)
from sqlalchemy.orm import Session

from adbot.services.ingest_checks import INEXACT_WHOLE
from adbot.services.ingestion import MalformedBody, read_file

H0 = utc(2024, 6, 1, 4)
H1 = utc(2024, 6, 1, 5)
EDGES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
HEADER = "keyword_id,hour,impressions,clicks,cost_micros\n"


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return build_shop(tenant)


def _problems(error: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(r["row"], r["field"], r["reason"]) for r in error["details"]["rejected"]]


@pytest.mark.parametrize("stamp", EDGES)
def test_timestamps_beyond_the_calendar_in_utc_are_rejected(shop: Shop, stamp: str) -> None:
    keyword = shop.keywords["running shoes"]
    row = {**metric(keyword, H0), "hour": stamp}
    error = assert_error(post_rows(shop.tenant, METRICS, [row]), 422, "rows_rejected")
    reason = f"'{stamp}' is out of range (in UTC, years 1 to 9999)"
    assert _problems(error) == [(1, "hour", reason)]
    csv_error = assert_error(
        post_csv(shop.tenant, METRICS, f"{HEADER}{keyword},{stamp},10,1,100\n"),
        422,
        "rows_rejected",
    )
    assert _problems(csv_error) == [(1, "hour", reason)]
    event = {
        "conversion_action": "purchase",
        "external_id": "o-1",
        "occurred_at": stamp,
        "keyword_id": keyword,
    }
    error = assert_error(post_rows(shop.tenant, CONVERSIONS, [event]), 422, "rows_rejected")
    assert _problems(error) == [(1, "occurred_at", reason.replace("hour", "occurred_at"))]


def test_deeply_nested_json_is_a_malformed_body(shop: Shop) -> None:
    depth = 100_000
    body = b'{"rows": ' + b"[" * depth + b"]" * depth + b"}"
    headers = {**shop.tenant.headers, "Content-Type": "application/json"}
    for path in (METRICS, CONVERSIONS):
        response = shop.tenant.client.post(path, content=body, headers=headers)
        error = assert_error(response, 400, "malformed_body")
        assert "nested too deeply" in error["message"]


def test_a_json_row_naming_a_field_twice_is_a_malformed_body(
    shop: Shop, db_session: Session
) -> None:
    """JSON keeps the last of two equal keys: this row was stored at 90 currency units where
    the other value may have been meant. Nothing is written."""
    row = json.dumps(metric(shop.keywords["running shoes"], H0))
    row = row.replace('"cost_micros": 5000000', '"cost_micros": 1, "cost_micros": 90000000')
    headers = {**shop.tenant.headers, "Content-Type": "application/json"}
    body = ('{"rows": [' + row + "]}").encode()
    response = shop.tenant.client.post(METRICS, content=body, headers=headers)
    error = assert_error(response, 400, "malformed_body")
    assert error["message"] == "the body is not valid JSON: duplicate key 'cost_micros'"
    assert metric_values(db_session, shop.tenant.account_id) == []


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("{k},2024-06-01T04:00:00Z,10,1,100,99\n", "row 1 has 6 fields, the header has 5"),
        (
            "{k},2024-06-01T04:00:00Z,10,1,100,\n{k},2024-06-01T05:00:00Z,10,1,100,\n",
            "row 1 has 6 fields, the header has 5",
        ),
        (
            "{k},2024-06-01T04:00:00Z,10,1,100\n\n{k},2024-06-01T05:00:00Z,10,1,100,9,9\n",
            "row 2 has 7 fields, the header has 5",
        ),
    ],
)
def test_csv_rows_longer_than_the_header_are_refused(
    shop: Shop, db_session: Session, rows: str, message: str
) -> None:
    text = HEADER + rows.format(k=shop.keywords["running shoes"])
    error = assert_error(post_csv(shop.tenant, METRICS, text), 400, "malformed_body")
    assert error["message"] == message
    assert metric_values(db_session, shop.tenant.account_id) == []


def test_a_repeated_csv_column_is_refused(shop: Shop, db_session: Session) -> None:
    keyword = shop.keywords["running shoes"]
    text = f"keyword_id,Keyword_ID,{HEADER[len('keyword_id,') :]}{keyword},{keyword},"
    text += "2024-06-01T04:00:00Z,10,1,100\n"
    error = assert_error(post_csv(shop.tenant, METRICS, text), 422, "invalid_input")
    assert error["message"] == "column 'keyword_id' appears more than once in the CSV header"
    assert error["details"]["repeated_columns"] == ["keyword_id"]
    assert metric_values(db_session, shop.tenant.account_id) == []


def test_money_in_two_columns_of_one_row_is_refused(shop: Shop, db_session: Session) -> None:
    keyword = shop.keywords["running shoes"]
    both = metric(keyword, H0, cost_micros=5, cost=1.0, conversion_value=2.0, value=3.0)
    del both["conversion_value_micros"]
    error = assert_error(post_rows(shop.tenant, METRICS, [both]), 422, "rows_rejected")
    assert _problems(error) == [
        (1, "cost", "both cost_micros and cost given: send one of them"),
        (1, "value", "both conversion_value and value given: send one of them"),
    ]
    # Rows naming the amount once, in either column, are read as the README says.
    by_units = metric(keyword, utc(2024, 6, 1, 5), cost=1.5)
    del by_units["cost_micros"]
    rows = [metric(keyword, H0, cost_micros=7), by_units]
    body = _ok(post_rows(shop.tenant, METRICS, rows))
    assert body["inserted"] == 2 and body["ignored_columns"] == []
    stored = metric_values(db_session, shop.tenant.account_id)
    assert [row[4] for row in stored] == [7, 1_500_000]


@pytest.mark.parametrize("huge", [2**63, 10**30, 10**18 + 1])
def test_a_huge_integer_is_reported_once(shop: Shop, huge: int) -> None:
    row = metric(shop.keywords["running shoes"], H0, impressions=huge)
    error = assert_error(post_rows(shop.tenant, METRICS, [row]), 422, "rows_rejected")
    assert _problems(error) == [(1, "impressions", "must be at most 1000000000000000000")]
    text = f"{HEADER}{row['keyword_id']},{row['hour']},{huge},1,100\n"
    error = assert_error(post_csv(shop.tenant, METRICS, text), 422, "rows_rejected")
    assert _problems(error) == [(1, "impressions", "must be at most 1000000000000000000")]


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_large_json_integers_are_stored_exactly(shop: Shop, db_session: Session) -> None:
    row = metric(shop.keywords["running shoes"], H0, cost_micros=2**53 + 1)
    assert _ok(post_rows(shop.tenant, METRICS, [row]))["inserted"] == 1
    assert metric_values(db_session, shop.tenant.account_id)[0][4] == 2**53 + 1


@pytest.mark.parametrize("other", [{"cost_micros": 2.5}, {"cost_micros": None}])
def test_large_integers_beside_a_fraction_or_a_blank_are_stored_exactly(
    shop: Shop, db_session: Session, other: dict[str, Any]
) -> None:
    """A fraction or a blank elsewhere in the column makes pandas read it as float64, where
    2**53 + 1 is 2**53: it was stored rounded (with ``partial``), silently."""
    keyword = shop.keywords["running shoes"]
    rows = [metric(keyword, H0, cost_micros=2**53 + 1), metric(keyword, H1, **other)]
    if other["cost_micros"] is None:
        del rows[1]["cost_micros"]  # absent in JSON, a blank cell in the CSV
    for post, body in ((post_rows, rows), (post_csv, to_csv(rows))):
        response = post(shop.tenant, METRICS, body, partial=True)  # type: ignore[operator]
        assert response.status_code == 200, response.text
        assert metric_values(db_session, shop.tenant.account_id)[0][4] == 2**53 + 1


@pytest.mark.parametrize("text", ["9007199254740993.0", "9.007199254740993e15", "9007199254740993"])
def test_a_large_whole_number_in_csv_is_stored_exactly_however_written(
    shop: Shop, db_session: Session, text: str
) -> None:
    """float("9007199254740993.0") is 2**53: the text says which whole number it is."""
    keyword = shop.keywords["running shoes"]
    body = f"{HEADER}{keyword},{iso(H0)},10,1,{text}\n"
    assert _ok(post_csv(shop.tenant, METRICS, body))["inserted"] == 1
    assert metric_values(db_session, shop.tenant.account_id)[0][4] == 2**53 + 1


def test_a_large_whole_number_as_a_json_float_is_refused(shop: Shop) -> None:
    """A JSON float of 2**53 or more may have been rounded already (9007199254740993.0 reads
    as 2**53): an integer column refuses it by name instead of storing a neighbour."""
    keyword = shop.keywords["running shoes"]
    row = f'"keyword_id": {keyword}, "hour": "{iso(H0)}", "impressions": 10, "clicks": 1'
    body = '{"rows": [{' + row + ', "cost_micros": 9007199254740993.0}]}'
    headers = {**shop.tenant.headers, "Content-Type": "application/json"}
    response = shop.tenant.client.post(METRICS, content=body.encode(), headers=headers)
    error = assert_error(response, 422, "rows_rejected")
    assert _problems(error) == [(1, "cost_micros", INEXACT_WHOLE)]


def test_a_csv_file_keeps_large_integers_beside_a_blank(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"  # read again from the file for the exact cells
    path.write_text(f"{HEADER}1,{iso(H0)},10,1,{2**53 + 1}\n1,{iso(H1)},10,1,\n")
    assert read_file(path).frame["cost_micros"].tolist()[0] == str(2**53 + 1)


@pytest.mark.parametrize("path", [METRICS, CONVERSIONS])
def test_a_carriage_return_inside_the_header_is_a_400(shop: Shop, path: str) -> None:
    """A bare ``\\r`` inside the first line (found by schemathesis) made the header's csv
    reader raise: a 500 on both CSV uploads."""
    text = "\u00a9\u00d1\u008e`\u00b1w\u00e9/\u0089\u00b9\rz\x12"
    error = assert_error(post_csv(shop.tenant, path, text), 400, "malformed_body")
    assert error["message"] == (
        "cannot read the CSV: a carriage return without a line feed on line 1; "
        "end lines with \\n or \\r\\n"
    )


@pytest.mark.parametrize("units", [1e13, 9.3e12, 1_000_000_000_000.5, 1e17])
def test_an_amount_in_currency_units_beyond_the_micros_limit_is_refused(
    shop: Shop, db_session: Session, units: float
) -> None:
    """A cost or value in currency units over a trillion is more than 10**18 micros: it was
    cast to int64 unchecked (a wrapped, negative amount) instead of being refused."""
    keyword = shop.keywords["running shoes"]
    row = metric(keyword, H0, cost=units, value=units)
    del row["cost_micros"], row["conversion_value_micros"]
    error = assert_error(post_rows(shop.tenant, METRICS, [row]), 422, "rows_rejected")
    reason = "must be at most 1000000000000"
    assert _problems(error) == [(1, "cost", reason), (1, "value", reason)]
    text = f"keyword_id,hour,impressions,clicks,cost\n{keyword},{row['hour']},10,1,{units!r}\n"
    error = assert_error(post_csv(shop.tenant, METRICS, text), 422, "rows_rejected")
    assert _problems(error) == [(1, "cost", reason)]
    event = {
        "conversion_action": "purchase",
        "external_id": "o-1",
        "occurred_at": row["hour"],
        "keyword_id": keyword,
        "value": units,
    }
    error = assert_error(post_rows(shop.tenant, CONVERSIONS, [event]), 422, "rows_rejected")
    assert _problems(error) == [(1, "value", reason)]
    assert metric_values(db_session, shop.tenant.account_id) == []


def test_a_trillion_currency_units_is_stored_exactly(shop: Shop, db_session: Session) -> None:
    row = metric(shop.keywords["running shoes"], H0, cost=1e12)
    del row["cost_micros"]
    assert _ok(post_rows(shop.tenant, METRICS, [row]))["inserted"] == 1
    assert metric_values(db_session, shop.tenant.account_id)[0][4] == 10**18


def test_a_quoted_line_break_in_the_header_hides_no_repeated_column(
    shop: Shop, db_session: Session
) -> None:
    """The header was read from the first physical line only, so a quoted line break in a
    column name hid the columns after it from the repeated-column check: two columns named
    keyword_id reached the checks as one, a 500."""
    keyword = shop.keywords["running shoes"]
    text = f'"note\n",keyword_id,KEYWORD_ID,{HEADER}'
    error = assert_error(post_csv(shop.tenant, METRICS, text), 422, "invalid_input")
    assert error["message"] == "column 'keyword_id' appears more than once in the CSV header"
    # A row under such a header counts the header's fields as pandas reads them (it was
    # refused as "row 1 has 5 fields, the header has 1").
    text = f'"key\nword_id",hour,impressions,clicks,cost_micros\n{keyword},{iso(H0)},10,1,5\n'
    error = assert_error(post_csv(shop.tenant, METRICS, text), 422, "rows_rejected")
    assert _problems(error) == [(1, "keyword_id", "no keyword_id or keyword given")]
    assert error["details"]["ignored_columns"] == ["key\nword_id"]
    assert metric_values(db_session, shop.tenant.account_id) == []


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_csv_lines_end_in_a_line_feed(shop: Shop, db_session: Session, newline: str) -> None:
    keyword = shop.keywords["running shoes"]
    lines = [HEADER.strip(), f"{keyword},{iso(H0)},10,1,5", f"{keyword},{iso(H1)},9,2,7"]
    body = _ok(post_csv(shop.tenant, METRICS, newline.join(lines) + newline))
    assert body["inserted"] == 2
    assert [row[2:5] for row in metric_values(db_session, shop.tenant.account_id)] == [
        (10, 1, 5),
        (9, 2, 7),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # pandas read the header again as a row when a row began with a space ...
        ("{header}\r {k},{h0},10,1,5\r", 1),
        # ... or invented thousands of empty rows after an empty line.
        ("{header}\r\r {k},{h0},10,1,5\r", 1),
        # (131,073 rows read from these two, before any header check was involved)
        ("{header}\n{k},{h0},10,1,5\r\r {k},{h1},10,1,5\r", 2),
        ("{header}\n{k},{h0},10,1,5\r\n {k},{h1},10,1,5\r", 3),
        ("{header}\r\n{k},{h0},10,1,5\r", 2),
    ],
)
def test_a_carriage_return_without_a_line_feed_is_refused(
    shop: Shop, db_session: Session, text: str, line: int
) -> None:
    keyword = shop.keywords["running shoes"]
    body = text.format(header=HEADER.strip(), k=keyword, h0=iso(H0), h1=iso(H1))
    error = assert_error(post_csv(shop.tenant, METRICS, body), 400, "malformed_body")
    assert error["message"] == (
        f"cannot read the CSV: a carriage return without a line feed on line {line}; "
        "end lines with \\n or \\r\\n"
    )
    assert error["details"] == {"line": line}
    assert metric_values(db_session, shop.tenant.account_id) == []


def test_a_quoted_field_after_a_space_counts_as_one_field(shop: Shop, db_session: Session) -> None:
    """pandas reads ``, "a, b"`` as one field (spaces after a comma are skipped); the row
    width check split it in two and refused the row as longer than the header."""
    keyword = shop.keywords["running shoes"]
    text = f'{HEADER.strip()},note\n{keyword}, {iso(H0)}, 10, 1, 5, "shoes, fast"\n'
    body = _ok(post_csv(shop.tenant, METRICS, text))
    assert body["inserted"] == 1 and body["ignored_columns"] == ["note"]
    assert [row[2:5] for row in metric_values(db_session, shop.tenant.account_id)] == [(10, 1, 5)]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # pandas' reader ends a field at a NUL: "1\x002" was stored as 1 impression ...
        ("{k},2024-06-01T04:00:00Z,1\x002,1,5\n", 2),
        # ... and "HOUR\x00x" read as HOUR, a second hour column past the repeated-column
        # check: a 500.
        ("{k},2024-06-01T04:00:00Z,10,1,5\n", 1),
    ],
)
def test_a_nul_character_in_a_csv_is_refused(
    shop: Shop, db_session: Session, text: str, line: int
) -> None:
    header = HEADER if line == 2 else HEADER.replace("\n", ",HOUR\x00x\n")
    body = header + text.format(k=shop.keywords["running shoes"])
    error = assert_error(post_csv(shop.tenant, METRICS, body), 400, "malformed_body")
    assert error["message"] == (
        f"cannot read the CSV: a NUL character (byte 0) on line {line}; send UTF-8 text"
    )
    assert error["details"] == {"line": line}
    assert metric_values(db_session, shop.tenant.account_id) == []


def test_a_csv_file_with_a_nul_character_is_refused_naming_its_line(tmp_path: Path) -> None:
    """Files are scanned a megabyte at a time: the line is counted across chunks."""
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text(HEADER, encoding="utf-16")
    with pytest.raises(MalformedBody, match=r"a NUL character \(byte 0\) on line 1; send UTF-8"):
        read_file(utf16)
    rows = "".join(f"1,2024-06-01T04:00:00Z,{n},1,5\n" for n in range(40_000))  # > 1 MiB
    late = tmp_path / "late.csv"
    late.write_bytes(f"{HEADER}{rows}1,2024-06-01T04:00:00Z,1\x002,1,5\n".encode())
    with pytest.raises(MalformedBody) as info:
        read_file(late)
    assert info.value.details == {"line": 40_002}


def test_a_line_feed_after_a_megabyte_boundary_ends_its_carriage_returns_line(
    tmp_path: Path,
) -> None:
    """Files are scanned a megabyte at a time: a \\r\\n split across two is one line end."""
    header = HEADER.replace("\n", ",note\r\n")
    row = f"1,{iso(H0)},10,1,5,x\r\n"
    first = f"1,{iso(H0)},10,1,5,"
    pad = ((1 << 20) - 1 - len(header) - len(first)) % len(row)
    text = header + first + "x" * pad + "\r\n" + row * 40_000
    assert text.encode()[(1 << 20) - 1 : (1 << 20) + 1] == b"\r\n"
    path = tmp_path / "crlf.csv"
    path.write_bytes(text.encode())
    assert len(read_file(path).frame) == 40_001
    path.write_bytes(text.encode() + b"1,2,3\r")
    with pytest.raises(MalformedBody) as info:
        read_file(path)
    assert info.value.details == {"line": 40_003}
