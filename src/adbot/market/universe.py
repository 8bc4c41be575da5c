"""The universe of a scenario: what ``seed`` fixes (keywords, volumes, CVRs, competitors).

Nothing here depends on the episode seed or on bids. Lognormal draws are mean-preserving
(MARKET.md). The click-through quality factor is documented in :func:`quality_factor`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from adbot.market import libm
from adbot.market.keywords import keyword_texts
from adbot.market.profiles import step_weights, weekday_factors
from adbot.market.scenario import LogNormalSpec, NormalSpec, Scenario

MAX_CVR = 0.95


def lognormal(
    rng: np.random.Generator, spec: LogNormalSpec, size: int | tuple[int, ...]
) -> np.ndarray:
    """``mean * exp(N(-sd^2/2, sd))``: the mean is ``spec.mean`` whatever the spread."""
    sd = spec.sd_log
    return spec.mean * libm.exp(rng.normal(-0.5 * sd * sd, sd, size))


def quality_scores(
    rng: np.random.Generator, spec: NormalSpec, size: int | tuple[int, ...]
) -> np.ndarray:
    return np.clip(rng.normal(spec.mean, spec.sd, size), 1.0, 10.0)


def quality_factor(quality: np.ndarray) -> np.ndarray:
    """Click-through multiplier of an ad's quality score q in [1, 10]: ``0.5 + 0.1 q``.

    A quality-5 ad gets exactly ``position_ctr``; quality 10 gets 1.5x, quality 1 gets 0.6x.
    The click probability ``position_ctr[j] * quality_factor`` is capped at 1.
    """
    return 0.5 + 0.1 * quality


@dataclass(frozen=True)
class Universe:
    text_seed: np.random.SeedSequence  # the keyword texts' own stream (see ``keyword_texts``)
    volume_share: np.ndarray  # (K,) sums to 1
    true_cvr: np.ndarray  # (K,)
    pcvr: np.ndarray  # (K,) our predicted CVR
    quality: np.ndarray  # (K,) our quality score
    click_prob: np.ndarray  # (K, slots) our click probability by slot
    competitor_cpc: np.ndarray  # (C, K) base max CPC, float32
    competitor_quality: np.ndarray  # (C, K) float32
    competitor_budget: np.ndarray | None  # (C,) daily budgets
    step_queries: np.ndarray  # (n_steps,) expected queries per step, shocks included
    cpc_multiplier: np.ndarray  # (n_steps,) product of active shocks
    cvr_multiplier: np.ndarray  # (n_steps,)

    def cvr_at(self, steps: slice) -> np.ndarray:
        """(steps, K): each keyword's true conversion rate at each of ``steps``, the shocks'
        multipliers applied and capped at ``MAX_CVR`` (what its clicks convert at)."""
        return np.minimum(np.outer(self.cvr_multiplier[steps], self.true_cvr), MAX_CVR)

    @functools.cached_property
    def keyword_texts(self) -> tuple[str, ...]:
        """Readable texts of the keywords, drawn on first use from their own stream: only the
        platform and the CLI read them, and they cost more than the rest of the universe."""
        return keyword_texts(self.volume_share.shape[0], np.random.default_rng(self.text_seed))


@functools.lru_cache(maxsize=32)
def _step_weights(profile: str | tuple[float, ...], steps_per_day: int) -> np.ndarray:
    """``step_weights``, memoised and read-only: every simulator built on a scenario (a
    player, its twin, each replay) asks for the same few profiles again."""
    weights = step_weights(profile, steps_per_day)
    weights.flags.writeable = False
    return weights


def expected_step_queries(scenario: Scenario, with_shocks: bool = True) -> np.ndarray:
    """Expected queries of each step over all keywords (MARKET.md's volume formula)."""
    horizon, market = scenario.horizon, scenario.market
    days = (horizon.start_weekday + np.arange(horizon.days)) % 7
    day_factor = weekday_factors(market.weekday_profile, days)
    profile = market.hourly_profile  # a tuple once validated; a copied model may hold a list
    profile = profile if isinstance(profile, str) else tuple(profile)
    hourly = _step_weights(profile, horizon.steps_per_day)
    per_step = market.daily_queries * np.outer(day_factor, hourly).ravel()
    if with_shocks:
        per_step = per_step * shock_multipliers(scenario)[1]
    return per_step


def shock_multipliers(scenario: Scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-step (competitor CPC, volume, CVR) multipliers; shocks stack and persist."""
    n, spd = scenario.n_steps, scenario.horizon.steps_per_day
    cpc, volume, cvr = np.ones(n), np.ones(n), np.ones(n)
    for shock in scenario.market.shocks:
        start = shock.day * spd + shock.step
        cpc[start:] *= shock.competitor_cpc_multiplier
        volume[start:] *= shock.volume_multiplier
        cvr[start:] *= shock.cvr_multiplier
    return cpc, volume, cvr


def build_universe(scenario: Scenario) -> Universe:
    """Draw the universe from ``scenario.seed`` (independent of any episode seed)."""
    campaign, market = scenario.campaign, scenario.market
    draws_seq, text_seq = np.random.SeedSequence([scenario.seed, 0]).spawn(2)
    rng = np.random.default_rng(draws_seq)
    k, c = campaign.keywords, market.competitors
    share = libm.power(np.arange(k) + 1.0, -market.volume_zipf)
    true_cvr = np.minimum(lognormal(rng, market.cvr, k), MAX_CVR)
    noise = LogNormalSpec(mean=1.0, sd_log=market.pcvr_noise)
    pcvr = np.minimum(true_cvr * lognormal(rng, noise, k), 1.0)
    quality = quality_scores(rng, campaign.quality_score, k)
    ctr = np.asarray(market.position_ctr, dtype=np.float64)
    click_prob = np.minimum(np.outer(quality_factor(quality), ctr), 1.0)
    comp_cpc = lognormal(rng, market.competitor_cpc, (c, k)).astype(np.float32)
    comp_quality = quality_scores(rng, market.competitor_quality, (c, k)).astype(np.float32)
    budget = None
    if market.competitor_budget is not None:
        budget = lognormal(rng, market.competitor_budget, c)
    cpc_mult, _, cvr_mult = shock_multipliers(scenario)
    return Universe(
        text_seed=text_seq,
        volume_share=share / share.sum(),
        true_cvr=true_cvr,
        pcvr=pcvr,
        quality=quality,
        click_prob=click_prob,
        competitor_cpc=comp_cpc,
        competitor_quality=comp_quality,
        competitor_budget=budget,
        step_queries=expected_step_queries(scenario),
        cpc_multiplier=cpc_mult,
        cvr_multiplier=cvr_mult,
    )
