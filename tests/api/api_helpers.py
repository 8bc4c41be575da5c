"""Helpers of the API tests: settings for fast real hashing, signed-in tenants, a world of
one resource of each kind, and the error-shape assertion.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from adbot.config import Settings, load_settings
from adbot.db.models import Role

PASSWORD = "correct horse battery staple"
SECRET = "test-secret-key-that-is-long-enough-for-hs256-0123456789"
_names = itertools.count(1)


def next_number() -> int:
    return next(_names)


def api_settings(**groups: dict[str, Any]) -> Settings:
    """Test settings: a fixed signing key and the cheapest real argon2; ``groups`` override
    setting groups (``api={"rate_limit_per_minute": ...}``), merged into ``auth``.
    """
    auth = {
        "secret_key": SECRET,
        "password_time_cost": 1,
        "password_memory_kib": 64,
        "password_parallelism": 1,
        **groups.pop("auth", {}),
    }
    return load_settings(environment="test", auth=auth, **groups)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


@dataclass
class Tenant:
    """An account with its admin signed in, able to add signed-in users of any role."""

    client: TestClient
    account_id: int
    admin_id: int
    admin_email: str
    headers: dict[str, str]
    users: dict[Role, tuple[int, dict[str, str]]] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.headers["Authorization"].removeprefix("Bearer ")

    def as_role(self, role: Role) -> dict[str, str]:
        """Headers of a (new, cached) signed-in user with ``role``."""
        if role == Role.ADMIN:
            return self.headers
        if role not in self.users:
            email = f"{role}-{self.account_id}@example.com"
            response = self.client.post(
                "/api/v1/users",
                json={"email": email, "password": PASSWORD, "role": role},
                headers=self.headers,
            )
            assert response.status_code == 201, response.text
            self.users[role] = (response.json()["id"], sign_in(self.client, email))
        return self.users[role][1]

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(f"/api/v1/{path}", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(f"/api/v1/{path}", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()


TenantFactory = Callable[[], Tenant]


@dataclass
class World:
    """One of each resource in a tenant, created through the API."""

    tenant: Tenant
    platform: dict[str, Any]
    campaign: dict[str, Any]
    ad_group: dict[str, Any]
    ad: dict[str, Any]
    keyword: dict[str, Any]


def build_world(tenant: Tenant) -> World:
    platform = tenant.post("platforms", {"kind": "sim", "name": "Simulator"})
    campaign = tenant.post(
        "campaigns",
        {"platform_id": platform["id"], "name": "Shoes", "daily_budget_micros": 50_000_000},
    )
    ad_group = tenant.post(
        "ad-groups",
        {"campaign_id": campaign["id"], "name": "Running", "default_bid_micros": 1_000_000},
    )
    ad = tenant.post(
        "ads",
        {
            "ad_group_id": ad_group["id"],
            "final_url": "https://shoes.example.com/running",
            "headlines": ["Running shoes", "Free delivery", "Shop now"],
            "descriptions": ["Light and fast.", "Returns within 30 days."],
        },
    )
    keyword = tenant.post(
        "keywords",
        {
            "ad_group_id": ad_group["id"],
            "text": "running shoes",
            "match_type": "exact",
            "bid_micros": 1_200_000,
        },
    )
    return World(tenant, platform, campaign, ad_group, ad, keyword)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response has ``status`` and the one error shape; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error
