"""The embedded default, SQLite: the same idempotent upserts (batched ``INSERT ... ON
CONFLICT``) and the same report arithmetic (``strftime`` periods) as on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from ingest_helpers import Shop, conversion_rows, metric, metric_rows, utc
from report_fixture import fixture_rows, reference
from sqlalchemy.orm import Session

from adbot.db.models import Account, AdGroup, Campaign, Keyword, MatchType, Platform, PlatformKind
from adbot.services.ingestion import Batch, RowsRejected, ingest_conversions, ingest_metrics
from adbot.services.reports import Grain, Level, ReportQuery, performance_report

LAYOUT = {
    "Shoes": {"Running": ["running shoes", "fast shoes"], "Trail": ["trail shoes"]},
    "Hats": {"Wool": ["wool hat"]},
}


@pytest.fixture
def shop(sqlite_session: Session) -> Shop:
    """The API tests' shop, built through the ORM (no app on SQLite)."""
    session = sqlite_session
    account = Account(slug="sqlite-shop", name="SQLite shop")
    session.add(account)
    session.flush()
    platform = Platform(account_id=account.id, kind=PlatformKind.SIM, name="sim")
    session.add(platform)
    session.flush()
    made = Shop(tenant=_AccountOnly(account.id), campaigns={}, ad_groups={}, keywords={})  # type: ignore[arg-type]
    for campaign_name, groups in LAYOUT.items():
        campaign = Campaign(
            account_id=account.id,
            platform_id=platform.id,
            name=campaign_name,
            daily_budget_micros=1_000_000,
        )
        session.add(campaign)
        session.flush()
        made.campaigns[campaign_name] = campaign.id
        for group_name, texts in groups.items():
            group = AdGroup(campaign_id=campaign.id, name=group_name)
            session.add(group)
            session.flush()
            made.ad_groups[group_name] = group.id
            for text in texts:
                keyword = Keyword(ad_group_id=group.id, text=text, match_type=MatchType.EXACT)
                session.add(keyword)
                session.flush()
                made.keywords[text] = keyword.id
    session.commit()
    return made


class _AccountOnly:
    def __init__(self, account_id: int) -> None:
        self.account_id = account_id


def _ingest(session: Session, shop: Shop, rows: list[dict[str, Any]], **options: Any) -> Any:
    batch = Batch(pd.DataFrame(rows), "json")
    return ingest_metrics(
        session=session, account_id=shop.tenant.account_id, batch=batch, **options
    )


def test_idempotent_upserts_on_sqlite(sqlite_session: Session, shop: Shop) -> None:
    running = shop.keywords["running shoes"]
    h0, h1 = utc(2024, 5, 1, 10), utc(2024, 5, 1, 11)
    batch = [metric(running, h0), metric(running, h1, clicks=3)]
    first = _ingest(sqlite_session, shop, batch)
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    stored = metric_rows(sqlite_session, shop.tenant.account_id)
    again = _ingest(sqlite_session, shop, batch)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    assert metric_rows(sqlite_session, shop.tenant.account_id) == stored
    batch[1]["clicks"] = 4
    third = _ingest(sqlite_session, shop, [*batch, metric(running, utc(2024, 5, 1, 12))])
    assert (third.inserted, third.updated, third.unchanged) == (1, 1, 1)
    values = [(r[3], r[4], r[6]) for r in metric_rows(sqlite_session, shop.tenant.account_id)]
    assert values == [(running, h0, 10), (running, h1, 4), (running, utc(2024, 5, 1, 12), 10)]


def test_rejections_write_nothing_on_sqlite(sqlite_session: Session, shop: Shop) -> None:
    rows = [
        metric(shop.keywords["wool hat"], utc(2024, 5, 1, 10)),
        metric(424_242, utc(2024, 5, 1, 10)),
    ]
    with pytest.raises(RowsRejected) as rejected:
        _ingest(sqlite_session, shop, rows)
    assert [(r.row, r.field, r.reason) for r in rejected.value.result.rejected] == [
        (2, "keyword_id", "unknown keyword")
    ]
    assert metric_rows(sqlite_session, shop.tenant.account_id) == []
    partial = _ingest(sqlite_session, shop, rows, partial=True)
    assert (partial.inserted, partial.rejected_rows) == (1, 1)


def test_conversions_on_sqlite(sqlite_session: Session, shop: Shop) -> None:
    rows = [
        {
            "conversion_action": "lead",
            "external_id": "a",
            "occurred_at": "2024-05-01T10:01:00Z",
            "campaign": "Hats",
        },
        {
            "conversion_action": "lead",
            "external_id": "b",
            "occurred_at": "2024-05-01T10:02:00Z",
            "keyword": "trail shoes",
        },
    ]
    batch = Batch(pd.DataFrame(rows), "json")
    account = shop.tenant.account_id
    first = ingest_conversions(session=sqlite_session, account_id=account, batch=batch)
    again = ingest_conversions(session=sqlite_session, account_id=account, batch=batch)
    assert (first.inserted, again.unchanged) == (2, 2)
    stored = conversion_rows(sqlite_session, account)
    assert [(r[1], r[2], r[3]) for r in stored] == [
        ("a", shop.campaigns["Hats"], None),
        ("b", shop.campaigns["Shoes"], shop.keywords["trail shoes"]),
    ]


@pytest.mark.parametrize("level", list(Level))
@pytest.mark.parametrize("grain", list(Grain))
def test_report_arithmetic_on_sqlite(
    sqlite_session: Session, shop: Shop, level: Level, grain: Grain
) -> None:
    _ingest(sqlite_session, shop, fixture_rows(shop))
    query = ReportQuery(
        level=level, grain=grain, start=utc(2024, 1, 7).date(), end=utc(2024, 1, 9).date()
    )
    report = performance_report(
        session=sqlite_session, account_id=shop.tenant.account_id, query=query
    )
    expected = reference(shop, level.value, grain.value)
    ids = {"campaign": 1, "ad_group": 2, "keyword": 3}[level.value]
    id_names = ("campaign_id", "ad_group_id", "keyword_id")[:ids]
    assert [(r["period"], tuple(r[n] for n in id_names)) for r in report.rows] == [
        (r["period"], r["ids"]) for r in expected
    ]
    for row, want in zip(report.rows, expected, strict=True):
        for name, value in want.items():
            if name not in ("period", "ids"):
                assert row[name] == (value if value is None else pytest.approx(value)), name
