"""The in-process cache of authenticated principals: a known caller needs no database,
and a change of credentials takes effect within the documented bound (services/principals.py):
at once in the process that commits it, within a second in others (Redis), within
``auth.principal_cache_seconds`` without Redis.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from api_helpers import PASSWORD, Tenant, api_settings, assert_error, sign_in
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from adbot.api.app import create_app
from adbot.api.deps import get_session
from adbot.api.middleware import operations_of
from adbot.config import Settings
from adbot.db.models import Role, User
from adbot.errors import AuthenticationFailed
from adbot.security.tokens import credential_fingerprint, issue_token
from adbot.services import auth as auth_service
from adbot.services import principals as principals_module
from adbot.services.auth import REVOKED_TOKEN
from adbot.services.principals import GENERATION_KEY, PrincipalCache, UserPrincipal

UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/nothing"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return api_settings(redis={"url": redis_url})


def _no_database(app: FastAPI) -> Iterator[None]:
    """From here on every session of ``app`` points at a server that does not exist."""
    engine = create_engine(UNREACHABLE, connect_args={"connect_timeout": 1})
    previous = app.dependency_overrides[get_session]

    def unreachable() -> Iterator[Session]:
        with Session(bind=engine) as session:
            yield session

    app.dependency_overrides[get_session] = unreachable
    try:
        yield
    finally:
        app.dependency_overrides[get_session] = previous
        engine.dispose()


def _api_key(tenant: Tenant) -> dict[str, str]:
    created = tenant.post("api-keys", {"name": "cache", "scopes": ["read"]})
    return {"X-API-Key": created["key"]}


def test_a_known_caller_and_a_cached_report_need_no_database(
    app: FastAPI, client: TestClient, tenant: Tenant
) -> None:
    key = _api_key(tenant)
    report = "/api/v1/reports/performance?level=campaign&grain=day&start=2024-01-01&end=2024-01-07"
    for headers in (tenant.headers, key):
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
        assert client.get(report, headers=headers).status_code == 200
    other = tenant.as_role(Role.VIEWER)  # signed in, never used: not cached
    for _ in _no_database(app):
        for headers in (tenant.headers, key):
            assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
            response = client.get(report, headers=headers)
            assert response.status_code == 200 and response.json()["rows"] == []
        # The database really is gone for this app: an unknown caller cannot be checked.
        assert_error(client.get("/api/v1/auth/me", headers=other), 503, "database_unavailable")


def test_a_role_change_applies_to_the_next_request(client: TestClient, tenant: Tenant) -> None:
    viewer = tenant.as_role(Role.VIEWER)
    viewer_id = tenant.users[Role.VIEWER][0]
    platform = {"kind": "sim", "name": "Simulator"}
    assert_error(client.post("/api/v1/platforms", json=platform, headers=viewer), 403)
    promote = client.patch(
        f"/api/v1/users/{viewer_id}", json={"role": "admin"}, headers=tenant.headers
    )
    assert promote.status_code == 200
    assert client.post("/api/v1/platforms", json=platform, headers=viewer).status_code == 201
    demote = client.patch(
        f"/api/v1/users/{viewer_id}", json={"role": "viewer"}, headers=tenant.headers
    )
    assert demote.status_code == 200
    assert_error(client.post("/api/v1/platforms", json=platform, headers=viewer), 403)


def test_a_password_reset_by_an_admin_ends_the_users_tokens_at_once(
    client: TestClient, tenant: Tenant
) -> None:
    viewer = tenant.as_role(Role.VIEWER)
    viewer_id = tenant.users[Role.VIEWER][0]
    assert client.get("/api/v1/auth/me", headers=viewer).status_code == 200
    reset = client.patch(
        f"/api/v1/users/{viewer_id}",
        json={"password": "a fresh passphrase"},
        headers=tenant.headers,
    )
    assert reset.status_code == 200
    error = assert_error(client.get("/api/v1/auth/me", headers=viewer), 401)
    assert error["message"] == REVOKED_TOKEN


def test_a_disabled_owner_stops_their_cached_key(client: TestClient, tenant: Tenant) -> None:
    email = f"second-admin-{tenant.account_id}@example.com"
    second = tenant.post("users", {"email": email, "password": PASSWORD, "role": "admin"})
    created = client.post(
        "/api/v1/api-keys",
        json={"name": "theirs", "scopes": ["read"]},
        headers=sign_in(client, email),
    )
    assert created.status_code == 201
    key = {"X-API-Key": created.json()["key"]}
    assert client.get("/api/v1/auth/me", headers=key).status_code == 200
    disable = client.patch(
        f"/api/v1/users/{second['id']}", json={"is_active": False}, headers=tenant.headers
    )
    assert disable.status_code == 200
    error = assert_error(client.get("/api/v1/auth/me", headers=key), 401)
    assert error["message"] == "user is disabled"


class TestAnotherProcess:
    """A second app whose cache the in-process notice does not reach stands for another
    worker process: it learns of the change through Redis within a second.
    """

    @pytest.fixture
    def other(self, settings: Settings, db_session: Session) -> Iterator[TestClient]:
        app = create_app(settings)
        app.dependency_overrides[get_session] = lambda: db_session
        with TestClient(app) as other:
            principals_module._CACHES.discard(operations_of(app).principals)
            yield other

    def test_a_disabled_user_is_refused_within_a_second(
        self, client: TestClient, other: TestClient, tenant: Tenant, redis_client: redis.Redis
    ) -> None:
        viewer = tenant.as_role(Role.VIEWER)
        viewer_id = tenant.users[Role.VIEWER][0]
        assert other.get("/api/v1/auth/me", headers=viewer).status_code == 200
        generation = int(redis_client.get(GENERATION_KEY) or 0)
        disable = client.patch(
            f"/api/v1/users/{viewer_id}", json={"is_active": False}, headers=tenant.headers
        )
        assert disable.status_code == 200
        assert int(redis_client.get(GENERATION_KEY) or 0) == generation + 1
        time.sleep(principals_module.GENERATION_CHECK_SECONDS + 0.05)
        error = assert_error(other.get("/api/v1/auth/me", headers=viewer), 401)
        assert error["message"] == "user is disabled"

    def test_a_revoked_key_is_refused_within_a_second(
        self, client: TestClient, other: TestClient, tenant: Tenant
    ) -> None:
        created = tenant.post("api-keys", {"name": "shared", "scopes": ["read"]})
        key = {"X-API-Key": created["key"]}
        assert other.get("/api/v1/auth/me", headers=key).status_code == 200
        revoke = client.delete(f"/api/v1/api-keys/{created['id']}", headers=tenant.headers)
        assert revoke.status_code == 200
        time.sleep(principals_module.GENERATION_CHECK_SECONDS + 0.05)
        error = assert_error(other.get("/api/v1/auth/me", headers=key), 401)
        assert error["message"] == "API key has been revoked"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_without_redis_an_unseen_change_lasts_at_most_the_ttl(
    settings: Settings, tenant: Tenant, db_session: Session
) -> None:
    clock = FakeClock()
    cache = PrincipalCache(30.0, clock=clock)
    token = tenant.token
    auth = settings.auth
    auth_service.actor_from_token(session=db_session, token=token, auth=auth, principals=cache)
    # Raw SQL is not seen by the session events: only the TTL ends the cached answer.
    db_session.execute(
        text("UPDATE users SET is_active = false WHERE id = :id"), {"id": tenant.admin_id}
    )
    clock.now += 29.9
    cached = auth_service.cached_actor_from_token(token=token, auth=auth, principals=cache)
    assert cached is not None and cached.user_id == tenant.admin_id
    clock.now += 0.1
    assert auth_service.cached_actor_from_token(token=token, auth=auth, principals=cache) is None
    with pytest.raises(AuthenticationFailed, match="user is disabled"):
        auth_service.actor_from_token(session=db_session, token=token, auth=auth, principals=cache)


def test_a_read_that_started_before_a_change_is_not_kept() -> None:
    cache = PrincipalCache(30.0)
    principal = UserPrincipal(1, 1, Role.ADMIN, True, "active", "f")  # type: ignore[arg-type]
    version = cache.version
    cache.clear()  # a change committed while the row was being read
    cache.put_user(principal, version=version)
    assert cache.user(1) is None
    cache.put_user(principal, version=cache.version)
    assert cache.user(1) == principal


def test_a_ttl_of_zero_keeps_nothing() -> None:
    cache = PrincipalCache(0.0)
    principal = UserPrincipal(1, 1, Role.ADMIN, True, "active", "f")  # type: ignore[arg-type]
    cache.put_user(principal, version=cache.version)
    assert cache.user(1) is None


def test_only_committed_credential_changes_empty_the_caches(
    tenant: Tenant, db_session: Session
) -> None:
    cache = PrincipalCache(30.0)
    user = db_session.get(User, tenant.admin_id)
    assert user is not None
    version = cache.version
    user.last_login_at = datetime.now(UTC)  # not a credential
    db_session.commit()
    assert cache.version == version
    user.full_name = "Renamed"
    user.role = Role.VIEWER
    db_session.flush()
    db_session.rollback()  # never happened
    assert cache.version == version
    user = db_session.get(User, tenant.admin_id)
    assert user is not None
    user.password_hash = user.password_hash + "x"
    db_session.commit()
    assert cache.version == version + 1


def test_a_bad_report_query_is_refused_before_the_cache(client: TestClient, tenant: Tenant) -> None:
    response = client.get(
        "/api/v1/reports/performance",
        params={"level": "campaign", "grain": "day", "start": "2024-01-02", "end": "2024-01-01"},
        headers=tenant.headers,
    )
    assert assert_error(response, 422)["details"]["field"] == "end"


def test_a_remembered_token_still_expires(settings: Settings) -> None:
    cache = PrincipalCache(30.0)
    lifetime = timedelta(minutes=settings.auth.token_minutes)
    token, expires = issue_token(
        user_id=1,
        fingerprint=credential_fingerprint("hash", 0),
        kind="access",
        auth=settings.auth,
        now=datetime.now(UTC) - lifetime + timedelta(seconds=1.5),
    )
    assert cache.access_claims(token, settings.auth).user_id == 1
    assert cache.access_claims(token, settings.auth).expires_at == expires.replace(microsecond=0)
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.05)
    with pytest.raises(AuthenticationFailed, match="token has expired"):
        cache.access_claims(token, settings.auth)
    with pytest.raises(AuthenticationFailed, match="invalid token"):
        cache.access_claims(token[:-2] + "xx", settings.auth)
