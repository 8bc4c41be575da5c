"""Scenario files (MARKET.md is the contract): the schema, the loader and a random generator.

Every field and default here is fixed by MARKET.md; new fields may only be added as optional
fields with defaults. Numbers are strict (``"400"`` or ``true`` is a wrong type, not a number)
and must be finite.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adbot.errors import ScenarioError
from adbot.market.profiles import NAMED_HOURLY, weekday_factors
from adbot.yamlfile import read_yaml

# Limits that keep a run inside a machine's memory and the simulator's float32 prices:
# about 80 bytes of memory per query of the episode (measured with ``adbot evaluate``),
# about 20 per (keyword, competitor) pair, and prices far from float32's 3.4e38.
MAX_AMOUNT = 1e12  # any price, budget, target or value, in currency units
MAX_DAY_QUERIES = 1e7  # expected queries on the busiest day
MAX_EPISODE_QUERIES = 1e8  # expected queries over the episode
MAX_STEPS = 1_000_000  # days x steps_per_day
MAX_KEYWORD_CELLS = 1e8  # keywords x (competitors + 1)
MAX_SHOCK_STACK = 1e3  # the product of one kind of shock multiplier over all shocks
MAX_SD_LOG = 5.0  # a lognormal's sd_log (at 5 its median is already mean / 270,000)

Float = Annotated[float, Field(strict=True, allow_inf_nan=False)]
PosFloat = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
NonNegFloat = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]
Amount = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=MAX_AMOUNT)]
NonNegAmount = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=MAX_AMOUNT)]
SdLog = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=MAX_SD_LOG)]
Multiplier = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=MAX_SHOCK_STACK)]
# A shock's competitor CPC multiplier must be > 0 (volume and CVR ones may be 0): its own
# range, so -1 and 0 get the same message (with ge=0 and gt=0 stacked, -1 read ">= 0").
PosMultiplier = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=MAX_SHOCK_STACK)]
Int = Annotated[int, Field(strict=True)]

BUNDLED_DIR = Path(__file__).resolve().parents[3] / "configs" / "scenarios"


class FieldRuleError(ValueError):
    """A rule across fields; ``field`` is the dotted path, relative to the model, it names."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(rule)
        self.field = field
        self.rule = rule


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogNormalSpec(_Model):
    """Mean-preserving lognormal: ``mean * exp(N(-sd_log^2/2, sd_log))``."""

    mean: Amount
    sd_log: SdLog


class NormalSpec(_Model):
    mean: Float
    sd: NonNegFloat


class Horizon(_Model):
    days: Annotated[int, Field(strict=True, ge=1)]
    steps_per_day: Annotated[int, Field(strict=True, ge=1)]
    start_weekday: Annotated[int, Field(strict=True, ge=0, le=6)] = 0


class Campaign(_Model):
    daily_budget: Amount
    target_cpa: Amount | None = None
    target_roas: PosFloat | None = None
    conversion_value: LogNormalSpec
    keywords: Annotated[int, Field(strict=True, ge=1)]
    quality_score: NormalSpec
    min_bid: NonNegAmount = 0.01
    max_bid: Amount = 100.0

    @model_validator(mode="after")
    def _bid_range(self) -> Campaign:
        if self.min_bid > self.max_bid:
            raise FieldRuleError("min_bid", "must not exceed campaign.max_bid")
        return self

    @property
    def value_per_conversion(self) -> float:
        """``R`` of MARKET.md: the conversion worth a multiplier bid is based on."""
        return self.target_cpa if self.target_cpa is not None else self.conversion_value.mean


