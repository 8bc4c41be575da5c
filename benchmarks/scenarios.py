"""Policies on every bundled scenario, compared pair by pair over many episodes.

``adbot evaluate`` gives each policy's mean over a few episodes; between policies a few
points apart, 5 episodes do not separate them (one episode moves a mean by about 3%). This
runs ``adbot.bidding.evaluate.evaluate`` on every file in ``configs/scenarios/`` (or the
ones given) and prints, per scenario, each policy's mean score_ratio and, for every policy
after the first, its paired difference to the first (the same episodes: common random
numbers) with the standard error of that difference, then the same over all episodes.
Episodes the oracle scores nothing on have no ratio and are left out of the pairs.

With ``--windows W``, it then cuts the episodes into consecutive windows of W (seeds S..S+W-1,
S+W..) and counts, per scenario, how many windows pass a bar like the RL issue's (a mean
score_ratio of at least ``--bar`` over the window's W episodes, and above each of the
``--rival`` policies' means on the same episodes), for every policy that is not a rival; and
how many windows pass it on every scenario at once. Five fresh seeds are one such window: the
counts say how often a policy would pass that bar on seeds drawn afresh. ``--save FILE``
writes every episode's score_ratio as JSON.

Run: ``python benchmarks/scenarios.py [--episodes 20] [--seed 100] POLICY [POLICY ...]
[--scenario FILE ...] [--windows W --rival P ... --bar 0.95] [--save FILE]``, e.g.
``python benchmarks/scenarios.py ppo:default prior pid onlinelp`` (about 90 s here), or
``python benchmarks/scenarios.py ppo:default prior pid onlinelp --episodes 100 --seed 0
--windows 5 --rival pid --rival onlinelp`` (about 10 minutes).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from paired import paired_gap, positive

from adbot.bidding.evaluate import evaluate
from adbot.bidding.registry import load_policy_plugins, make_policy
from adbot.errors import InvalidInput
from adbot.market.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _mean(ratios: list[float | None]) -> float:
    """Mean of the episodes that have a ratio (None: the oracle scored nothing)."""
    return statistics.fmean(r for r in ratios if r is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policies", nargs="+", help="policy names, e.g. ppo:default pid")
    parser.add_argument("--episodes", type=positive, default=20, help="default 20")
    parser.add_argument("--seed", type=int, default=100, help="first episode seed (default 100)")
    parser.add_argument(
        "--scenario", type=Path, action="append", help="a scenario file (default: all bundled)"
    )
    parser.add_argument(
        "--windows", type=positive, help="count windows of this many episodes that pass --bar"
    )
    parser.add_argument(
        "--rival", action="append", default=[], help="a policy a window must beat (repeatable)"
    )
    parser.add_argument("--bar", type=float, default=0.95, help="a window's least mean (0.95)")
    parser.add_argument("--save", type=Path, help="write every episode's score_ratio as JSON")
    args = parser.parse_args()
    unknown = [rival for rival in args.rival if rival not in args.policies]
    if unknown:
        parser.error(f"--rival {unknown[0]} is not one of the policies")
    if args.windows and args.episodes < args.windows:
        parser.error(f"--windows {args.windows} needs at least that many --episodes")
    load_policy_plugins()
    for spec in args.policies:  # an unknown name fails here, not after the first scenario
        try:
            make_policy(spec)
        except InvalidInput as error:
            parser.error(str(error))
    files = args.scenario or sorted((ROOT / "configs/scenarios").glob("*.yaml"))
    by_scenario = compare(args.policies, files, episodes=args.episodes, seed=args.seed)
    if args.save:
        args.save.write_text(json.dumps({"seed": args.seed, "ratios": by_scenario}, indent=1))
    if args.windows:
        print_windows(by_scenario, args.policies, args.rival, args.windows, args.bar, args.seed)


Ratios = dict[str, list[float | None]]  # policy -> score_ratio of each episode


def compare(
    policies: list[str], files: list[Path], *, episodes: int, seed: int
) -> dict[str, Ratios]:
    """Print each scenario's line and the line of all episodes (see the module docstring);
    return each scenario's ratios."""
    pooled: Ratios = {policy: [] for policy in policies}
    by_scenario: dict[str, Ratios] = {}
    print(
        f"{len(files)} scenarios x {episodes} episodes (seeds {seed}-{seed + episodes - 1}); "
        f"mean score_ratio, and paired difference to {policies[0]} (standard error)"
    )
    for path in files:
        scenario = load_scenario(path)
        report = evaluate(scenario, policies, episodes=episodes, seed=seed)
        ratios = {
            result["policy"]: [episode["score_ratio"] for episode in result["episodes"]]
            for result in report["results"]
        }
        for policy in policies:
            pooled[policy] += ratios[policy]
        by_scenario[scenario.name] = ratios
        print(_line(scenario.name, policies, ratios), flush=True)
    print(_line("all episodes", policies, pooled))
    return by_scenario


def _window_passes(ratios: Ratios, policy: str, rivals: list[str], bar: float) -> tuple[bool, bool]:
    """Whether ``policy``'s mean over one window reaches ``bar``, and whether it is above every
    rival's mean over the same episodes (those that have a ratio for all of them)."""
    kept = [
        i
        for i in range(len(ratios[policy]))
        if all(ratios[p][i] is not None for p in [policy, *rivals])
    ]

    def mean(name: str) -> float:
        return statistics.fmean(ratios[name][i] for i in kept)  # type: ignore[misc]

    if not kept:
        return False, False
    own = mean(policy)
    return own >= bar, all(own > mean(rival) for rival in rivals)


def print_windows(
    by_scenario: dict[str, Ratios], policies: list[str], rivals: list[str], size: int,
    bar: float, seed: int,
) -> None:  # fmt: skip
    """Per scenario and policy, how many windows of ``size`` episodes pass the bar (see the
    module docstring): at least ``bar``, above the rivals, both; then every scenario at once."""
    episodes = len(next(iter(next(iter(by_scenario.values())).values())))
    n = episodes // size
    windows = [range(w * size, (w + 1) * size) for w in range(n)]
    rival_text = " and ".join(rivals) or "no rival"
    print(
        f"\n{n} windows of {size} episodes (seeds {seed}-{seed + size - 1}, ...): windows with a "
        f"mean of at least {bar}, above {rival_text}, and both"
    )
    for policy in [p for p in policies if p not in rivals]:
        all_pass = [True] * n
        print(policy)
        for name, ratios in by_scenario.items():
            results = [
                _window_passes(
                    {p: [r[i] for i in window] for p, r in ratios.items()}, policy, rivals, bar
                )
                for window in windows
            ]
            both = [reached and ahead for reached, ahead in results]
            all_pass = [a and b for a, b in zip(all_pass, both, strict=True)]
            counts = (sum(r for r, _ in results), sum(a for _, a in results), sum(both))
            print(f"  {name:22s} " + "  ".join(f"{c:3d}/{n}" for c in counts))
        print(f"  {'every scenario':22s} {'':>5s}  {'':>5s}  {sum(all_pass):3d}/{n}")


def _line(label: str, policies: list[str], ratios: dict[str, list[float | None]]) -> str:
    """Each policy's mean ratio, and after the first its paired difference to the first."""
    parts = [f"{label:22s}"]
    for policy in policies:
        parts.append(f"{policy} {_mean(ratios[policy]):.3f}")
        if policy != policies[0]:
            gap, error = paired_gap(ratios[policy], ratios[policies[0]])
            parts[-1] += f" ({gap:+.3f} +- {error:.3f})"
    return "  ".join(parts)


if __name__ == "__main__":
    main()
