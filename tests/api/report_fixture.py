"""A small performance fixture whose report figures are worked out by hand in the tests,
and a plain-Python reference of the report arithmetic for every grain and level.

Hours straddle a day and an ISO week boundary: Sunday 2024-01-07 22:00 and 23:00 UTC,
Monday 2024-01-08 00:00 and 05:00, Tuesday 2024-01-09 10:00.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ingest_helpers import Shop, iso, utc

SUN_22, SUN_23 = utc(2024, 1, 7, 22), utc(2024, 1, 7, 23)
MON_00, MON_05 = utc(2024, 1, 8, 0), utc(2024, 1, 8, 5)
TUE_10 = utc(2024, 1, 9, 10)

# (keyword, hour, impressions, clicks, cost_micros, conversions, value_micros)
FIXTURE: list[tuple[str, datetime, int, int, int, float, int]] = [
    ("running shoes", SUN_22, 100, 10, 4_000_000, 1.0, 10_000_000),
    ("fast shoes", SUN_22, 200, 20, 6_000_000, 2.0, 30_000_000),
    ("trail shoes", SUN_23, 50, 5, 2_000_000, 0.0, 0),
    ("wool hat", SUN_23, 0, 0, 0, 0.0, 0),
    ("running shoes", MON_00, 300, 15, 9_000_000, 3.0, 45_000_000),
    ("trail shoes", MON_05, 80, 8, 0, 0.0, 0),
    ("wool hat", MON_05, 40, 4, 2_000_000, 1.0, 1_000_000),
    ("fast shoes", TUE_10, 60, 6, 3_000_000, 0.5, 6_000_000),
]


def fixture_rows(shop: Shop) -> list[dict[str, Any]]:
    return [
        {
            "keyword_id": shop.keywords[text],
            "hour": iso(hour),
            "impressions": impressions,
            "clicks": clicks,
            "cost_micros": cost,
            "conversions": conversions,
            "conversion_value_micros": value,
        }
        for text, hour, impressions, clicks, cost, conversions, value in FIXTURE
    ]


@dataclass(frozen=True)
class Place:
    campaign_id: int
    ad_group_id: int
    keyword_id: int


def places(shop: Shop) -> dict[str, Place]:
    groups = {"running shoes": "Running", "fast shoes": "Running", "trail shoes": "Trail"}
    groups["wool hat"] = "Wool"
    campaign = {"Running": "Shoes", "Trail": "Shoes", "Wool": "Hats"}
    return {
        text: Place(shop.campaigns[campaign[group]], shop.ad_groups[group], shop.keywords[text])
        for text, group in groups.items()
    }


def period_of(hour: datetime, grain: str) -> datetime:
    if grain == "hour":
        return hour
    day = hour.replace(hour=0)
    return day if grain == "day" else day - timedelta(days=day.weekday())


def reference(shop: Shop, level: str, grain: str) -> list[dict[str, Any]]:
    """The report computed with plain loops, ordered by period and ids."""
    where = places(shop)
    sums: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0, 0])
    for text, hour, *values in FIXTURE:
        place = where[text]
        ids = {
            "campaign": (place.campaign_id,),
            "ad_group": (place.campaign_id, place.ad_group_id),
            "keyword": (place.campaign_id, place.ad_group_id, place.keyword_id),
        }[level]
        total = sums[(period_of(hour, grain), *ids)]
        for index, value in enumerate(values):
            total[index] += value
    rows = []
    for key in sorted(sums):
        impressions, clicks, cost, conversions, value = sums[key]
        rows.append(
            {
                "period": iso(key[0]),
                "ids": key[1:],
                "impressions": impressions,
                "clicks": clicks,
                "cost_micros": cost,
                "conversions": conversions,
                "conversion_value_micros": value,
                "ctr": clicks / impressions if impressions else None,
                "cpc_micros": cost / clicks if clicks else None,
                "cpa_micros": cost / conversions if conversions else None,
                "roas": value / cost if cost else None,
            }
        )
    return rows
