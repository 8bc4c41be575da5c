"""The simulated search-ads market (MARKET.md): scenarios, the vectorised auction simulator."""

# First: importing it brings numba's cache of the kernels in step with their sources.
import adbot.kernel_cache  # noqa: F401
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
