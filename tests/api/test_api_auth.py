"""Sign-in, tokens and refresh, with real argon2 hashes and real signed JWTs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from api_helpers import PASSWORD, SECRET, Tenant, assert_error, bearer
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from adbot.config import Settings
from adbot.db.models import Role, User
from adbot.security.tokens import TokenKind, credential_fingerprint, issue_token
from adbot.services import auth as auth_service
from adbot.services.auth import (
    ENDED_SESSION,
    REUSED_REFRESH,
    REVOKED_TOKEN,
    SIGNED_OUT_BY_REUSE,
    UNROTATED_REFRESH,
)

TOKEN_URL = "/api/v1/auth/token"


def _login(client: TestClient, email: str, password: str = PASSWORD) -> object:
    return client.post(TOKEN_URL, data={"username": email, "password": password})


def _admin_token(
    db_session: Session, tenant: Tenant, settings: Settings, kind: TokenKind, **issue: Any
) -> tuple[str, datetime]:
    """A token of the tenant's admin issued directly (generation 0, no refresh session)."""
    password_hash = db_session.scalar(select(User.password_hash).where(User.id == tenant.admin_id))
    return issue_token(
        user_id=tenant.admin_id,
        fingerprint=credential_fingerprint(password_hash, 0),
        kind=kind,
        auth=settings.auth,
        **issue,
    )


def test_good_password_gets_a_short_lived_token(
    client: TestClient, tenant: Tenant, settings: Settings, db_session: Session
) -> None:
    response = _login(client, tenant.admin_email.upper())
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert 0 < body["expires_in"] <= settings.auth.token_minutes * 60
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"], issuer="adbot")
    assert claims["typ"] == "access" and claims["sub"] == str(tenant.admin_id)
    me = client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.json() == {
        "account_id": tenant.account_id,
        "user_id": tenant.admin_id,
        "role": "admin",
        "scopes": ["admin", "read", "write"],
        "api_key_id": None,
    }
    user = db_session.get(User, tenant.admin_id)
    assert user is not None and user.last_login_at is not None
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")


@pytest.mark.parametrize("who", ["wrong password", "unknown email"])
def test_bad_credentials_get_the_same_401(client: TestClient, tenant: Tenant, who: str) -> None:
    if who == "wrong password":
        response = _login(client, tenant.admin_email, "not the password")
    else:
        response = _login(client, "nobody@example.com")
    error = assert_error(response, 401, "unauthenticated")
    assert error["message"] == "incorrect email or password"


def test_the_token_endpoint_wants_the_oauth2_form(client: TestClient, tenant: Tenant) -> None:
    as_json = client.post(TOKEN_URL, json={"username": tenant.admin_email, "password": PASSWORD})
    assert_error(as_json, 422, "validation_error")
    wrong_grant = client.post(
        TOKEN_URL,
        data={"username": tenant.admin_email, "password": PASSWORD, "grant_type": "implicit"},
    )
    error = assert_error(wrong_grant, 422, "validation_error")
    assert error["details"][0]["field"] == "grant_type"


def test_disabled_users_are_refused(client: TestClient, tenant: Tenant) -> None:
    viewer = tenant.as_role(Role.VIEWER)
    viewer_id = tenant.users[Role.VIEWER][0]
    assert client.get("/api/v1/auth/me", headers=viewer).status_code == 200
    response = client.patch(
        f"/api/v1/users/{viewer_id}", json={"is_active": False}, headers=tenant.headers
    )
    assert response.status_code == 200 and response.json()["is_active"] is False
    error = assert_error(client.get("/api/v1/campaigns", headers=viewer), 401)
    assert error["message"] == "user is disabled"
    error = assert_error(_login(client, f"viewer-{tenant.account_id}@example.com"), 401)
    assert error["message"] == "user is disabled"


