"""Alembic, driven through its command API: upgrade, downgrade, current revision, drift check.

The CLI (``adbot db``) and the test harness both use these functions, so migrations run
the same way everywhere. The URL is passed to ``migrations/env.py`` in
``Config.attributes`` (never through the ini file, whose interpolation mangles ``%``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    select,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from adbot.config import get_settings, mask_url
from adbot.db.engine import create_db_engine, database_unavailable, first_line, sqlite_file
from adbot.errors import (
    AdbotError,
    ConfigError,
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
)

# AdBot's own Alembic version table. Alembic's default, ``alembic_version``, is where Optuna
# (``adbot tune`` keeps its study in AdBot's database) and MLflow stamp their own schemas:
# sharing it, each refuses the other's revision. AdBot versions before this one stamped
# ``alembic_version``; ``adopt_legacy_stamp`` moves such a stamp on the next upgrade.
VERSION_TABLE = "adbot_alembic_version"
LEGACY_VERSION_TABLE = "alembic_version"


def _adbot_tables_only(name: str | None, type_: str, parent_names: object) -> bool:
    """Compare only AdBot's tables: other tools' tables in the same database (Optuna's
    studies, their version table) are not drift."""
    return type_ != "table" or name in target_metadata().tables


# One set of comparison options for ``alembic revision --autogenerate`` (env.py) and
# ``adbot db check``, so both see the same drift.
COMPARE_OPTIONS: dict[str, Any] = {
    "compare_type": True,
    "compare_server_default": False,
    "include_name": _adbot_tables_only,
}

_REPO_ROOT = Path(__file__).resolve().parents[3]


def migrations_dir() -> Path:
    """``migrations/`` of the source tree, or of the working directory, or
    ``ADBOT_MIGRATIONS_DIR``."""
    explicit = os.environ.get("ADBOT_MIGRATIONS_DIR")
    candidates = [Path(explicit)] if explicit else [_REPO_ROOT / "migrations", Path("migrations")]
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate.resolve()
    raise ConfigError(
        "Alembic migrations not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); run from the AdBot source tree or set ADBOT_MIGRATIONS_DIR"
    )


def alembic_config(url: str | None = None) -> Config:
    directory = migrations_dir()
    ini = directory.parent / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(directory))
    config.attributes["url"] = url or get_settings().db.url
    return config


def target_metadata() -> MetaData:
    from adbot.db import models  # noqa: F401  (registers every table)
    from adbot.db.base import Base

    return Base.metadata


def head_revisions(config: Config | None = None) -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(config or alembic_config()).get_heads())


def known_revisions(config: Config | None = None) -> set[str]:
    """Every revision of AdBot's migrations."""
    script = ScriptDirectory.from_config(config or alembic_config())
    return {revision.revision for revision in script.walk_revisions()}


def current_revisions(url: str | None = None) -> tuple[str, ...]:
    """The revisions the database is stamped with; empty for an unmigrated database.

    A database stamped by an AdBot version before ``VERSION_TABLE`` reports the AdBot
    revisions it holds in ``alembic_version`` (``adbot db upgrade`` moves them). A SQLite
    file that does not exist is unmigrated too, and is not created by looking."""
    url = url or get_settings().db.url
    if _missing_sqlite_file(url) is not None:
        return ()
    with (
        _engine(url) as engine,
        _reachable(engine),
        engine.connect() as connection,
    ):
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        current = tuple(context.get_current_heads())
        if current:
            return current
        return tuple(_legacy_stamp(connection, known_revisions()))


def require_database(url: str | None = None) -> None:
    """Refuse, in one line and without creating it, a SQLite database file that does not
    exist: what commands that only read the database (``adbot db current``, ``check``,
    ``downgrade``) check first. ``adbot db upgrade`` creates the file."""
    missing = _missing_sqlite_file(url or get_settings().db.url)
    if missing is not None:
        raise DatabaseUnavailable(
            f"no database at {missing}: `adbot db upgrade` creates it (or set ADBOT_DB__URL "
            "to another database)"
        )


def _missing_sqlite_file(url: str) -> Path | None:
    path = sqlite_file(url)
    return path if path is not None and not path.exists() else None


def require_current_schema(url: str | None = None) -> None:
    """Stop early, in one line, when the database is unreachable or not migrated to these
    migrations' head: what every command that reads or writes the database checks first."""
    if set(current_revisions(url)) != set(head_revisions()):
        raise InvalidInput("the database schema is not up to date: run `adbot db upgrade`")


def _version_table(name: str) -> Table:
    """An Alembic version table as Alembic creates it."""
    return Table(
        name,
        MetaData(),
        Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{name}_pkc"),
    )


def _legacy_stamp(connection: Connection, known: set[str]) -> list[str]:
    """AdBot's revisions in ``alembic_version`` when there is no ``VERSION_TABLE`` yet."""
    tables = set(inspect(connection).get_table_names())
    if VERSION_TABLE in tables or LEGACY_VERSION_TABLE not in tables:
        return []
    legacy = _version_table(LEGACY_VERSION_TABLE)
    return [r for r in connection.execute(select(legacy.c.version_num)).scalars() if r in known]


