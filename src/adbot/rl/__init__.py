"""Reinforcement learning: the ``adbot/BidPacing-v0`` env, rewards, PPO training, agents.

Importing this package registers the env with Gymnasium and the ``ppo:`` and ``prior``
policy prefixes with ``adbot.bidding`` (``make_policy("ppo:default")``, ``make_policy("prior")``,
the planner's prior alone); the agent code loads on first use. It also pins PyTorch's CPU
math before torch loads (:mod:`adbot.rl.cpu_math`), so training reproduces across CPUs.
"""

from __future__ import annotations

from adbot.bidding.base import Policy
from adbot.bidding.registry import register_policy_factory
from adbot.rl.cpu_math import pin_cpu_math
from adbot.rl.env import ENV_ID, BidPacingEnv, register


def _ppo_policy(spec: str) -> Policy:
    from adbot.rl.policy import make_ppo_policy

    return make_ppo_policy(spec)


def _prior_policy(spec: str) -> Policy:
    from adbot.rl.policy import make_prior_policy

    return make_prior_policy(spec)


pin_cpu_math()  # nothing above loads torch: tests/rl/test_cpu_math.py
register()
register_policy_factory("ppo", _ppo_policy, "ppo:NAME|PATH")
register_policy_factory("prior", _prior_policy, "prior")

__all__ = ["ENV_ID", "BidPacingEnv", "register"]
