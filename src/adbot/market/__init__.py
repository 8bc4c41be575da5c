"""The simulated search-ads market (MARKET.md): scenarios, the vectorised auction simulator."""

from adbot.market.scenario import Scenario, load_scenario, random_scenario
from adbot.market.score import EpisodeMetrics, score
from adbot.market.simulator import MarketSimulator, StepOutcome

__all__ = [
    "EpisodeMetrics",
    "MarketSimulator",
    "Scenario",
    "StepOutcome",
    "load_scenario",
    "random_scenario",
    "score",
]
