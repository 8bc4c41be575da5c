"""Agent ensembles, measured: the mean action of any set of trained agents.

Agents trained from one config with other seeds differ by a few points per scenario (see
the README's quality section); averaging their actions (``adbot.rl.policy.MeanPolicy``, as
the shipped ``ppo:default`` does over three seeds) cuts that variance. This registers the
policy prefix ``mean:`` (``mean:A+B+C``, each a ``ppo:`` argument: a shipped agent's name or
a checkpoint directory; an ensemble adds all its members) to measure other sets.

``fresh`` compares it with the first member on fresh validation draws (seeds 30000, 40000
and 50000, 64 draws each, as ``validation.py``); ``bundled`` runs ``scenarios.py`` with it,
the first member, the prior and the baselines.

Run: ``python benchmarks/ensemble.py fresh|bundled AGENT AGENT [AGENT ...]``, e.g.
``python benchmarks/ensemble.py fresh default /tmp/seed3/best`` (the three shipped seeds and a
fourth).
"""

from __future__ import annotations

import argparse

import scenarios
from paired import mean_and_error, paired_gap

from adbot.bidding.calibration import CalibratedPolicy
from adbot.bidding.registry import load_policy_plugins, make_policy, register_policy_factory
from adbot.errors import InvalidInput
from adbot.rl.config import EvalConfig
from adbot.rl.evaluation import evaluate_policy, evaluation_pairs
from adbot.rl.policy import MeanPolicy, PpoPolicy, make_ppo_policy


def make_mean_policy(spec: str) -> MeanPolicy | CalibratedPolicy:
    """``mean:A+B+...``: the members of every agent named (an ensemble counts its own),
    calibrated per keyword and planning as the first agent plays (``ppo:default``: with a
    prior of 32, the fast memory by day), so the two compare."""
    agents = spec.split("+")
    if len(agents) < 2:
        raise InvalidInput(f"policy 'mean:{spec}': name two or more agents, joined by '+'")
    members: list[PpoPolicy] = []
    calibration: float | None = None
    fast_memory_by_day = True
    for i, agent in enumerate(agents):
        policy = make_ppo_policy(agent)
        if isinstance(policy, CalibratedPolicy):
            if i == 0:
                calibration = policy.prior_conversions
            policy = policy.base
        if i == 0:
            fast_memory_by_day = policy.fast_memory_by_day
        members += policy.members if isinstance(policy, MeanPolicy) else [policy]
    mean = MeanPolicy(members, name=f"mean:{spec}", fast_memory_by_day=fast_memory_by_day)
    return mean if calibration is None else CalibratedPolicy(mean, calibration, name=mean.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["fresh", "bundled"])
    parser.add_argument("agents", nargs="+", help="ppo: arguments (names or directories)")
    args = parser.parse_args()
    load_policy_plugins()
    register_policy_factory("mean", make_mean_policy)
    first, mean = f"ppo:{args.agents[0]}", "mean:" + "+".join(args.agents)
    try:
        make_policy(mean)
    except InvalidInput as error:
        parser.error(str(error))
    if args.mode == "bundled":
        files = sorted((scenarios.ROOT / "configs/scenarios").glob("*.yaml"))
        policies = [first, mean, "prior", "pid", "onlinelp"]
        scenarios.compare(policies, files, episodes=20, seed=100)
        return
    for seed in (30_000, 40_000, 50_000):
        pairs = evaluation_pairs(EvalConfig(random_scenarios=64, seed=seed, max_daily_queries=None))
        alone, together = (
            [e.score_ratio for e in evaluate_policy(make_policy(spec), pairs).episodes]
            for spec in (first, mean)
        )
        base, _ = mean_and_error([r for r in alone if r is not None])
        score, _ = mean_and_error([r for r in together if r is not None])
        gap, error = paired_gap(together, alone)
        print(
            f"seed {seed}: {first} {base:.4f}, mean of {len(args.agents)} agents {score:.4f}, "
            f"difference {gap:+.4f} (standard error {error:.4f})",
            flush=True,
        )


if __name__ == "__main__":
    main()