def test_an_expired_token_is_refused(
    client: TestClient, tenant: Tenant, settings: Settings, db_session: Session
) -> None:
    token, expires = _admin_token(
        db_session, tenant, settings, "access", now=datetime.now(UTC) - timedelta(hours=2)
    )
    assert expires < datetime.now(UTC)
    error = assert_error(client.get("/api/v1/auth/me", headers=bearer(token)), 401)
    assert error["message"] == "token has expired"


def test_forged_and_tampered_tokens_are_refused(client: TestClient, tenant: Tenant) -> None:
    genuine = tenant.token
    claims = jwt.decode(genuine, SECRET, algorithms=["HS256"], issuer="adbot")
    forged = jwt.encode(claims, "another-secret-another-secret-another-secret!", algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    header, _payload, signature = genuine.split(".")
    other = jwt.encode({**claims, "sub": "999"}, "x" * 40, algorithm="HS256").split(".")[1]
    tampered = f"{header}.{other}.{signature}"
    for token in (forged, unsigned, tampered, "not-a-jwt"):
        error = assert_error(client.get("/api/v1/auth/me", headers=bearer(token)), 401)
        assert error["message"] == "invalid token"


def test_signed_tokens_with_claims_out_of_range_are_refused(
    client: TestClient, tenant: Tenant
) -> None:
    """Signed with the key, but an expiry past the calendar (500 in the rate limiter) or a
    user id past a 64-bit integer (500 from SQLite): 401 like any invalid token."""
    claims = jwt.decode(tenant.token, SECRET, algorithms=["HS256"], issuer="adbot")
    for changed in ({"exp": 1e30}, {"sub": "9" * 23}, {"sub": "0"}, {"sub": "-4"}):
        token = jwt.encode({**claims, **changed}, SECRET, algorithm="HS256")
        error = assert_error(client.get("/api/v1/auth/me", headers=bearer(token)), 401)
        assert error["message"] == "invalid token", changed


def test_malformed_or_doubled_credentials_are_refused(client: TestClient, tenant: Tenant) -> None:
    for headers in (
        {"Authorization": "Token abc"},
        {"Authorization": "Bearer"},
        {"Authorization": ""},
        {"X-API-Key": ""},
        {**tenant.headers, "X-API-Key": "adbot_x_y"},
    ):
        assert_error(client.get("/api/v1/auth/me", headers=headers), 401, "unauthenticated")


def test_refresh_gives_a_new_pair_and_tokens_keep_their_kind(
    client: TestClient, tenant: Tenant
) -> None:
    pair = _login(client, tenant.admin_email).json()
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    new_access = refreshed.json()["access_token"]
    assert client.get("/api/v1/auth/me", headers=bearer(new_access)).status_code == 200
    as_access = client.get("/api/v1/auth/me", headers=bearer(pair["refresh_token"]))
    assert assert_error(as_access, 401)["message"] == "expected an access token"
    as_refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["access_token"]})
    assert assert_error(as_refresh, 401)["message"] == "expected a refresh token"


def test_refresh_is_refused_once_the_user_is_disabled(client: TestClient, tenant: Tenant) -> None:
    tenant.as_role(Role.ANALYST)
    analyst_id = tenant.users[Role.ANALYST][0]
    pair = _login(client, f"analyst-{tenant.account_id}@example.com").json()
    client.delete(f"/api/v1/users/{analyst_id}", headers=tenant.headers)
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert assert_error(response, 401)["message"] == "user is disabled"


def test_changing_the_password_ends_older_tokens(client: TestClient, tenant: Tenant) -> None:
    old_headers = tenant.headers
    old_refresh = _login(client, tenant.admin_email).json()["refresh_token"]
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "wrong", "new_password": "a brand new passphrase"},
        headers=old_headers,
    )
    assert_error(wrong, 401)
    too_short = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=old_headers,
    )
    assert assert_error(too_short, 422)["details"][0]["field"] == "new_password"
    changed = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=old_headers,
    )
    assert changed.status_code == 200
    assert client.get("/api/v1/auth/me", headers=bearer(changed.json()["access_token"])).is_success
    stale = assert_error(client.get("/api/v1/auth/me", headers=old_headers), 401)
    assert stale["message"] == REVOKED_TOKEN
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": old_refresh})
    assert_error(response, 401)
    assert _refresh(client, changed.json()["refresh_token"]).status_code == 200
    assert _login(client, tenant.admin_email, "a brand new passphrase").status_code == 200
    assert_error(_login(client, tenant.admin_email), 401)


