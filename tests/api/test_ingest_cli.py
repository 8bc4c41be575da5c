"""``adbot ingest FILE`` of a trace written by ``adbot simulate``, as a user runs them:
two subprocesses against a database of the test's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from ingest_helpers import one_ad_group
from sqlalchemy import Engine, func, select

from adbot.db import migrate
from adbot.db.engine import create_db_engine
from adbot.db.models import (
    Account,
    MatchType,
    PerformanceMetric,
)
from adbot.db.session import make_sessionmaker

ADBOT = [sys.executable, "-m", "adbot.cli.main"]
SCENARIO = "tight-budget"  # one day of 24 hours, 40 keywords: 960 trace rows


@pytest.fixture
def database(pg_database: str) -> Iterator[tuple[str, Engine]]:
    migrate.upgrade(pg_database, "head")
    engine = create_db_engine(pg_database)
    yield pg_database, engine
    engine.dispose()


def _run(args: list[str], url: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADBOT_")}
    env.update({"ADBOT_DB__URL": url, "ADBOT_LOG_LEVEL": "WARNING", "COLUMNS": "200"})
    env.update(settings)
    return subprocess.run(
        [*ADBOT, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def _shop_for(engine: Engine, texts: list[str]) -> int:
    """An account with one ad group holding the trace's keywords; returns the ad group id."""
    with make_sessionmaker(engine)() as session:
        _, group, _ = one_ad_group(session, "sim-shop", texts, MatchType.BROAD)
        session.commit()
        return group.id


def _totals(engine: Engine) -> tuple[int, int, int, int, float, int]:
    m = PerformanceMetric
    stmt = select(
        func.count(),
        func.sum(m.impressions),
        func.sum(m.clicks),
        func.sum(m.cost_micros),
        func.sum(m.conversions),
        func.sum(m.conversion_value_micros),
    )
    with engine.connect() as connection:
        row = connection.execute(stmt).one()
    count, impressions, clicks, cost, conversions, value = (v or 0 for v in row)
    return int(count), int(impressions), int(clicks), int(cost), float(conversions), int(value)


def test_ingest_a_simulate_trace(database: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = database
    trace_file = tmp_path / "trace.csv"
    simulated = _run(
        ["simulate", SCENARIO, "--policy", "fixed", "--out", str(trace_file)], url, tmp_path
    )
    assert simulated.returncode == 0, simulated.stderr
    trace = pd.read_csv(trace_file)
    assert {"scenario", "step", "timestamp", "keyword", "cost"} <= set(trace.columns)
    group_id = _shop_for(engine, sorted(trace["keyword"].unique()))

    loaded = _run(
        ["ingest", str(trace_file), "--account", "sim-shop", "--ad-group", "All keywords"],
        url,
        tmp_path,
    )

    assert loaded.returncode == 0, loaded.stderr
    rows = len(trace)
    assert loaded.stdout.strip() == (
        f"metrics: {rows:,} rows: {rows:,} inserted, 0 updated, 0 unchanged, 0 rejected"
    )
    expected = (
        rows,
        int(trace["impressions"].sum()),
        int(trace["clicks"].sum()),
        int(np.rint(trace["cost"].to_numpy() * 1e6).sum()),
        pytest.approx(float(trace["conversions"].sum())),
        int(np.rint(trace["value"].to_numpy() * 1e6).sum()),
    )
    assert _totals(engine) == expected

    # Again, by ad group id and as Parquet: the same rows, so nothing changes.
    parquet = tmp_path / "trace.parquet"
    pd.read_csv(trace_file, parse_dates=["timestamp"]).to_parquet(parquet)
    again = _run(
        ["ingest", str(parquet), "-a", "sim-shop", "--ad-group", str(group_id)], url, tmp_path
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith(f"0 inserted, 0 updated, {rows:,} unchanged, 0 rejected")
    assert _totals(engine) == expected


def test_rejected_rows_are_listed_and_exit_1(database: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = database
    _shop_for(engine, ["red shoes"])
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "keyword,hour,impressions,clicks,cost\n"
        "red shoes,2024-01-01T00:00:00Z,10,1,0.5\n"
        "red shoes,2024-01-01T01:00:00Z,10,20,0.5\n"
        "blue shoes,2024-01-01T01:00:00Z,10,1,0.5\n"
    )
    result = _run(["ingest", str(bad), "--account", "sim-shop"], url, tmp_path)
    assert result.returncode == 1
    assert "2 rejected rows" in result.stderr
    assert "clicks exceed impressions" in result.stderr and "unknown keyword" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: 2 of 3 rows rejected")
    assert "Traceback" not in result.stderr
    assert _totals(engine)[0] == 0
    partial = _run(["ingest", str(bad), "--account", "sim-shop", "--partial"], url, tmp_path)
    assert partial.returncode == 0, partial.stderr
    assert (
        partial.stdout.strip() == "metrics: 3 rows: 1 inserted, 0 updated, 0 unchanged, 2 rejected"
    )
    unknown = _run(["ingest", str(bad), "--account", "nobody"], url, tmp_path)
    assert unknown.returncode == 1 and "no account with id or slug 'nobody'" in unknown.stderr


def test_a_timestamp_beyond_the_calendar_is_a_rejected_row(
    database: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = database
    _shop_for(engine, ["red shoes"])
    edge = tmp_path / "edge.csv"
    edge.write_text(
        "keyword,hour,impressions,clicks,cost_micros\n"
        "red shoes,2024-01-01T00:00:00Z,10,1,100\n"
        "red shoes,0001-01-01T00:00:00+01:00,10,1,100\n"
    )
    result = _run(["ingest", str(edge), "--account", "sim-shop"], url, tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "is out of range (in UTC, years 1 to 9999)" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "error: 1 of 2 rows rejected; nothing was written "
        "(fix them, or send --partial to write the others)"
    )
    assert _totals(engine)[0] == 0


def test_a_load_that_writes_drops_the_accounts_cached_reports(
    database: tuple[str, Engine], tmp_path: Path, redis_client: redis.Redis, redis_url: str
) -> None:
    """The CLI bumps the report generation the API's cache reads, once the batch commits,
    and only when it wrote rows (a resend of the same rows changes nothing)."""
    url, engine = database
    _shop_for(engine, ["red shoes"])
    rows = tmp_path / "rows.csv"
    rows.write_text("keyword,hour,impressions,clicks,cost\nred shoes,2024-01-01T00:00Z,10,1,0.5\n")
    with make_sessionmaker(engine)() as session:
        account = session.scalar(select(Account.id).where(Account.slug == "sim-shop"))
    key = f"adbot:report-generation:{account}"
    for generation in ("1", "1"):  # written, then unchanged
        args = ["ingest", str(rows), "-a", "sim-shop"]
        loaded = _run(args, url, tmp_path, ADBOT_REDIS__URL=redis_url)
        assert loaded.returncode == 0, loaded.stderr
        assert redis_client.get(key) == generation