class Shock(_Model):
    """From (``day``, ``step``) on, multiply competitor CPCs, query volume and CVR.

    ``day`` counts from 0 (the first day of the episode), ``step`` is the step in that day.
    Shocks stack multiplicatively and last until the end of the episode.
    """

    day: Annotated[int, Field(strict=True, ge=0)]
    step: Annotated[int, Field(strict=True, ge=0)] = 0
    competitor_cpc_multiplier: PosMultiplier = 1.0
    volume_multiplier: Multiplier = 1.0
    cvr_multiplier: Multiplier = 1.0


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Market(_Model):
    daily_queries: PosFloat
    volume_zipf: NonNegFloat
    hourly_profile: str | tuple[float, ...]
    weekday_profile: tuple[NonNegFloat, ...]
    competitors: Annotated[int, Field(strict=True, ge=0)]
    participation: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=1)]
    competitor_cpc: LogNormalSpec
    competitor_quality: NormalSpec
    competitor_budget: LogNormalSpec | None = None
    slots: Annotated[int, Field(strict=True, ge=1)]
    position_ctr: tuple[Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0, le=1)], ...]
    cvr: LogNormalSpec
    pcvr_noise: SdLog
    bid_noise: SdLog
    reserve_cpc: NonNegAmount
    shocks: tuple[Shock, ...] = ()

    @field_validator("shocks", mode="before")
    @classmethod
    def _no_shocks(cls, value: Any) -> Any:
        # ``shocks:`` with nothing after it (YAML null), as a file lists none: the default.
        return () if value is None else value

    @field_validator("hourly_profile", mode="before")
    @classmethod
    def _hourly(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in NAMED_HOURLY:
                raise ValueError("must be 'flat', 'retail', 'b2b' or a list of weights")
            return value
        if not isinstance(value, list | tuple) or not all(_is_number(v) for v in value):
            raise ValueError("must be 'flat', 'retail', 'b2b' or a list of weights")
        try:
            weights = tuple(float(v) for v in value)
        except OverflowError:  # an integer past float range (10**400)
            raise ValueError("weights must be finite numbers") from None
        if not all(w >= 0 for w in weights) or not 0 < sum(weights) < np.inf:
            raise ValueError("weights must be >= 0, with a positive, finite sum")
        return weights

    @field_validator("weekday_profile")
    @classmethod
    def _weekday(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) != 7:
            raise ValueError(f"must have 7 weights (Monday .. Sunday), got {len(value)}")
        if not 0 < sum(value) < np.inf:
            raise ValueError("weights must have a positive, finite sum")
        return value

    @field_validator("position_ctr")
    @classmethod
    def _ctr(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(b > a for a, b in itertools.pairwise(value)):
            raise ValueError("must be non-increasing")
        return value

    @model_validator(mode="after")
    def _ctr_per_slot(self) -> Market:
        if len(self.position_ctr) != self.slots:
            raise FieldRuleError(
                "position_ctr",
                f"must have one value per slot ({self.slots}), got {len(self.position_ctr)}",
            )
        return self


class Scenario(_Model):
    name: Annotated[str, Field(strict=True, pattern=r"^[a-z0-9-]+$")]
    seed: Annotated[int, Field(strict=True, ge=0)]
    horizon: Horizon
    campaign: Campaign
    market: Market

    @model_validator(mode="after")
    def _fits_horizon(self) -> Scenario:
        if self.n_steps > MAX_STEPS:
            raise FieldRuleError(
                "horizon",
                f"days x steps_per_day must be at most {MAX_STEPS:,}, got {self.n_steps:,}",
            )
        steps = self.horizon.steps_per_day
        profile = self.market.hourly_profile
        if not isinstance(profile, str) and len(profile) != steps:
            raise FieldRuleError(
                "market.hourly_profile",
                f"must have horizon.steps_per_day ({steps}) weights, got {len(profile)}",
            )
        for i, shock in enumerate(self.market.shocks):
            if shock.day >= self.horizon.days:
                raise FieldRuleError(
                    f"market.shocks.{i}.day", f"must be < horizon.days ({self.horizon.days})"
                )
            if shock.step >= steps:
                raise FieldRuleError(
                    f"market.shocks.{i}.step", f"must be < horizon.steps_per_day ({steps})"
                )
        self._check_size()
        return self

    def _check_size(self) -> None:
        """Refuse, by name, what would not fit a machine's memory or float32 prices."""
        market = self.market
        cells = self.campaign.keywords * (market.competitors + 1)
        if cells > MAX_KEYWORD_CELLS:
            raise FieldRuleError(
                "campaign.keywords",
                f"keywords x (market.competitors + 1) must be at most {MAX_KEYWORD_CELLS:,.0f}, "
                f"got {cells:,}",
            )
        for kind in ("competitor_cpc_multiplier", "volume_multiplier", "cvr_multiplier"):
            stack = 1.0
            for i, shock in enumerate(market.shocks):
                stack *= max(getattr(shock, kind), 1.0)
                if stack > MAX_SHOCK_STACK:
                    raise FieldRuleError(
                        f"market.shocks.{i}.{kind}",
                        f"shocks together may raise it at most {MAX_SHOCK_STACK:,.0f}-fold",
                    )
        days = np.arange(self.horizon.days)
        factor = weekday_factors(market.weekday_profile, (self.horizon.start_weekday + days) % 7)
        for shock in market.shocks:  # an upper bound: a cut before a rise is not counted
            factor[shock.day :] *= max(shock.volume_multiplier, 1.0)
        queries = market.daily_queries * factor
        if queries.max() > MAX_DAY_QUERIES:
            raise FieldRuleError(
                "market.daily_queries",
                f"the busiest day would expect {_count(queries.max())} queries (weekday weights "
                f"and volume shocks included); at most {MAX_DAY_QUERIES:,.0f}",
            )
        if queries.sum() > MAX_EPISODE_QUERIES:
            raise FieldRuleError(
                "market.daily_queries",
                f"the episode would expect {_count(queries.sum())} queries; at most "
                f"{MAX_EPISODE_QUERIES:,.0f} (about 80 bytes of memory each)",
            )

    @property
    def n_steps(self) -> int:
        return self.horizon.days * self.horizon.steps_per_day


def _count(x: float) -> str:
    return f"{x:,.0f}" if x < 1e15 else f"{x:.3g}"


def _describe(error: Any) -> str:
    """``dotted.field: rule`` for one pydantic error."""
    # A key with a line break or other control character is quoted, to keep one line.
    loc = [part if part.isprintable() else repr(part) for part in map(str, error["loc"])]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldRuleError):
        loc.append(cause.field)
        rule = cause.rule
    elif error["type"] == "extra_forbidden":
        rule = "unknown field"
    elif error["type"] == "missing":
        rule = "required field missing"
    else:
        rule = str(error["msg"]).removeprefix("Value error, ")
        rule = rule[:1].lower() + rule[1:]
    return f"{'.'.join(loc) or 'scenario'}: {rule}"


def _resolve_path(source: str | Path) -> Path:
    if str(source) == "":  # Path("") is the current directory
        raise ScenarioError("scenario file not given: the path is empty")
    path = Path(source)
    if path.is_file():
        return path
    bundled = BUNDLED_DIR / f"{source}.yaml"
    if isinstance(source, str) and "/" not in source and bundled.is_file():
        return bundled
    if path.is_dir():
        raise ScenarioError(f"{_shown(source)}: a directory, not a scenario file")
    if path.exists():  # a device, a named pipe (which a read would wait on) or a socket
        raise ScenarioError(f"{_shown(source)}: not a regular file, not a scenario file")
    raise ScenarioError(f"scenario file not found: {_shown(source)}")


def _shown(path: str | Path) -> str:
    """A path as an error line shows it: quoted if it holds a newline or another character
    that would break or hide part of the one line."""
    text = str(path)
    return text if text.isprintable() else repr(text)


# A file with several problems has the first few named at once, on the one line.
ERRORS_NAMED = 5


def _read_yaml(path: Path) -> object:
    try:
        return read_yaml(path)
    except ValueError as exc:
        raise ScenarioError(f"{_shown(path)}: {exc}") from None


def load_scenario(source: str | Path | dict[str, Any] | Scenario) -> Scenario:
    """A validated scenario from a YAML file, a bundled scenario name, or a mapping.

    A bare name such as ``tight-budget`` that is not a file resolves to
    ``configs/scenarios/<name>.yaml``. Any rule broken raises ``ScenarioError`` with one
    line naming the dotted field, e.g. ``market.position_ctr: must be non-increasing``.
    """
    if isinstance(source, Scenario):
        return source
    if not isinstance(source, str | Path | dict):
        raise ScenarioError(
            "scenario: expected a file, a bundled scenario's name, a mapping or a Scenario, "
            f"got {type(source).__name__}"
        )
    data = source if isinstance(source, dict) else _read_yaml(_resolve_path(source))
    if not isinstance(data, dict):
        raise ScenarioError("scenario: must be a mapping of fields")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        named = "; ".join(_describe(error) for error in errors[:ERRORS_NAMED])
        more = len(errors) - ERRORS_NAMED
        raise ScenarioError(named + (f" (and {more} more)" if more > 0 else "")) from None


def bundled_scenarios() -> list[Path]:
    """The scenario files shipped in ``configs/scenarios`` (sorted by name)."""
    return sorted(BUNDLED_DIR.glob("*.yaml"))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return math.exp(float(rng.uniform(math.log(low), math.log(high))))


def _random_market(rng: np.random.Generator, days: int) -> dict[str, Any]:
    slots = int(rng.integers(1, 6))
    ctr = [float(rng.uniform(0.04, 0.12))]
    for _ in range(slots - 1):
        ctr.append(ctr[-1] * float(rng.uniform(0.5, 0.9)))
    competitors = int(rng.integers(2, 31))
    queries = _log_uniform(rng, 5_000, 60_000)
    cpc = _log_uniform(rng, 0.3, 4.0)
    market: dict[str, Any] = {
        "daily_queries": queries,
        "volume_zipf": float(rng.uniform(0.6, 1.4)),
        "hourly_profile": str(rng.choice(["flat", "retail", "b2b"])),
        "weekday_profile": [float(w) for w in 1.0 + rng.uniform(-0.3, 0.3, 7)],
        "competitors": competitors,
        "participation": float(rng.uniform(0.3, 1.0)),
        "competitor_cpc": {"mean": cpc, "sd_log": float(rng.uniform(0.2, 0.8))},
        "competitor_quality": {"mean": float(rng.uniform(4, 8)), "sd": float(rng.uniform(0.5, 2))},
        "slots": slots,
        "position_ctr": ctr,
        "cvr": {"mean": _log_uniform(rng, 0.01, 0.12), "sd_log": float(rng.uniform(0.2, 0.8))},
        "pcvr_noise": float(rng.uniform(0.0, 0.4)),
        "bid_noise": float(rng.uniform(0.05, 0.3)),
        "reserve_cpc": float(rng.uniform(0.01, 0.2)),
    }
    if rng.random() < 0.3:
        top_spend = queries * ctr[0] * cpc / competitors
        market["competitor_budget"] = {
            "mean": top_spend * _log_uniform(rng, 0.5, 3.0),
            "sd_log": 0.5,
        }
    if days >= 2 and rng.random() < 0.3:
        market["shocks"] = [
            {
                "day": int(rng.integers(1, days)),
                "step": int(rng.integers(0, 24)),
                "competitor_cpc_multiplier": _log_uniform(rng, 0.6, 1.8),
                "volume_multiplier": _log_uniform(rng, 0.7, 1.4),
                "cvr_multiplier": _log_uniform(rng, 0.8, 1.2),
            }
        ]
    return market


def random_scenario(rng: np.random.Generator, *, wide: bool = False) -> Scenario:
    """A scenario drawn for domain randomisation (RL training); always valid.

    Distribution (U = uniform, LogU = log-uniform, U{a..b} = integers):

    - horizon: days U{1..7}, 24 steps a day, start_weekday U{0..6}
    - market: daily_queries LogU(5k, 60k), volume_zipf U(0.6, 1.4), hourly profile one of
      flat/retail/b2b, weekday weights 1 + U(-0.3, 0.3); competitors U{2..30}, participation
      U(0.3, 1); competitor_cpc mean LogU(0.3, 4), sd_log U(0.2, 0.8); competitor quality mean
      U(4, 8), sd U(0.5, 2); slots U{1..5}, position_ctr[0] U(0.04, 0.12) then each slot
      x U(0.5, 0.9); cvr mean LogU(0.01, 0.12), sd_log U(0.2, 0.8); pcvr_noise U(0, 0.4);
      bid_noise U(0.05, 0.3); reserve U(0.01, 0.2); with probability 0.3 competitor budgets
      around LogU(0.5, 3) x a top-slot competitor's expected spend; with probability 0.3 (2+
      days) one shock on a random later day: CPC x LogU(0.6, 1.8), volume x LogU(0.7, 1.4),
      CVR x LogU(0.8, 1.2).
    - campaign: keywords U{5..80}, quality mean U(4, 8), sd U(0.5, 2); with "market CPA"
      m = competitor_cpc.mean / cvr.mean: 60% a CPA target m x LogU(0.6, 2); 20% a ROAS target
      LogU(0.8, 3) and no CPA; 20% no target (value maximisation). Conversion value mean
      m x LogU(1, 4), sd_log U(0.2, 0.6). Daily budget: LogU(0.05, 2) x daily_queries x
      mean(position_ctr) x competitor_cpc.mean x 0.5, from very tight to loose.
    ``wide=True`` then widens the same draw towards scenario files unlike these (each change
    with its own chance, from further draws of ``rng``, so the standard draws are unchanged):
    0.2 U{1, 2, 3, 4, 6, 8, 12} steps a day; 0.15 keywords U{1..4}; 0.1 one to three closed
    weekdays; 0.1 (at 24 steps a day) a shop open U{1..12} consecutive hours; 0.3 (2+ days)
    one more shock, on a random day from the second: CPC x LogU(0.2, 5), volume
    x LogU(0.2, 5), CVR x LogU(0.25, 4).
    """
    days = int(rng.integers(1, 8))
    market = _random_market(rng, days)
    market_cpa = market["competitor_cpc"]["mean"] / market["cvr"]["mean"]
    mode = rng.random()
    campaign: dict[str, Any] = {
        "conversion_value": {
            "mean": market_cpa * _log_uniform(rng, 1.0, 4.0),
            "sd_log": float(rng.uniform(0.2, 0.6)),
        },
        "keywords": int(rng.integers(5, 81)),
        "quality_score": {"mean": float(rng.uniform(4, 8)), "sd": float(rng.uniform(0.5, 2))},
        "daily_budget": _log_uniform(rng, 0.05, 2.0)
        * market["daily_queries"]
        * float(np.mean(market["position_ctr"]))
        * market["competitor_cpc"]["mean"]
        * 0.5,
    }
    if mode < 0.6:
        campaign["target_cpa"] = market_cpa * _log_uniform(rng, 0.6, 2.0)
    elif mode < 0.8:
        campaign["target_roas"] = _log_uniform(rng, 0.8, 3.0)
    seed = int(rng.integers(0, 2**31))
    data = {
        "name": f"random-{seed}",
        "seed": seed,
        "horizon": {"days": days, "steps_per_day": 24, "start_weekday": int(rng.integers(0, 7))},
        "campaign": campaign,
        "market": market,
    }
    if wide:
        _widen(rng, data)
    return Scenario.model_validate(data)


def _widen(rng: np.random.Generator, data: dict[str, Any]) -> None:
    """``random_scenario``'s wide changes, in place (see its docstring)."""
    horizon, campaign, market = data["horizon"], data["campaign"], data["market"]
    if rng.random() < 0.2:
        steps = int(rng.choice([1, 2, 3, 4, 6, 8, 12]))
        horizon["steps_per_day"] = steps
        for shock in market.get("shocks", []):
            shock["step"] = shock["step"] * steps // 24
    if rng.random() < 0.15:
        campaign["keywords"] = int(rng.integers(1, 5))
    if rng.random() < 0.1:
        closed = rng.choice(7, size=int(rng.integers(1, 4)), replace=False)
        market["weekday_profile"] = [
            0.0 if day in closed else weight for day, weight in enumerate(market["weekday_profile"])
        ]
    if horizon["steps_per_day"] == 24 and rng.random() < 0.1:
        start, hours = int(rng.integers(0, 24)), int(rng.integers(1, 13))
        shape = NAMED_HOURLY[market["hourly_profile"]]
        market["hourly_profile"] = [
            shape[hour] if (hour - start) % 24 < hours else 0.0 for hour in range(24)
        ]
    if horizon["days"] >= 2 and rng.random() < 0.3:
        market.setdefault("shocks", []).append(
            {
                "day": int(rng.integers(1, horizon["days"])),
                "step": int(rng.integers(0, horizon["steps_per_day"])),
                "competitor_cpc_multiplier": _log_uniform(rng, 0.2, 5.0),
                "volume_multiplier": _log_uniform(rng, 0.2, 5.0),
                "cvr_multiplier": _log_uniform(rng, 0.25, 4.0),
            }
        )
