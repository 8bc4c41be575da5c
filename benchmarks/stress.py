"""Policies on valid scenarios far from the agents' training distribution.

The shipped agents trained on ``adbot.market.random_scenario`` only (24 steps a day, traffic in
every hour and on every weekday, shocks of x0.6-1.8 on CPC, x0.7-1.4 on volume, x0.8-1.2 on
CVR). Scenario files written by others need not look like that. Each case here is a bundled
scenario with one change (``CASES``): closed days or hours before the first query, bid limits
that bind, large shocks, one keyword, one step a day (and one with two: a price shock at one
step a day). For each it prints every policy's mean score_ratio and the first policy's paired
difference to each other one (same episodes) with its standard error; a first policy far
below a baseline is a weak spot to look at.

Run: ``python benchmarks/stress.py [--episodes 20] [--seed 100] [--case NAME ...] [POLICY ...]``
(default policies ``ppo:default prior pid onlinelp fixed``; about 15 minutes for every case
at 20 episodes here), e.g. ``python benchmarks/stress.py --case closed-start-roas``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from paired import mean_and_error, paired_gap, positive

from adbot.bidding.evaluate import evaluate
from adbot.bidding.registry import load_policy_plugins, make_policy
from adbot.errors import InvalidInput
from adbot.market.scenario import Scenario, load_scenario

POLICIES = ["ppo:default", "prior", "pid", "onlinelp", "fixed"]
Change = Callable[[dict[str, Any]], None]


def _closed_days(data: dict[str, Any]) -> None:
    data["horizon"]["days"] = 7
    data["market"]["weekday_profile"] = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # Wednesdays only


def _closed_weekend_start(data: dict[str, Any]) -> None:
    data["horizon"].update(days=7, start_weekday=5)
    data["market"]["weekday_profile"] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def _one_hour(data: dict[str, Any]) -> None:
    data["market"]["hourly_profile"] = [0.0] * 20 + [1.0] + [0.0] * 3


def _low_max_bid(data: dict[str, Any]) -> None:
    data["campaign"]["max_bid"] = 0.5 * data["market"]["competitor_cpc"]["mean"]


def _shock(days: int = 7, **multipliers: float) -> Change:
    def change(data: dict[str, Any]) -> None:
        data["horizon"]["days"] = max(days, data["horizon"]["days"])
        data["market"]["shocks"] = [{"day": 2, "step": 0, **multipliers}]

    return change


def _both(first: Change, second: Change) -> Change:
    def change(data: dict[str, Any]) -> None:
        first(data)
        second(data)

    return change


def _one_keyword(data: dict[str, Any]) -> None:
    data["campaign"]["keywords"] = 1


def _one_step_a_day(data: dict[str, Any]) -> None:
    data["horizon"]["steps_per_day"] = 1


CASES: dict[str, tuple[str, Change]] = {
    "closed-start-roas": ("value-roas", _closed_days),
    "closed-start-value": ("value-only", _closed_days),
    "closed-start-cpa": ("tight-cpa", _closed_days),
    "closed-weekend-start-budget": ("tight-budget", _closed_weekend_start),
    "one-hour-value": ("value-only", _one_hour),
    "one-hour-budget": ("tight-budget", _one_hour),
    "one-hour-cpa": ("tight-cpa", _one_hour),  # a week, like its base
    "one-hour-roas": ("value-roas", _one_hour),
    "low-max-bid-budget": ("tight-budget", _low_max_bid),
    "low-max-bid-cpa": ("tight-cpa", _low_max_bid),
    "volume-x0.2-budget": ("tight-budget", _shock(volume_multiplier=0.2)),
    "volume-x0.2-value": ("value-only", _shock(volume_multiplier=0.2)),
    "volume-x0.5-budget": ("tight-budget", _shock(volume_multiplier=0.5)),
    "cpc-x5-budget": ("tight-budget", _shock(competitor_cpc_multiplier=5.0)),
    "cpc-x0.3-budget": ("tight-budget", _shock(competitor_cpc_multiplier=0.3)),
    "cpc-x3-cpa": ("tight-cpa", _shock(competitor_cpc_multiplier=3.0)),
    "cpc-x5-one-step-a-day-budget": (
        "tight-budget",
        _both(_shock(competitor_cpc_multiplier=5.0), _one_step_a_day),
    ),
    "cvr-x0.3-cpa": ("tight-cpa", _shock(cvr_multiplier=0.3)),
    "cvr-x0.3-roas": ("value-roas", _shock(cvr_multiplier=0.3)),
    "one-keyword-cpa": ("tight-cpa", _one_keyword),
    "one-step-a-day-cpa": ("tight-cpa", _one_step_a_day),
    "one-step-a-day-roas": ("value-roas", _one_step_a_day),
    "one-step-a-day-budget": ("tight-budget", _one_step_a_day),
    "one-step-a-day-loose": ("loose-budget", _one_step_a_day),
}


def case_scenario(name: str) -> Scenario:
    """The case's bundled scenario with its change, named after the case."""
    base, change = CASES[name]
    data = load_scenario(base).model_dump(mode="json")
    data["name"] = name.replace(".", "p")
    change(data)
    return load_scenario(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="*", default=POLICIES, help="policies, first compared")
    parser.add_argument("--episodes", type=positive, default=20, help="episodes (default 20)")
    parser.add_argument("--seed", type=int, default=100, help="first episode seed (default 100)")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="cases to run")
    args = parser.parse_args()
    load_policy_plugins()
    try:
        for spec in args.policies:
            make_policy(spec)
    except InvalidInput as error:
        parser.error(str(error))
    first = args.policies[0]
    print(f"{args.episodes} episodes from seed {args.seed}; differences are {first} minus each")
    for name in args.case or list(CASES):
        report = evaluate(
            case_scenario(name), args.policies, episodes=args.episodes, seed=args.seed
        )
        ratios = {
            row["policy"]: [e["score_ratio"] for e in row["episodes"]] for row in report["results"]
        }
        line = [f"{name} ({CASES[name][0]}):"]
        for spec in args.policies:
            mean, _ = mean_and_error([r for r in ratios[spec] if r is not None])
            part = f"{spec} {mean:.3f}"
            if spec != first:
                gap, error = paired_gap(ratios[first], ratios[spec])
                part += f" ({gap:+.3f} ({error:.3f}))"
            line.append(part)
        print("  ".join(line), flush=True)


if __name__ == "__main__":
    main()
