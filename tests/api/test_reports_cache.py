"""The Redis report cache forgets an account's reports when a change they show commits:
a campaign, ad group or keyword created, renamed, paused or removed (not only an
ingestion), through the same generation bump as ingestion.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import redis
from api_helpers import Tenant, api_settings
from ingest_helpers import METRICS, REPORT, Shop, build_shop, post_rows
from report_fixture import fixture_rows

from adbot.config import Settings

PARAMS = {"start": "2024-01-07", "end": "2024-01-09", "level": "keyword", "grain": "day"}
API = "/api/v1"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return api_settings(redis={"url": redis_url})


@pytest.fixture
def shop(settings: Settings, redis_client: redis.Redis, tenant: Tenant) -> Shop:
    made = build_shop(tenant)
    response = post_rows(tenant, METRICS, fixture_rows(made))
    assert response.status_code == 200, response.text
    return made


def names(shop: Shop, column: str) -> set[str]:
    client, headers = shop.tenant.client, shop.tenant.headers
    response = client.get(REPORT, params=PARAMS, headers=headers)
    assert response.status_code == 200, response.text
    from_json = {row[column] for row in response.json()["rows"]}
    as_csv = client.get(REPORT, params={**PARAMS, "format": "csv"}, headers=headers)
    assert as_csv.status_code == 200, as_csv.text
    from_csv = {row[column] for row in csv.DictReader(io.StringIO(as_csv.text))}
    assert from_csv == from_json
    return from_json


def generation(redis_client: redis.Redis, shop: Shop) -> int:
    return int(redis_client.get(f"adbot:report-generation:{shop.tenant.account_id}") or 0)


def send(shop: Shop, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = shop.tenant.client.request(
        method, f"{API}/{path}", json=body, headers=shop.tenant.headers
    )
    assert response.status_code in (200, 201), response.text
    return response


def test_renames_show_in_the_next_report(shop: Shop, redis_client: redis.Redis) -> None:
    assert names(shop, "campaign") == {"Shoes", "Hats"}
    assert names(shop, "ad_group") == {"Running", "Trail", "Wool"}
    account = shop.tenant.account_id
    assert redis_client.keys(f"adbot:report:{account}:*")  # the reports are cached

    send(shop, "PATCH", f"campaigns/{shop.campaigns['Shoes']}", {"name": "Shoes RENAMED"})
    assert names(shop, "campaign") == {"Shoes RENAMED", "Hats"}

    send(shop, "PATCH", f"ad-groups/{shop.ad_groups['Running']}", {"name": "Running 2"})
    assert names(shop, "ad_group") == {"Running 2", "Trail", "Wool"}


def test_status_creation_and_removal_invalidate(shop: Shop, redis_client: redis.Redis) -> None:
    names(shop, "campaign")
    before = generation(redis_client, shop)
    send(shop, "PATCH", f"keywords/{shop.keywords['wool hat']}", {"status": "paused"})
    send(shop, "PATCH", f"ad-groups/{shop.ad_groups['Wool']}", {"status": "paused"})
    send(shop, "PATCH", f"campaigns/{shop.campaigns['Hats']}", {"status": "paused"})
    ad_group = shop.tenant.post("ad-groups", {"campaign_id": shop.campaigns["Hats"], "name": "X"})
    keyword = shop.tenant.post(
        "keywords", {"ad_group_id": ad_group["id"], "text": "new hat", "match_type": "exact"}
    )
    send(shop, "DELETE", f"keywords/{keyword['id']}")
    send(shop, "DELETE", f"ad-groups/{ad_group['id']}")
    send(shop, "DELETE", f"campaigns/{shop.campaigns['Hats']}")
    assert generation(redis_client, shop) == before + 8


def test_unreported_or_failed_changes_keep_the_cache(shop: Shop, redis_client: redis.Redis) -> None:
    names(shop, "campaign")
    before = generation(redis_client, shop)
    campaign = shop.campaigns["Shoes"]
    send(shop, "PATCH", f"campaigns/{campaign}", {"daily_budget_micros": 60_000_000})
    refused = shop.tenant.client.patch(
        f"{API}/campaigns/{campaign}",
        json={"name": "Never", "end_date": "2020-01-01", "start_date": "2021-01-01"},
        headers=shop.tenant.headers,
    )
    assert refused.status_code == 422, refused.text
    assert generation(redis_client, shop) == before
    assert names(shop, "campaign") == {"Shoes", "Hats"}
