"""Schemathesis over ``/openapi.json`` of the real app, signed in as an account admin.

Every generated request, valid or not, must answer without a 5xx and with a response that
matches the schema: documented status code, content type, headers and body.

The operations run in groups, each in its own rolled-back transaction with a fresh world
(one platform, campaign, ad group, ad and keyword). Path and body ids point at the world's
rows most of the time, so requests reach real rows rather than only answering 404.
Closing the account and signing out everywhere run alone: each ends every later request of
its group with 401.
Run with ``-s -p no:xdist`` to see how many requests ran and what they answered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from api_helpers import World, api_settings
from fastapi import FastAPI

from adbot.config import Settings
from examples_helpers import examples

EXAMPLES_PER_OPERATION = examples(15)
# How often an id parameter takes the id of a real row instead of a generated number.
REAL_ID_PROBABILITY = 0.7
STATUSES: Counter[int] = Counter()


@pytest.fixture
def settings() -> Settings:
    # Thousands of requests a minute: the rate limiter has its own tests.
    return api_settings(api={"rate_limit_per_minute": 1_000_000})


@pytest.fixture
def api_schema(app: FastAPI, world: World) -> Any:
    ids = {
        "platform_id": world.platform["id"],
        "campaign_id": world.campaign["id"],
        "ad_group_id": world.ad_group["id"],
        "ad_id": world.ad["id"],
        "keyword_id": world.keyword["id"],
        "account_id": world.tenant.account_id,
        "user_id": world.tenant.admin_id,
    }
    parameters = {
        f"{location}.{name}": {"dictionary": name, "probability": REAL_ID_PROBABILITY}
        for name in ids
        for location in ("path", "query", "body")
    }
    parameters["body.changes[*].keyword_id"] = {
        "dictionary": "keyword_id",
        "probability": REAL_ID_PROBABILITY,
    }
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {
            "auth": {"openapi": {"OAuth2PasswordBearer": {"bearer": world.tenant.token}}},
            "generation": {"max-examples": EXAMPLES_PER_OPERATION},
            "dictionaries": {name: {"values": [value]} for name, value in ids.items()},
            "parameters": parameters,
            # Business rules JSON Schema cannot express (a future expiry, the configured bid
            # and budget bounds, a target for the chosen bidding strategy, an IANA time
            # zone, keeping one admin) answer 422 to schema-valid data, by design.
            "checks": {
                # Its probes re-send the configured token, so "no credentials" is never
                # really sent; test_api_isolation.py walks every route without credentials.
                "ignored_auth": {"enabled": False},
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "409", "422"]
                },
            },
        }
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@pytest.fixture(scope="module", autouse=True)
def _summary() -> Iterator[None]:
    yield
    if STATUSES:
        by_status = dict(sorted(STATUSES.items()))
        print(f"\nschemathesis: {STATUSES.total()} requests, by status {by_status}")


lazy = schemathesis.pytest.from_fixture("api_schema")
_CLOSE_ACCOUNT = {"method": "DELETE", "path": "/api/v1/accounts/{account_id}"}
_SIGN_OUT = {"method": "POST", "path": "/api/v1/auth/logout"}


def _check(case: Any) -> None:
    response = case.call_and_validate()
    STATUSES[response.status_code] += 1


@(
    lazy.include(tag=["auth", "api keys", "accounts", "users"])
    .exclude(**_CLOSE_ACCOUNT)
    .exclude(**_SIGN_OUT)
    .parametrize()
)
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_people_and_access(case: Any) -> None:
    _check(case)


@lazy.include(tag=["platforms", "campaigns"]).parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_platforms_and_campaigns(case: Any) -> None:
    _check(case)


@lazy.include(tag=["ad groups", "ads"]).parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_ad_groups_and_ads(case: Any) -> None:
    _check(case)


@lazy.include(tag=["keywords", "bids"]).parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_keywords_and_bids(case: Any) -> None:
    _check(case)


@lazy.include(**_CLOSE_ACCOUNT).parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_closing_the_account(case: Any) -> None:
    _check(case)


@lazy.include(**_SIGN_OUT).parametrize()
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_signing_out_everywhere(case: Any) -> None:
    _check(case)
