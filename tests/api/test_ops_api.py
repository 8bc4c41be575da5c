"""Operations: probes, Prometheus metrics, request ids and JSON logs, and rate limits in
Redis, including serving on with Redis unreachable (the app pointed at a closed port).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from api_helpers import Tenant, TenantFactory, api_settings, assert_error
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ingest_helpers import METRICS, REPORT, build_shop, metric, post_rows, utc
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from adbot.api.app import create_app
from adbot.api.deps import get_session
from adbot.config import Settings

KEYWORDS = "/api/v1/keywords"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _log_lines(captured: str) -> list[dict[str, Any]]:
    lines = []
    for line in captured.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def _fresh_window() -> None:
    """Start on a new one-minute rate window when the current one is nearly over, so a
    test's requests all fall into one window."""
    left = 60 - time.time() % 60
    if left < 15:
        time.sleep(left + 0.05)


# --- probes, metrics, request ids, logs ---------------------------------------------------


def test_probes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "disabled"}}


def test_readyz_answers_503_when_the_database_is_down() -> None:
    dead = f"postgresql+psycopg://nobody@127.0.0.1:{_free_port()}/none"
    app = create_app(api_settings(db={"url": dead}))
    with TestClient(app) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "redis": "disabled"},
    }


def test_request_ids_are_echoed_or_made(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "trace-42.a:b"})
    made = client.get("/healthz")
    unsafe = client.get("/healthz", headers={"X-Request-ID": "no spaces or ; allowed"})
    assert given.headers["x-request-id"] == "trace-42.a:b"
    for response in (made, unsafe):
        assert len(response.headers["x-request-id"]) == 32
        int(response.headers["x-request-id"], 16)
    logged = [line for line in _log_lines(capsys.readouterr().err) if line["event"] == "request"]
    by_id = {line["request_id"]: line for line in logged}
    line = by_id["trace-42.a:b"]
    assert (line["method"], line["route"], line["path"], line["status"]) == (
        "GET",
        "/healthz",
        "/healthz",
        200,
    )
    assert line["level"] == "info" and line["logger"] == "adbot.api.access"
    assert line["duration_ms"] >= 0 and line["timestamp"].endswith("Z")
    assert made.headers["x-request-id"] in by_id and unsafe.headers["x-request-id"] in by_id


def test_prometheus_metrics(tenant: Tenant, client: TestClient) -> None:
    shop = build_shop(tenant)
    ok = {"method": "GET", "route": "/healthz", "status": "200"}
    missing = {"method": "GET", "route": "/api/v1/keywords/{keyword_id}", "status": "404"}
    before = {
        "health": _sample("adbot_http_requests_total", **ok),
        "missing": _sample("adbot_http_requests_total", **missing),
        "unmatched": _sample(
            "adbot_http_requests_total", method="GET", route="unmatched", status="404"
        ),
        "accepted": _sample("adbot_ingest_rows_accepted_total", kind="metrics"),
        "rejected": _sample("adbot_ingest_rows_rejected_total", kind="metrics"),
        "latency": _sample(
            "adbot_http_request_duration_seconds_count", method="GET", route="/healthz"
        ),
    }
    client.get("/healthz")
    client.get(f"{KEYWORDS}/999999", headers=tenant.headers)
    client.get("/no/such/path")
    rows = [metric(shop.keywords["running shoes"], utc(2024, 5, 1, h)) for h in range(3)]
    rows.append(metric(999_999, utc(2024, 5, 1, 0)))
    assert post_rows(tenant, METRICS, rows, partial=True).status_code == 200
    assert post_rows(tenant, METRICS, rows).status_code == 422  # one more rejected row

    assert _sample("adbot_http_requests_total", **ok) == before["health"] + 1
    assert _sample("adbot_http_requests_total", **missing) == before["missing"] + 1
    unmatched = _sample("adbot_http_requests_total", method="GET", route="unmatched", status="404")
    assert unmatched == before["unmatched"] + 1
    assert _sample("adbot_ingest_rows_accepted_total", kind="metrics") == before["accepted"] + 3
    assert _sample("adbot_ingest_rows_rejected_total", kind="metrics") == before["rejected"] + 2
    latency = _sample("adbot_http_request_duration_seconds_count", method="GET", route="/healthz")
    assert latency == before["latency"] + 1

    exposed = client.get("/metrics")
    assert exposed.status_code == 200
    assert exposed.headers["content-type"].startswith("text/plain")
    text = exposed.text
    assert 'adbot_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert (
        'adbot_http_request_duration_seconds_bucket{le="0.05",method="GET",route="/healthz"}'
        in text
    )
    assert 'adbot_ingest_rows_rejected_total{kind="metrics"}' in text
    assert 'route="/api/v1/keywords/999999"' not in text  # templates, never raw paths


