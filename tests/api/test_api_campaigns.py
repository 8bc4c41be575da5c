"""Campaigns, ad groups, ads and keywords: CRUD, lists, natural keys, status transitions,
bounds from settings, and parents that must belong to the caller's account.
"""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import Tenant, TenantFactory, World, assert_error, build_world
from sqlalchemy import select
from sqlalchemy.orm import Session

from adbot.config import Settings
from adbot.db.models import BidChange


def _post(tenant: Tenant, path: str, body: dict[str, Any]) -> Any:
    return tenant.client.post(f"/api/v1/{path}", json=body, headers=tenant.headers)


def _patch(tenant: Tenant, path: str, body: dict[str, Any]) -> Any:
    return tenant.client.patch(f"/api/v1/{path}", json=body, headers=tenant.headers)


def test_campaign_crud_keeps_money_exact(world: World) -> None:
    tenant, platform = world.tenant, world.platform
    body = {
        "platform_id": platform["id"],
        "name": "Exact money",
        "daily_budget_micros": 1_234_567,
        "bidding_strategy": "target_cpa",
        "target_cpa_micros": 2_500_001,
        "start_date": "2026-01-01",
        "end_date": "2026-12-31",
        "status": "paused",
    }
    created = tenant.post("campaigns", body)
    assert created["daily_budget_micros"] == 1_234_567 and created["target_cpa_micros"] == 2_500_001
    assert created["status"] == "paused" and created["end_date"] == "2026-12-31"
    path = f"campaigns/{created['id']}"
    assert tenant.get(path) == created
    updated = _patch(tenant, path, {"daily_budget_micros": 9_999_999, "name": "Renamed"}).json()
    assert updated["daily_budget_micros"] == 9_999_999 and updated["name"] == "Renamed"
    assert updated["target_cpa_micros"] == 2_500_001


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"daily_budget_micros": 999_999}, "daily_budget_micros"),
        ({"daily_budget_micros": 10**13}, "daily_budget_micros"),
        ({"bidding_strategy": "target_roas"}, "target_roas"),
        ({"bidding_strategy": "target_cpa", "target_cpa_micros": None}, "target_cpa_micros"),
        ({"start_date": "2026-05-02", "end_date": "2026-05-01"}, "end_date"),
    ],
)
def test_campaign_rules_answer_422_and_change_nothing(
    world: World, change: dict[str, Any], field: str
) -> None:
    path = f"campaigns/{world.campaign['id']}"
    error = assert_error(_patch(world.tenant, path, change), 422, "invalid_input")
    assert error["details"]["field"] == field
    assert world.tenant.get(path) == world.campaign


def test_budget_bounds_come_from_settings(world: World, settings: Settings) -> None:
    limits = settings.limits
    tenant = world.tenant
    body = {"platform_id": world.platform["id"], "name": "Edge"}
    low = _post(
        tenant, "campaigns", {**body, "daily_budget_micros": limits.min_daily_budget_micros}
    )
    assert low.status_code == 201
    high = limits.max_daily_budget_micros
    assert _post(tenant, "campaigns", {**body, "daily_budget_micros": high}).status_code == 201
    over = assert_error(_post(tenant, "campaigns", {**body, "daily_budget_micros": high + 1}), 422)
    assert over["details"] == {"field": "daily_budget_micros", "min": 1_000_000, "max": high}


def test_status_transitions_follow_the_platform_rules(world: World) -> None:
    tenant = world.tenant
    for kind, entity in (
        ("campaigns", world.campaign),
        ("ad-groups", world.ad_group),
        ("ads", world.ad),
        ("keywords", world.keyword),
    ):
        path = f"{kind}/{entity['id']}"
        assert _patch(tenant, path, {"status": "paused"}).json()["status"] == "paused"
        assert _patch(tenant, path, {"status": "enabled"}).json()["status"] == "enabled"
        removed = tenant.client.delete(f"/api/v1/{path}", headers=tenant.headers)
        assert removed.status_code == 200 and removed.json()["status"] == "removed"
        for status in ("enabled", "paused"):
            error = assert_error(_patch(tenant, path, {"status": status}), 409, "conflict")
            assert error["details"] == {"field": "status", "from": "removed", "to": status}
        assert tenant.get(path)["status"] == "removed"
        assert _patch(tenant, path, {"status": "removed"}).status_code == 200


