"""Accounts (the caller's own), users and platform connections."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import PASSWORD, Tenant, TenantFactory, assert_error
from sqlalchemy.orm import Session

from adbot.config import Settings
from adbot.db.models import Role
from adbot.errors import Conflict
from adbot.services.common import ROLE_SCOPES, Actor
from adbot.services.users import update_user


def test_an_account_sees_only_itself(make_tenant: TenantFactory) -> None:
    first, second = make_tenant(), make_tenant()
    page = first.get("accounts")
    assert page["total"] == 1 and [a["id"] for a in page["items"]] == [first.account_id]
    assert page["items"][0]["currency_code"] == "USD" and page["items"][0]["status"] == "active"
    assert first.get(f"accounts/{first.account_id}")["slug"].startswith("tenant-")
    response = first.client.get(f"/api/v1/accounts/{second.account_id}", headers=first.headers)
    assert_error(response, 404, "not_found")


def test_account_updates_and_their_rules(make_tenant: TenantFactory) -> None:
    first, second = make_tenant(), make_tenant()
    path = f"/api/v1/accounts/{first.account_id}"
    client = first.client
    response = client.patch(
        path, json={"name": "Acme Shoes", "time_zone": "Europe/Paris"}, headers=first.headers
    )
    assert response.status_code == 200
    assert (
        response.json()["name"] == "Acme Shoes" and response.json()["time_zone"] == "Europe/Paris"
    )
    bad_zone = client.patch(path, json={"time_zone": "Mars/Olympus"}, headers=first.headers)
    assert assert_error(bad_zone, 422)["details"] == {"field": "time_zone"}
    taken = second.get(f"accounts/{second.account_id}")["slug"]
    duplicate = client.patch(path, json={"slug": taken}, headers=first.headers)
    assert assert_error(duplicate, 409, "conflict")["details"] == {"key": ["slug"]}
    assert_error(client.patch(path, json={"slug": "Not A Slug"}, headers=first.headers), 422)
    assert_error(client.patch(path, json={"name": None}, headers=first.headers), 422)
    analyst = first.as_role(Role.ANALYST)
    assert_error(client.patch(path, json={"name": "Nope"}, headers=analyst), 403)
    assert first.get(f"accounts/{first.account_id}")["name"] == "Acme Shoes"


def test_users_crud_filters_and_natural_key(tenant: Tenant) -> None:
    client = tenant.client
    created = tenant.post(
        "users",
        {"email": "Ana@Example.com", "password": PASSWORD, "role": "analyst", "full_name": "Ana"},
    )
    assert created["email"] == "ana@example.com" and created["role"] == "analyst"
    assert "password" not in created and "password_hash" not in created
    tenant.post("users", {"email": "vic@example.com", "password": PASSWORD})
    duplicate = client.post(
        "/api/v1/users",
        json={"email": "ANA@example.com", "password": PASSWORD},
        headers=tenant.headers,
    )
    error = assert_error(duplicate, 409, "conflict")
    assert error["details"] == {"key": ["email"]} and "email" in error["message"]
    assert tenant.get("users")["total"] == 3
    assert [u["email"] for u in tenant.get("users", role="viewer")["items"]] == ["vic@example.com"]
    assert [u["email"] for u in tenant.get("users", q="ANA")["items"]] == ["ana@example.com"]
    assert [u["email"] for u in tenant.get("users", sort="-email", limit=1)["items"]] == [
        "vic@example.com"
    ]
    changed = client.patch(
        f"/api/v1/users/{created['id']}", json={"role": "viewer"}, headers=tenant.headers
    )
    assert changed.json()["role"] == "viewer"
    removed = client.delete(f"/api/v1/users/{created['id']}", headers=tenant.headers)
    assert removed.status_code == 200 and removed.json()["is_active"] is False
    assert tenant.get("users", is_active=False)["total"] == 1
    short = client.post(
        "/api/v1/users",
        json={"email": "s@example.com", "password": "short"},
        headers=tenant.headers,
    )
    assert assert_error(short, 422)["details"][0]["field"] == "password"


def test_admins_cannot_lock_themselves_out(tenant: Tenant) -> None:
    me = f"/api/v1/users/{tenant.admin_id}"
    client = tenant.client
    for change in ({"role": "analyst"}, {"is_active": False}):
        assert_error(client.patch(me, json=change, headers=tenant.headers), 409, "conflict")
    assert_error(client.delete(me, headers=tenant.headers), 409, "conflict")
    own_password = client.patch(me, json={"password": "x" * 20}, headers=tenant.headers)
    assert_error(own_password, 403, "forbidden")
    assert client.get("/api/v1/auth/me", headers=tenant.headers).status_code == 200


def test_the_account_keeps_an_active_admin(
    tenant: Tenant, db_session: Session, settings: Settings
) -> None:
    # Only a principal that is not a user (a service key) could reach this rule.
    service_actor = Actor(
        account_id=tenant.account_id, user_id=None, role=None, scopes=ROLE_SCOPES[Role.ADMIN]
    )
    with pytest.raises(Conflict, match="at least one active admin"):
        update_user(
            session=db_session,
            actor=service_actor,
            user_id=tenant.admin_id,
            changes={"role": Role.VIEWER},
            auth=settings.auth,
        )
    assert tenant.get(f"users/{tenant.admin_id}")["role"] == "admin"


@pytest.mark.parametrize("role", [Role.ANALYST, Role.VIEWER])
def test_only_admins_manage_users(tenant: Tenant, role: Role) -> None:
    headers = tenant.as_role(role)
    body = {"email": f"new-{role}@example.com", "password": PASSWORD}
    assert_error(tenant.client.post("/api/v1/users", json=body, headers=headers), 403)
    assert_error(tenant.client.get("/api/v1/users", headers=headers), 403)


def _platform(tenant: Tenant, **body: Any) -> Any:
    return tenant.client.post(
        "/api/v1/platforms", json={"kind": "sim", "name": "Sim", **body}, headers=tenant.headers
    )


def test_platform_connections(tenant: Tenant) -> None:
    sim = _platform(tenant).json()
    assert sim["status"] == "active" and sim["kind"] == "sim"
    missing_id = _platform(tenant, kind="google_ads", name="Google")
    assert assert_error(missing_id, 422)["details"] == {"field": "external_customer_id"}
    google = _platform(
        tenant, kind="google_ads", name="Google", external_customer_id="123-456-7890"
    ).json()
    duplicate = _platform(tenant)
    assert assert_error(duplicate, 409)["details"] == {"key": ["name"]}
    same_customer = _platform(
        tenant, kind="google_ads", name="Google 2", external_customer_id="123-456-7890"
    )
    assert assert_error(same_customer, 409)["details"] == {"key": ["kind", "external_customer_id"]}
    assert [p["id"] for p in tenant.get("platforms", kind="google_ads")["items"]] == [google["id"]]
    assert tenant.get("platforms", q="goo")["total"] == 1
    path = f"/api/v1/platforms/{sim['id']}"
    set_error = tenant.client.patch(path, json={"status": "error"}, headers=tenant.headers)
    assert_error(set_error, 422)
    paused = tenant.client.patch(path, json={"status": "paused"}, headers=tenant.headers)
    assert paused.json()["status"] == "paused"
    gone = tenant.client.delete(path, headers=tenant.headers)
    assert gone.json()["status"] == "disconnected"
    assert tenant.get("platforms", status="disconnected")["total"] == 1
    campaign = {"platform_id": sim["id"], "name": "C", "daily_budget_micros": 10_000_000}
    refused = tenant.client.post("/api/v1/campaigns", json=campaign, headers=tenant.headers)
    assert assert_error(refused, 409)["details"] == {"field": "platform_id"}


def test_analysts_read_platforms_but_only_admins_change_them(tenant: Tenant) -> None:
    sim = _platform(tenant).json()
    analyst = tenant.as_role(Role.ANALYST)
    client = tenant.client
    assert client.get(f"/api/v1/platforms/{sim['id']}", headers=analyst).status_code == 200
    body = {"kind": "sim", "name": "Other"}
    assert_error(client.post("/api/v1/platforms", json=body, headers=analyst), 403)
    assert_error(client.delete(f"/api/v1/platforms/{sim['id']}", headers=analyst), 403)
