"""Database layer: declarative base, the 20 models, engines, sessions and migrations."""

from adbot.db.base import Base
from adbot.db.engine import create_db_engine, ensure_reachable, get_engine
from adbot.db.session import get_sessionmaker, make_sessionmaker, session_scope

__all__ = [
    "Base",
    "create_db_engine",
    "ensure_reachable",
    "get_engine",
    "get_sessionmaker",
    "make_sessionmaker",
    "session_scope",
]
