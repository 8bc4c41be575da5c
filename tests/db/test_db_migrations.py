"""Migrations: up, down and up again leave the same schema on both backends; ``adbot db``
finds no drift, finds real drift, and explains its errors in one line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from sqlalchemy import Engine, inspect, make_url, text

from adbot.cli.main import main
from adbot.config import get_settings
from adbot.db import migrate
from adbot.db.engine import create_db_engine
from adbot.errors import AdbotError
from adbot.rl.tune import optuna_storage

HEAD = "0004"


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database on each backend."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_database")
        return url
    return f"sqlite:///{tmp_path / 'roundtrip.db'}"


@pytest.fixture
def engine_for(empty_url: str) -> Iterator[Engine]:
    engine = create_db_engine(empty_url)
    yield engine
    engine.dispose()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def adbot(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iterator[Callable[..., Result]]:
    """Run ``adbot ...`` in this process with ``ADBOT_DB__URL=url``; exit code and output."""
    monkeypatch.chdir(tmp_path)  # no .env or config file of the repository

    def run(url: str, *args: str) -> Result:
        monkeypatch.setenv("ADBOT_DB__URL", url)
        get_settings.cache_clear()
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield run
    get_settings.cache_clear()


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything reflection reports about every table (types, defaults, constraints)."""
    inspector = inspect(engine)
    tables: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        tables[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table),
            "foreign_keys": sorted(
                (fk["name"], fk["constrained_columns"], fk["referred_table"], fk["options"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "uniques": sorted(
                (uq["name"], uq["column_names"]) for uq in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (ix["name"], ix["column_names"], ix["unique"], _options(ix))
                for ix in inspector.get_indexes(table)
            ),
            "checks": sorted(
                (ck["name"], ck["sqltext"]) for ck in inspector.get_check_constraints(table)
            ),
        }
    return tables


def _options(index: Any) -> list[tuple[str, str]]:
    return sorted((key, str(value)) for key, value in index.get("dialect_options", {}).items())


def test_upgrade_downgrade_upgrade_leaves_the_same_schema(
    empty_url: str, engine_for: Engine, adbot: Callable[..., Result]
) -> None:
    migrate.upgrade(empty_url, "head")
    first = snapshot(engine_for)
    assert len(first) == 21  # the 20 tables and adbot_alembic_version
    assert migrate.VERSION_TABLE in first
    assert migrate.current_revisions(empty_url) == (HEAD,)

    migrate.downgrade("base", empty_url)
    assert set(inspect(engine_for).get_table_names()) <= {migrate.VERSION_TABLE}
    assert migrate.current_revisions(empty_url) == ()

    migrate.upgrade(empty_url, "head")
    assert snapshot(engine_for) == first

    result = adbot(empty_url, "db", "check")
    assert result.returncode == 0, result.stderr
    assert "no drift" in result.stdout


SEED_0001 = (
    "INSERT INTO accounts (id, slug, name) VALUES (1, 'acme', 'Acme')",
    "INSERT INTO platforms (id, account_id, kind, name) VALUES (1, 1, 'sim', 'Simulator')",
    "INSERT INTO campaigns (id, account_id, platform_id, name, daily_budget_micros) "
    "VALUES (1, 1, 1, 'Shoes', 1)",
    "INSERT INTO ad_groups (id, campaign_id, name) VALUES (1, 1, 'Running')",
    "INSERT INTO keywords (id, ad_group_id, text, match_type) VALUES (1, 1, 'shoes', 'exact')",
    "INSERT INTO keywords (id, ad_group_id, text, match_type) VALUES (2, 1, 'boots', 'exact')",
)
METRIC = (
    "INSERT INTO performance_metrics (account_id, campaign_id, ad_group_id, keyword_id, hour, "
    "impressions, clicks) VALUES (1, 1, 1, :keyword, :hour, :impressions, 1)"
)


def _metrics(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT account_id, campaign_id, ad_group_id, keyword_id, hour, impressions, "
                "clicks FROM performance_metrics ORDER BY keyword_id, hour"
            )
        )
        return [tuple(row) for row in rows]


def test_0002_keeps_the_metrics_and_its_downgrade_restores_0001(
    empty_url: str, engine_for: Engine
) -> None:
    migrate.upgrade(empty_url, "0001")
    at_0001 = snapshot(engine_for)
    # SQLite stores naive UTC (see UTCDateTime); PostgreSQL takes the offset.
    hour = "2026-01-05 10:00:00" + ("+00:00" if "postgresql" in empty_url else "")
    later = hour.replace("10:00", "11:00")
    with engine_for.begin() as connection:
        for statement in SEED_0001:
            connection.execute(text(statement))
        for keyword, at, impressions in ((1, hour, 10), (1, later, 20), (2, hour, 30)):
            connection.execute(
                text(METRIC), {"keyword": keyword, "hour": at, "impressions": impressions}
            )
    stored = _metrics(engine_for)
    assert len(stored) == 3

    migrate.upgrade(empty_url, "head")
    primary_key = inspect(engine_for).get_pk_constraint("performance_metrics")
    assert primary_key["constrained_columns"] == ["account_id", "hour", "keyword_id"]
    assert _metrics(engine_for) == stored

    migrate.downgrade("0001", empty_url)
    assert snapshot(engine_for) == at_0001
    assert _metrics(engine_for) == stored
    with engine_for.connect() as connection:  # the surrogate ids are back, one per row
        ids = connection.execute(text("SELECT id FROM performance_metrics")).scalars().all()
    assert sorted(ids) == [1, 2, 3]


@pytest.mark.parametrize(
    ("previous", "user", "added", "new_value"),
    [
        # 0003: generation 0, the fingerprint of the password hash alone, which the tokens
        # issued before carry: nobody is signed out by the upgrade.
        ("0002", "", "token_generation", (0,)),
        # 0004: no sign-in sessions yet (JSONB on PostgreSQL, text on SQLite).
        ("0003", ", token_generation", "refresh_sessions", ({}, "{}")),
    ],
    ids=["0003", "0004"],
)
def test_a_users_column_keeps_every_user_and_its_downgrade_restores_the_one_before(
    empty_url: str,
    engine_for: Engine,
    previous: str,
    user: str,
    added: str,
    new_value: tuple[object, ...],
) -> None:
    migrate.upgrade(empty_url, previous)
    at_previous = snapshot(engine_for)
    values = ", 2" if user else ""
    insert = (
        f"INSERT INTO users (id, account_id, email, password_hash, role{user}) "
        f"VALUES (1, 1, 'ann@acme.test', 'argon2-hash', 'admin'{values})"
    )
    columns = f"SELECT id, account_id, email, password_hash, role, is_active{user} FROM users"
    with engine_for.begin() as connection:
        connection.execute(text(SEED_0001[0]))
        connection.execute(text(insert))
        before = connection.execute(text(columns)).all()

    migrate.upgrade(empty_url, "head")
    with engine_for.connect() as connection:
        assert connection.execute(text(columns)).all() == before
        assert connection.execute(text(f"SELECT {added} FROM users")).scalar_one() in new_value

    migrate.downgrade(previous, empty_url)
    assert snapshot(engine_for) == at_previous
    with engine_for.connect() as connection:
        assert connection.execute(text(columns)).all() == before


def test_0002_refuses_metrics_that_are_not_their_keywords(
    empty_url: str, engine_for: Engine
) -> None:
    """The old foreign keys let a row name any existing campaign; the upgrade copies the
    rows through the new integrity triggers, so such a row stops it with nothing changed."""
    migrate.upgrade(empty_url, "0001")
    hour = "2026-01-05 10:00:00" + ("+00:00" if "postgresql" in empty_url else "")
    with engine_for.begin() as connection:
        for statement in SEED_0001:
            connection.execute(text(statement))
        connection.execute(
            text(
                "INSERT INTO campaigns (id, account_id, platform_id, name, daily_budget_micros) "
                "VALUES (2, 1, 1, 'Hats', 1)"
            )
        )
        connection.execute(
            text(METRIC.replace("(1, 1, 1,", "(1, 2, 1,")),
            {"keyword": 1, "hour": hour, "impressions": 5},
        )
    expected = (
        "keyword 1 is in account 1, campaign 1, ad group 1; the row says account 1, campaign 2"
        if "postgresql" in empty_url
        else "FOREIGN KEY constraint failed: performance_metrics_keyword_chain"
    )
    with pytest.raises(AdbotError, match=expected):
        migrate.upgrade(empty_url, "head")
    assert migrate.current_revisions(empty_url) == ("0001",)
    assert len(_metrics(engine_for)) == 1


def test_check_reports_drift(
    empty_url: str, engine_for: Engine, adbot: Callable[..., Result]
) -> None:
    migrate.upgrade(empty_url, "head")
    with engine_for.begin() as connection:
        connection.execute(text("DROP INDEX ix_bid_history_cycle_id"))
    result = adbot(empty_url, "db", "check")
    assert result.returncode == 1
    assert "ix_bid_history_cycle_id" in result.stdout
    assert "add a migration" in result.stderr


def _stamp_the_old_way(engine: Engine, revision: str) -> None:
    """Leave the database stamped as AdBot versions before ``VERSION_TABLE`` did."""
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE {migrate.VERSION_TABLE}"))
        connection.execute(
            text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        )
        connection.execute(text(f"INSERT INTO alembic_version VALUES ('{revision}')"))


def test_a_stamp_in_alembic_version_moves_to_adbots_own_table(
    empty_url: str, engine_for: Engine, adbot: Callable[..., Result]
) -> None:
    migrate.upgrade(empty_url, "0001")
    _stamp_the_old_way(engine_for, "0001")
    assert migrate.current_revisions(empty_url) == ("0001",)
    upgraded = adbot(empty_url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    tables = set(inspect(engine_for).get_table_names())
    assert migrate.VERSION_TABLE in tables and "alembic_version" not in tables
    assert migrate.current_revisions(empty_url) == (HEAD,)
    assert "no drift" in adbot(empty_url, "db", "check").stdout


@pytest.mark.parametrize("first", ["adbot", "optuna"])
def test_an_optuna_study_lives_beside_adbots_tables(
    first: str, empty_url: str, engine_for: Engine, adbot: Callable[..., Result]
) -> None:
    """``adbot tune`` keeps its study in AdBot's database. Optuna stamps its schema in
    Alembic's default table, AdBot in its own; neither refuses the other, whichever came
    first, and ``adbot db check`` does not count Optuna's tables as drift."""

    def study() -> int:
        """One more trial of the study; the trials it has then."""
        with optuna_storage(empty_url) as storage:  # no connection left open for the GC
            found = optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
            found.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
            return len(found.trials)

    for step in (first, "optuna" if first == "adbot" else "adbot"):
        if step == "adbot":
            assert adbot(empty_url, "db", "upgrade").returncode == 0
        else:
            assert study() == 1
    assert study() == 2  # and again, after both
    assert migrate.current_revisions(empty_url) == (HEAD,)
    assert "no drift" in adbot(empty_url, "db", "check").stdout
    with engine_for.connect() as connection:
        optuna_stamp = connection.execute(text("SELECT version_num FROM alembic_version"))
        assert optuna_stamp.scalar_one() not in migrate.known_revisions()


def test_cli_upgrade_current_downgrade(tmp_path: Path, adbot: Callable[..., Result]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    missing = adbot(url, "db", "current")  # says so, and does not create the file by looking
    assert missing.returncode == 1 and f"no database at {tmp_path / 'cli.db'}" in missing.stderr
    assert not (tmp_path / "cli.db").exists()
    upgraded = adbot(url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"-> {HEAD}" in upgraded.stderr
    assert adbot(url, "db", "current").stdout.strip() == f"{HEAD} (up to date)"
    assert HEAD in adbot(url, "db", "history").stdout
    downgraded = adbot(url, "db", "downgrade", "-1", "--yes")  # relative, not an option
    assert downgraded.returncode == 0, downgraded.stderr
    assert migrate.current_revisions(url) == ("0003",)  # the one before HEAD


def _one_line_error(result: Result | subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unreachable_database_is_one_line_with_masked_url(tmp_path: Path) -> None:
    """End to end through the installed entry point: a new process, real exit code."""
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql+psycopg://adbot:s3cret-pw@127.0.0.1:{port}/adbot"
    result = subprocess.run(
        [sys.executable, "-m", "adbot.cli.main", "db", "current"],
        capture_output=True,
        text=True,
        env={**os.environ, "ADBOT_DB__URL": url},
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    line = _one_line_error(result)
    assert f"postgresql+psycopg://adbot:***@127.0.0.1:{port}/adbot" in line
    assert "s3cret-pw" not in line
    assert "ADBOT_DB__URL" in line and "docker compose up -d postgres" in line


def test_unknown_target_revision_says_how_to_fix(
    tmp_path: Path, adbot: Callable[..., Result]
) -> None:
    url = f"sqlite:///{tmp_path / 'rev.db'}"
    line = _one_line_error(adbot(url, "db", "upgrade", "no-such-rev"))
    assert "'no-such-rev'" in line and "adbot db history" in line


def test_database_at_unknown_revision_says_so(tmp_path: Path, adbot: Callable[..., Result]) -> None:
    url = f"sqlite:///{tmp_path / 'future.db'}"
    migrate.upgrade(url, "head")
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE adbot_alembic_version SET version_num = 'f00dcafe'"))
    engine.dispose()
    for command in (("db", "upgrade"), ("db", "check")):
        line = _one_line_error(adbot(url, *command))
        assert "revision 'f00dcafe'" in line and "do not know" in line


def test_check_on_an_unmigrated_database_asks_for_upgrade(
    tmp_path: Path, adbot: Callable[..., Result]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    line = _one_line_error(adbot(url, "db", "check"))
    assert "adbot db upgrade" in line


def test_missing_database_says_how_to_create_it(
    pg_admin_url: str, adbot: Callable[..., Result]
) -> None:
    url = make_url(pg_admin_url).set(database="adbot_no_such_database")
    line = _one_line_error(adbot(url.render_as_string(hide_password=False), "db", "current"))
    assert 'database "adbot_no_such_database" does not exist' in line
    assert "createdb" in line and "ADBOT_DB__URL" in line
