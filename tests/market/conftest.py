"""Fixtures for the market tests: small, fast scenarios."""

from __future__ import annotations

import pytest
from market_helpers import small_data

from adbot.market.scenario import Scenario, load_scenario


@pytest.fixture(scope="session")
def small() -> Scenario:
    return load_scenario(small_data())


@pytest.fixture(scope="session")
def unlimited() -> Scenario:
    """The small scenario with a budget that never binds."""
    return load_scenario(small_data(campaign__daily_budget=1e9))