def adopt_legacy_stamp(connection: Connection, known: set[str]) -> list[str]:
    """Move AdBot's revisions from ``alembic_version`` to ``VERSION_TABLE`` (migrations/env.py
    calls this inside the migration's transaction). Other tools' rows stay; the old table
    is dropped once nothing is left in it. Returns the revisions moved."""
    ours = _legacy_stamp(connection, known)
    if not ours:
        return []
    table, legacy = _version_table(VERSION_TABLE), _version_table(LEGACY_VERSION_TABLE)
    table.create(connection)
    connection.execute(table.insert(), [{"version_num": revision} for revision in ours])
    connection.execute(legacy.delete().where(legacy.c.version_num.in_(ours)))
    if connection.execute(select(legacy.c.version_num)).first() is None:
        legacy.drop(connection)
    return ours


def upgrade(url: str | None = None, revision: str = "head") -> None:
    config = alembic_config(url)
    _check_database_revision(config)
    with _revision_errors(revision), _reachable_url(config):
        command.upgrade(config, revision)


def downgrade(revision: str, url: str | None = None) -> None:
    require_database(url)
    config = alembic_config(url)
    _check_database_revision(config)
    with _revision_errors(revision), _reachable_url(config):
        command.downgrade(config, revision)


@dataclass(frozen=True)
class Drift:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def check(url: str | None = None) -> list[Drift]:
    """Differences between the models and a database migrated to head (empty: in sync)."""
    require_database(url)
    config = alembic_config(url)
    heads = set(head_revisions(config))
    current = set(_check_database_revision(config))
    if current != heads:
        at = ", ".join(sorted(current)) or "base (not migrated)"
        raise Conflict(
            f"the database is at revision {at}, the migrations' head is "
            f"{', '.join(sorted(heads))}: run `adbot db upgrade` first, then check again"
        )
    metadata = target_metadata()
    with (
        _engine(config.attributes["url"]) as engine,
        _reachable(engine),
        engine.connect() as connection,
    ):
        context = MigrationContext.configure(
            connection,
            opts={**COMPARE_OPTIONS, "target_metadata": metadata, "version_table": VERSION_TABLE},
        )
        return [_describe(diff) for diff in compare_metadata(context, metadata)]


def _check_database_revision(config: Config) -> tuple[str, ...]:
    """The database's revisions, refusing one these migrations do not know."""
    url = config.attributes["url"]
    current = current_revisions(url)
    script = ScriptDirectory.from_config(config)
    for revision in current:
        try:
            script.get_revision(revision)
        except CommandError:
            raise Conflict(
                f"the database at {mask_url(url)} is at revision '{revision}', which these "
                "migrations do not know (it was migrated by another AdBot version): run the "
                "AdBot version that created it, or point ADBOT_DB__URL at another database"
            ) from None
    return current


@contextmanager
def _revision_errors(revision: str) -> Iterator[None]:
    try:
        yield
    except CommandError as exc:
        raise InvalidInput(
            f"cannot migrate to '{revision}': {exc}. Use `head`, `base`, a relative step "
            "(-1, +1) or a revision listed by `adbot db history`"
        ) from None


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = create_db_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _reachable(engine: Engine) -> Iterator[None]:
    try:
        yield
    except (OperationalError, DBAPIError) as exc:
        if not _is_connection_error(exc):
            raise
        raise database_unavailable(engine.url, exc) from None


@contextmanager
def _reachable_url(config: Config) -> Iterator[None]:
    url = config.attributes["url"]
    try:
        yield
    except DBAPIError as exc:
        if _is_connection_error(exc):
            raise database_unavailable(url, exc) from None
        raise AdbotError(f"migration failed: {first_line(exc)}") from None


def _is_connection_error(exc: DBAPIError) -> bool:
    # Raised while connecting (no statement yet), or a broken connection mid-way.
    return exc.statement is None or exc.connection_invalidated


def _describe(diff: Any) -> Drift:
    if isinstance(diff, list):  # column modifications come grouped
        parts = [_describe(item) for item in diff]
        return Drift(parts[0].kind, "; ".join(part.detail for part in parts))
    kind, *args = diff
    if kind.startswith("modify_"):
        _schema, table, column, _info, existing, new = args
        return Drift(kind, f"{table}.{column}: database {existing!r}, models {new!r}")
    return Drift(kind, ", ".join(_name(arg) for arg in args if arg is not None))


def _name(obj: Any) -> str:
    table = getattr(obj, "table", None)
    name = getattr(obj, "name", None)
    if table is not None and name is not None:
        return f"{name} on {table.name}"
    return str(name if name is not None else obj)


def describe_revisions(revisions: Sequence[str]) -> str:
    return ", ".join(revisions) if revisions else "base (empty database)"
