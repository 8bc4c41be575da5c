"""Tenant isolation, walked over every operation of the OpenAPI schema.

Account B's admin aims every operation at account A's rows (ids in the path, in the body
and in list filters). Each must answer 404 as if the row did not exist, or, with no id of
A in the request, answer without any of A's rows. A's data must be exactly as before.
A new operation fails this test until it is given a request body below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from api_helpers import PASSWORD, Tenant, TenantFactory, World, build_world
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adbot.db.models import BidChange, Conversion, PerformanceMetric, Role

# Operations anyone may call: they identify the caller themselves.
PUBLIC = {("post", "/api/v1/auth/token"), ("post", "/api/v1/auth/refresh")}
# Signing out everywhere ends the caller's own tokens: walked last.
ENDS_SESSION = {("post", "/api/v1/auth/logout")}
# Ingestion validates each row: a row naming another account's keyword is rejected
# (422, with the row's reason), the batch writes nothing.
ROW_REJECTING = {("post", "/api/v1/metrics/hourly"), ("post", "/api/v1/conversions")}
HOUR = "2024-05-01T10:00:00Z"


@dataclass
class Victim:
    world: World
    ids: dict[str, int]


Body = Callable[[Victim, Tenant], dict[str, Any]]

BODIES: dict[tuple[str, str], Body] = {
    ("post", "/api/v1/auth/refresh"): lambda a, b: {"refresh_token": _refresh_token(b)},
    ("post", "/api/v1/auth/password"): lambda a, b: {
        "current_password": "not the password",
        "new_password": "walker password 1",
    },
    ("post", "/api/v1/api-keys"): lambda a, b: {"name": "walker", "scopes": ["read"]},
    ("patch", "/api/v1/accounts/{account_id}"): lambda a, b: {"name": "Hijacked"},
    ("post", "/api/v1/users"): lambda a, b: {"email": "walker@example.com", "password": PASSWORD},
    ("patch", "/api/v1/users/{user_id}"): lambda a, b: {"full_name": "Hijacked"},
    ("post", "/api/v1/platforms"): lambda a, b: {"kind": "sim", "name": "Walker"},
    ("patch", "/api/v1/platforms/{platform_id}"): lambda a, b: {"name": "Hijacked"},
    ("post", "/api/v1/campaigns"): lambda a, b: {
        "platform_id": a.ids["platform_id"],
        "name": "Hijack",
        "daily_budget_micros": 5_000_000,
    },
    ("patch", "/api/v1/campaigns/{campaign_id}"): lambda a, b: {"name": "Hijacked"},
    ("post", "/api/v1/ad-groups"): lambda a, b: {
        "campaign_id": a.ids["campaign_id"],
        "name": "Hijack",
    },
    ("patch", "/api/v1/ad-groups/{ad_group_id}"): lambda a, b: {"name": "Hijacked"},
    ("post", "/api/v1/ads"): lambda a, b: {
        "ad_group_id": a.ids["ad_group_id"],
        "final_url": "https://hijack.example.com",
        "headlines": ["a", "b", "c"],
        "descriptions": ["d", "e"],
    },
    ("patch", "/api/v1/ads/{ad_id}"): lambda a, b: {"final_url": "https://hijack.example.com"},
    ("post", "/api/v1/keywords"): lambda a, b: {
        "ad_group_id": a.ids["ad_group_id"],
        "text": "hijack",
        "match_type": "exact",
    },
    ("patch", "/api/v1/keywords/{keyword_id}"): lambda a, b: {"bid_micros": 9_000_000},
    ("post", "/api/v1/bids/bulk"): lambda a, b: {
        "changes": [{"keyword_id": a.ids["keyword_id"], "bid_micros": 9_000_000}]
    },
    ("post", "/api/v1/metrics/hourly"): lambda a, b: {
        "rows": [
            {
                "keyword_id": a.ids["keyword_id"],
                "hour": HOUR,
                "impressions": 10,
                "clicks": 1,
                "cost_micros": 1_000_000,
            }
        ]
    },
    ("post", "/api/v1/conversions"): lambda a, b: {
        "rows": [
            {
                "keyword_id": a.ids["keyword_id"],
                "conversion_action": "purchase",
                "external_id": "walker-1",
                "occurred_at": HOUR,
            }
        ]
    },
}
# Required query parameters that are not ids.
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("get", "/api/v1/reports/performance"): {"start": "2024-05-01", "end": "2024-05-02"},
}
FORMS: dict[tuple[str, str], Body] = {
    ("post", "/api/v1/auth/token"): lambda a, b: {"username": b.admin_email, "password": PASSWORD},
}


def _refresh_token(tenant: Tenant) -> str:
    form = {"username": tenant.admin_email, "password": PASSWORD}
    token: str = tenant.client.post("/api/v1/auth/token", data=form).json()["refresh_token"]
    return token


def _operations(client: TestClient) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every operation of the API, those that end the caller's session last."""
    schema = client.get("/openapi.json").json()
    found = [
        (method, path, operation)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in operations.items()
    ]
    yield from sorted(found, key=lambda op: (op[0], op[1]) in ENDS_SESSION)


