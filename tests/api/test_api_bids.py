"""Bulk keyword bid updates: all or nothing, logged in ``bid_history``, done in bulk SQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from api_helpers import Tenant, TenantFactory, World, assert_error, build_world
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from adbot.db.models import BidChange, Keyword, Role
from adbot.services.bids import MAX_BULK_CHANGES

BULK = "/api/v1/bids/bulk"


def _bulk(
    tenant: Tenant,
    changes: list[tuple[int, int]],
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    body = {"changes": [{"keyword_id": k, "bid_micros": b} for k, b in changes], **extra}
    return tenant.client.post(BULK, json=body, headers=headers or tenant.headers)


def _keywords(world: World, count: int) -> list[int]:
    ids = [world.keyword["id"]]
    for index in range(count - 1):
        body = {
            "ad_group_id": world.ad_group["id"],
            "text": f"shoe {index}",
            "match_type": "broad",
            "bid_micros": 500_000,
        }
        ids.append(world.tenant.post("keywords", body)["id"])
    return ids


def _bids(session: Session, ids: list[int]) -> dict[int, int | None]:
    rows = session.execute(select(Keyword.id, Keyword.bid_micros).where(Keyword.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


def _history_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(BidChange)) or 0


def test_bulk_update_logs_each_change(world: World, db_session: Session) -> None:
    ids = _keywords(world, 3)
    response = _bulk(
        world.tenant,
        [(ids[0], 1_300_000), (ids[1], 700_000), (ids[2], 500_000)],
        reason="spring push",
    )
    assert response.status_code == 200
    result = response.json()
    assert result["updated"] == 2 and result["unchanged"] == 1
    assert _bids(db_session, ids) == {ids[0]: 1_300_000, ids[1]: 700_000, ids[2]: 500_000}
    history = db_session.scalars(select(BidChange).order_by(BidChange.keyword_id)).all()
    assert [(h.keyword_id, h.old_bid_micros, h.new_bid_micros) for h in history] == [
        (ids[0], 1_200_000, 1_300_000),
        (ids[1], 500_000, 700_000),
    ]
    assert {str(h.cycle_id) for h in history} == {result["cycle_id"]}
    assert {(h.source, h.outcome, h.user_id, h.reason) for h in history} == {
        ("manual", "applied", world.tenant.admin_id, "spring push")
    }
    assert all(h.account_id == world.tenant.account_id for h in history)
    keyword = world.tenant.get(f"keywords/{ids[0]}")
    assert keyword["bid_micros"] == 1_300_000


def test_a_missing_or_foreign_keyword_changes_nothing(
    make_tenant: TenantFactory, db_session: Session
) -> None:
    world, other = build_world(make_tenant()), build_world(make_tenant())
    ids = _keywords(world, 3)
    before = _bids(db_session, ids)
    foreign = other.keyword["id"]
    changes = [
        (ids[0], 2_000_000),
        (foreign, 2_000_000),
        (ids[1], 2_000_000),
        (2**31 - 1, 2_000_000),
    ]
    response = _bulk(world.tenant, changes)
    error = assert_error(response, 404, "not_found")
    assert error["details"] == {"keyword_ids": [foreign, 2**31 - 1]}
    assert _bids(db_session, ids) == before
    assert _bids(db_session, [foreign]) == {foreign: 1_200_000}
    assert _history_count(db_session) == 0


def test_a_removed_keyword_changes_nothing(world: World, db_session: Session) -> None:
    ids = _keywords(world, 2)
    world.tenant.client.delete(f"/api/v1/keywords/{ids[1]}", headers=world.tenant.headers)
    before = _bids(db_session, ids)
    error = assert_error(_bulk(world.tenant, [(ids[0], 900_000), (ids[1], 900_000)]), 409)
    assert error["details"] == {"keyword_ids": [ids[1]]}
    assert _bids(db_session, ids) == before and _history_count(db_session) == 0


def test_out_of_bounds_or_repeated_bids_change_nothing(world: World, db_session: Session) -> None:
    ids = _keywords(world, 3)
    before = _bids(db_session, ids)
    outside = _bulk(world.tenant, [(ids[0], 900_000), (ids[1], 1), (ids[2], 10**9)])
    error = assert_error(outside, 422, "invalid_input")
    assert error["details"]["indexes"] == [1, 2] and error["details"]["field"] == "changes"
    repeated = _bulk(world.tenant, [(ids[0], 900_000), (ids[0], 800_000)])
    assert assert_error(repeated, 422)["details"]["keyword_ids"] == [ids[0]]
    negative = _bulk(world.tenant, [(ids[0], 900_000), (ids[1], -5)])
    assert assert_error(negative, 422)["details"][0]["field"] == "changes[1].bid_micros"
    assert _bids(db_session, ids) == before and _history_count(db_session) == 0


def test_request_size_is_bounded(world: World) -> None:
    assert_error(_bulk(world.tenant, []), 422, "validation_error")
    too_many = [(index + 1, 1_000_000) for index in range(MAX_BULK_CHANGES + 1)]
    error = assert_error(_bulk(world.tenant, too_many), 422, "validation_error")
    assert error["details"][0]["field"] == "changes"


def test_viewers_cannot_change_bids(world: World) -> None:
    viewer = world.tenant.as_role(Role.VIEWER)
    response = _bulk(world.tenant, [(world.keyword["id"], 900_000)], headers=viewer)
    assert_error(response, 403, "forbidden")


def test_a_key_change_is_logged_with_the_keys_owner(world: World, db_session: Session) -> None:
    created = world.tenant.post("api-keys", {"name": "bidder", "scopes": ["write"]})
    response = _bulk(
        world.tenant, [(world.keyword["id"], 800_000)], headers={"X-API-Key": created["key"]}
    )
    assert response.status_code == 200
    change = db_session.scalars(select(BidChange)).one()
    assert change.user_id == world.tenant.admin_id and change.source == "manual"


@contextmanager
def counted_statements(session: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    connection = session.get_bind()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(connection, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", count)


@pytest.mark.slow
def test_ten_thousand_keywords_in_one_request_with_bulk_sql(
    world: World, db_session: Session
) -> None:
    rows = [
        {
            "ad_group_id": world.ad_group["id"],
            "text": f"bulk keyword {index}",
            "match_type": "exact",
            "bid_micros": 1_000_000,
        }
        for index in range(MAX_BULK_CHANGES - 1)
    ]
    db_session.execute(insert(Keyword), rows)
    db_session.commit()
    ids = [world.keyword["id"], *db_session.scalars(
        select(Keyword.id).where(Keyword.text.like("bulk keyword %"))
    )]  # fmt: skip
    assert len(ids) == MAX_BULK_CHANGES
    changes = [(keyword_id, 1_000_000 + 10_000 * (index % 50 + 1)) for index, keyword_id in
               enumerate(ids)]  # fmt: skip
    with counted_statements(db_session) as statements:
        response = _bulk(world.tenant, changes)
    assert response.status_code == 200, response.text
    assert response.json()["updated"] == MAX_BULK_CHANGES
    # Authentication, one locking SELECT, one UPDATE, one INSERT, savepoints: a handful,
    # not one statement per keyword.
    assert len(statements) < 20, statements
    writes = [s for s in statements if s.lstrip().upper().startswith(("UPDATE KEYWORDS", "INSERT"))]
    assert len(writes) == 2
    assert _history_count(db_session) == MAX_BULK_CHANGES
    assert _bids(db_session, ids[:3]) == {ids[0]: 1_010_000, ids[1]: 1_020_000, ids[2]: 1_030_000}
