"""Alembic environment: a synchronous connection to the URL from AdBot's settings.

URL, first found: ``Config.attributes["url"]`` (``adbot db``, the test harness),
``alembic -x url=...``, then ``settings.db.url``. The revision is stamped in
``adbot_alembic_version`` (``adbot.db.migrate.VERSION_TABLE``), not Alembic's default table,
which Optuna's study storage in the same database stamps its own schema in. SQLite gets
batch mode (ALTER TABLE is limited there) and runs with foreign keys off, as Alembic
recommends for table rebuilds; ``PRAGMA foreign_key_check`` afterwards refuses a migration
that broke a reference.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from adbot.config import get_settings
from adbot.db.engine import create_db_engine
from adbot.db.migrate import (
    COMPARE_OPTIONS,
    VERSION_TABLE,
    adopt_legacy_stamp,
    known_revisions,
    target_metadata,
)

config = context.config

if config.config_file_name is not None and not config.attributes.get("url"):
    # Only the plain `alembic` command configures logging; AdBot keeps its own.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    return str(url or get_settings().db.url)


def run_migrations_offline() -> None:
    url = database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata(),
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        version_table=VERSION_TABLE,
        **COMPARE_OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        render_as_batch=connection.dialect.name == "sqlite",
        # AdBot's SQLite engine emits real BEGINs, so a failed migration rolls back whole.
        transactional_ddl=True,
        version_table=VERSION_TABLE,
        **COMPARE_OPTIONS,
    )
    with context.begin_transaction():
        # A database stamped by an older AdBot in Alembic's default table (which Optuna and
        # MLflow use too): move the stamp to AdBot's own first.
        adopt_legacy_stamp(connection, known_revisions(config))
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_db_engine(database_url())
    try:
        with engine.connect() as connection:
            if connection.dialect.name != "sqlite":
                _migrate(connection)
                return
            # Outside any transaction: the pragma is a no-op inside one.
            raw = connection.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            try:
                _migrate(connection)
                broken = raw.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
            finally:
                raw.execute("PRAGMA foreign_keys=ON")
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
