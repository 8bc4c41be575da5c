"""Policies on fresh validation draws: random scenarios at full volume, never trained on.

The same draws as a training run's evaluation (``adbot.rl.evaluation.evaluation_pairs``)
with more of them and another seed, so agents can be compared with a standard error instead
of on the 16 draws their checkpoint was chosen on. Prints each policy's mean score_ratio and,
for every policy after the first, the paired difference to the first (same episodes).

With ``--steps-per-day N`` every draw is played at N decision steps a day instead of 24
(its shocks at the same hour of the day): agents are trained at 24 only. With ``--keywords
K`` every draw's campaign has K keywords (the draws have 5 to 80). With ``--wide`` the
draws are ``random_scenario(wide=True)``'s (other step lengths, few keywords, closed days
and hours, large shocks). ``--worst N`` then lists the N draws where the first policy is
furthest under the best of the others, with what sets each draw apart.

Run: ``python benchmarks/validation.py [--draws 64] [--seed 20000] [--steps-per-day 24]
[--keywords K] [--wide] [--worst N] POLICY [POLICY ...]``, e.g. ``python
benchmarks/validation.py ppo:default onlinelp pid``.
"""

from __future__ import annotations

import argparse

from paired import mean_and_error, paired_gap, positive

from adbot.bidding.registry import load_policy_plugins, make_policy
from adbot.errors import InvalidInput
from adbot.market.scenario import Scenario
from adbot.rl.config import EvalConfig
from adbot.rl.evaluation import evaluate_policy, evaluation_pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", help="policy names, e.g. ppo:default pid")
    parser.add_argument("--draws", type=positive, default=64, help="random scenarios (default 64)")
    parser.add_argument("--seed", type=int, default=20_000, help="draw seed (default 20000)")
    parser.add_argument("--steps-per-day", type=positive, help="decision steps a day (default: 24)")
    parser.add_argument("--keywords", type=positive, help="keywords of every draw's campaign")
    parser.add_argument(
        "--wide", action="store_true", help="wide random draws (their own steps a day)"
    )
    parser.add_argument(
        "--worst", type=positive, help="list the N draws where the first policy loses most"
    )
    args = parser.parse_args()
    if args.wide and (args.steps_per_day is not None or args.keywords is not None):
        parser.error(
            "--wide draws have steps a day and keywords of their own; "
            "leave out --steps-per-day and --keywords"
        )
    if args.worst is not None and len(args.policies) < 2:
        parser.error("--worst compares the first policy with the others: name two or more")
    args.steps_per_day = args.steps_per_day or 24
    load_policy_plugins()
    try:
        policies = [make_policy(spec) for spec in args.policies]
    except InvalidInput as problem:
        parser.error(str(problem))
    config = EvalConfig(
        random_scenarios=args.draws,
        seed=args.seed,
        max_daily_queries=None,
        wide_draws=True if args.wide else None,
    )
    pairs = evaluation_pairs(config)
    if not args.wide:
        pairs = [(with_steps_per_day(s, args.steps_per_day), e) for s, e in pairs]
    if args.keywords is not None:
        pairs = [(with_keywords(s, args.keywords), e) for s, e in pairs]
    print(
        f"{len(pairs)} episodes: {'wide ' if args.wide else ''}random scenarios of seed "
        f"{args.seed}, full volume"
        + ("" if args.wide else f", {args.steps_per_day} steps a day")
        + ("" if args.keywords is None else f", {args.keywords} keyword(s) each")
    )
    first: list[float | None] | None = None
    every: list[list[float | None]] = []
    for spec, policy in zip(args.policies, policies, strict=True):
        report = evaluate_policy(policy, pairs)
        ratios = [episode.score_ratio for episode in report.episodes]
        every.append(ratios)
        mean, error = mean_and_error([r for r in ratios if r is not None])
        line = f"{spec:>24}: score_ratio {mean:.4f} (standard error {error:.4f})"
        if first is None:
            first = ratios
        else:
            gap, gap_error = paired_gap(ratios, first)
            line += f"; minus {args.policies[0]}: {gap:+.4f} (standard error {gap_error:.4f})"
        print(line, flush=True)
    if args.worst is not None:
        print_worst(args.policies, every, [scenario for scenario, _ in pairs], args.worst)


def print_worst(
    specs: list[str], every: list[list[float | None]], scenarios: list[Scenario], count: int
) -> None:
    """The ``count`` draws where the first policy is furthest under the best of the others."""
    gaps = []
    for index, scenario in enumerate(scenarios):
        own = every[0][index]
        rivals = [
            (ratio, spec)
            for spec, ratios in zip(specs[1:], every[1:], strict=True)
            if (ratio := ratios[index]) is not None
        ]
        if own is None or not rivals:
            continue
        best, best_spec = max(rivals)
        gaps.append((own - best, own, best, best_spec, scenario))
    print(f"draws where {specs[0]} is furthest under the best of the others:")
    for gap, own, best, spec, scenario in sorted(gaps, key=lambda row: row[0])[:count]:
        print(f"  {gap:+.3f}: {own:.3f} against {spec} {best:.3f}; {describe(scenario)}")


def describe(scenario: Scenario) -> str:
    """What sets a random draw apart, in one line."""
    horizon, campaign, market = scenario.horizon, scenario.campaign, scenario.market
    if campaign.target_cpa is not None:
        goal = f"cpa {campaign.target_cpa:.3g}"
    elif campaign.target_roas is not None:
        goal = f"roas {campaign.target_roas:.3g}"
    else:
        goal = "value"
    parts = [
        scenario.name,
        f"{horizon.days}d x {horizon.steps_per_day} steps",
        goal,
        f"budget {campaign.daily_budget:.4g}",
        f"{campaign.keywords} keywords",
        f"{market.daily_queries:.0f} queries/day",
    ]
    hourly = market.hourly_profile
    if not isinstance(hourly, str):
        parts.append(f"open {sum(1 for weight in hourly if weight > 0)} h")
    closed = sum(1 for weight in market.weekday_profile if weight == 0)
    if closed:
        parts.append(f"{closed} closed weekdays")
    if market.competitor_budget is not None:
        parts.append("budgeted competitors")
    for shock in market.shocks:
        parts.append(
            f"shock d{shock.day}: cpc x{shock.competitor_cpc_multiplier:.2f} volume "
            f"x{shock.volume_multiplier:.2f} cvr x{shock.cvr_multiplier:.2f}"
        )
    return ", ".join(parts)


def with_keywords(scenario: Scenario, keywords: int) -> Scenario:
    """``scenario`` with a campaign of ``keywords`` keywords (the universe's draws follow)."""
    data = scenario.model_dump(mode="json")
    data["campaign"]["keywords"] = keywords
    return Scenario.model_validate(data)


def with_steps_per_day(scenario: Scenario, steps: int) -> Scenario:
    """``scenario`` at ``steps`` decision steps a day, each shock at the same hour of the day
    (random draws have named hourly profiles, which fit any step length)."""
    if steps == scenario.horizon.steps_per_day:
        return scenario
    data = scenario.model_dump(mode="json")
    old = data["horizon"]["steps_per_day"]
    data["horizon"]["steps_per_day"] = steps
    for shock in data["market"]["shocks"]:
        shock["step"] = shock["step"] * steps // old
    return Scenario.model_validate(data)


if __name__ == "__main__":
    main()
