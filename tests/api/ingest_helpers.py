"""Helpers of the ingestion, report and operations tests: a tenant with keywords in two
campaigns, batch posting, and the exact contents of the performance tables.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from api_helpers import Tenant
from sqlalchemy import select
from sqlalchemy.orm import Session

from adbot.db.models import (
    Account,
    AdGroup,
    Campaign,
    Conversion,
    Keyword,
    MatchType,
    PerformanceMetric,
    Platform,
    PlatformKind,
)

METRICS = "/api/v1/metrics/hourly"
CONVERSIONS = "/api/v1/conversions"
REPORT = "/api/v1/reports/performance"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass
class Shop:
    """A tenant with two campaigns: Shoes (Running: 2 keywords, Trail: 1) and Hats (Wool: 1)."""

    tenant: Tenant
    campaigns: dict[str, int]
    ad_groups: dict[str, int]
    keywords: dict[str, int]


def build_shop(tenant: Tenant) -> Shop:
    platform = tenant.post("platforms", {"kind": "sim", "name": "Simulator"})
    campaigns: dict[str, int] = {}
    ad_groups: dict[str, int] = {}
    keywords: dict[str, int] = {}
    layout = {
        "Shoes": {"Running": ["running shoes", "fast shoes"], "Trail": ["trail shoes"]},
        "Hats": {"Wool": ["wool hat"]},
    }
    for campaign, groups in layout.items():
        made = tenant.post(
            "campaigns",
            {"platform_id": platform["id"], "name": campaign, "daily_budget_micros": 50_000_000},
        )
        campaigns[campaign] = made["id"]
        for group, texts in groups.items():
            ad_group = tenant.post("ad-groups", {"campaign_id": made["id"], "name": group})
            ad_groups[group] = ad_group["id"]
            for text in texts:
                keyword = tenant.post(
                    "keywords",
                    {"ad_group_id": ad_group["id"], "text": text, "match_type": "exact"},
                )
                keywords[text] = keyword["id"]
    return Shop(tenant, campaigns, ad_groups, keywords)


def metric(keyword_id: int, hour: datetime, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "keyword_id": keyword_id,
        "hour": iso(hour),
        "impressions": 100,
        "clicks": 10,
        "cost_micros": 5_000_000,
        "conversions": 1.0,
        "conversion_value_micros": 20_000_000,
    }
    row.update(values)
    return row


def to_csv(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [name for name in row if name not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def post_rows(
    tenant: Tenant, path: str, rows: list[dict[str, Any]], *, partial: bool = False
) -> Any:
    params = {"partial": "true"} if partial else {}
    return tenant.client.post(path, json={"rows": rows}, params=params, headers=tenant.headers)


def post_csv(tenant: Tenant, path: str, text: str, *, partial: bool = False) -> Any:
    params = {"partial": "true"} if partial else {}
    headers = {**tenant.headers, "Content-Type": "text/csv"}
    return tenant.client.post(path, content=text.encode(), params=params, headers=headers)


def metric_rows(session: Session, account_id: int) -> list[tuple[Any, ...]]:
    """Every stored metric of the account, by keyword and hour, with ids and timestamps."""
    m = PerformanceMetric
    stmt = (
        select(
            m.account_id,
            m.campaign_id,
            m.ad_group_id,
            m.keyword_id,
            m.hour,
            m.impressions,
            m.clicks,
            m.cost_micros,
            m.conversions,
            m.conversion_value_micros,
            m.updated_at,
        )
        .where(m.account_id == account_id)
        .order_by(m.keyword_id, m.hour)
    )
    session.expire_all()
    return [tuple(row) for row in session.execute(stmt)]


def metric_values(session: Session, account_id: int) -> list[tuple[Any, ...]]:
    """(keyword_id, hour, impressions, clicks, cost, conversions, value) by keyword, hour."""
    return [r[3:10] for r in metric_rows(session, account_id)]


def conversion_rows(session: Session, account_id: int) -> list[tuple[Any, ...]]:
    c = Conversion
    stmt = (
        select(
            c.conversion_action,
            c.external_id,
            c.campaign_id,
            c.keyword_id,
            c.occurred_at,
            c.quantity,
            c.value_micros,
            c.source,
        )
        .where(c.account_id == account_id)
        .order_by(c.conversion_action, c.external_id)
    )
    return [tuple(row) for row in session.execute(stmt)]


def one_ad_group(
    session: Session, slug: str, texts: list[str], match_type: MatchType = MatchType.EXACT
) -> tuple[int, AdGroup, list[Keyword]]:
    """An account ``slug`` with a sim platform, one campaign and one ad group holding a
    keyword per text, straight in the database (flushed, not committed): (account id, the ad
    group, its keywords)."""
    account = Account(slug=slug, name=slug.replace("-", " ").capitalize())
    session.add(account)
    session.flush()
    platform = Platform(account_id=account.id, kind=PlatformKind.SIM, name="sim")
    session.add(platform)
    session.flush()
    campaign = Campaign(
        account_id=account.id, platform_id=platform.id, name="C", daily_budget_micros=1_000_000
    )
    session.add(campaign)
    session.flush()
    group = AdGroup(campaign_id=campaign.id, name="All keywords")
    session.add(group)
    session.flush()
    keywords = [Keyword(ad_group_id=group.id, text=text, match_type=match_type) for text in texts]
    session.add_all(keywords)
    session.flush()
    return account.id, group, keywords