# --- rate limits with Redis ----------------------------------------------------------------


class TestRedisLimits:
    @pytest.fixture
    def settings(self, redis_url: str, redis_client: redis.Redis) -> Settings:
        # ``redis_client`` empties this worker's Redis database first: counts left in the
        # current window by earlier tests (their sign-ins, say) must not eat into this
        # limit of 5 before the tenant has even signed in.
        return api_settings(redis={"url": redis_url}, api={"rate_limit_per_minute": 5})

    def test_429_after_the_limit(
        self,
        tenant: Tenant,
        make_tenant: TenantFactory,
        redis_client: redis.Redis,
        client: TestClient,
    ) -> None:
        _fresh_window()
        remaining = []
        for _ in range(5):
            response = client.get(KEYWORDS, headers=tenant.headers)
            assert response.status_code == 200, response.text
            remaining.append(response.headers["x-ratelimit-remaining"])
        assert remaining == ["4", "3", "2", "1", "0"]
        refused = client.get(KEYWORDS, headers=tenant.headers)
        error = assert_error(refused, 429, "rate_limited")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert error["details"] == {"limit": 5, "retry_after": int(refused.headers["retry-after"])}
        keys = redis_client.keys(f"adbot:ratelimit:user:{tenant.admin_id}:*")
        assert len(keys) == 1 and redis_client.get(keys[0]) == "6"
        assert 0 < redis_client.pttl(keys[0]) <= 60_000
        # Other callers and the probes are not affected.
        assert client.get(KEYWORDS, headers=make_tenant().headers).status_code == 200
        assert all(client.get("/healthz").status_code == 200 for _ in range(8))

    def test_the_count_is_shared_by_every_process(
        self, tenant: Tenant, settings: Settings, db_session: Session
    ) -> None:
        _fresh_window()
        other: FastAPI = create_app(settings)  # a second API process on the same Redis
        other.dependency_overrides[get_session] = lambda: db_session
        with TestClient(other) as second:
            statuses = [
                (tenant.client if n % 2 else second).get(KEYWORDS, headers=tenant.headers)
                for n in range(6)
            ]
        assert [r.status_code for r in statuses] == [200] * 5 + [429]

    def test_readyz_with_redis(self, client: TestClient) -> None:
        assert client.get("/readyz").json()["checks"] == {"database": "ok", "redis": "ok"}


# --- Redis unreachable ----------------------------------------------------------------------


class TestRedisDown:
    @pytest.fixture(scope="class")
    def closed_port(self) -> Iterator[int]:
        yield _free_port()

    @pytest.fixture
    def settings(self, closed_port: int) -> Settings:
        url = f"redis://127.0.0.1:{closed_port}/0"
        return api_settings(redis={"url": url}, api={"rate_limit_per_minute": 4})

    def test_serves_on_limits_locally_and_warns_once(
        self, capsys: pytest.CaptureFixture[str], tenant: Tenant, client: TestClient
    ) -> None:
        # capsys comes first: it also holds the set-up's output, when the first request
        # (signing in) found Redis down.
        _fresh_window()
        statuses = [client.get(KEYWORDS, headers=tenant.headers).status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 200, 429]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "redis": "degraded"},
        }
        logged = _log_lines(capsys.readouterr().err)
        warnings = [line for line in logged if line["level"] == "warning"]
        assert len(warnings) == 1, warnings
        assert warnings[0]["event"].startswith("redis unavailable")
        assert warnings[0]["logger"] == "adbot.ratelimit" and "request_id" in warnings[0]

    def test_reports_and_ingestion_work_without_the_cache(
        self, tenant: Tenant, closed_port: int, db_session: Session
    ) -> None:
        url = f"redis://127.0.0.1:{closed_port}/0"
        app = create_app(api_settings(redis={"url": url}, api={"rate_limit_per_minute": 1000}))
        app.dependency_overrides[get_session] = lambda: db_session
        with TestClient(app) as client:
            local = Tenant(
                client, tenant.account_id, tenant.admin_id, tenant.admin_email, tenant.headers
            )
            shop = build_shop(local)
            row = metric(shop.keywords["wool hat"], utc(2024, 5, 1, 3))
            assert post_rows(local, METRICS, [row]).status_code == 200
            params = {"start": "2024-05-01", "end": "2024-05-01"}
            report = client.get(REPORT, params=params, headers=tenant.headers)
        assert report.status_code == 200, report.text
        assert [r["impressions"] for r in report.json()["rows"]] == [100]
