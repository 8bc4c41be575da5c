"""Roles: viewers read, analysts also change campaigns and bids, admins also run the account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from api_helpers import PASSWORD, World, assert_error

from adbot.db.models import Role
from adbot.services.common import ROLE_SCOPES, Scope

Request = Callable[[World], tuple[str, str, dict[str, Any] | None]]

# (what, needed scope, request against the world)
OPERATIONS: list[tuple[str, Scope, Request]] = [
    ("list campaigns", Scope.READ, lambda w: ("GET", "campaigns", None)),
    ("read a keyword", Scope.READ, lambda w: ("GET", f"keywords/{w.keyword['id']}", None)),
    ("read platforms", Scope.READ, lambda w: ("GET", "platforms", None)),
    ("read the account", Scope.READ, lambda w: ("GET", f"accounts/{w.tenant.account_id}", None)),
    (
        "create a campaign",
        Scope.WRITE,
        lambda w: (
            "POST",
            "campaigns",
            {"platform_id": w.platform["id"], "name": "New", "daily_budget_micros": 5_000_000},
        ),
    ),
    (
        "rename an ad group",
        Scope.WRITE,
        lambda w: ("PATCH", f"ad-groups/{w.ad_group['id']}", {"name": "Renamed"}),
    ),
    ("remove an ad", Scope.WRITE, lambda w: ("DELETE", f"ads/{w.ad['id']}", None)),
    (
        "change a bid",
        Scope.WRITE,
        lambda w: ("PATCH", f"keywords/{w.keyword['id']}", {"bid_micros": 1_300_000}),
    ),
    (
        "bulk bids",
        Scope.WRITE,
        lambda w: (
            "POST",
            "bids/bulk",
            {"changes": [{"keyword_id": w.keyword["id"], "bid_micros": 1_400_000}]},
        ),
    ),
    ("list users", Scope.ADMIN, lambda w: ("GET", "users", None)),
    (
        "add a user",
        Scope.ADMIN,
        lambda w: ("POST", "users", {"email": "new@example.com", "password": PASSWORD}),
    ),
    ("list API keys", Scope.ADMIN, lambda w: ("GET", "api-keys", None)),
    (
        "connect a platform",
        Scope.ADMIN,
        lambda w: ("POST", "platforms", {"kind": "sim", "name": "Second"}),
    ),
    (
        "pause a platform",
        Scope.ADMIN,
        lambda w: ("PATCH", f"platforms/{w.platform['id']}", {"status": "paused"}),
    ),
    (
        "rename the account",
        Scope.ADMIN,
        lambda w: ("PATCH", f"accounts/{w.tenant.account_id}", {"name": "Renamed"}),
    ),
]


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_do_exactly_its_share(world: World, role: Role) -> None:
    headers = world.tenant.as_role(role)
    allowed = ROLE_SCOPES[role]
    for what, scope, request in OPERATIONS:
        method, path, body = request(world)
        response = world.tenant.client.request(
            method, f"/api/v1/{path}", json=body, headers=headers
        )
        if scope in allowed:
            assert response.is_success, (role, what, response.text)
        else:
            error = assert_error(response, 403, "forbidden")
            assert error["details"] == {"required_scope": scope}, (role, what)


def test_refused_writes_change_nothing(world: World) -> None:
    viewer = world.tenant.as_role(Role.VIEWER)
    for _what, scope, request in OPERATIONS:
        if scope == Scope.READ:
            continue
        method, path, body = request(world)
        world.tenant.client.request(method, f"/api/v1/{path}", json=body, headers=viewer)
    assert world.tenant.get(f"campaigns/{world.campaign['id']}") == world.campaign
    assert world.tenant.get(f"keywords/{world.keyword['id']}") == world.keyword
    assert world.tenant.get(f"ads/{world.ad['id']}") == world.ad
    assert world.tenant.get("campaigns")["total"] == 1
    assert world.tenant.get("platforms")["total"] == 1
    assert world.tenant.get("users")["total"] == 2  # the admin and the viewer
