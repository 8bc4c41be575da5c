"""Engines from settings, with the per-backend set-up AdBot relies on."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from adbot.config import get_settings, mask_url
from adbot.errors import DatabaseUnavailable


def create_db_engine(url: str | None = None, *, echo: bool | None = None) -> Engine:
    """An engine for ``url`` (default: ``settings.db.url``).

    SQLite: foreign keys on, WAL, a busy timeout, and real BEGIN/SAVEPOINT handling (the
    driver's own transaction handling breaks savepoints). PostgreSQL: psycopg 3, session
    time zone UTC, pre-ping so a restarted server does not fail the first request.
    """
    settings = get_settings()
    url = url or settings.db.url
    echo = settings.db.echo if echo is None else echo
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    return create_engine(
        parsed,
        echo=echo,
        pool_size=settings.db.pool_size,
        pool_pre_ping=True,
        connect_args={"options": "-c timezone=UTC"},
    )


def sqlite_file(url: URL | str) -> Path | None:
    """The file a SQLite URL names; ``None`` for another backend, an in-memory database or
    a ``file:`` URI (SQLite resolves those itself)."""
    parsed = make_url(url) if isinstance(url, str) else url
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database:
        return None
    if database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def lost_write_race(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked": a write that another connection's,
    at the same moment, beat. A transaction that read first does not wait on the busy timeout
    for the write lock, nor can it write once its snapshot is older than another's commit.
    Nothing of it was written; the unit of work can be read and made again."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _sqlite_engine(url: URL, *, echo: bool) -> Engine:
    # Connecting creates the file: only `adbot db upgrade` (and code that means to write)
    # gets this far with a file that does not exist; read-only checks look first
    # (migrate.current_revisions).
    database = sqlite_file(url)
    if database is not None:
        try:
            database.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise database_unavailable(url.render_as_string(hide_password=False), exc) from None
    engine = create_engine(url, echo=echo)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level; SQLAlchemy emits BEGIN itself (see _sqlite_on_begin).
    dbapi_connection.isolation_level = None
    # SQLite's own lower() folds ASCII only, so a case-insensitive search (``ilike``, which
    # SQLite runs as ``lower(x) LIKE lower(y)``) missed 'über' for 'ÜBER'; PostgreSQL folds
    # all of Unicode. Python's str.lower, as the services normalise text, instead.
    dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
    cursor = dbapi_connection.cursor()
    for pragma in ("foreign_keys=ON", "journal_mode=WAL", "busy_timeout=5000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _unicode_lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _sqlite_on_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database ``<prefix>_<random>`` on the admin URL's server,
    yielded as a URL and dropped on exit, also on failure (for tests and benchmarks)."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@lru_cache(maxsize=8)
def _cached_engine(url: str) -> Engine:
    return create_db_engine(url)


def get_engine() -> Engine:
    """The process-wide engine for the configured database."""
    return _cached_engine(get_settings().db.url)


def ensure_reachable(engine: Engine) -> None:
    """Connect once; an unreachable database becomes ``DatabaseUnavailable`` with a hint."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (OperationalError, DBAPIError) as exc:
        raise database_unavailable(engine.url, exc) from None


def database_unavailable(url: URL | str, exc: BaseException) -> DatabaseUnavailable:
    rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    reason = first_line(exc)
    return DatabaseUnavailable(
        f"cannot reach the database at {mask_url(rendered)} ({reason}); {_hint(rendered, reason)}"
    )


def first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__


def _hint(url: str, reason: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return "check that the folder exists and is writable, or set ADBOT_DB__URL"
    if "does not exist" in reason and "database" in reason:
        return (
            f"create it (createdb -h {parsed.host} -p {parsed.port or 5432} "
            f"-U {parsed.username} {parsed.database}) or fix the name in ADBOT_DB__URL"
        )
    if any(word in reason for word in ("authentication", "password", "role")):
        return "check the user and password in ADBOT_DB__URL"
    return (
        "is PostgreSQL running and is the host/port right? Start it with "
        "`docker compose up -d postgres` (port 7500) or set ADBOT_DB__URL "
        "(postgresql+psycopg://user:password@host:port/dbname)"
    )