def test_signing_out_everywhere_ends_every_token_of_the_user(
    client: TestClient, tenant: Tenant
) -> None:
    laptop, phone = (_login(client, tenant.admin_email).json() for _ in range(2))
    others = tenant.as_role(Role.ANALYST)
    key = client.post(
        "/api/v1/api-keys", json={"name": "script", "scopes": ["read"]}, headers=tenant.headers
    ).json()["key"]
    response = client.post("/api/v1/auth/logout", headers=bearer(laptop["access_token"]))
    assert response.status_code == 204 and response.content == b""
    for pair in (laptop, phone):  # both sessions, the one that signed out included
        me = client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
        stale = assert_error(me, 401)
        assert stale["message"] == REVOKED_TOKEN
        refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert assert_error(refresh, 401)["message"] == REVOKED_TOKEN
    assert_error(client.get("/api/v1/auth/me", headers=tenant.headers), 401)  # the fixture's too
    assert client.get("/api/v1/auth/me", headers=others).is_success  # another user's stay
    assert client.get("/api/v1/auth/me", headers={"X-API-Key": key}).is_success  # keys stay
    fresh = _login(client, tenant.admin_email).json()
    assert client.get("/api/v1/auth/me", headers=bearer(fresh["access_token"])).is_success
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert refreshed.status_code == 200


def test_an_api_key_cannot_sign_out_everywhere(client: TestClient, tenant: Tenant) -> None:
    key = client.post(
        "/api/v1/api-keys", json={"name": "script", "scopes": ["read"]}, headers=tenant.headers
    ).json()["key"]
    error = assert_error(client.post("/api/v1/auth/logout", headers={"X-API-Key": key}), 422)
    assert "sign out with a token, not an API key" in error["message"]
    assert client.get("/api/v1/auth/me", headers=tenant.headers).is_success
    assert_error(client.post("/api/v1/auth/logout"), 401)


def test_tokens_issued_before_sign_out_existed_stay_valid() -> None:
    # Generation 0 is the fingerprint of the password hash alone, as tokens carried before.
    old = hashlib.sha256(b"argon2-hash").hexdigest()[:16]
    assert credential_fingerprint("argon2-hash", 0) == old
    assert credential_fingerprint("argon2-hash", 1) != old
    assert credential_fingerprint("argon2-hash", 1) != credential_fingerprint("argon2-hash", 2)


def test_a_token_of_a_deleted_user_is_refused(
    client: TestClient, tenant: Tenant, db_session: Session
) -> None:
    headers = tenant.as_role(Role.VIEWER)
    db_session.execute(delete(User).where(User.id == tenant.users[Role.VIEWER][0]))
    db_session.commit()
    assert_error(client.get("/api/v1/auth/me", headers=headers), 401)


def test_a_closed_account_can_no_longer_sign_in(client: TestClient, tenant: Tenant) -> None:
    response = client.delete(f"/api/v1/accounts/{tenant.account_id}", headers=tenant.headers)
    assert response.status_code == 200 and response.json()["status"] == "closed"
    assert (
        assert_error(client.get("/api/v1/auth/me", headers=tenant.headers), 401)["message"]
        == "account is closed"
    )
    assert_error(_login(client, tenant.admin_email), 401)


def _refresh(client: TestClient, token: str) -> Any:
    return client.post("/api/v1/auth/refresh", json={"refresh_token": token})


