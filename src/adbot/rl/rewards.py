"""Reward components and the registry that turns a reward spec into a reward function.

A reward is a weighted sum of named components. Each component reads one
:class:`Transition` (the campaign's running totals before and after a step) and
returns a float. Components are differences of running quantities wherever the
MARKET.md score allows it, so an episode's rewards telescope to a final figure:

* ``conversions``, ``value``, ``profit``: the step's increments.
* ``cpa_penalty``: AuctionNet's CPA penalty with exponent 2, taken incrementally.
  With ``C`` conversions and ``cpa`` so far, the running penalty is
  ``C * (min(1, (target_cpa / cpa)^2) - 1)``; the component is its increase.
  Zero when the goal has no CPA target.
* ``roas_penalty``: the same with ``min(1, (roas / target_roas)^2)`` on value, only for
  goals with a ROAS target and no CPA target (as the score).
* ``score``: the increase of the running MARKET.md score; summed over an episode it is
  the episode's score exactly. For a CPA goal ``score = conversions + cpa_penalty``.
* ``baseline_score``: minus the increase of the running score of the *baseline*, the
  plan-following policy (action 0 at every step) played by the env on the same episode
  (common random numbers: same queries, competitor bids and click/conversion draws).
  ``score + baseline_score`` sums to the agent's score minus the baseline's: the same
  policy gradient as ``score`` (the baseline does not depend on the agent's actions) with
  most of the market's noise cancelled, since both runs see the same draws.
* ``terminal_score``: the MARKET.md score, paid once on the last step.
* ``pacing_penalty``: minus the squared gap between the share of today's budget spent and
  the share of today's traffic already past (an even pace spends in step with traffic).

Weights are >= 0, at least one above 0: every component is signed so that more is better
(a penalty's running level is <= 0), so a weight only says how much it counts.

The spec's ``scale`` divides the weighted sum by a per-scenario constant so returns are O(1)
across randomised scenarios: ``budget`` divides by the episode's reference score, the score
of spending the whole budget at the market's cost per conversion (``market_cpa`` =
competitor CPC mean / CVR mean): ``total budget / market_cpa`` conversions, times the mean
conversion value for value and ROAS goals. ``none`` leaves rewards in score units.
The reference uses scenario parameters a bidder does not see; rewards exist in training
only, and the agent's observations never include them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from adbot.errors import InvalidInput
from adbot.market.scenario import Campaign, Scenario
from adbot.market.score import score as market_score


@dataclass(frozen=True, slots=True)
class Goal:
    """What the campaign is judged on (MARKET.md score), its budget, and its market's price."""

    campaign: Campaign
    days: int
    market_cpa: float  # competitor CPC mean / CVR mean: the market's cost per conversion

    @classmethod
    def of(cls, scenario: Scenario) -> Goal:
        market = scenario.market
        return cls(
            scenario.campaign, scenario.horizon.days, market.competitor_cpc.mean / market.cvr.mean
        )

    @property
    def target_cpa(self) -> float | None:
        return self.campaign.target_cpa

    @property
    def target_roas(self) -> float | None:
        return self.campaign.target_roas

    @property
    def daily_budget(self) -> float:
        return self.campaign.daily_budget

    def reference_score(self) -> float:
        """Score of spending the whole budget at the market's cost per conversion."""
        conversions = self.daily_budget * self.days / self.market_cpa
        if self.target_cpa is not None:
            return conversions
        return conversions * self.campaign.conversion_value.mean


class Totals(NamedTuple):
    """Running campaign totals since the start of the episode (named tuples: the env makes
    a few at every step), with their MARKET.md score when known: ``score`` is that of the goal
    given to ``add``, which ``running_score`` then returns as is (computing it when None).
    The env scores once per step (and the twin's totals once per episode, reused by its
    replays): a reward of ``score + baseline_score`` took 5.6 us on unscored totals, 1.5 us
    on scored ones, and ``add`` costs 0.8 us more with the score."""

    cost: float = 0.0
    conversions: float = 0.0
    value: float = 0.0
    score: float | None = None

    def add(
        self, cost: float, conversions: float, value: float, goal: Goal | None = None
    ) -> Totals:
        """These totals plus one step's; scored for ``goal`` if one is given."""
        cost, conversions, value = (
            self.cost + cost,
            self.conversions + conversions,
            self.value + value,
        )
        scored = None if goal is None else market_score(conversions, value, cost, goal.campaign)
        return Totals(cost, conversions, value, scored)


class Transition(NamedTuple):
    """One decision step as the reward sees it."""

    goal: Goal
    before: Totals
    after: Totals
    pace_gap: float  # share of today's budget spent minus share of today's traffic past
    terminal: bool
    # The same step played by the baseline (the plan alone, action 0) on the same episode.
    baseline_before: Totals | None = None
    baseline_after: Totals | None = None


Component = Callable[[Transition], float]


def running_score(goal: Goal, totals: Totals) -> float:
    """The MARKET.md score of the totals so far."""
    if totals.score is not None:
        return totals.score
    return market_score(totals.conversions, totals.value, totals.cost, goal.campaign)


def _cpa_penalty_level(goal: Goal, totals: Totals) -> float:
    if goal.target_cpa is None or totals.conversions <= 0:
        return 0.0
    cpa = totals.cost / totals.conversions
    return totals.conversions * (min(1.0, (goal.target_cpa / cpa) ** 2) - 1.0)


def _roas_penalty_level(goal: Goal, totals: Totals) -> float:
    if goal.target_cpa is not None or goal.target_roas is None or totals.cost <= 0:
        return 0.0
    roas = totals.value / totals.cost
    return totals.value * (min(1.0, (roas / goal.target_roas) ** 2) - 1.0)


