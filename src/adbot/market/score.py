"""Episode metrics and the score every policy is ranked by (MARKET.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from adbot.market.scenario import Campaign, Scenario


def score_many(
    conversions: np.ndarray, value: np.ndarray, cost: np.ndarray, campaign: Campaign
) -> np.ndarray:
    """Vectorised score.

    - ``target_cpa`` set: ``conversions * min(1, (target_cpa / cpa)^2)``, 0 without conversions;
    - else ``target_roas`` set: ``value * min(1, (roas / target_roas)^2)``;
    - else ``value``.
    Spending nothing breaks no target: the factor is then 1.
    """
    conversions = np.asarray(conversions, dtype=np.float64)
    value = np.asarray(value, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    # At the float limits (a target of 1e308 or 1e-160, MARKET.md takes any positive one)
    # cost x target or ratio^2 overflows to inf: the factor's limit, 0 or 1, is then right.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if campaign.target_cpa is not None:
            # target / cpa == target * conversions / cost, inf when nothing was spent
            ratio = np.where(cost > 0, campaign.target_cpa * conversions / cost, np.inf)
            return np.where(conversions > 0, conversions * np.minimum(1.0, ratio**2), 0.0)
        if campaign.target_roas is not None:
            ratio = np.where(cost > 0, value / (cost * campaign.target_roas), np.inf)
            return np.where(value > 0, value * np.minimum(1.0, ratio**2), 0.0)
    return value.copy()


def score(conversions: float, value: float, cost: float, campaign: Campaign) -> float:
    """The MARKET.md score of one episode's totals (``score_many`` for one, in floats: the
    env's reward calls it every step)."""
    if campaign.target_cpa is not None:
        if conversions <= 0:
            return 0.0
        ratio = campaign.target_cpa * conversions / cost if cost > 0 else math.inf
        return float(conversions * min(1.0, ratio * ratio))
    if campaign.target_roas is not None:
        if value <= 0:
            return 0.0
        ratio = value / (cost * campaign.target_roas) if cost > 0 else math.inf
        return float(value * min(1.0, ratio * ratio))
    return float(value)


@dataclass(frozen=True)
class EpisodeMetrics:
    """Totals of an episode (or of the part played so far). ``cpa``/``roas``: None if undefined."""

    impressions: float
    clicks: float
    cost: float
    conversions: float
    value: float
    cpa: float | None
    roas: float | None
    budget_utilization: float
    score: float

    @classmethod
    def from_totals(
        cls,
        scenario: Scenario,
        *,
        impressions: float,
        clicks: float,
        cost: float,
        conversions: float,
        value: float,
    ) -> EpisodeMetrics:
        campaign = scenario.campaign
        return cls(
            impressions=float(impressions),
            clicks=float(clicks),
            cost=float(cost),
            conversions=float(conversions),
            value=float(value),
            cpa=float(cost / conversions) if conversions > 0 else None,
            roas=float(value / cost) if cost > 0 else None,
            budget_utilization=float(cost / (campaign.daily_budget * scenario.horizon.days)),
            score=score(conversions, value, cost, campaign),
        )