@pytest.fixture
def victim(make_tenant: TenantFactory, db_session: Session) -> Victim:
    world = build_world(make_tenant())
    tenant = world.tenant
    tenant.as_role(Role.VIEWER)
    key = tenant.post("api-keys", {"name": "a-script", "scopes": ["read"]})
    bid = {"bid_micros": 1_500_000}
    keyword_path = f"/api/v1/keywords/{world.keyword['id']}"
    assert tenant.client.patch(keyword_path, json=bid, headers=tenant.headers).is_success
    metrics = BODIES[("post", "/api/v1/metrics/hourly")](
        Victim(world, {"keyword_id": world.keyword["id"]}), tenant
    )
    ingested = tenant.client.post("/api/v1/metrics/hourly", json=metrics, headers=tenant.headers)
    assert ingested.status_code == 200, ingested.text
    ids = {
        "account_id": tenant.account_id,
        "user_id": tenant.users[Role.VIEWER][0],
        "key_id": key["id"],
        "platform_id": world.platform["id"],
        "campaign_id": world.campaign["id"],
        "ad_group_id": world.ad_group["id"],
        "ad_id": world.ad["id"],
        "keyword_id": world.keyword["id"],
    }
    return Victim(world, ids)


def _snapshot(victim: Victim, session: Session) -> dict[str, Any]:
    """Everything A can see of its own data, through the API and in the log tables."""
    tenant = victim.world.tenant
    seen: dict[str, Any] = {}
    for resource, id_name in (
        ("accounts", "account_id"),
        ("users", "user_id"),
        ("api-keys", "key_id"),
        ("platforms", "platform_id"),
        ("campaigns", "campaign_id"),
        ("ad-groups", "ad_group_id"),
        ("ads", "ad_id"),
        ("keywords", "keyword_id"),
    ):
        row = tenant.get(f"{resource}/{victim.ids[id_name]}")
        if resource == "api-keys":
            row.pop("last_used_at")
        seen[resource] = (row, tenant.get(resource)["total"])
    account_id = tenant.account_id
    for model in (BidChange, PerformanceMetric, Conversion):
        count = select(func.count()).select_from(model).where(model.account_id == account_id)
        seen[model.__tablename__] = session.scalar(count)
    return seen


def _rows_of(victim: Victim, snapshot: dict[str, Any]) -> set[tuple[Any, Any]]:
    return {
        (row["id"], row.get("created_at"))
        for key, value in snapshot.items()
        if isinstance(value, tuple)
        for row in [value[0]]
    }


def _leaks(payload: Any, rows: set[tuple[Any, Any]], account_id: int) -> list[Any]:
    """Objects in a response that are one of A's rows or carry A's account id."""
    found = []
    if isinstance(payload, dict):
        if (payload.get("id"), payload.get("created_at")) in rows:
            found.append(payload)
        if payload.get("account_id") == account_id:
            found.append(payload)
        for value in payload.values():
            found += _leaks(value, rows, account_id)
    elif isinstance(payload, list):
        for value in payload:
            found += _leaks(value, rows, account_id)
    return found


