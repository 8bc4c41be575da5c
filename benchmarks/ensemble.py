"""An agent ensemble, measured: the mean action of several trained agents, not shipped.

Agents trained from one config with other seeds differ by a few points per scenario (see
the README's quality section); averaging their actions is the usual way to cut that
variance. This registers the policy prefix ``mean:`` (``mean:A+B+C``, each member a
``ppo:`` argument: a shipped agent's name or a checkpoint directory). Each member
normalises the shared observation with its own statistics and acts deterministically; the
policy plays the mean of their actions through the same ``PacingState``.

``fresh`` compares it with the first member on fresh validation draws (seeds 30000, 40000
and 50000, 64 draws each, as ``validation.py``); ``bundled`` runs ``scenarios.py`` with it,
the first member, the prior and the baselines.

Run: ``python benchmarks/ensemble.py fresh|bundled AGENT AGENT [AGENT ...]``, e.g.
``python benchmarks/ensemble.py bundled default /tmp/seed1/best /tmp/seed2/best``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import scenarios
from paired import mean_and_error, paired_gap

from adbot.bidding.registry import load_policy_plugins, make_policy, register_policy_factory
from adbot.errors import InvalidInput
from adbot.rl.config import EvalConfig
from adbot.rl.evaluation import evaluate_policy, evaluation_pairs
from adbot.rl.policy import PpoPolicy, PriorPolicy, make_ppo_policy


class MeanPolicy(PriorPolicy):
    """The mean action of several PPO agents (they must share the action range)."""

    def __init__(self, members: list[PpoPolicy], name: str) -> None:
        ranges = {member.action_log_range for member in members}
        if len(ranges) != 1:
            raise InvalidInput(f"{name}: the agents' action ranges differ ({sorted(ranges)})")
        super().__init__(action_log_range=ranges.pop(), name=name)
        self.members = members

    def action(self) -> float:
        if self._state is None:
            raise InvalidInput("reset the policy before asking for bids")
        obs = self._state.observation()
        actions = [
            np.asarray(m.model.predict(m.normalization.normalize(obs), deterministic=True)[0])
            for m in self.members
        ]
        return float(np.mean([action.reshape(-1)[0] for action in actions]))


def make_mean_policy(spec: str) -> MeanPolicy:
    agents = spec.split("+")
    if len(agents) < 2:
        raise InvalidInput(f"policy 'mean:{spec}': name two or more agents, joined by '+'")
    return MeanPolicy([make_ppo_policy(agent) for agent in agents], f"mean:{spec}")


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
        sys.argv = [sys.argv[0], first, mean, "prior", "pid", "onlinelp"]
        scenarios.load_policy_plugins = lambda: None  # done above, with mean: registered
        scenarios.main()
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
