"""API keys: shown once, stored hashed, found by prefix, scoped, expiring, revocable."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from api_helpers import Tenant, World, assert_error
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from adbot.db.models import ApiKey, Role


def _create(tenant: Tenant, headers: dict[str, str] | None = None, **body: Any) -> Any:
    body = {"name": "script", "scopes": ["read"], **body}
    return tenant.client.post("/api/v1/api-keys", json=body, headers=headers or tenant.headers)


def _key_headers(created: dict[str, Any]) -> dict[str, str]:
    return {"X-API-Key": created["key"]}


def test_the_key_is_shown_once_and_stored_as_a_hash(tenant: Tenant, db_session: Session) -> None:
    response = _create(tenant, scopes=["read", "write"])
    assert response.status_code == 201
    created = response.json()
    key = created["key"]
    _, prefix, secret = key.split("_")
    assert key.startswith("adbot_") and prefix == created["prefix"] and len(secret) == 40
    assert created["scopes"] == ["read", "write"] and created["user_id"] == tenant.admin_id
    listed = tenant.get("api-keys")["items"]
    one = tenant.get(f"api-keys/{created['id']}")
    assert "key" not in listed[0] and "key" not in one and secret not in str(listed)
    row = db_session.get(ApiKey, created["id"])
    assert row is not None
    assert secret not in row.secret_hash and key not in row.secret_hash
    assert row.secret_hash == hashlib.sha256(f"{prefix}:{secret}".encode()).hexdigest()


def test_a_key_authenticates_and_records_its_use(tenant: Tenant, db_session: Session) -> None:
    created = _create(tenant, scopes=["read"]).json()
    assert created["last_used_at"] is None
    me = tenant.client.get("/api/v1/auth/me", headers=_key_headers(created))
    assert me.status_code == 200
    assert me.json() == {
        "account_id": tenant.account_id,
        "user_id": tenant.admin_id,
        "role": "admin",
        "scopes": ["read"],
        "api_key_id": created["id"],
    }
    assert tenant.get(f"api-keys/{created['id']}")["last_used_at"] is not None


def test_wrong_or_malformed_keys_are_refused(tenant: Tenant) -> None:
    created = _create(tenant).json()
    wrong_secret = created["key"][:-1] + ("A" if created["key"][-1] != "A" else "B")
    unknown_prefix = "adbot_" + "z" * 12 + "_" + "A" * 40
    for key in (wrong_secret, unknown_prefix, "adbot_short_key", "Bearer something", "x" * 300):
        response = tenant.client.get("/api/v1/auth/me", headers={"X-API-Key": key})
        assert assert_error(response, 401, "unauthenticated")["message"] == "invalid API key"


def test_a_revoked_key_stops_working_at_once(tenant: Tenant) -> None:
    created = _create(tenant).json()
    headers = _key_headers(created)
    assert tenant.client.get("/api/v1/campaigns", headers=headers).status_code == 200
    revoked = tenant.client.delete(f"/api/v1/api-keys/{created['id']}", headers=tenant.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    error = assert_error(tenant.client.get("/api/v1/campaigns", headers=headers), 401)
    assert error["message"] == "API key has been revoked"
    again = tenant.client.delete(f"/api/v1/api-keys/{created['id']}", headers=tenant.headers)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert tenant.get("api-keys", revoked=True)["total"] == 1
    assert tenant.get("api-keys", revoked=False)["total"] == 0


def test_an_expired_key_is_refused(tenant: Tenant, db_session: Session) -> None:
    soon = datetime.now(UTC) + timedelta(days=1)
    created = _create(tenant, expires_at=soon.isoformat()).json()
    headers = _key_headers(created)
    assert tenant.client.get("/api/v1/campaigns", headers=headers).status_code == 200
    past = datetime.now(UTC) - timedelta(minutes=1)
    db_session.execute(
        update(ApiKey)
        .where(ApiKey.id == created["id"])
        .values(created_at=past - timedelta(days=1), expires_at=past)
    )
    db_session.commit()
    error = assert_error(tenant.client.get("/api/v1/campaigns", headers=headers), 401)
    assert error["message"] == "API key has expired"


def test_expiry_must_be_in_the_future_and_aware(tenant: Tenant) -> None:
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert assert_error(_create(tenant, expires_at=past), 422)["details"]["field"] == "expires_at"
    naive = datetime.now().replace(tzinfo=None) + timedelta(days=1)
    assert_error(_create(tenant, expires_at=naive.isoformat()), 422, "validation_error")
    assert_error(_create(tenant, expires_at=1893456000), 422, "validation_error")
    assert_error(_create(tenant, scopes=[]), 422, "validation_error")
    assert_error(_create(tenant, scopes=["everything"]), 422, "validation_error")
    assert tenant.get("api-keys")["total"] == 0


def test_a_scope_given_twice_is_refused_by_name(tenant: Tenant) -> None:
    """The schema says ``uniqueItems``: a repeated scope is refused, not quietly merged."""
    twice = _create(tenant, scopes=["write", "read", "write"])
    error = assert_error(twice, 422, "validation_error")
    assert [detail["field"] for detail in error["details"]] == ["scopes"]
    assert "each scope may appear once; repeated: write" in error["message"]
    assert tenant.get("api-keys")["total"] == 0
    assert _create(tenant, scopes=["write", "read"]).status_code == 201


def test_scopes_limit_what_a_key_can_do(world: World) -> None:
    tenant = world.tenant
    read = _key_headers(_create(tenant, scopes=["read"]).json())
    write = _key_headers(_create(tenant, scopes=["read", "write"]).json())
    admin_only = _key_headers(_create(tenant, scopes=["admin"]).json())
    campaign = f"/api/v1/campaigns/{world.campaign['id']}"
    client = tenant.client
    assert client.get(campaign, headers=read).status_code == 200
    denied = assert_error(client.patch(campaign, json={"name": "R"}, headers=read), 403)
    assert denied["details"] == {"required_scope": "write"}
    assert client.patch(campaign, json={"name": "W"}, headers=write).status_code == 200
    assert_error(client.get("/api/v1/users", headers=write), 403, "forbidden")
    assert_error(client.get(campaign, headers=admin_only), 403, "forbidden")
    assert client.get("/api/v1/users", headers=admin_only).status_code == 200
    # A key cannot mint a key with scopes it lacks itself.
    escalated = _create(tenant, headers=admin_only, scopes=["write"])
    assert_error(escalated, 403, "forbidden")
    assert _create(tenant, headers=admin_only, scopes=["admin"]).status_code == 201


def test_a_key_never_exceeds_its_owners_role(client: TestClient, make_tenant: Any) -> None:
    tenant = make_tenant()
    second_admin = client.post(
        "/api/v1/users",
        json={"email": "second@example.com", "password": "second admin password", "role": "admin"},
        headers=tenant.headers,
    ).json()
    token = client.post(
        "/api/v1/auth/token",
        data={"username": "second@example.com", "password": "second admin password"},
    ).json()["access_token"]
    created = _create(
        tenant, headers={"Authorization": f"Bearer {token}"}, scopes=["read", "write", "admin"]
    ).json()
    headers = _key_headers(created)
    assert client.get("/api/v1/users", headers=headers).status_code == 200
    client.patch(
        f"/api/v1/users/{second_admin['id']}", json={"role": "viewer"}, headers=tenant.headers
    )
    assert client.get("/api/v1/campaigns", headers=headers).status_code == 200
    assert_error(client.get("/api/v1/users", headers=headers), 403)
    assert_error(
        client.post("/api/v1/platforms", json={"kind": "sim", "name": "P"}, headers=headers), 403
    )
    client.delete(f"/api/v1/users/{second_admin['id']}", headers=tenant.headers)
    assert (
        assert_error(client.get("/api/v1/campaigns", headers=headers), 401)["message"]
        == "user is disabled"
    )


def test_only_admins_manage_keys(tenant: Tenant) -> None:
    for role in (Role.ANALYST, Role.VIEWER):
        headers = tenant.as_role(role)
        assert_error(_create(tenant, headers=headers), 403, "forbidden")
        assert_error(tenant.client.get("/api/v1/api-keys", headers=headers), 403, "forbidden")


def test_key_lists_paginate_filter_and_sort(tenant: Tenant) -> None:
    for name in ("gamma", "alpha", "beta"):
        _create(tenant, name=name)
    page = tenant.get("api-keys", sort="name", limit=2)
    assert [k["name"] for k in page["items"]] == ["alpha", "beta"] and page["total"] == 3
    page = tenant.get("api-keys", sort="-name", limit=2, offset=2)
    assert [k["name"] for k in page["items"]] == ["alpha"]
    assert tenant.get("api-keys", q="AMM")["items"][0]["name"] == "gamma"