def test_another_account_can_read_change_or_delete_nothing(
    client: TestClient, victim: Victim, make_tenant: TenantFactory, db_session: Session
) -> None:
    attacker = build_world(make_tenant()).tenant
    before = _snapshot(victim, db_session)
    rows = _rows_of(victim, before)
    account_id = victim.world.tenant.account_id
    walked, problems = 0, []
    for method, path, operation in _operations(client):
        params = operation.get("parameters", [])
        path_ids = [p["name"] for p in params if p["in"] == "path"]
        unknown = [name for name in path_ids if name not in victim.ids]
        assert not unknown, f"{method} {path}: no id of account A known for {unknown}"
        url = path.format(**{name: victim.ids[name] for name in path_ids})
        query = {p["name"]: victim.ids[p["name"]] for p in params
                 if p["in"] == "query" and p["name"] in victim.ids}  # fmt: skip
        kwargs = _body(method, path, operation, victim, attacker)
        extra = QUERIES.get((method, path), {})
        missing = [p["name"] for p in params if p["in"] == "query" and p.get("required")
                   and p["name"] not in {**query, **extra}]  # fmt: skip
        assert not missing, f"{method} {path}: add required query parameters {missing} to QUERIES"
        response = client.request(
            method.upper(), url, params={**query, **extra}, headers=attacker.headers, **kwargs
        )
        walked += 1
        aims_at_a = bool(path_ids or query) or _mentions(kwargs, victim)
        problems += _judge(method, path, response, aims_at_a, rows, account_id)
        if query:  # the same list without filters must not show A's rows either
            unfiltered = client.request(method.upper(), url, params=extra, headers=attacker.headers)
            problems += _judge(method, path, unfiltered, False, rows, account_id)
    assert not problems, "\n".join(problems)
    assert walked == sum(1 for _ in _operations(client)) >= 45
    assert _snapshot(victim, db_session) == before


def test_every_operation_wants_credentials(client: TestClient, victim: Victim) -> None:
    checked = 0
    for method, path, operation in _operations(client):
        if (method, path) in PUBLIC:
            continue
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        url = path.format(**{name: victim.ids[name] for name in names})
        response = client.request(method.upper(), url)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"]["code"] == "unauthenticated"
        checked += 1
    assert checked >= 40


def _body(
    method: str, path: str, operation: dict[str, Any], victim: Victim, attacker: Tenant
) -> dict[str, Any]:
    content = operation.get("requestBody", {}).get("content", {})
    if not content:
        return {}
    if "application/json" in content:
        assert (method, path) in BODIES, f"{method} {path}: add a request body to BODIES"
        return {"json": BODIES[(method, path)](victim, attacker)}
    assert (method, path) in FORMS, f"{method} {path}: add a form to FORMS"
    return {"data": FORMS[(method, path)](victim, attacker)}


def _mentions(kwargs: dict[str, Any], victim: Victim) -> bool:
    text = str(kwargs.get("json", ""))
    return any(f"'{name}': {value}" in text for name, value in victim.ids.items())


def _judge(
    method: str,
    path: str,
    response: Any,
    aims_at_a: bool,
    rows: set[tuple[Any, Any]],
    account_id: int,
) -> list[str]:
    label = f"{method.upper()} {path} -> {response.status_code}"
    body = response.json() if response.headers.get("content-type", "").startswith(
        "application/json"
    ) else response.text  # fmt: skip
    leaks = _leaks(body, rows, account_id)
    if leaks:
        return [f"{label}: shows account A's rows {leaks}"]
    if not aims_at_a or response.status_code == 404:
        return []
    if (method, path) in ROW_REJECTING and response.status_code == 422:
        return []
    # A list or report filtered by A's ids may answer an empty page instead of 404.
    empty = isinstance(body, dict) and body.get("total") == 0
    if method == "get" and response.status_code == 200 and empty:
        return []
    return [f"{label}: expected 404 for account A's ids, got {str(body)[:200]}"]