def test_nothing_is_added_under_a_removed_parent(world: World) -> None:
    tenant = world.tenant
    tenant.client.delete(f"/api/v1/campaigns/{world.campaign['id']}", headers=tenant.headers)
    refused = _post(tenant, "ad-groups", {"campaign_id": world.campaign["id"], "name": "Late"})
    assert assert_error(refused, 409)["details"] == {"field": "campaign_id"}
    tenant.client.delete(f"/api/v1/ad-groups/{world.ad_group['id']}", headers=tenant.headers)
    keyword = {"ad_group_id": world.ad_group["id"], "text": "late", "match_type": "broad"}
    assert assert_error(_post(tenant, "keywords", keyword), 409)["details"] == {
        "field": "ad_group_id"
    }


def test_parents_must_belong_to_the_same_account(make_tenant: TenantFactory) -> None:
    mine, theirs = make_tenant(), build_world(make_tenant())
    checks = [
        ("campaigns", {"platform_id": theirs.platform["id"], "name": "X",
                       "daily_budget_micros": 5_000_000}),
        ("ad-groups", {"campaign_id": theirs.campaign["id"], "name": "X"}),
        ("ads", {"ad_group_id": theirs.ad_group["id"], "final_url": "https://x.example.com",
                 "headlines": ["a", "b", "c"], "descriptions": ["d", "e"]}),
        ("keywords", {"ad_group_id": theirs.ad_group["id"], "text": "x", "match_type": "exact"}),
    ]  # fmt: skip
    for path, body in checks:
        assert_error(_post(mine, path, body), 404, "not_found")
        assert mine.get(path)["total"] == 0


def test_lists_paginate_with_a_total_filter_and_sort(world: World) -> None:
    tenant, platform_id = world.tenant, world.platform["id"]
    budgets = [7_000_000, 3_000_000, 9_000_000, 5_000_000]
    for index, budget in enumerate(budgets):
        name = f"Summer 100% sale {index}" if index % 2 else f"Winter_{index}"
        body = {"platform_id": platform_id, "name": name, "daily_budget_micros": budget}
        tenant.post("campaigns", body)
    first = tenant.get("campaigns", limit=2, offset=0, sort="-daily_budget_micros")
    second = tenant.get("campaigns", limit=2, offset=2, sort="-daily_budget_micros")
    third = tenant.get("campaigns", limit=2, offset=4, sort="-daily_budget_micros")
    ordered = [c["daily_budget_micros"] for c in first["items"] + second["items"] + third["items"]]
    assert ordered == [50_000_000, 9_000_000, 7_000_000, 5_000_000, 3_000_000]
    assert first["total"] == second["total"] == 5 and third["limit"] == 2
    assert [c["name"] for c in tenant.get("campaigns", q="100%")["items"]] == [
        "Summer 100% sale 1",
        "Summer 100% sale 3",
    ]
    # "_" is a literal underscore, not a one-character wildcard.
    assert tenant.get("campaigns", q="r_")["total"] == 2
    assert tenant.get("campaigns", q="winter", sort="-name")["items"][0]["name"] == "Winter_2"
    assert tenant.get("campaigns", platform_id=platform_id)["total"] == 5
    assert tenant.get("campaigns", platform_id=platform_id + 1000)["total"] == 0
    _patch(tenant, f"campaigns/{world.campaign['id']}", {"status": "paused"})
    paused = tenant.get("campaigns", status="paused")
    assert [c["id"] for c in paused["items"]] == [world.campaign["id"]]
    assert_error(tenant.client.get("/api/v1/campaigns?sort=budget", headers=tenant.headers), 422)


def test_child_lists_filter_by_parent(world: World) -> None:
    tenant = world.tenant
    other_group = tenant.post("ad-groups", {"campaign_id": world.campaign["id"], "name": "Trail"})
    tenant.post(
        "keywords",
        {"ad_group_id": other_group["id"], "text": "trail shoes", "match_type": "phrase"},
    )
    assert tenant.get("ad-groups", campaign_id=world.campaign["id"])["total"] == 2
    assert tenant.get("ad-groups", q="trail")["items"][0]["id"] == other_group["id"]
    assert tenant.get("keywords", ad_group_id=other_group["id"])["total"] == 1
    assert tenant.get("keywords", campaign_id=world.campaign["id"])["total"] == 2
    assert tenant.get("keywords", match_type="phrase")["items"][0]["text"] == "trail shoes"
    assert [k["text"] for k in tenant.get("keywords", sort="-bid_micros")["items"]] == [
        "running shoes",
        "trail shoes",
    ]
    assert tenant.get("ads", campaign_id=world.campaign["id"])["total"] == 1
    assert tenant.get("ads", ad_group_id=other_group["id"])["total"] == 0
    assert tenant.get("ads", q="shoes.example.com/RUNNING")["total"] == 1
    assert tenant.get("ads", kind="expanded_text")["total"] == 0


