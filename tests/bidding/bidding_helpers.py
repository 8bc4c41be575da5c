"""Small scenarios for the bidding tests (built from a bundled one-day scenario)."""

from __future__ import annotations

from typing import Any

from adbot.market.scenario import Scenario, load_scenario


def quick(**market: Any) -> Scenario:
    """``tight-budget`` shrunk to 12 steps and 6,000 queries: seconds, not minutes."""
    data = load_scenario("tight-budget").model_dump(mode="json")
    data["name"] = "quick-test"
    data["horizon"]["steps_per_day"] = 12
    data["market"].update({"daily_queries": 6000, **market})
    data["campaign"]["daily_budget"] = 60.0
    return load_scenario(data)


def quick_week(**campaign: Any) -> Scenario:
    """A two-day version for policies that learn across days."""
    data = quick().model_dump(mode="json")
    data["horizon"]["days"] = 2
    data["campaign"].update(campaign)
    return load_scenario(data)
