"""Policies on fresh validation draws: random scenarios at full volume, never trained on.

The same draws as a training run's evaluation (``adbot.rl.evaluation.evaluation_pairs``)
with more of them and another seed, so agents can be compared with a standard error instead
of on the 16 draws their checkpoint was chosen on. Prints each policy's mean score_ratio and,
for every policy after the first, the paired difference to the first (same episodes).

With ``--steps-per-day N`` every draw is played at N decision steps a day instead of 24
(its shocks at the same hour of the day): agents are trained at 24 only.

Run: ``python benchmarks/validation.py [--draws 64] [--seed 20000] [--steps-per-day 24] POLICY
[POLICY ...]``, e.g. ``python benchmarks/validation.py ppo:default onlinelp pid``.
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
    parser.add_argument(
        "--steps-per-day", type=positive, default=24, help="decision steps a day (default 24)"
    )
    args = parser.parse_args()
    load_policy_plugins()
    try:
        policies = [make_policy(spec) for spec in args.policies]
    except InvalidInput as error:
        parser.error(str(error))
    config = EvalConfig(random_scenarios=args.draws, seed=args.seed, max_daily_queries=None)
    pairs = [(with_steps_per_day(s, args.steps_per_day), e) for s, e in evaluation_pairs(config)]
    print(
        f"{len(pairs)} episodes: random scenarios of seed {args.seed}, full volume, "
        f"{args.steps_per_day} steps a day"
    )
    first: list[float | None] | None = None
    for spec, policy in zip(args.policies, policies, strict=True):
        report = evaluate_policy(policy, pairs)
        ratios = [episode.score_ratio for episode in report.episodes]
        mean, error = mean_and_error([r for r in ratios if r is not None])
        line = f"{spec:>24}: score_ratio {mean:.4f} (standard error {error:.4f})"
        if first is None:
            first = ratios
        else:
            gap, gap_error = paired_gap(ratios, first)
            line += f"; minus {args.policies[0]}: {gap:+.4f} (standard error {gap_error:.4f})"
        print(line, flush=True)


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