def test_keyword_natural_key_and_normalised_text(world: World) -> None:
    tenant, group = world.tenant, world.ad_group["id"]
    duplicate = _post(
        tenant,
        "keywords",
        {"ad_group_id": group, "text": "  Running   SHOES ", "match_type": "exact"},
    )
    assert_error(duplicate, 422)  # padding is refused before any rule runs
    duplicate = _post(
        tenant, "keywords", {"ad_group_id": group, "text": "Running   SHOES", "match_type": "exact"}
    )
    error = assert_error(duplicate, 409, "conflict")
    assert error["details"] == {"key": ["ad_group_id", "text", "match_type"]}
    other_match = _post(
        tenant, "keywords", {"ad_group_id": group, "text": "Running SHOES", "match_type": "phrase"}
    )
    assert other_match.status_code == 201 and other_match.json()["text"] == "running shoes"
    assert tenant.get("keywords")["total"] == 2


def test_external_ids_are_natural_keys_under_their_parent(world: World) -> None:
    tenant = world.tenant
    body = {"platform_id": world.platform["id"], "name": "A", "daily_budget_micros": 5_000_000}
    assert _post(tenant, "campaigns", {**body, "external_id": "111"}).status_code == 201
    error = assert_error(_post(tenant, "campaigns", {**body, "external_id": "111"}), 409)
    assert error["details"] == {"key": ["platform_id", "external_id"]}
    group = {"campaign_id": world.campaign["id"], "name": "G", "external_id": "222"}
    assert _post(tenant, "ad-groups", group).status_code == 201
    assert_error(_post(tenant, "ad-groups", group), 409)


def test_bid_bounds_and_bid_history_of_single_changes(
    world: World, settings: Settings, db_session: Session
) -> None:
    tenant, keyword = world.tenant, world.keyword
    path = f"keywords/{keyword['id']}"
    too_low = _patch(tenant, path, {"bid_micros": settings.limits.min_bid_micros - 1})
    assert assert_error(too_low, 422)["details"]["field"] == "bid_micros"
    too_high = _patch(tenant, path, {"bid_micros": settings.limits.max_bid_micros + 1})
    assert_error(too_high, 422)
    cleared = _patch(tenant, path, {"bid_micros": None})
    assert_error(cleared, 422)
    changed = _patch(tenant, path, {"bid_micros": 2_000_000, "reason": "more traffic"})
    assert changed.json()["bid_micros"] == 2_000_000
    unchanged = _patch(tenant, path, {"bid_micros": 2_000_000})
    assert unchanged.status_code == 200
    history = db_session.scalars(select(BidChange).where(BidChange.keyword_id == keyword["id"]))
    assert [(h.old_bid_micros, h.new_bid_micros, h.source, h.outcome, h.user_id, h.reason)
            for h in history] == [
        (1_200_000, 2_000_000, "manual", "applied", tenant.admin_id, "more traffic")
    ]  # fmt: skip
    removing_and_bidding = _patch(tenant, path, {"status": "removed", "bid_micros": 3_000_000})
    assert_error(removing_and_bidding, 409)
    group_bid = _patch(tenant, f"ad-groups/{world.ad_group['id']}", {"default_bid_micros": 1})
    assert assert_error(group_bid, 422)["details"]["field"] == "default_bid_micros"


@pytest.mark.parametrize(
    "change",
    [
        {"headlines": ["only", "two"]},
        {"headlines": ["x" * 31, "b", "c"]},
        {"descriptions": ["one"]},
        {"final_url": "ftp://files.example.com"},
        {"final_url": "https://has space.example.com"},
        {"kind": "expanded_text"},
    ],
)
def test_ad_text_limits(world: World, change: dict[str, Any]) -> None:
    path = f"ads/{world.ad['id']}"
    assert_error(_patch(world.tenant, path, change), 422, "validation_error")
    assert world.tenant.get(path) == world.ad


def test_ads_can_be_edited(world: World) -> None:
    path = f"ads/{world.ad['id']}"
    headlines = ["Trail shoes", "Grip on any path", "Order today", "Free returns"]
    updated = _patch(world.tenant, path, {"headlines": headlines}).json()
    assert updated["headlines"] == headlines and updated["descriptions"] == world.ad["descriptions"]
