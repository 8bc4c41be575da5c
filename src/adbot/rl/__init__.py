"""Reinforcement learning: the ``adbot/BidPacing-v0`` env, rewards, PPO training, agents.

Importing this package registers the env with Gymnasium.
"""

from adbot.rl.env import ENV_ID, BidPacingEnv, register

register()

__all__ = ["ENV_ID", "BidPacingEnv", "register"]
