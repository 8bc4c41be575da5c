"""Bidding policies (MARKET.md): fixed, pid, onlinelp, the hindsight oracle, plugged-in agents."""

from adbot.bidding.base import Policy, bids_from_alpha
from adbot.bidding.fixed import FixedPolicy
from adbot.bidding.onlinelp import OnlineLpPolicy
from adbot.bidding.oracle import OraclePolicy, OracleResult, hindsight_oracle
from adbot.bidding.pid import PidGains, PidPolicy
from adbot.bidding.registry import make_policy, register_policy_factory
from adbot.bidding.runner import EpisodeResult, run_episode

__all__ = [
    "EpisodeResult",
    "FixedPolicy",
    "OnlineLpPolicy",
    "OraclePolicy",
    "OracleResult",
    "PidGains",
    "PidPolicy",
    "Policy",
    "bids_from_alpha",
    "hindsight_oracle",
    "make_policy",
    "register_policy_factory",
    "run_episode",
]