def conversions(t: Transition) -> float:
    return t.after.conversions - t.before.conversions


def value(t: Transition) -> float:
    return t.after.value - t.before.value


def profit(t: Transition) -> float:
    return (t.after.value - t.after.cost) - (t.before.value - t.before.cost)


def cpa_penalty(t: Transition) -> float:
    return _cpa_penalty_level(t.goal, t.after) - _cpa_penalty_level(t.goal, t.before)


def roas_penalty(t: Transition) -> float:
    return _roas_penalty_level(t.goal, t.after) - _roas_penalty_level(t.goal, t.before)


def score(t: Transition) -> float:
    return running_score(t.goal, t.after) - running_score(t.goal, t.before)


def baseline_score(t: Transition) -> float:
    if t.baseline_before is None or t.baseline_after is None:
        raise InvalidInput("the baseline_score component needs the env's baseline run")
    return running_score(t.goal, t.baseline_before) - running_score(t.goal, t.baseline_after)


def terminal_score(t: Transition) -> float:
    return running_score(t.goal, t.after) if t.terminal else 0.0


def pacing_penalty(t: Transition) -> float:
    # A product, not ``** 2``: past float range (a click over a tiny budget) it is inf, which
    # the reward then refuses by name, where ``**`` raises a bare OverflowError.
    return -(t.pace_gap * t.pace_gap)


REWARD_COMPONENTS: dict[str, Component] = {
    "conversions": conversions,
    "value": value,
    "profit": profit,
    "cpa_penalty": cpa_penalty,
    "roas_penalty": roas_penalty,
    "score": score,
    "baseline_score": baseline_score,
    "terminal_score": terminal_score,
    "pacing_penalty": pacing_penalty,
}


_COMPONENT_NAME = re.compile(r"[a-z][a-z0-9_]*")


def register_reward_component(name: str, component: Component) -> None:
    """Add a component under a new name (names are never silently replaced): lowercase
    letters, digits and underscores, as a reward spec in a YAML config names it."""
    if not isinstance(name, str) or not _COMPONENT_NAME.fullmatch(name):
        raise InvalidInput(
            f"reward component name {name!r}: use lowercase letters, digits and underscores, "
            "starting with a letter"
        )
    if not callable(component):
        raise InvalidInput(
            f"reward component '{name}' must be a function of one Transition, "
            f"not {type(component).__name__}"
        )
    if name in REWARD_COMPONENTS:
        raise InvalidInput(f"reward component '{name}' is already registered")
    REWARD_COMPONENTS[name] = component


class RewardSpec(BaseModel):
    """Components and weights of an agent's reward; stored with the agent's config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Strict weights: a bool or a string is not taken for a number (``"1.0"`` or ``true``
    # was 1.0), as every number of a training config.
    components: dict[str, Annotated[float, Field(strict=True)]] = Field(
        default_factory=lambda: {"score": 1.0}
    )
    scale: Literal["budget", "none"] = "budget"

    @field_validator("components")
    @classmethod
    def _known_components(cls, components: Mapping[str, float]) -> Mapping[str, float]:
        if not components:
            raise ValueError("at least one component is required")
        unknown = sorted(set(components) - set(REWARD_COMPONENTS))
        if unknown:
            known = ", ".join(sorted(REWARD_COMPONENTS))
            raise ValueError(f"unknown component(s) {', '.join(unknown)} (known: {known})")
        for name, weight in components.items():
            if not math.isfinite(weight):
                raise ValueError(f"weight of '{name}' must be finite")
            # Every component is signed so that more is better (a penalty's level is <= 0, a
            # step pays its change): a negative weight, as in "pacing_penalty: -0.5", would
            # pay the agent for the very thing it names, and train it to seek it.
            if weight < 0:
                raise ValueError(
                    f"weight of '{name}' is {weight}: weights must be >= 0 (components are "
                    "already signed so that more is better; a penalty pays what it costs)"
                )
        if not any(weight > 0 for weight in components.values()):
            raise ValueError("at least one weight must be above 0 (the reward would be 0)")
        return components


class Reward:
    """A reward function built from a :class:`RewardSpec`."""

    def __init__(self, spec: RewardSpec) -> None:
        self.spec = spec
        self._terms = [(REWARD_COMPONENTS[name], w) for name, w in spec.components.items()]
        self.needs_baseline = "baseline_score" in spec.components
        self._divisor: tuple[Goal | None, float] = (None, 1.0)  # the last goal's, kept

    def divisor(self, goal: Goal) -> float:
        """What the weighted sum is divided by on this goal's scenario; refused when the
        budget scale is 0 or infinite there (amounts at the ends of float range)."""
        if goal is not self._divisor[0]:
            scale = goal.reference_score() if self.spec.scale == "budget" else 1.0
            if not 0 < scale < math.inf:
                raise InvalidInput(
                    f"reward scale 'budget' is {scale!r} on this scenario (daily budget "
                    f"{goal.daily_budget!r} x {goal.days} days at a market cost per conversion "
                    f"of {goal.market_cpa!r}); use scale 'none'"
                )
            self._divisor = (goal, scale)
        return self._divisor[1]

    def __call__(self, transition: Transition) -> float:
        total = 0.0
        for component, weight in self._terms:
            total += weight * component(transition)
        reward = float(total / self.divisor(transition.goal))
        if not math.isfinite(reward):
            # Valid scenarios can get here only at the ends of float range (a click's
            # overshoot over a budget of 1e-200, weights of 1e308): a training run must stop
            # on it, not learn from it.
            raise InvalidInput(
                f"the reward of this step is {reward} (not finite): the reward's weights or "
                f"the scenario's amounts (daily budget {transition.goal.daily_budget!r}) are "
                "past float range"
            )
        return reward
