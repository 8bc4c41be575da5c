"""The app itself: schema and docs, route prefix, and the one error shape for every 4xx/5xx."""

from __future__ import annotations

import sqlite3

from api_helpers import Tenant, World, assert_error
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from adbot.api.app import PERFORMANCE_ROUTERS, ROUTERS
from adbot.api.routing import StrictJsonRoute


def test_openapi_and_docs_are_served(client: TestClient) -> None:
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/campaigns" in paths and "/api/v1/auth/token" in paths
    schemes = schema.json()["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_every_resource_route_is_under_api_v1(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    routes = [
        (f"/api/v1{route.path}", method.lower())
        for module in ROUTERS
        for route in module.router.routes
        for method in getattr(route, "methods", ())
    ]
    assert len(routes) >= 40
    assert all(method in paths.get(path, {}) for path, method in routes), routes
    assert all(path.startswith("/api/v1/") for path, _ in routes)


def test_every_error_status_of_the_schema_uses_the_error_shape(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            for status in ("401", "404", "422"):
                content = operation["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, (
                    method,
                    path,
                    status,
                )


def test_unknown_route_is_404_in_the_error_shape(client: TestClient) -> None:
    error = assert_error(client.get("/api/v1/nothing-here"), 404, "not_found")
    assert "/api/v1/nothing-here" in error["message"]


def test_wrong_method_is_405_with_every_allowed_method(client: TestClient, tenant: Tenant) -> None:
    response = client.put("/api/v1/campaigns", json={}, headers=tenant.headers)
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) >= {"GET", "POST"}


