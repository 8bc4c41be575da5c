"""Fixtures for the schema tests: the test world and the reflected schema, per backend."""

from __future__ import annotations

import pytest
from db_world import World, build_world
from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import Session

# --- backends ----------------------------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def any_session(request: pytest.FixtureRequest) -> Session:
    """The rolled-back session of each backend in turn."""
    name = "db_session" if request.param == "postgresql" else "sqlite_session"
    session: Session = request.getfixturevalue(name)
    return session


@pytest.fixture
def world(any_session: Session) -> World:
    return build_world(any_session)


@pytest.fixture
def pg_world(db_session: Session) -> World:
    return build_world(db_session)


def _reflect(engine: Engine) -> MetaData:
    metadata = MetaData()
    metadata.reflect(engine)
    return metadata


@pytest.fixture(scope="session")
def pg_tables(pg_engine: Engine) -> MetaData:
    """The migrated schema as the database reports it (plain column types, no Python-side
    validation), so the database itself is what refuses bad rows."""
    return _reflect(pg_engine)


@pytest.fixture(scope="session")
def sqlite_tables(sqlite_engine: Engine) -> MetaData:
    return _reflect(sqlite_engine)


@pytest.fixture
def tables(any_session: Session, request: pytest.FixtureRequest) -> MetaData:
    backend = any_session.get_bind().dialect.name
    name = "pg_tables" if backend == "postgresql" else "sqlite_tables"
    metadata: MetaData = request.getfixturevalue(name)
    return metadata
