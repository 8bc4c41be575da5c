"""``GET /reports/performance`` on PostgreSQL: the arithmetic of every grain and level
against hand-worked figures, filters, sorting, paging, CSV, tenancy and the Redis cache.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
import redis
from api_helpers import Tenant, TenantFactory, api_settings, assert_error
from ingest_helpers import (
    METRICS,
    REPORT,
    Shop,
    build_shop,
    metric,
    post_rows,
    utc,
)
from report_fixture import fixture_rows, reference
from sqlalchemy import text
from sqlalchemy.orm import Session

from adbot.config import Settings

RANGE = {"start": "2024-01-07", "end": "2024-01-09"}
LEVELS = ("campaign", "ad_group", "keyword")
GRAINS = ("hour", "day", "week")
ID_COLUMNS = {
    "campaign": ("campaign_id",),
    "ad_group": ("campaign_id", "ad_group_id"),
    "keyword": ("campaign_id", "ad_group_id", "keyword_id"),
}


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    made = build_shop(tenant)
    response = post_rows(tenant, METRICS, fixture_rows(made))
    assert response.status_code == 200, response.text
    return made


def report(tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = tenant.client.get(REPORT, params={**RANGE, **params}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    names = ("impressions", "clicks", "cost_micros", "conversions", "conversion_value_micros")
    return tuple(row[name] for name in (*names, "ctr", "cpc_micros", "cpa_micros", "roas"))


# CTR, CPC, CPA and ROAS of the Shoes campaign on Sunday and on Monday.
SUNDAY_RATIOS = (0.1, pytest.approx(12_000_000 / 35), 4_000_000.0, pytest.approx(40 / 12))
MONDAY_RATIOS = (pytest.approx(23 / 380), pytest.approx(9_000_000 / 23), 3_000_000.0, 5.0)


def test_campaign_by_day_worked_by_hand(shop: Shop) -> None:
    shoes, hats = shop.campaigns["Shoes"], shop.campaigns["Hats"]
    body = report(shop.tenant, level="campaign", grain="day")
    rows = [(r["period"], r["campaign_id"], r["campaign"], *figures(r)) for r in body["rows"]]
    day7, day8, day9 = "2024-01-07T00:00:00Z", "2024-01-08T00:00:00Z", "2024-01-09T00:00:00Z"
    assert rows == [
        # Sunday: running 100/10/4.00/1/10.00 + fast 200/20/6.00/2/30.00 + trail 50/5/2.00.
        (day7, shoes, "Shoes", 350, 35, 12_000_000, 3.0, 40_000_000, *SUNDAY_RATIOS),
        # Hats on Sunday: one all-zero row, so every ratio is undefined.
        (day7, hats, "Hats", 0, 0, 0, 0.0, 0, None, None, None, None),
        # Monday: running 300/15/9.00/3/45.00 + trail 80/8/free clicks.
        (day8, shoes, "Shoes", 380, 23, 9_000_000, 3.0, 45_000_000, *MONDAY_RATIOS),
        (day8, hats, "Hats", 40, 4, 2_000_000, 1.0, 1_000_000, 0.1, 500_000.0, 2_000_000.0, 0.5),
        (day9, shoes, "Shoes", 60, 6, 3_000_000, 0.5, 6_000_000, 0.1, 500_000.0, 6e6, 2.0),
    ]
    assert body["total"] == 5 and body["columns"][:3] == ["period", "campaign_id", "campaign"]


def test_campaign_by_week_and_hour_worked_by_hand(shop: Shop) -> None:
    shoes, hats = shop.campaigns["Shoes"], shop.campaigns["Hats"]
    weeks = report(shop.tenant, level="campaign", grain="week")["rows"]
    assert [(r["period"], r["campaign_id"], *figures(r)[:5]) for r in weeks] == [
        ("2024-01-01T00:00:00Z", shoes, 350, 35, 12_000_000, 3.0, 40_000_000),
        ("2024-01-01T00:00:00Z", hats, 0, 0, 0, 0.0, 0),
        ("2024-01-08T00:00:00Z", shoes, 440, 29, 12_000_000, 3.5, 51_000_000),
        ("2024-01-08T00:00:00Z", hats, 40, 4, 2_000_000, 1.0, 1_000_000),
    ]
    assert weeks[2]["cpa_micros"] == pytest.approx(12_000_000 / 3.5)
    assert weeks[2]["roas"] == pytest.approx(4.25)
    hours = report(shop.tenant, level="campaign", grain="hour")["rows"]
    assert [(r["period"], r["campaign_id"], r["impressions"], r["clicks"]) for r in hours] == [
        ("2024-01-07T22:00:00Z", shoes, 300, 30),
        ("2024-01-07T23:00:00Z", shoes, 50, 5),
        ("2024-01-07T23:00:00Z", hats, 0, 0),
        ("2024-01-08T00:00:00Z", shoes, 300, 15),
        ("2024-01-08T05:00:00Z", shoes, 80, 8),
        ("2024-01-08T05:00:00Z", hats, 40, 4),
        ("2024-01-09T10:00:00Z", shoes, 60, 6),
    ]
    assert hours[4]["cpc_micros"] == 0.0 and hours[4]["roas"] is None  # free clicks


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("grain", GRAINS)
def test_every_grain_and_level_matches_the_reference(shop: Shop, level: str, grain: str) -> None:
    body = report(shop.tenant, level=level, grain=grain)
    got = [{**row, "ids": tuple(row[name] for name in ID_COLUMNS[level])} for row in body["rows"]]
    expected = reference(shop, level, grain)
    assert [(r["period"], r["ids"]) for r in got] == [(r["period"], r["ids"]) for r in expected]
    for row, want in zip(got, expected, strict=True):
        for name, value in want.items():
            assert row[name] == (value if value is None else pytest.approx(value)), name
    assert body["total"] == len(expected)


def test_names_by_level(shop: Shop) -> None:
    rows = report(
        shop.tenant, level="keyword", grain="week", keyword_id=shop.keywords["fast shoes"]
    )
    assert [
        (r["campaign"], r["ad_group"], r["keyword"], r["match_type"]) for r in rows["rows"]
    ] == [
        ("Shoes", "Running", "fast shoes", "exact"),
        ("Shoes", "Running", "fast shoes", "exact"),
    ]
    assert "keyword" not in report(shop.tenant, level="ad_group")["rows"][0]


def test_filters_range_sort_and_pages(shop: Shop) -> None:
    hats = shop.campaigns["Hats"]
    only_hats = report(shop.tenant, campaign_id=hats)["rows"]
    assert {row["campaign_id"] for row in only_hats} == {hats} and len(only_hats) == 2
    monday = report(shop.tenant, start="2024-01-08", end="2024-01-08", grain="week")["rows"]
    assert [(r["period"], r["impressions"]) for r in monday] == [
        ("2024-01-08T00:00:00Z", 380),
        ("2024-01-08T00:00:00Z", 40),
    ]
    by_cost = report(shop.tenant, sort="-cost_micros")["rows"]
    assert [r["cost_micros"] for r in by_cost] == [12_000_000, 9_000_000, 3_000_000, 2e6, 0]
    by_ctr = report(shop.tenant, sort="ctr")["rows"]
    assert [r["ctr"] for r in by_ctr][-1] is None  # undefined ratios sort last
    page = report(shop.tenant, sort="-cost_micros", limit=2, offset=1)
    assert [r["cost_micros"] for r in page["rows"]] == [9_000_000, 3_000_000]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)
    beyond = report(shop.tenant, limit=2, offset=10)
    assert beyond["rows"] == [] and beyond["total"] == 5


def test_bad_parameters(shop: Shop) -> None:
    client, headers = shop.tenant.client, shop.tenant.headers
    backwards = client.get(
        REPORT, params={"start": "2024-01-09", "end": "2024-01-07"}, headers=headers
    )
    assert_error(backwards, 422, "invalid_input")
    unsortable = client.get(REPORT, params={**RANGE, "sort": "keyword_id"}, headers=headers)
    assert_error(unsortable, 422, "invalid_input")
    assert_error(client.get(REPORT, params={**RANGE, "grain": "month"}, headers=headers), 422)
    assert_error(client.get(REPORT, params={"start": "2024-01-07"}, headers=headers), 422)


def test_csv_export_has_the_same_figures(shop: Shop) -> None:
    client, headers = shop.tenant.client, shop.tenant.headers
    params = {**RANGE, "level": "ad_group", "grain": "day"}
    as_json = report(shop.tenant, **params)
    for response in (
        client.get(REPORT, params={**params, "format": "csv"}, headers=headers),
        client.get(REPORT, params=params, headers={**headers, "Accept": "text/csv"}),
    ):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        lines = list(csv.reader(io.StringIO(response.text)))
        assert lines[0] == as_json["columns"]
        assert len(lines) == len(as_json["rows"]) + 1
        for line, row in zip(lines[1:], as_json["rows"], strict=True):
            expected = ["" if row[name] is None else str(row[name]) for name in lines[0]]
            assert line == expected


def test_reports_see_only_their_own_account(shop: Shop, make_tenant: TenantFactory) -> None:
    other = build_shop(make_tenant())
    rows = [metric(other.keywords["wool hat"], utc(2024, 1, 8, 3), impressions=7, clicks=1)]
    assert post_rows(other.tenant, METRICS, rows).status_code == 200
    theirs = report(other.tenant)
    assert [(r["campaign_id"], r["impressions"]) for r in theirs["rows"]] == [
        (other.campaigns["Hats"], 7)
    ]
    assert report(other.tenant, campaign_id=shop.campaigns["Shoes"])["rows"] == []
    mine = report(shop.tenant)
    assert {r["campaign_id"] for r in mine["rows"]} == set(shop.campaigns.values())


BUMP_IMPRESSIONS = text(
    "UPDATE performance_metrics SET impressions = impressions + 1000 WHERE account_id = :a"
)


class TestCache:
    @pytest.fixture
    def settings(self, redis_url: str) -> Settings:
        return api_settings(redis={"url": redis_url})

    def test_cached_until_the_next_ingestion(
        self, shop: Shop, redis_client: redis.Redis, db_session: Session
    ) -> None:
        params = {"level": "campaign", "grain": "week"}
        first = report(shop.tenant, **params)
        account = shop.tenant.account_id
        assert len(redis_client.keys(f"adbot:report:{account}:*")) == 1
        # Behind the API's back (no ingestion, so no invalidation): the cache still answers.
        db_session.execute(BUMP_IMPRESSIONS, {"a": account})
        assert report(shop.tenant, **params) == first
        # An ingestion bumps the account's generation: the next report is fresh.
        row = metric(
            shop.keywords["wool hat"], utc(2024, 1, 9, 1), impressions=1, clicks=0, conversions=0
        )
        assert post_rows(shop.tenant, METRICS, [row]).status_code == 200
        fresh = report(shop.tenant, **params)
        assert fresh["rows"][0]["impressions"] == first["rows"][0]["impressions"] + 3000
        assert redis_client.get(f"adbot:report-generation:{account}") == "1"
