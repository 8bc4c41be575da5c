"""Reports over the edges of valid stored data: sums past 2^63 (exact, on PostgreSQL and
SQLite) and the first and last days a date can hold.
"""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from api_helpers import Tenant
from ingest_helpers import METRICS, REPORT, Shop, build_shop, metric, one_ad_group, post_rows, utc
from sqlalchemy.orm import Session

from adbot.db.models import (
    AdGroup,
    Keyword,
    PerformanceMetric,
)
from adbot.services.reports import Grain, Level, ReportQuery, performance_report

BIG = 10**18
BIGINT_MAX = 2**63 - 1


@pytest.fixture
def shop(tenant: Tenant) -> Shop:
    return build_shop(tenant)


def test_sums_past_the_bigint_limit_are_exact(shop: Shop) -> None:
    running = shop.keywords["running shoes"]
    rows = [
        metric(
            running,
            utc(2024, 5, 2, hour),
            impressions=BIG,
            clicks=BIG // 2,
            cost_micros=BIG,
            conversions=1,
            conversion_value_micros=BIG,
        )
        for hour in range(10)
    ]
    assert post_rows(shop.tenant, METRICS, rows).status_code == 200
    client, headers = shop.tenant.client, shop.tenant.headers
    params = {"start": "2024-05-02", "end": "2024-05-02", "level": "keyword"}
    response = client.get(REPORT, params={**params, "sort": "-impressions"}, headers=headers)
    assert response.status_code == 200, response.text
    (row,) = response.json()["rows"]
    assert row["impressions"] == 10 * BIG and isinstance(row["impressions"], int)
    assert (row["clicks"], row["cost_micros"]) == (5 * BIG, 10 * BIG)
    assert row["conversion_value_micros"] == 10 * BIG
    assert row["conversions"] == 10.0
    assert (row["ctr"], row["roas"]) == (0.5, 1.0)
    assert row["cpc_micros"] == 2.0 and row["cpa_micros"] == pytest.approx(BIG)
    as_csv = client.get(REPORT, params={**params, "format": "csv"}, headers=headers)
    assert as_csv.status_code == 200, as_csv.text
    (line,) = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert line["impressions"] == str(10 * BIG)


def _largest_rows(session: Session, account_id: int, keyword: Keyword, group: AdGroup) -> None:
    """Three hours at the largest value a bigint column holds (the ORM, past any API check)."""
    for hour in (1, 2, 3):
        session.add(
            PerformanceMetric(
                account_id=account_id,
                campaign_id=group.campaign_id,
                ad_group_id=group.id,
                keyword_id=keyword.id,
                hour=utc(2024, 5, 2, hour),
                impressions=BIGINT_MAX,
                clicks=BIGINT_MAX,
                cost_micros=BIGINT_MAX,
                conversions=0.0,
                conversion_value_micros=BIGINT_MAX - hour,
            )
        )
    session.flush()


def _one_keyword(session: Session) -> tuple[int, Keyword, AdGroup]:
    account_id, group, (keyword,) = one_ad_group(session, "big-sums", ["k"])
    return account_id, keyword, group


@pytest.mark.parametrize("backend", ["db_session", "sqlite_session"])
def test_exact_sums_of_the_largest_values(backend: str, request: pytest.FixtureRequest) -> None:
    session: Session = request.getfixturevalue(backend)
    account_id, keyword, group = _one_keyword(session)
    _largest_rows(session, account_id, keyword, group)
    for level in Level:
        query = ReportQuery(
            level=level, grain=Grain.DAY, start=date(2024, 5, 2), end=date(2024, 5, 2)
        )
        (row,) = performance_report(session=session, account_id=account_id, query=query).rows
        assert row["impressions"] == row["clicks"] == row["cost_micros"] == 3 * BIGINT_MAX
        assert row["conversion_value_micros"] == 3 * BIGINT_MAX - 6
        assert row["ctr"] == 1.0 and row["cpa_micros"] is None


def test_the_last_and_first_days_a_date_holds(shop: Shop) -> None:
    client, headers = shop.tenant.client, shop.tenant.headers
    last = metric(shop.keywords["wool hat"], utc(9999, 12, 31, 23), impressions=5, clicks=1)
    assert post_rows(shop.tenant, METRICS, [last]).status_code == 200
    for grain in ("hour", "day", "week"):
        params = {"start": "9999-12-30", "end": "9999-12-31", "grain": grain}
        response = client.get(REPORT, params=params, headers=headers)
        assert response.status_code == 200, response.text
        assert [row["impressions"] for row in response.json()["rows"]] == [5]
    first = client.get(REPORT, params={"start": "0001-01-01", "end": "0001-01-07"}, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["rows"] == []
