"""Schemathesis over the performance-data, report and probe operations of ``/openapi.json``
(the management operations have ``test_api_schemathesis.py``), signed in as an admin of an
account that has metrics: no 5xx, and every response as documented.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from api_helpers import Tenant, api_settings
from fastapi import FastAPI
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from ingest_helpers import METRICS, build_shop, post_rows
from report_fixture import fixture_rows
from schemathesis.specs.openapi.checks import negative_data_rejection

from adbot.config import Settings
from examples_helpers import examples

EXAMPLES_PER_OPERATION = examples(25)


@pytest.fixture
def settings() -> Settings:
    # Hundreds of requests in seconds from one user: far over the default rate limit.
    return api_settings(api={"rate_limit_per_minute": 1_000_000})


@pytest.fixture
def api_schema(app: FastAPI, tenant: Tenant) -> Any:
    shop = build_shop(tenant)
    assert post_rows(tenant, METRICS, fixture_rows(shop)).status_code == 200
    token = tenant.headers["Authorization"].removeprefix("Bearer ")
    ids = {"keyword_id": shop.keywords["running shoes"], "campaign_id": shop.campaigns["Shoes"]}
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"OAuth2PasswordBearer": {"bearer": token}}},
            "generation": {"max-examples": EXAMPLES_PER_OPERATION},
            "dictionaries": {name: {"values": [value]} for name, value in ids.items()},
            "parameters": {
                f"{location}.{name}": {"dictionary": name, "probability": 0.5}
                for name in ids
                for location in ("query", "body")
            },
            "checks": {
                "ignored_auth": {"enabled": False},
                # Rows that break a business rule (conversions above clicks, an unknown
                # keyword) are valid JSON Schema but rejected with 422, by design; a CSV
                # body is "a string" to JSON Schema, so text that is no CSV answers 400.
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "413", "422"]
                },
            },
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


lazy = schemathesis.pytest.from_fixture("api_schema")


@lazy.include(tag=["performance data", "reports", "operations"]).parametrize()
@hypothesis_settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_performance_operations(case: Any) -> None:
    # With partial=true a batch with some bad rows is *meant* to answer 200 (writing the
    # good rows and listing the bad): not a schema-violating request wrongly accepted.
    partial = str((case.query or {}).get("partial", "")).lower() == "true"
    case.call_and_validate(excluded_checks=[negative_data_rejection] if partial else [])
