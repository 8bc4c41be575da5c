"""Ingestion throughput into PostgreSQL, against a raw psycopg COPY of the same rows.

``python benchmarks/ingest.py [--rows 1000000]`` creates its own database on the server of
``ADBOT_TEST_DATABASE_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``),
migrates it, adds one account with 1,000 keywords, and prints:

- service: rows/s of ``ingest_metrics`` for N new rows (1,000 keywords x N/1,000 hours):
  the per-row checks, keyword resolution and a binary COPY (straight into the table, as the
  batch's key range holds nothing yet) into ``performance_metrics`` (primary key
  ``(account_id, hour, keyword_id)``, 6 checks, and
  statement-level triggers that check every row's keyword, campaign, ad group and account
  once per statement; no other index, no foreign key), committed. Target (issue 6):
  >= 100,000 rows/s;
- resend: the same batch again (every row unchanged, nothing written) and corrected: the
  same keys with every row changed; both take the general path, a binary COPY into a
  staging table and one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE <values differ>``;
- csv: the same rows as a CSV request body through ``read_body`` + ``ingest_metrics``
  into an emptied table;
- raw COPY: the same rows COPYed by psycopg into a bare table with the same columns and
  no index or constraint, (a) with ``Copy.write_row`` per row and (b) as one
  pre-encoded binary buffer; and the ratio service / raw COPY (target >= 0.5);
- raw COPY into ``performance_metrics`` itself (emptied): what any writer of that table
  pays for its primary key, checks and integrity triggers, with no checks of the service
  and no merge; and into a copy of it without the triggers (same key and checks), to show
  their share.

The database is dropped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import Engine, make_url, text

from adbot.db import migrate
from adbot.db.engine import create_db_engine, scratch_database
from adbot.db.session import make_sessionmaker
from adbot.services.ingest_store import binary_rows
from adbot.services.ingestion import Batch, ingest_metrics, read_body

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
KEYWORDS = 1_000
TARGET_ROWS_PER_SECOND = 100_000
TARGET_RATIO = 0.5
START = datetime(2025, 1, 6, tzinfo=UTC)
BARE_COLUMNS = (
    "account_id int, campaign_id int, ad_group_id int, keyword_id int, hour timestamptz, "
    "impressions bigint, clicks bigint, conversions float8, cost_micros bigint, "
    "conversion_value_micros bigint"
)
COLUMNS = (
    "account_id",
    "campaign_id",
    "ad_group_id",
    "keyword_id",
    "hour",
    "impressions",
    "clicks",
    "conversions",
    "cost_micros",
    "conversion_value_micros",
)


def seed_keywords(engine: Engine) -> tuple[int, pd.DataFrame]:
    """One account, 10 campaigns x 10 ad groups x 10 keywords; their ids."""
    with engine.begin() as connection:
        account = connection.execute(
            text("INSERT INTO accounts (slug, name) VALUES ('bench', 'Bench') RETURNING id")
        ).scalar_one()
        platform = connection.execute(
            text(
                "INSERT INTO platforms (account_id, kind, name) "
                "VALUES (:a, 'sim', 'sim') RETURNING id"
            ),
            {"a": account},
        ).scalar_one()
        connection.execute(
            text(
                "INSERT INTO campaigns (account_id, platform_id, name, daily_budget_micros) "
                "SELECT :a, :p, 'campaign ' || c, 100000000 FROM generate_series(1, 10) c"
            ),
            {"a": account, "p": platform},
        )
        connection.execute(
            text(
                "INSERT INTO ad_groups (campaign_id, name) SELECT id, 'group ' || g "
                "FROM campaigns, generate_series(1, 10) g"
            )
        )
        connection.execute(
            text(
                "INSERT INTO keywords (ad_group_id, text, match_type) "
                "SELECT id, 'keyword ' || id || ' ' || k, 'exact' "
                "FROM ad_groups, generate_series(1, 10) k"
            )
        )
        rows = connection.execute(
            text(
                "SELECT k.id, g.id, g.campaign_id FROM keywords k "
                "JOIN ad_groups g ON g.id = k.ad_group_id ORDER BY k.id"
            )
        ).all()
    keywords = pd.DataFrame(rows, columns=["keyword_id", "ad_group_id", "campaign_id"])
    return int(account), keywords


def metric_frame(keywords: pd.DataFrame, rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` hourly rows (every keyword, consecutive hours), shaped like a CSV batch."""
    rng = np.random.default_rng(seed)
    hours = -(-rows // len(keywords))
    ids = np.tile(keywords["keyword_id"].to_numpy(), hours)[:rows]
    stamps = pd.date_range(START, periods=hours, freq="h").strftime("%Y-%m-%dT%H:%M:%SZ")
    impressions = rng.integers(0, 500, rows)
    clicks = rng.binomial(impressions, 0.05)
    return pd.DataFrame(
        {
            "keyword_id": ids,
            "hour": np.repeat(np.asarray(stamps, dtype=object), len(keywords))[:rows],
            "impressions": impressions,
            "clicks": clicks,
            "cost_micros": clicks * rng.integers(200_000, 3_000_000, rows),
            "conversions": rng.binomial(clicks, 0.1).astype(np.float64),
            "conversion_value_micros": rng.integers(0, 100_000_000, rows),
        }
    )


def typed_rows(account: int, keywords: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """The same rows as the service writes them (ids resolved, hour as a timestamp)."""
    resolved = frame.merge(keywords, on="keyword_id", how="left")
    resolved["account_id"] = account
    resolved["hour"] = pd.to_datetime(resolved["hour"], utc=True).dt.tz_localize(None)
    return resolved[list(COLUMNS)]


def timed_ingest(engine: Engine, account: int, batch: Batch) -> tuple[float, dict[str, int]]:
    factory = make_sessionmaker(engine)
    with factory() as session:
        start = time.perf_counter()
        result = ingest_metrics(session=session, account_id=account, batch=batch)
        seconds = time.perf_counter() - start
    counts = {"inserted": result.inserted, "updated": result.updated}
    counts["unchanged"] = result.unchanged
    return seconds, counts


def raw_copy(url: str, rows: pd.DataFrame, *, binary_block: bool, table: str = "bare") -> float:
    """Seconds to COPY ``rows`` into ``table`` and commit: ``bare`` is created first (not
    timed) with the same columns and no index or constraint; any other table is emptied.
    """
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    statement = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    with psycopg.connect(dsn) as connection:
        if table == "bare":
            connection.execute("DROP TABLE IF EXISTS bare")
            connection.execute(f"CREATE TABLE bare ({BARE_COLUMNS})")
        elif table == "no_triggers":
            # Same columns, defaults, checks and primary key; LIKE copies no trigger.
            connection.execute("DROP TABLE IF EXISTS no_triggers")
            connection.execute("CREATE TABLE no_triggers (LIKE performance_metrics INCLUDING ALL)")
        else:
            connection.execute(f"TRUNCATE {table}")
        connection.commit()
        connection.execute("CHECKPOINT")
        start = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            if binary_block:
                kinds = ("int4", "int4", "int4", "int4", "timestamptz")
                kinds += ("int8", "int8", "float8", "int8", "int8")
                fields = [(k, rows[c].to_numpy()) for k, c in zip(kinds, COLUMNS, strict=True)]
                encoded = binary_rows(fields)
                copy.write(b"PGCOPY\n\xff\r\n\x00" + bytes(8))
                copy.write(encoded.tobytes())
                copy.write(b"\xff\xff")
            else:
                copy.set_types(
                    ["int4"] * 4 + ["timestamptz", "int8", "int8", "float8"] + ["int8"] * 2
                )
                stamps = [
                    s.replace(tzinfo=UTC) for s in rows["hour"].to_numpy("datetime64[us]").tolist()
                ]
                columns = [rows[c].tolist() for c in COLUMNS]
                columns[4] = stamps
                for row in zip(*columns, strict=True):
                    copy.write_row(row)
        connection.commit()
        seconds = time.perf_counter() - start
        connection.execute("DROP TABLE IF EXISTS bare")
        connection.execute("DROP TABLE IF EXISTS no_triggers")
        connection.commit()
    return seconds


def truncate(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE performance_metrics"))
        connection.execute(text("CHECKPOINT"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    admin_url = os.environ.get("ADBOT_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)
    with scratch_database(admin_url, "adbot_bench_ingest") as url:
        migrate.upgrade(url, "head")
        engine = create_db_engine(url)
        try:
            run(engine, url, args.rows)
        finally:
            engine.dispose()


def _line(label: str, rows: int, seconds: float) -> float:
    rate = rows / seconds
    print(f"{label:<34} {seconds:8.2f} s {rate:>12,.0f} rows/s", flush=True)
    return rate


def run(engine: Engine, url: str, rows: int) -> None:
    account, keywords = seed_keywords(engine)
    frame = metric_frame(keywords, rows)
    print(f"{rows:,} rows: {len(keywords):,} keywords x {-(-rows // len(keywords)):,} hours")
    with engine.begin() as connection:
        connection.execute(text("CHECKPOINT"))
    seconds, counts = timed_ingest(engine, account, Batch(frame, "csv"))
    service = _line("service (new rows)", rows, seconds)
    print(f"{'':<34} {counts}")
    seconds, counts = timed_ingest(engine, account, Batch(frame, "csv"))
    _line("service (resend, all unchanged)", rows, seconds)
    print(f"{'':<34} {counts}")
    corrected = frame.assign(impressions=frame["impressions"] + 1)
    seconds, counts = timed_ingest(engine, account, Batch(corrected, "csv"))
    _line("service (corrected, all updated)", rows, seconds)
    print(f"{'':<34} {counts}")
    truncate(engine)
    body = io.StringIO()
    frame.to_csv(body, index=False)
    payload = body.getvalue().encode()
    start = time.perf_counter()
    batch = read_body(payload, "text/csv")
    parse = time.perf_counter() - start
    seconds, _ = timed_ingest(engine, account, batch)
    _line(f"csv body ({len(payload) / 1e6:.0f} MB) end to end", rows, parse + seconds)
    rows_typed = typed_rows(account, keywords, frame)
    with engine.begin() as connection:
        connection.execute(text("CHECKPOINT"))
    by_row = _line(
        "raw COPY, write_row per row", rows, raw_copy(url, rows_typed, binary_block=False)
    )
    block = _line("raw COPY, one binary buffer", rows, raw_copy(url, rows_typed, binary_block=True))
    into_table = raw_copy(url, rows_typed, binary_block=True, table="performance_metrics")
    real = _line("raw COPY into performance_metrics", rows, into_table)
    no_triggers = raw_copy(url, rows_typed, binary_block=True, table="no_triggers")
    _line("raw COPY, same table, no triggers", rows, no_triggers)
    print(
        f"ratio service / raw COPY into the bare table: {service / by_row:.2f} (write_row), "
        f"{service / block:.2f} (binary buffer); target >= {TARGET_RATIO}"
    )
    print(
        f"ratio service / raw COPY into performance_metrics itself (its key, checks and "
        f"integrity triggers): {service / real:.2f}"
    )
    print(f"target service >= {TARGET_ROWS_PER_SECOND:,} rows/s: {service:,.0f} rows/s")


if __name__ == "__main__":
    main()
