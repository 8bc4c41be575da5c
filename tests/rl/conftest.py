"""Small scenarios for RL tests: the bundled shapes, scaled down so an episode takes a second;
settings for training runs: a data directory and an MLflow store of the test's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from adbot.config import Settings, load_settings
from adbot.market.scenario import Scenario, load_scenario
from adbot.rl.env import cap_daily_queries


def small(name: str, queries: float = 3000.0, days: int | None = None) -> Scenario:
    scenario = cap_daily_queries(load_scenario(name), queries)
    if days is not None:
        horizon = scenario.horizon.model_copy(update={"days": days})
        market = scenario.market.model_copy(update={"shocks": ()})
        scenario = scenario.model_copy(update={"horizon": horizon, "market": market})
    return scenario


@pytest.fixture(scope="session")
def cpa_scenario() -> Scenario:
    return small("retail-tight-budget", days=2)


@pytest.fixture(scope="session")
def roas_scenario() -> Scenario:
    return small("value-roas", days=2)


@pytest.fixture(scope="session")
def value_scenario() -> Scenario:
    return small("value-only")


@pytest.fixture(scope="session")
def three_day_cpa_scenario() -> Scenario:
    """``tight-cpa`` over three days: its planner's day starts matter."""
    return small("tight-cpa", days=3)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A data directory and an MLflow store of the test's own (training runs)."""
    return load_settings(
        data_dir=tmp_path / "data",
        mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "test"},
    )