def _sessions(db_session: Session, user_id: int) -> dict[str, list[int]]:
    db_session.expire_all()
    return db_session.scalar(select(User.refresh_sessions).where(User.id == user_id)) or {}


def test_each_refresh_token_is_good_for_one_refresh(
    client: TestClient, tenant: Tenant, db_session: Session
) -> None:
    """A refresh answers with the session's next refresh token; using an earlier one again
    (a leaked copy, or the user's own after a thief refreshed first) ends that session, for
    the holder of its newest token too. Other sessions of the user go on."""
    laptop, phone = (_login(client, tenant.admin_email).json() for _ in range(2))
    first = laptop["refresh_token"]
    second = _refresh(client, first).json()
    third = _refresh(client, second["refresh_token"]).json()
    assert client.get("/api/v1/auth/me", headers=bearer(third["access_token"])).is_success
    claims = [
        jwt.decode(token, SECRET, algorithms=["HS256"], issuer="adbot")
        for token in (first, second["refresh_token"], third["refresh_token"])
    ]
    assert len({c["sid"] for c in claims}) == 1 and [c["seq"] for c in claims] == [0, 1, 2]
    assert assert_error(_refresh(client, first), 401)["message"] == REUSED_REFRESH
    assert assert_error(_refresh(client, first), 401)["message"] == SIGNED_OUT_BY_REUSE
    newest = assert_error(_refresh(client, third["refresh_token"]), 401)
    assert newest["message"] == SIGNED_OUT_BY_REUSE
    assert _refresh(client, phone["refresh_token"]).status_code == 200  # another sign-in
    sessions = _sessions(db_session, tenant.admin_id)
    assert sessions[claims[0]["sid"]][0] == auth_service.ENDED  # kept until it would expire


def test_a_refresh_token_from_before_rotation_is_refused(
    client: TestClient, tenant: Tenant, settings: Settings, db_session: Session
) -> None:
    """Tokens issued before migration 0004 name no session, and nothing would record their
    use: taken once each, a copy could come back whenever its record was gone (evicted past
    MAX_SESSIONS, or expired under a shorter refresh lifetime). The user signs in again."""
    old, _ = _admin_token(db_session, tenant, settings, "refresh")  # as issued before 0004
    assert "sid" not in jwt.decode(old, SECRET, algorithms=["HS256"], issuer="adbot")
    error = assert_error(_refresh(client, old), 401)
    assert error["message"] == UNROTATED_REFRESH
    assert _login(client, tenant.admin_email).status_code == 200


def test_signing_out_forgets_every_session_and_the_oldest_go_past_the_limit(
    client: TestClient, tenant: Tenant, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_service, "MAX_SESSIONS", 2)
    pairs = [_login(client, tenant.admin_email).json() for _ in range(3)]
    assert len(_sessions(db_session, tenant.admin_id)) == 2
    error = assert_error(_refresh(client, pairs[0]["refresh_token"]), 401)
    assert error["message"] == ENDED_SESSION  # the first sign-in made room for the third
    assert _refresh(client, pairs[2]["refresh_token"]).status_code == 200
    client.post("/api/v1/auth/logout", headers=bearer(pairs[1]["access_token"]))
    assert _sessions(db_session, tenant.admin_id) == {}


@pytest.mark.parametrize(
    "claims", [{"sid": "x" * 32}, {"sid": 7}, {"seq": -1}, {"seq": 2**60}, {"seq": "1"}]
)
def test_a_refresh_token_with_a_malformed_session_is_refused(
    client: TestClient, tenant: Tenant, claims: dict[str, Any]
) -> None:
    pair = _login(client, tenant.admin_email).json()
    genuine = jwt.decode(pair["refresh_token"], SECRET, algorithms=["HS256"], issuer="adbot")
    token = jwt.encode({**genuine, **claims}, SECRET, algorithm="HS256")
    assert assert_error(_refresh(client, token), 401)["message"] == "invalid token"
