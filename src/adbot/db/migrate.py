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
from sqlalchemy import Engine, MetaData
from sqlalchemy.exc import DBAPIError, OperationalError

from adbot.config import get_settings, mask_url
from adbot.db.engine import create_db_engine, database_unavailable, first_line
from adbot.errors import AdbotError, ConfigError, Conflict, InvalidInput

# One set of comparison options for ``alembic revision --autogenerate`` (env.py) and
# ``adbot db check``, so both see the same drift.
COMPARE_OPTIONS: dict[str, Any] = {"compare_type": True, "compare_server_default": False}

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


def current_revisions(url: str | None = None) -> tuple[str, ...]:
    """The revisions the database is stamped with; empty for an unmigrated database."""
    with (
        _engine(url or get_settings().db.url) as engine,
        _reachable(engine),
        engine.connect() as connection,
    ):
        return tuple(MigrationContext.configure(connection).get_current_heads())


def upgrade(url: str | None = None, revision: str = "head") -> None:
    config = alembic_config(url)
    _check_database_revision(config)
    with _revision_errors(revision), _reachable_url(config):
        command.upgrade(config, revision)


def downgrade(revision: str, url: str | None = None) -> None:
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
            connection, opts={**COMPARE_OPTIONS, "target_metadata": metadata}
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
