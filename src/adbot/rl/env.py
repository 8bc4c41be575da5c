"""The Gymnasium environment ``adbot/BidPacing-v0``: pace one campaign's bids over an episode."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from adbot.bidding.base import bids_from_alpha
from adbot.bidding.calibration import KeywordBidder
from adbot.errors import InvalidInput
from adbot.market.episode import (
    EpisodeMarket,
    episode_market,
    lognormal_quantiles,
    universe_for,
)
from adbot.market.scenario import Scenario, load_scenario, random_scenario
from adbot.market.simulator import MarketSimulator, StepOutcome
from adbot.rl.config import EnvConfig, validated
from adbot.rl.features import FEATURE_NAMES, N_FEATURES, OBS_BOUND, PacingState
from adbot.rl.planner import GRID
from adbot.rl.rewards import Goal, Reward, RewardSpec, Totals, Transition

ENV_ID = "adbot/BidPacing-v0"
MAX_EPISODE_STEPS = 31 * 24  # a month of hourly steps; longer scenarios are truncated
# Episodes kept for replay with ``episode_reuse``; each keeps its drawn market (and the twin's
# totals), so a replay draws nothing.
REPLAY_POOL = 4
# ``prepare`` starts the next episode this many steps before the current one ends, one stage
# per call (``BidPacingEnv._prepare_next``: 15-25 stages for a new market): all at once it
# took up to 2-3 ms, longer than a vec env's learner computes between two steps, so the step
# it waits for was held up.
START_AHEAD = 32
TWIN_STEPS_PER_STAGE = 8  # the twin's steps played ahead in one of those stages
ScenarioSource = Scenario | str | Path | dict[str, Any]


def cap_daily_queries(scenario: Scenario, max_daily_queries: float | None) -> Scenario:
    """The scenario scaled down to at most ``max_daily_queries`` (cheaper steps).

    Budgets (ours and competitors') shrink by the same factor, so how tight the budget is
    against the market stays the same; only the counts get noisier.
    """
    if max_daily_queries is not None and (
        isinstance(max_daily_queries, bool)
        or not isinstance(max_daily_queries, int | float)
        or not 0 < max_daily_queries < math.inf
    ):
        raise InvalidInput(
            f"max_daily_queries must be a positive finite number, got {max_daily_queries!r}"
        )
    market, campaign = scenario.market, scenario.campaign
    if max_daily_queries is None or market.daily_queries <= max_daily_queries:
        return scenario
    factor = max_daily_queries / market.daily_queries
    competitor_budget = market.competitor_budget
    if competitor_budget is not None:
        competitor_budget = competitor_budget.model_copy(
            update={"mean": competitor_budget.mean * factor}
        )
    market = market.model_copy(
        update={"daily_queries": float(max_daily_queries), "competitor_budget": competitor_budget}
    )
    campaign = campaign.model_copy(update={"daily_budget": campaign.daily_budget * factor})
    return scenario.model_copy(update={"market": market, "campaign": campaign})


def raise_conversion_rate(scenario: Scenario, cvr_mean: float | None) -> Scenario:
    """The same auctions with ``cvr_mean`` as the mean conversion rate: fewer noisy counts.

    CVR, competitor CPCs, the reserve, bid limits and all budgets are multiplied by one
    factor ``k`` (never below 1), conversion values and targets are kept. Every bid and
    price scales by ``k``, so the same multiplier wins the same slots and clicks; cost and
    conversions both scale by ``k``, so CPA, ROAS and the best multiplier are unchanged,
    while conversion counts are ``k`` times larger and far less noisy.
    """
    market, campaign = scenario.market, scenario.campaign
    if cvr_mean is None or market.cvr.mean >= cvr_mean:
        return scenario
    k = cvr_mean / market.cvr.mean
    competitor_budget = market.competitor_budget
    if competitor_budget is not None:
        competitor_budget = competitor_budget.model_copy(
            update={"mean": competitor_budget.mean * k}
        )
    market = market.model_copy(
        update={
            "cvr": market.cvr.model_copy(update={"mean": cvr_mean}),
            "competitor_cpc": market.competitor_cpc.model_copy(
                update={"mean": market.competitor_cpc.mean * k}
            ),
            "competitor_budget": competitor_budget,
            "reserve_cpc": market.reserve_cpc * k,
            "shocks": market.shocks,
        }
    )
    campaign = campaign.model_copy(
        update={
            "daily_budget": campaign.daily_budget * k,
            "min_bid": campaign.min_bid * k,
            "max_bid": campaign.max_bid * k,
        }
    )
    return scenario.model_copy(update={"market": market, "campaign": campaign})


@dataclass
class _Episode:
    """A (scenario, episode seed) pair, and what its plan-alone twin did on it once known."""

    scenario: Scenario
    seed: int
    market: EpisodeMarket | None = None  # its drawn market, kept for replays
    twin: list[Totals] | None = None  # the twin's running totals after each step
    twin_score: float = 0.0
    # The env's settings the twin was played with (``BidPacingEnv._settings``): a vec env's
    # ``set_attr`` may change them before a replay, which then plays the twin again.
    twin_settings: tuple[Any, ...] | None = None


class _Player:
    """One simulator, the bidder's state on it, and its running totals."""

    def __init__(
        self,
        scenario: Scenario,
        episode_seed: int,
        action_log_range: float,
        market: EpisodeMarket | None = None,
        keyword_calibration: float | None = None,
        fast_memory_by_day: bool = False,
    ) -> None:
        self.sim = MarketSimulator(scenario, episode_seed, market)
        self.state = PacingState(self.sim, action_log_range, fast_memory_by_day=fast_memory_by_day)
        self.goal = Goal.of(scenario)
        self.totals = Totals()
        # As a plan-alone twin: its totals after each step and the env's settings it plays
        # with, kept with its episode once it has played to the end (``_finish_twin``). The
        # play's own, not the episode's: the next play of the same episode may start (drawn
        # ahead from the pool) while this one still records.
        self.record: list[Totals] = []
        self.settings: tuple[Any, ...] | None = None
        self.bidder = (
            None if keyword_calibration is None else KeywordBidder(self.sim, keyword_calibration)
        )

    def play(self, action: float) -> tuple[float, StepOutcome, Totals, float]:
        """Play one step: (alpha, outcome, totals before, share of today's traffic past)."""
        return self._play(action, None)

    def play_and_observe(
        self, action: float
    ) -> tuple[float, StepOutcome, Totals, float, np.ndarray]:
        """``play``, and the observation after the step (computed in the same compiled call
        that records the step: ``PacingState.record_and_observe``)."""
        obs = np.empty(N_FEATURES, np.float32)
        return (*self._play(action, obs), obs)

    def _play(
        self, action: float, obs: np.ndarray | None
    ) -> tuple[float, StepOutcome, Totals, float]:
        sim = self.sim
        alpha = self.state.alpha_for(action)
        elapsed_today = self.state.traffic_share_through(sim.step_in_day)
        if self.bidder is None:
            outcome = sim.step_multiplier(alpha)
        else:
            outcome = sim.step(self.bidder.bids(sim, bids_from_alpha(alpha, sim), alpha))
            self.bidder.record(outcome)
        if obs is None:
            self.state.record(alpha, outcome)
        else:
            self.state.record_and_observe(alpha, outcome, obs)
        before = self.totals
        self.totals = before.add(
            outcome.total_cost, float(outcome.total_conversions), outcome.total_value, self.goal
        )
        return alpha, outcome, before, elapsed_today


class _Start(NamedTuple):
    """A play of an episode as ``reset`` starts it."""

    episode: _Episode
    player: _Player
    baseline: _Player | None  # the plan-alone twin, when it must be played
    goal: Goal


@dataclass
class _Ahead:
    """The next episode, drawn ahead by ``prepare``, and the state its draws began from."""

    episode: _Episode
    rng_state: Mapping[str, Any]  # ``np_random``'s bit generator before the draws
    pool: list[_Episode]  # the replay pool before the draws
    settings: tuple[Any, ...]  # the env's settings it was drawn with (``_settings``)
    market_stages: int = 0  # stages of its market done (``_prepare_next``)
    start: _Start | None = None  # its players, once started


RESET_OPTIONS = ("scenario", "episode_seed")


def _checked_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """``reset``'s options, refused with ``InvalidInput`` when a name or type is wrong (a
    misspelt option would otherwise be ignored without a word)."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InvalidInput(f"reset options must be a dict, got {type(options).__name__}")
    unknown = sorted(str(name) for name in set(options) - set(RESET_OPTIONS))
    if unknown:
        raise InvalidInput(
            f"unknown reset option(s) {', '.join(unknown)} (known: {', '.join(RESET_OPTIONS)})"
        )
    seed = options.get("episode_seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int | np.integer)):
        raise InvalidInput(f"reset option episode_seed must be an integer, got {seed!r}")
    scenario = options.get("scenario")
    if scenario is not None and not isinstance(scenario, str | Path | dict | Scenario):
        raise InvalidInput(
            "reset option scenario must be a file, a bundled scenario's name, a mapping or a "
            f"Scenario, got {type(scenario).__name__}"
        )
    return options


def action_space() -> spaces.Box:
    """The env's action space (a new instance: a space carries its own random generator):
    one number in [-1, 1], the log of the plan's multiplier over ``action_log_range``."""
    return spaces.Box(-1.0, 1.0, (1,), np.float32)


class BidPacingEnv(gym.Env[np.ndarray, np.ndarray]):
    """Set a campaign's bid multiplier step by step in the simulated auction market.

    Each step is one decision step of the scenario (an hour by default): the agent sets the
    multiplier ``alpha`` and every keyword bids ``clip(alpha x pCVR_k x R, min_bid,
    max_bid)`` (MARKET.md) for that step's auctions. With ``keyword_calibration`` (a prior in
    predicted conversions) those bids go through :class:`adbot.bidding.calibration.KeywordBidder`
    first, calibrated per keyword and spread by the keywords' landscapes at the same cost, as
    ``CalibratedPolicy`` plays an agent: it trains on the bids it will play.
    With ``fast_memory_by_day`` the planner's fast memory holds one day, as every policy
    plays (``PacingState``'s ``fast_memory_by_day``); by default it is kept overnight, as the agents
    of ``ppo:default`` trained.

    Scenarios: a fixed one (a file, a bundled name, a mapping or a ``Scenario``) given to the
    constructor, or, without one, a fresh draw of ``adbot.market.random_scenario`` from
    ``self.np_random`` at every reset (domain randomisation), scaled down to
    ``max_daily_queries`` for speed (:func:`cap_daily_queries`) and, with ``training_cvr``,
    given that mean conversion rate with prices scaled alike (:func:`raise_conversion_rate`:
    same auctions, less noisy counts). ``reset(options={"scenario": ...})`` plays that
    scenario for one episode; ``options={"episode_seed": n}`` fixes the market's draws.
    With ``episode_reuse = R > 1`` a reset without options replays, with probability
    ``1 - 1/R``, one of the last ``REPLAY_POOL`` episodes (same scenario and episode seed)
    instead of drawing a new one: each drawn market is played about R times, so its draws
    (and the twin of a ``baseline_score`` reward, which does not depend on the actions) are
    computed once. Training throughput for fewer distinct markets.

    ## Action

    ``Box(-1, 1, (1,), float32)``: the log bid multiplier relative to the prior of
    :mod:`adbot.rl.planner` (the bid-landscape plan): ``alpha = prior x
    exp(action_log_range x a)``, clipped to [0.02, 50]. ``a = 0`` follows the plan. An
    action outside [-1, 1] is clipped to it (as Stable-Baselines3 clips its Gaussian
    policy's samples); one that is not a single finite real number (NaN, a string, a bool,
    a complex number, ``None``, a shape other than one number) raises ``InvalidInput``.

    ## Observation

    ``Box(-10, 10, (N_FEATURES,), float32)``, the features of :data:`FEATURE_NAMES`
    (:mod:`adbot.rl.features`): time left in the day and episode, hour and weekday
    encodings, budget left today and in the episode, spend pace against an even pace,
    CPA/ROAS so far against the target, last step's impression share and CPC against bids,
    conversions so far, the plan's multipliers and the landscape's elasticity. Each is
    scaled to O(1) and clipped; a VecNormalize wrapper standardises them in training.

    ## Reward

    The weighted components of the agent's :class:`RewardSpec` (:mod:`adbot.rl.rewards`).
    The default, ``{"score": 1}`` with ``scale: budget``, is the step's increase of the
    running MARKET.md score divided by the episode's reference score (a constant of the
    scenario, ``Goal.reference_score``), so an episode's rewards sum to
    ``score / reference_score`` exactly. A spec with ``baseline_score`` makes the env play
    the plan alone (action 0) on the same episode in lockstep; the rewards then sum to
    ``(score - baseline score) / reference_score``.

    ## Episode End

    Terminates after the scenario's last step (``days x steps_per_day``; the time left is
    in the observation). Registered with ``max_episode_steps=744`` (31 days of hourly
    steps); longer scenarios are truncated there.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        scenario: ScenarioSource | None = None,
        *,
        reward: RewardSpec | dict[str, Any] | None = None,
        action_log_range: float = 1.0,
        max_daily_queries: float | None = None,
        training_cvr: float | None = None,
        episode_reuse: int = 1,
        keyword_calibration: float | None = None,
        wide_draws: bool = False,
        fast_memory_by_day: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None:
            raise InvalidInput("BidPacingEnv has no render modes")
        self._fixed = None if scenario is None else load_scenario(scenario)
        if not isinstance(reward, RewardSpec):
            reward = validated(RewardSpec, {} if reward is None else reward, "reward")
        self.reward_fn = Reward(reward)
        settings = validated(
            EnvConfig,
            {
                "action_log_range": action_log_range,
                "max_daily_queries": max_daily_queries,
                "training_cvr": training_cvr,
                "episode_reuse": episode_reuse,
                "keyword_calibration": keyword_calibration,
                "wide_draws": wide_draws,
                "fast_memory_by_day": fast_memory_by_day,
            },
            "env settings",
        )
        self.action_log_range = settings.action_log_range
        self.max_daily_queries = settings.max_daily_queries
        self.training_cvr = settings.training_cvr
        self.episode_reuse = settings.episode_reuse
        self.keyword_calibration = settings.keyword_calibration
        self.wide_draws = bool(settings.wide_draws)
        self.fast_memory_by_day = bool(settings.fast_memory_by_day)
        self._pool: list[_Episode] = []
        self._episode: _Episode | None = None
        self.observation_space = spaces.Box(-OBS_BOUND, OBS_BOUND, (N_FEATURES,), np.float32)
        self.action_space = action_space()
        self.render_mode = render_mode
        self._player: _Player | None = None
        self._baseline: _Player | None = None
        self._goal: Goal | None = None
        self._ahead: _Ahead | None = None  # the next episode, started by ``prepare``

    def _draw_scenario(self, options: dict[str, Any]) -> Scenario:
        if options.get("scenario") is not None:
            return load_scenario(options["scenario"])
        if self._fixed is not None:
            return self._fixed
        scenario = cap_daily_queries(
            random_scenario(self.np_random, wide=self.wide_draws), self.max_daily_queries
        )
        return raise_conversion_rate(scenario, self.training_cvr)

    def _next_episode(self, options: dict[str, Any]) -> _Episode:
        replayable = options.get("scenario") is None and options.get("episode_seed") is None
        replay = replayable and self.episode_reuse > 1 and bool(self._pool)
        if replay and self.np_random.random() >= 1.0 / self.episode_reuse:
            return self._pool[int(self.np_random.integers(len(self._pool)))]
        scenario = self._draw_scenario(options)
        episode_seed = options.get("episode_seed")
        if episode_seed is None:
            episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        episode = _Episode(scenario, int(episode_seed))
        if replayable and self.episode_reuse > 1:
            self._pool = [*self._pool, episode][-REPLAY_POOL:]
        return episode

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        options = _checked_options(options)
        try:
            return self._reset(seed, options)
        except BaseException:
            # A reset refused midway (a scenario that does not load, one the reward cannot
            # scale) leaves no episode: the one before must not go on as if it were new.
            self._episode = self._player = self._baseline = self._goal = None
            raise

    def _reset(
        self, seed: int | None, options: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        ahead, self._ahead = self._ahead, None
        usable = (
            ahead is not None
            and seed is None
            and not options
            and ahead.settings == self._settings()
        )
        if seed is not None:
            self._pool = []
        elif ahead is not None and not usable:
            # Not the episode drawn ahead (options, or settings changed since): draw as if it
            # never had been.
            self.np_random.bit_generator.state, self._pool = ahead.rng_state, ahead.pool
        if usable:
            assert ahead is not None
            start = ahead.start or self._start(ahead.episode)
        else:
            start = self._start(self._next_episode(options))
        self.reward_fn.divisor(start.goal)  # a scenario the reward cannot scale fails here
        self._episode, self._player, self._baseline, self._goal = start
        episode = start[0]
        info = {"scenario": episode.scenario.name, "episode_seed": episode.seed}
        return self._observe(), info

    def _start(self, episode: _Episode) -> _Start:
        """The players and goal of a new play of ``episode`` (its twin too when the reward
        needs one and the episode has none recorded)."""
        player = self._player_of(episode)
        episode.market = player.sim.market
        baseline = None
        settings = self._settings()
        if self.reward_fn.needs_baseline and (
            episode.twin is None or episode.twin_settings != settings
        ):
            baseline = self._player_of(episode)
            baseline.settings = settings
        return _Start(episode, player, baseline, player.goal)

    def _player_of(self, episode: _Episode) -> _Player:
        return _Player(
            episode.scenario,
            episode.seed,
            self.action_log_range,
            episode.market,
            self.keyword_calibration,
            self.fast_memory_by_day,
        )

    def _twin_step(self, index: int) -> tuple[Totals, Totals]:
        """The plan-alone twin's totals before and after step ``index``: played the first
        time an episode is played (in lockstep, or a step ahead by ``prepare``), read back on
        replays."""
        episode = self._episode
        assert episode is not None
        record = episode.twin
        if self._baseline is not None:
            record = self._baseline.record
            while len(record) <= index:
                self._baseline.play(0.0)
                record.append(self._baseline.totals)
        assert record is not None
        return (record[index - 1] if index else Totals()), record[index]

    def prepare(self) -> None:
        """Compute now what the next step needs and no action changes, so the step itself is
        cheaper: the day's draws and bid landscapes (``PacingState.prepare``, which also
        draws the next day a stage at a time) and the plan-alone twin's next step (it plays
        action 0 whatever the agent does); in the episode's last ``START_AHEAD`` steps, a
        stage of the next episode of a plain ``reset()`` (``_prepare_next``), so a vec env's
        automatic reset inside the last step costs next to nothing.

        The same numbers as computing them inside ``step``, only earlier. Not part of the
        Gymnasium API: :class:`adbot.rl.vec_env.GroupedSubprocVecEnv`'s workers call it after
        answering each step, while the learner computes its next actions. Each call does a
        few hundred microseconds at most: more would hold up the step the learner waits for.
        """
        player, episode = self._player, self._episode
        if player is None or episode is None:
            return
        sim = player.sim
        if not sim.done:
            player.state.prepare()
            if self._baseline is not None:
                self._twin_step(sim.step_index)
        if sim.step_index >= sim.n_steps - START_AHEAD:
            self._prepare_next()

    def _prepare_next(self) -> None:
        """One stage of the next episode of a reset without seed or options (a vec env's
        autoreset, inside the last step): the twin played to its end and recorded, a few
        steps per stage (the next episode may replay this one); the episode drawn; its
        universe, its conversion values' table, its market; its players started; its first
        day's draws and landscapes (``MarketSimulator.work_ahead``). ``reset`` with a seed or
        options puts the draws back. Steps draw nothing from ``np_random``, so drawing before
        them changes no number."""
        baseline, ahead = self._baseline, self._ahead
        if ahead is None:
            if baseline is not None and not baseline.sim.done:
                twin = baseline.sim
                self._twin_step(min(twin.step_index + TWIN_STEPS_PER_STAGE, twin.n_steps) - 1)
                self._finish_twin()
                return
            self._finish_twin()
            rng_state, pool, settings = (
                self.np_random.bit_generator.state,
                self._pool,
                self._settings(),
            )
            self._ahead = _Ahead(self._next_episode({}), rng_state, pool, settings)
            return
        episode = ahead.episode
        if episode.market is None:
            # The universe, the conversion values' table (both memoised), then the market.
            if ahead.market_stages == 0:
                universe_for(episode.scenario)
            elif ahead.market_stages == 1:
                value = episode.scenario.campaign.conversion_value
                lognormal_quantiles(value.mean, value.sd_log)
            else:
                episode.market = episode_market(episode.scenario, episode.seed)
            ahead.market_stages += 1
            return
        if ahead.start is None:
            ahead.start = self._start(episode)
            return
        player = ahead.start.player
        if player.sim.work_ahead(0, GRID):
            player.state.prepare()

    def _finish_twin(self) -> None:
        """Keep the twin's record with its episode, once its last step is played."""
        episode, baseline = self._episode, self._baseline
        if episode is None or baseline is None or not baseline.sim.done:
            return
        episode.twin, episode.twin_settings = baseline.record, baseline.settings
        episode.twin_score = baseline.sim.totals().score
        self._baseline = None

    def _settings(self) -> tuple[Any, ...]:
        """What a new episode is drawn and started with, besides ``np_random`` and the pool
        (a vec env's ``set_attr`` may change them between ``prepare`` and ``reset``)."""
        return (
            self._fixed,
            self.max_daily_queries,
            self.training_cvr,
            self.episode_reuse,
            self.action_log_range,
            self.keyword_calibration,
            self.wide_draws,
            self.fast_memory_by_day,
            self.reward_fn,
        )

    def step(
        self, action: np.ndarray
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        player, goal, episode = self._player, self._goal, self._episode
        if player is None or goal is None or episode is None:
            raise InvalidInput("call reset() before step()")
        sim = player.sim
        if sim.done:
            raise InvalidInput("the episode is over; call reset()")
        alpha, outcome, before, elapsed_today, obs = player.play_and_observe(_action_value(action))
        done = sim.done
        needs_baseline = self.reward_fn.needs_baseline
        baseline_before = baseline_after = None
        if needs_baseline:
            baseline_before, baseline_after = self._twin_step(outcome.index)
        transition = Transition(
            goal,
            before,
            player.totals,
            outcome.spend_today / sim.daily_budget - elapsed_today,
            done,
            baseline_before,
            baseline_after,
        )
        reward = self.reward_fn(transition)
        info: dict[str, Any] = {"alpha": alpha, "cost": outcome.total_cost}
        if done:
            info["score"] = sim.totals().score
            self._finish_twin()
            if needs_baseline:
                info["baseline_score"] = episode.twin_score
        return obs, reward, done, False, info

    @property
    def sim(self) -> MarketSimulator | None:
        """The simulator of the current episode (None before the first reset)."""
        return None if self._player is None else self._player.sim

    def _observe(self) -> np.ndarray:
        assert self._player is not None
        return self._player.state.observation()


def _action_value(action: np.ndarray) -> float:
    """The action's one number as a float (the fast path is SB3's float32 array of one);
    ``InvalidInput`` when it is not one real number: a string, a bool, a complex number or
    ``None`` is refused rather than converted (the non-finite are refused by the state)."""
    if type(action) is np.ndarray and action.shape == (1,) and action.dtype.kind == "f":
        return float(action[0])
    try:
        values = np.asarray(action)
    except (TypeError, ValueError):  # ragged nestings numpy cannot hold
        values = None
    if values is not None and values.dtype.kind == "O" and values.size == 1:
        # An int past int64 (2**64) makes an object array: out of range like 1e300, and
        # clipped to the range's end as that is.
        item = values.reshape(-1)[0]
        if type(item) is int:
            return -1.0 if item < 0 else 1.0
    if values is None or values.dtype.kind not in "fiu":
        raise InvalidInput(f"the action must be one real number, got {action!r}"[:200])
    if values.size != 1:
        raise InvalidInput(f"the action must be one number, got shape {values.shape}")
    return float(values.reshape(-1)[0])


def register() -> None:
    """Register ``adbot/BidPacing-v0`` with Gymnasium (idempotent)."""
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="adbot.rl.env:BidPacingEnv",
            max_episode_steps=MAX_EPISODE_STEPS,
        )


__all__ = ["ENV_ID", "FEATURE_NAMES", "OBS_BOUND", "BidPacingEnv", "cap_daily_queries", "register"]
