"""``GET /bid-history``: filters by campaign, keyword, cycle, source, outcome and time;
pages; only the caller's account.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from api_helpers import Tenant, TenantFactory, assert_error
from ingest_helpers import Shop, build_shop, iso, utc
from sqlalchemy.orm import Session

from adbot.db.models import BidChange, BidOutcome, BidSource, Role

HISTORY = "/api/v1/bid-history"
CYCLE = uuid.UUID("00000000-0000-4000-8000-000000000001")


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return build_shop(tenant)


def _change(
    shop: Shop, keyword: str, day: int, source: BidSource, outcome: BidOutcome, **extra: Any
) -> BidChange:
    return BidChange(
        account_id=shop.tenant.account_id,
        keyword_id=shop.keywords[keyword],
        cycle_id=extra.pop("cycle_id", uuid.uuid4()),
        old_bid_micros=1_000_000,
        new_bid_micros=1_000_000 + day,
        source=source,
        outcome=outcome,
        created_at=utc(2024, 3, day, 12),
        **extra,
    )


@pytest.fixture
def history(shop: Shop, db_session: Session) -> dict[str, int]:
    """Five changes on days 1-5 of March 2024; named by what sets them apart."""
    changes = {
        "running_manual": _change(shop, "running shoes", 1, BidSource.MANUAL, BidOutcome.APPLIED),
        "running_auto": _change(
            shop, "running shoes", 2, BidSource.AUTOPILOT, BidOutcome.APPLIED, cycle_id=CYCLE
        ),
        "trail_auto": _change(
            shop, "trail shoes", 3, BidSource.AUTOPILOT, BidOutcome.DRY_RUN, cycle_id=CYCLE
        ),
        "wool_rule": _change(shop, "wool hat", 4, BidSource.RULE, BidOutcome.FAILED),
        "wool_manual": _change(shop, "wool hat", 5, BidSource.MANUAL, BidOutcome.APPLIED),
    }
    db_session.add_all(changes.values())
    db_session.flush()
    return {name: change.id for name, change in changes.items()}


def _ids(tenant: Tenant, **params: Any) -> list[int]:
    page = tenant.get("bid-history", **params)
    return [item["id"] for item in page["items"]]


def test_newest_first_with_every_field(shop: Shop, history: dict[str, int]) -> None:
    page = shop.tenant.get("bid-history")
    assert page["total"] == 5
    assert [item["id"] for item in page["items"]] == [
        history[name]
        for name in ("wool_manual", "wool_rule", "trail_auto", "running_auto", "running_manual")
    ]
    first = page["items"][0]
    assert first["keyword_id"] == shop.keywords["wool hat"]
    assert (first["old_bid_micros"], first["new_bid_micros"]) == (1_000_000, 1_000_005)
    assert (first["source"], first["outcome"]) == ("manual", "applied")
    assert first["created_at"].startswith("2024-03-05T12:00:00")


def test_filters(shop: Shop, history: dict[str, int]) -> None:
    h, tenant = history, shop.tenant
    shoes, hats = shop.campaigns["Shoes"], shop.campaigns["Hats"]
    assert _ids(tenant, campaign_id=shoes) == [
        h["trail_auto"],
        h["running_auto"],
        h["running_manual"],
    ]
    assert _ids(tenant, campaign_id=hats) == [h["wool_manual"], h["wool_rule"]]
    assert _ids(tenant, keyword_id=shop.keywords["trail shoes"]) == [h["trail_auto"]]
    assert _ids(tenant, source="autopilot") == [h["trail_auto"], h["running_auto"]]
    assert _ids(tenant, outcome="failed") == [h["wool_rule"]]
    assert _ids(tenant, cycle_id=str(CYCLE), sort="id") == [h["running_auto"], h["trail_auto"]]
    window = {"since": iso(utc(2024, 3, 2, 12)), "until": iso(utc(2024, 3, 4, 12))}
    assert _ids(tenant, **window) == [h["trail_auto"], h["running_auto"]]
    assert _ids(tenant, campaign_id=shoes, source="manual") == [h["running_manual"]]


def test_pages(shop: Shop, history: dict[str, int]) -> None:
    page = shop.tenant.get("bid-history", limit=2, offset=1, sort="created_at")
    assert [item["id"] for item in page["items"]] == [
        history["running_auto"],
        history["trail_auto"],
    ]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 1)


def test_only_the_callers_account(
    shop: Shop, history: dict[str, int], make_tenant: TenantFactory
) -> None:
    other = make_tenant()
    assert other.get("bid-history")["total"] == 0
    assert other.get("bid-history", campaign_id=shop.campaigns["Shoes"])["items"] == []
    assert other.get("bid-history", keyword_id=shop.keywords["wool hat"])["items"] == []


def test_viewers_read_and_bad_filters_are_refused(shop: Shop, history: dict[str, int]) -> None:
    client = shop.tenant.client
    viewer = shop.tenant.as_role(Role.VIEWER)
    assert client.get(HISTORY, headers=viewer).json()["total"] == 5
    for params in ({"source": "telepathy"}, {"since": "2024-03-01T00:00:00"}, {"colour": "red"}):
        assert_error(client.get(HISTORY, params=params, headers=viewer), 422, "validation_error")


def test_times_without_a_utc_time_are_refused_by_name(shop: Shop) -> None:
    """Offsets that push a time before year 1 or past 9999 in UTC: 500 (OverflowError)."""
    client, headers = shop.tenant.client, shop.tenant.headers
    edges = {"since": "0001-01-01T00:00:00+01:00", "until": "9999-12-31T23:59:59-01:00"}
    for name, value in edges.items():
        error = assert_error(client.get(HISTORY, params={name: value}, headers=headers), 422)
        assert any(name in str(problem) for problem in error.get("details", [error])), error
        assert "in UTC" in str(error)
