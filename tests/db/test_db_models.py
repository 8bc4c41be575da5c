"""The models on both backends: exact money, aware UTC timestamps, enums, JSON, explicit
loading; and one property: the clicks/impressions check agrees with arithmetic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from db_world import T0, World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, tuple_, update
from sqlalchemy.exc import IntegrityError, InvalidRequestError, StatementError
from sqlalchemy.orm import Session, selectinload

from adbot.db.models import (
    Account,
    AccountStatus,
    BidChange,
    BidOutcome,
    BidSource,
    Campaign,
    Keyword,
    MatchType,
    PerformanceMetric,
)

T = TypeVar("T")
METRIC_KEY = (PerformanceMetric.account_id, PerformanceMetric.hour, PerformanceMetric.keyword_id)

# Above 2**53: a float would round it. Money must survive exactly.
HUGE_MICROS = 2**53 + 1


def _reload(session: Session, model: type[T], id_: Any) -> T:
    session.expunge_all()
    row = session.get(model, id_)
    assert row is not None
    return row


def test_money_is_exact_integer_micros(any_session: Session, world: World) -> None:
    campaign = _reload(any_session, Campaign, world.ids["campaigns"][0])
    campaign.daily_budget_micros = HUGE_MICROS
    any_session.flush()
    reloaded = _reload(any_session, Campaign, campaign.id)
    assert reloaded.daily_budget_micros == HUGE_MICROS
    assert type(reloaded.daily_budget_micros) is int


def test_timestamps_come_back_aware_utc(any_session: Session, world: World) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    metric = _reload(any_session, PerformanceMetric, world.ids["performance_metrics"][0])
    metric.hour = datetime(2026, 3, 1, 15, 30, tzinfo=india)  # 10:00 UTC, hour-aligned
    any_session.flush()
    hour = datetime(2026, 3, 1, 10, tzinfo=UTC)  # the hour is part of the primary key
    reloaded = _reload(any_session, PerformanceMetric, (metric.account_id, hour, metric.keyword_id))
    assert reloaded.hour == hour
    assert reloaded.hour.tzinfo is UTC
    assert reloaded.updated_at.tzinfo is UTC


def test_server_default_timestamps_are_aware_utc(any_session: Session) -> None:
    # Plain SQL: Core and ORM inserts would apply the Python-side defaults instead.
    any_session.execute(text("INSERT INTO accounts (slug, name) VALUES ('initech', 'Initech')"))
    account = any_session.scalars(select(Account).where(Account.slug == "initech")).one()
    assert account.created_at.tzinfo is UTC
    # A zone mix-up would be hours off; this is not a timing check.
    assert abs(datetime.now(UTC) - account.created_at) < timedelta(minutes=30)
    assert account.status is AccountStatus.ACTIVE


def test_naive_datetime_is_refused(any_session: Session, world: World) -> None:
    metric = _reload(any_session, PerformanceMetric, world.ids["performance_metrics"][0])
    metric.hour = datetime(2026, 3, 1, 10)
    with pytest.raises(StatementError, match="naive datetime"):
        any_session.flush()
    any_session.rollback()


def test_enums_round_trip_and_unknown_values_are_refused(
    any_session: Session, world: World
) -> None:
    keyword = _reload(any_session, Keyword, world.ids["keywords"][0])
    assert keyword.match_type is MatchType.EXACT
    keyword.match_type = "fuzzy"  # type: ignore[assignment]
    with pytest.raises(StatementError, match="fuzzy"):
        any_session.flush()
    any_session.rollback()


def test_json_and_uuid_round_trip(any_session: Session, world: World) -> None:
    change = _reload(any_session, BidChange, world.ids["bid_history"][0])
    cycle = uuid.uuid4()
    change.cycle_id = cycle
    any_session.flush()
    reloaded = _reload(any_session, BidChange, change.id)
    assert reloaded.cycle_id == cycle
    assert (reloaded.source, reloaded.outcome) == (BidSource.AUTOPILOT, BidOutcome.APPLIED)


def test_relationships_load_only_when_asked(any_session: Session, world: World) -> None:
    campaign = _reload(any_session, Campaign, world.ids["campaigns"][0])
    with pytest.raises(InvalidRequestError, match="lazy='raise'"):
        _ = campaign.ad_groups
    any_session.expunge_all()
    loaded = any_session.scalars(
        select(Campaign).where(Campaign.id == campaign.id).options(selectinload(Campaign.ad_groups))
    ).one()
    assert [group.external_id for group in loaded.ad_groups] == ["g-1", "g-2"]


def test_upsert_key_keeps_one_metrics_row_per_keyword_hour(
    any_session: Session, world: World
) -> None:
    existing = _reload(any_session, PerformanceMetric, world.ids["performance_metrics"][0])
    duplicate = PerformanceMetric(
        account_id=existing.account_id,
        campaign_id=existing.campaign_id,
        ad_group_id=existing.ad_group_id,
        keyword_id=existing.keyword_id,
        hour=T0,
    )
    any_session.expunge_all()  # the database must refuse it, not the session's identity map
    with pytest.raises(IntegrityError), any_session.begin_nested():
        any_session.add(duplicate)
        any_session.flush()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    clicks=st.integers(min_value=-(2**40), max_value=2**62),
    impressions=st.integers(min_value=-(2**40), max_value=2**62),
)
def test_metrics_checks_agree_with_arithmetic(
    db_session: Session, pg_world: World, clicks: int, impressions: int
) -> None:
    """With no conversions, PostgreSQL accepts a row exactly when 0 <= clicks <= impressions."""
    statement = (
        update(PerformanceMetric)
        .where(tuple_(*METRIC_KEY) == tuple_(*pg_world.ids["performance_metrics"][0]))
        .values(clicks=clicks, impressions=impressions, conversions=0.0)
    )
    try:
        with db_session.begin_nested():
            db_session.execute(statement)
        accepted = True
    except IntegrityError:
        accepted = False
    assert accepted == (0 <= clicks <= impressions)