def test_missing_credentials_are_401(client: TestClient) -> None:
    response = client.get("/api/v1/campaigns")
    assert_error(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_malformed_json_is_400(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/api/v1/platforms",
        content=b'{"kind": "sim", "name": ',
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert_error(response, 400, "malformed_json")
    assert tenant.get("platforms")["total"] == 0


def test_a_malformed_body_says_what_the_parser_found(tenant: Tenant) -> None:
    response = tenant.client.post(
        "/api/v1/platforms",
        content=b'{"kind": "sim", "name": ',
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    error = assert_error(response, 400, "malformed_json")
    assert error["message"] == "request body is not valid JSON: Expecting value"


def test_a_key_named_twice_is_refused_by_name_and_nothing_changes(world: World) -> None:
    """Python's JSON keeps the last of two equal keys: this bulk change set the keyword's bid
    to 90 currency units, where its sender may have meant 1."""
    tenant, keyword = world.tenant, world.keyword
    body = (
        b'{"changes": [{"keyword_id": %d, "bid_micros": 1000000, "bid_micros": 90000000}]}'
        % keyword["id"]
    )
    response = tenant.client.post(
        "/api/v1/bids/bulk",
        content=body,
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    error = assert_error(response, 400, "malformed_json")
    assert error["message"] == "request body is not valid JSON: duplicate key 'bid_micros'"
    assert tenant.get(f"keywords/{keyword['id']}")["bid_micros"] == keyword["bid_micros"]
    patch = tenant.client.patch(
        f"/api/v1/keywords/{keyword['id']}",
        content=b'{"status": "paused", "status": "active"}',
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert "duplicate key 'status'" in assert_error(patch, 400, "malformed_json")["message"]


def test_every_api_route_reads_json_strictly() -> None:
    """A router added without ``route_class=StrictJsonRoute`` would take duplicate keys."""
    routes = [
        route for module in (*PERFORMANCE_ROUTERS, *ROUTERS) for route in module.router.routes
    ]
    assert len(routes) >= 40
    assert all(isinstance(route, StrictJsonRoute) for route in routes), [
        route.path for route in routes if not isinstance(route, StrictJsonRoute)
    ]


def test_validation_errors_name_the_field(world: World) -> None:
    tenant = world.tenant
    body = {"platform_id": world.platform["id"], "name": "X", "daily_budget_micros": "5000000"}
    error = assert_error(
        tenant.client.post("/api/v1/campaigns", json=body, headers=tenant.headers),
        422,
        "validation_error",
    )
    assert error["details"][0]["field"] == "daily_budget_micros"
    assert error["details"][0]["location"] == "body"
    assert "daily_budget_micros" in error["message"]


def test_unknown_fields_are_refused(world: World) -> None:
    tenant = world.tenant
    body = {"name": "Renamed", "colour": "blue"}
    response = tenant.client.patch(
        f"/api/v1/campaigns/{world.campaign['id']}", json=body, headers=tenant.headers
    )
    error = assert_error(response, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["colour"]
    assert tenant.get(f"campaigns/{world.campaign['id']}")["name"] == "Shoes"


def test_unknown_query_parameters_are_refused(tenant: Tenant) -> None:
    response = tenant.client.get("/api/v1/campaigns?colour=blue", headers=tenant.headers)
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "colour"


def test_every_route_refuses_an_undeclared_query_parameter(tenant: Tenant) -> None:
    """Routes without a filter model took any parameter: ``?parital=true`` on an upload was
    ignored without a word (then told to "send partial=true")."""
    client, headers = tenant.client, tenant.headers
    for method, path in [
        ("post", "/api/v1/metrics/hourly?parital=true"),
        ("post", "/api/v1/conversions?parital=true"),
        ("post", "/api/v1/bids/bulk?parital=true"),
        ("get", "/api/v1/auth/me?parital=true"),
    ]:
        response = client.request(method, path, headers=headers, json={"rows": []})
        error = assert_error(response, 422, "validation_error")
        assert [d["field"] for d in error["details"]] == ["parital"], (path, error)
    token = client.post("/api/v1/auth/token?foo=1", data={"username": "x", "password": "y"})
    assert [d["field"] for d in assert_error(token, 422)["details"]] == ["foo"]


def test_a_single_valued_query_parameter_given_twice_is_refused(tenant: Tenant) -> None:
    """``?status=enabled&status=paused`` kept the last and listed the paused campaigns only;
    a parameter that takes a list (a report's ``campaign_id``) still takes repeats."""
    client, headers = tenant.client, tenant.headers
    for query in ("status=enabled&status=paused", "limit=1&limit=2"):
        response = client.get(f"/api/v1/campaigns?{query}", headers=headers)
        error = assert_error(response, 422, "validation_error")
        field = query.partition("=")[0]
        assert [d["field"] for d in error["details"]] == [field], error
        assert "give it once" in error["message"]
    report = "start=2024-05-01&end=2024-05-02&campaign_id=1&campaign_id=2"
    assert client.get(f"/api/v1/reports/performance?{report}", headers=headers).status_code == 200


def test_out_of_range_numbers_are_422_and_write_nothing(world: World) -> None:
    tenant = world.tenant
    cases = [
        (
            "campaigns",
            {"platform_id": world.platform["id"], "name": "N", "daily_budget_micros": -1},
        ),
        ("campaigns", {"platform_id": 2**40, "name": "N", "daily_budget_micros": 5_000_000}),
        (
            "keywords",
            {
                "ad_group_id": world.ad_group["id"],
                "text": "k",
                "match_type": "exact",
                "bid_micros": 10**19,
            },
        ),
    ]
    for path, body in cases:
        response = tenant.client.post(f"/api/v1/{path}", json=body, headers=tenant.headers)
        assert_error(response, 422, "validation_error")
    for query in ("limit=0", "limit=501", "offset=-1"):
        response = tenant.client.get(f"/api/v1/campaigns?{query}", headers=tenant.headers)
        assert_error(response, 422, "validation_error")
    for bad_id in ("0", str(2**31), "abc"):
        response = tenant.client.get(f"/api/v1/campaigns/{bad_id}", headers=tenant.headers)
        assert_error(response, 422, "validation_error")
    assert tenant.get("campaigns")["total"] == 1
    assert tenant.get("keywords")["total"] == 1


def test_control_characters_and_padding_are_refused(world: World) -> None:
    tenant = world.tenant
    for name in ("a\x00b", " padded", "line\nbreak"):
        body = {"kind": "sim", "name": name}
        response = tenant.client.post("/api/v1/platforms", json=body, headers=tenant.headers)
        assert_error(response, 422, "validation_error")
    assert tenant.get("platforms")["total"] == 1


def test_an_unexpected_exception_is_a_500_without_a_trace(app: FastAPI, client: TestClient) -> None:
    @app.get("/api/v1/explode")
    def explode() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    response = client.get("/api/v1/explode")
    error = assert_error(response, 500, "internal_error")
    assert error["message"] == "internal server error"
    assert "secret" not in response.text and "Traceback" not in response.text


def test_a_write_that_lost_a_race_on_sqlite_is_a_busy_503_not_an_outage(app: FastAPI) -> None:
    """SQLite refuses the later of two writes at once ("database is locked"): that is a
    retry, not a database that is down."""

    def locked() -> None:
        raise OperationalError("UPDATE users", {}, sqlite3.OperationalError("database is locked"))

    def down() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    app.add_api_route("/test-locked", locked)
    app.add_api_route("/test-down", down)
    client = TestClient(app, raise_server_exceptions=False)
    busy = assert_error(client.get("/test-locked"), 503, "database_busy")
    assert busy["message"] == "the database was busy with another change; nothing was written"
    assert_error(client.get("/test-down"), 503, "database_unavailable")
