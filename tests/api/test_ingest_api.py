"""``POST /metrics/hourly`` and ``POST /conversions`` on PostgreSQL, through the real app:
idempotent upserts, per-row rejection reports, partial acceptance, tenant isolation.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import Tenant, TenantFactory, assert_error
from ingest_helpers import (
    CONVERSIONS,
    METRICS,
    Shop,
    build_shop,
    conversion_rows,
    metric,
    metric_rows,
    metric_values,
    post_csv,
    post_rows,
    utc,
)
from sqlalchemy.orm import Session

from adbot.db.models import ConversionSource, Role

H0, H1, H2 = utc(2024, 5, 1, 10), utc(2024, 5, 1, 11), utc(2024, 5, 1, 12)


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return build_shop(tenant)


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _counts(body: dict[str, Any]) -> tuple[int, int, int, int]:
    return body["inserted"], body["updated"], body["unchanged"], body["rejected_rows"]


def test_same_batch_twice_then_a_correction(shop: Shop, db_session: Session) -> None:
    running, trail = shop.keywords["running shoes"], shop.keywords["trail shoes"]
    batch = [
        metric(running, H0, impressions=120, clicks=12, cost_micros=6_000_000),
        metric(running, H1, impressions=80, clicks=4, conversions=0.5),
        metric(trail, H0, impressions=30, clicks=3, conversions=0.0),
    ]
    first = _ok(post_rows(shop.tenant, METRICS, batch))
    assert _counts(first) == (3, 0, 0, 0) and first["written"] is True
    stored = metric_rows(db_session, shop.tenant.account_id)

    again = _ok(post_rows(shop.tenant, METRICS, batch))
    assert _counts(again) == (0, 0, 3, 0)
    assert metric_rows(db_session, shop.tenant.account_id) == stored  # updated_at too

    corrected = [*batch[:1], metric(running, H1, impressions=80, clicks=5, conversions=0.5)]
    corrected += [batch[2], metric(trail, H1, impressions=7, clicks=0, conversions=0.0)]
    third = _ok(post_rows(shop.tenant, METRICS, corrected))
    assert _counts(third) == (1, 1, 2, 0)
    after = metric_rows(db_session, shop.tenant.account_id)
    account, shoes = shop.tenant.account_id, shop.campaigns["Shoes"]
    running_group, trail_group = shop.ad_groups["Running"], shop.ad_groups["Trail"]
    assert [row[:10] for row in after] == [
        (account, shoes, running_group, running, H0, 120, 12, 6_000_000, 1.0, 20_000_000),
        (account, shoes, running_group, running, H1, 80, 5, 5_000_000, 0.5, 20_000_000),
        (account, shoes, trail_group, trail, H0, 30, 3, 5_000_000, 0.0, 20_000_000),
        (account, shoes, trail_group, trail, H1, 7, 0, 5_000_000, 0.0, 20_000_000),
    ]
    # Rows that did not change are untouched, updated_at included.
    assert after[0] == stored[0] and after[2] == stored[2]


def test_csv_with_keyword_texts_and_currency_units(shop: Shop, db_session: Session) -> None:
    text = (
        "keyword,ad_group,hour,impressions,clicks,cost,conversions,conversion_value,note\n"
        "Running  Shoes,Running,2024-05-01T10:00:00Z,100,10,2.5,1,19.99,first\n"
        "trail shoes,,2024-05-01T12:00:00+02:00,50,5,0.000001,0,0,second\n"
    )
    body = _ok(post_csv(shop.tenant, METRICS, text))
    assert _counts(body) == (2, 0, 0, 0)
    assert body["ignored_columns"] == ["note"]
    assert metric_values(db_session, shop.tenant.account_id) == [
        (shop.keywords["running shoes"], H0, 100, 10, 2_500_000, 1.0, 19_990_000),
        (shop.keywords["trail shoes"], H0, 50, 5, 1, 0.0, 0),
    ]
    assert _counts(_ok(post_csv(shop.tenant, METRICS, text))) == (0, 0, 2, 0)


def _bad_batch(shop: Shop, foreign_keyword: int) -> list[dict[str, Any]]:
    running, fast = shop.keywords["running shoes"], shop.keywords["fast shoes"]
    return [
        metric(running, H0),  # 1: fine
        metric(999_999, H0),  # 2: no such keyword
        metric(foreign_keyword, H0),  # 3: another account's keyword
        metric(fast, H0, cost_micros=-1, impressions=-5),  # 4: negatives
        metric(fast, H1, clicks=11, impressions=10),  # 5: clicks > impressions
        metric(fast, H2, clicks=2, conversions=3),  # 6: conversions > clicks
        metric(running, utc(2024, 5, 1, 10, 30)),  # 7: not on the hour
        metric(running, H1),  # 8: duplicate of 9
        metric(running, H1),  # 9: duplicate of 8
        {**metric(running, H2), "hour": "2024-05-01T12:00:00"},  # 10: no offset
        {**metric(shop.keywords["trail shoes"], H0), "clicks": "ten"},  # 11: not a number
        {k: v for k, v in metric(shop.keywords["wool hat"], H0).items() if k != "cost_micros"},
    ]


EXPECTED_REJECTIONS = [
    (2, "keyword_id", "unknown keyword"),
    (3, "keyword_id", "unknown keyword"),
    (4, "impressions", "must not be negative"),
    (4, "cost_micros", "must not be negative"),
    (5, "clicks", "clicks exceed impressions"),
    (6, "conversions", "conversions exceed clicks"),
    (7, "hour", "not on the hour (minutes and seconds must be 0)"),
    (8, "hour", "duplicate keyword and hour: same as row 9"),
    (9, "hour", "duplicate keyword and hour: same as row 8"),
    (10, "hour", "'2024-05-01T12:00:00' has no UTC offset (add Z or +00:00)"),
    (11, "clicks", "expected a number, got a string"),
    (12, "cost_micros", "missing value"),
]


def _listed(rejected: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return [(item["row"], item["field"], item["reason"]) for item in rejected]


def test_rejected_rows_are_listed_and_nothing_is_written(
    shop: Shop, make_tenant: TenantFactory, db_session: Session
) -> None:
    other = build_shop(make_tenant())
    response = post_rows(shop.tenant, METRICS, _bad_batch(shop, other.keywords["running shoes"]))
    error = assert_error(response, 422, "rows_rejected")
    assert error["details"]["received"] == 12 and error["details"]["rejected_rows"] == 11
    assert error["details"]["written"] is False
    assert sorted(_listed(error["details"]["rejected"])) == sorted(EXPECTED_REJECTIONS)
    assert metric_rows(db_session, shop.tenant.account_id) == []
    assert metric_rows(db_session, other.tenant.account_id) == []


def test_partial_writes_the_valid_rows_only(
    shop: Shop, make_tenant: TenantFactory, db_session: Session
) -> None:
    other = build_shop(make_tenant())
    batch = _bad_batch(shop, other.keywords["running shoes"])
    body = _ok(post_rows(shop.tenant, METRICS, batch, partial=True))
    assert _counts(body) == (1, 0, 0, 11) and body["accepted"] == 1
    assert sorted(_listed(body["rejected"])) == sorted(EXPECTED_REJECTIONS)
    assert metric_values(db_session, shop.tenant.account_id) == [
        (shop.keywords["running shoes"], H0, 100, 10, 5_000_000, 1.0, 20_000_000)
    ]


def test_csv_rejections_name_rows_and_fields(shop: Shop) -> None:
    text = (
        "keyword,hour,impressions,clicks,cost\n"
        "running shoes,2024-05-01T10:00:00Z,10,1,1.5\n"
        "no such keyword,2024-05-01T10:00:00Z,10,1,1.5\n"
        "running shoes,not a time,10,1,x\n"
        "running shoes,2024-05-01T11:00:00Z,1.5,1,1\n"
    )
    error = assert_error(post_csv(shop.tenant, METRICS, text), 422, "rows_rejected")
    assert _listed(error["details"]["rejected"]) == [
        (2, "keyword", "unknown keyword"),
        (3, "hour", "'not a time' is not an ISO 8601 timestamp"),
        (3, "cost", "'x' is not a number"),
        (4, "impressions", "must be a whole number"),
    ]


def test_ambiguous_keyword_text_is_rejected(shop: Shop) -> None:
    shop.tenant.post(
        "keywords",
        {"ad_group_id": shop.ad_groups["Trail"], "text": "running shoes", "match_type": "phrase"},
    )
    rows = [{**metric(0, H0), "keyword_id": None, "keyword": "running shoes"}]
    error = assert_error(post_rows(shop.tenant, METRICS, rows), 422, "rows_rejected")
    assert _listed(error["details"]["rejected"]) == [
        (1, "keyword", "ambiguous: several keywords match; add match_type, ad_group or campaign")
    ]
    rows[0]["match_type"] = "phrase"
    assert _counts(_ok(post_rows(shop.tenant, METRICS, rows))) == (1, 0, 0, 0)


def test_tenants_only_reach_their_own_keywords(
    shop: Shop, make_tenant: TenantFactory, db_session: Session
) -> None:
    other = build_shop(make_tenant())
    # Same keyword text in both accounts: each resolves to its own keyword.
    rows = [{"keyword": "running shoes", **metric(0, H0)} | {"keyword_id": None}]
    _ok(post_rows(shop.tenant, METRICS, rows))
    _ok(post_rows(other.tenant, METRICS, [{**rows[0], "impressions": 999}]))
    assert [r[0] for r in metric_values(db_session, shop.tenant.account_id)] == [
        shop.keywords["running shoes"]
    ]
    assert metric_values(db_session, other.tenant.account_id)[0][:3] == (
        other.keywords["running shoes"],
        H0,
        999,
    )
    # A keyword id of another account is unknown, and nothing of theirs changes.
    foreign = [metric(other.keywords["running shoes"], H0, impressions=500)]
    error = assert_error(post_rows(shop.tenant, METRICS, foreign), 422, "rows_rejected")
    assert _listed(error["details"]["rejected"]) == [(1, "keyword_id", "unknown keyword")]
    assert metric_values(db_session, other.tenant.account_id)[0][2] == 999


def test_viewers_cannot_ingest(shop: Shop) -> None:
    headers = shop.tenant.as_role(Role.VIEWER)
    response = shop.tenant.client.post(
        METRICS, json={"rows": [metric(shop.keywords["running shoes"], H0)]}, headers=headers
    )
    assert_error(response, 403, "forbidden")


def test_malformed_batches(shop: Shop) -> None:
    client, headers = shop.tenant.client, shop.tenant.headers
    plain = {**headers, "Content-Type": "text/plain"}
    assert_error(client.post(METRICS, content=b"x", headers=plain), 415, "unsupported_media_type")
    as_json = {**headers, "Content-Type": "application/json"}
    assert_error(client.post(METRICS, content=b"{", headers=as_json), 400, "malformed_body")
    assert_error(client.post(METRICS, json=[1, 2], headers=headers), 422, "invalid_input")
    assert_error(client.post(METRICS, json={"rows": [1]}, headers=headers), 422, "invalid_input")
    no_hour = "keyword_id,impressions,clicks,cost_micros\n1,1,1,1\n"
    error = assert_error(post_csv(shop.tenant, METRICS, no_hour), 422, "invalid_input")
    assert error["message"] == "the batch has no 'hour' column"
    empty = _ok(post_rows(shop.tenant, METRICS, []))
    assert _counts(empty) == (0, 0, 0, 0)


def test_more_than_100000_rows_is_refused(shop: Shop) -> None:
    text = "keyword_id,hour,impressions,clicks,cost_micros\n" + "1,x,1,1,1\n" * 100_001
    error = assert_error(post_csv(shop.tenant, METRICS, text), 413, "payload_too_large")
    assert error["details"] == {"rows": 100_001, "max_rows": 100_000}


def _conversion(external_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "conversion_action": "purchase",
        "external_id": external_id,
        "occurred_at": "2024-05-01T10:15:00Z",
        "value_micros": 25_000_000,
    }
    row.update(values)
    return row


def test_conversions_are_idempotent_and_corrected(shop: Shop, db_session: Session) -> None:
    running, shoes = shop.keywords["running shoes"], shop.campaigns["Shoes"]
    hats = shop.campaigns["Hats"]
    batch = [
        _conversion("o-1", keyword_id=running),
        _conversion("o-2", campaign="Hats", quantity=2.0, source="platform"),
    ]
    assert _counts(_ok(post_rows(shop.tenant, CONVERSIONS, batch))) == (2, 0, 0, 0)
    assert _counts(_ok(post_rows(shop.tenant, CONVERSIONS, batch))) == (0, 0, 2, 0)
    batch[1]["value_micros"] = 30_000_000
    assert _counts(_ok(post_rows(shop.tenant, CONVERSIONS, batch))) == (0, 1, 1, 0)
    at = utc(2024, 5, 1, 10, 15)
    assert conversion_rows(db_session, shop.tenant.account_id) == [
        ("purchase", "o-1", shoes, running, at, 1.0, 25_000_000, ConversionSource.API),
        ("purchase", "o-2", hats, None, at, 2.0, 30_000_000, ConversionSource.PLATFORM),
    ]


def test_conversion_rejections(shop: Shop, db_session: Session) -> None:
    batch = [
        _conversion("o-1", campaign_id=shop.campaigns["Shoes"]),
        _conversion("o-1", campaign_id=shop.campaigns["Shoes"]),  # duplicate key
        _conversion("o-3"),  # neither keyword nor campaign
        _conversion("o-4", keyword="wool hat", campaign="Shoes"),  # keyword not in campaign
        _conversion("o-5", campaign="Shoes", quantity=-1, source="fax"),
        {k: v for k, v in _conversion("o-6", campaign="Shoes").items() if k != "external_id"},
    ]
    error = assert_error(post_rows(shop.tenant, CONVERSIONS, batch), 422, "rows_rejected")
    assert _listed(error["details"]["rejected"]) == [
        (1, "external_id", "duplicate conversion_action and external_id: same as row 2"),
        (2, "external_id", "duplicate conversion_action and external_id: same as row 1"),
        (3, "campaign_id", "no keyword or campaign given"),
        (4, "keyword", "unknown keyword (or not matching the given campaign)"),
        (5, "quantity", "must not be negative"),
        (5, "source", "must be one of api, import, platform, sim"),
        (6, "external_id", "missing value"),
    ]
    assert conversion_rows(db_session, shop.tenant.account_id) == []


def test_an_ambiguous_campaign_name_asks_for_its_id(shop: Shop) -> None:
    """Campaign names are not unique: the keyword's advice ("add ... campaign") made no sense
    for a campaign that is itself ambiguous."""
    platform = shop.tenant.get("platforms")["items"][0]["id"]
    body = {"platform_id": platform, "name": "Hats", "daily_budget_micros": 1_000_000}
    shop.tenant.post("campaigns", body)
    error = assert_error(
        post_rows(shop.tenant, CONVERSIONS, [_conversion("o-1", campaign="Hats")]), 422
    )
    assert _listed(error["details"]["rejected"]) == [
        (1, "campaign", "ambiguous: several campaigns match; give campaign_id")
    ]
