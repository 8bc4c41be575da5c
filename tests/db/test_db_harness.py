"""The test harness itself: per-worker databases, rolled-back sessions, an own Redis db."""

from __future__ import annotations

import re

import redis
from sqlalchemy import Engine, literal, select, text
from sqlalchemy.orm import Session

from adbot.db.migrate import head_revisions
from adbot.db.models import Account


def test_each_worker_has_its_own_migrated_database(pg_url: str, db_session: Session) -> None:
    name = db_session.execute(text("SELECT current_database()")).scalar_one()
    assert re.fullmatch(r"adbot_test_(main|gw\d+)_[0-9a-f]{8}", name)
    assert name in pg_url
    revision = db_session.execute(
        text("SELECT version_num FROM adbot_alembic_version")
    ).scalar_one()
    assert (revision,) == head_revisions()


def test_commits_inside_db_session_stay_invisible_outside(
    db_session: Session, pg_engine: Engine
) -> None:
    with db_session.begin():  # the code under test commits...
        db_session.add(Account(slug="harness-probe", name="Probe"))
    probe = select(Account.id).where(Account.slug == "harness-probe")
    assert db_session.execute(probe).first() is not None
    with pg_engine.connect() as other:  # ...but only a savepoint of the outer transaction
        assert other.execute(probe).first() is None


def test_sqlite_session_is_migrated_and_enforces_foreign_keys(sqlite_session: Session) -> None:
    assert sqlite_session.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    revision = sqlite_session.execute(
        text("SELECT version_num FROM adbot_alembic_version")
    ).scalar()
    assert (revision,) == head_revisions()


def test_sqlite_folds_case_across_unicode_as_postgresql(sqlite_session: Session) -> None:
    """SQLite's own lower() folds ASCII only: a search for 'ÜBER' missed 'über schuhe'."""
    fold = sqlite_session.execute(text("SELECT lower('ÜBER Schuhe É'), lower(NULL), lower(3)"))
    assert fold.one() == ("über schuhe é", None, 3)
    found = select(literal("über schuhe").ilike("%ÜBER%"), literal("ÉTÉ").ilike("%été%"))
    assert sqlite_session.execute(found).one() == (True, True)


def test_redis_client_uses_a_dedicated_empty_database(
    redis_client: redis.Redis, redis_url: str
) -> None:
    number = int(redis_url.rsplit("/", 1)[1])
    assert number != 0
    assert redis_client.connection_pool.connection_kwargs["db"] == number
    assert redis_client.dbsize() == 0
    redis_client.set("adbot:probe", "1")
    assert redis_client.get("adbot:probe") == "1"
