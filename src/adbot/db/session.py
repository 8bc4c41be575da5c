"""Session factories. Services own the transaction: ``with session_scope() as session``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from adbot.db.engine import get_engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: objects returned by a service stay readable after its commit.
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_sessionmaker() -> sessionmaker[Session]:
    return make_sessionmaker(get_engine())


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    factory = make_sessionmaker(engine or get_engine())
    with factory() as session, session.begin():
        yield session
