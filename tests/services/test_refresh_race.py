"""Two refreshes of one refresh token at the same moment never both get a new pair.

Each refresh token is good for one refresh (``adbot.services.auth.refresh``). Two requests
with the same token at once (two tabs, a retry, a thief racing the owner) read the same
session. On PostgreSQL the user's row is locked for the refresh, so the second waits, then
sees the token used: a reuse, which signs the session out. On SQLite the second's read
snapshot predates the first's commit, so its write fails and nothing is issued.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from adbot.config import AuthSettings
from adbot.db.models import Account, Role, User
from adbot.errors import AuthenticationFailed
from adbot.security.passwords import hash_password
from adbot.services import auth
from adbot.services.auth import REUSED_REFRESH, SIGNED_OUT_BY_REUSE

AUTH = AuthSettings(password_time_cost=1, password_memory_kib=64, password_parallelism=1)


def _first_pair(engine: Engine) -> auth.TokenPair:
    with Session(engine) as session:
        account = Account(slug="race", name="Race")
        session.add(account)
        session.flush()
        password_hash = hash_password("correct horse battery", auth=AUTH)
        session.add(
            User(
                account_id=account.id,
                email="ann@race.test",
                password_hash=password_hash,
                role=Role.ADMIN,
            )
        )
        session.commit()
        return auth.login(
            session=session, email="ann@race.test", password="correct horse battery", auth=AUTH
        )


def test_the_second_of_two_refreshes_at_once_signs_the_session_out_on_postgresql(
    own_engine: Engine,
) -> None:
    pair = _first_pair(own_engine)
    first = Session(own_engine)
    first.execute(select(User).with_for_update())  # the first refresh holds the row...
    found: dict[str, object] = {}

    def second_refresh() -> None:
        with Session(own_engine) as second:
            try:
                auth.refresh(session=second, refresh_token=pair.refresh_token, auth=AUTH)
            except AuthenticationFailed as exc:
                found["error"] = exc.message

    thread = threading.Thread(target=second_refresh)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive()  # ...so the second waits for it
    renewed = auth.refresh(session=first, refresh_token=pair.refresh_token, auth=AUTH)
    first.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and found == {"error": REUSED_REFRESH}
    with Session(own_engine) as third, pytest.raises(AuthenticationFailed) as caught:
        auth.refresh(session=third, refresh_token=renewed.refresh_token, auth=AUTH)
    assert caught.value.message == SIGNED_OUT_BY_REUSE


def test_the_second_of_two_refreshes_at_once_fails_on_sqlite(
    own_sqlite_engine: Engine,
) -> None:
    pair = _first_pair(own_sqlite_engine)
    with Session(own_sqlite_engine) as first, Session(own_sqlite_engine) as second:
        second.get(User, 1)  # its snapshot: before the first refresh
        renewed = auth.refresh(session=first, refresh_token=pair.refresh_token, auth=AUTH)
        with pytest.raises(OperationalError, match="database is locked"):
            auth.refresh(session=second, refresh_token=pair.refresh_token, auth=AUTH)
    with Session(own_sqlite_engine) as third:  # the session goes on with the first's pair
        auth.refresh(session=third, refresh_token=renewed.refresh_token, auth=AUTH)
