"""Policy names -> policies. ``ppo:`` and other prefixes are plugged in by other packages.

``adbot.rl`` (or any plugin) calls ``register_policy_factory("ppo", factory)`` so that
``make_policy("ppo:NAME")`` works without this package importing it. Plugins can also be
declared as ``adbot.policies`` entry points; ``load_policy_plugins()`` imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from adbot.bidding.base import Policy
from adbot.bidding.calibration import make_calibrated_policy
from adbot.bidding.fixed import FixedPolicy
from adbot.bidding.onlinelp import OnlineLpPolicy
from adbot.bidding.oracle import OraclePolicy
from adbot.bidding.pid import PidPolicy
from adbot.errors import InvalidInput

PolicyFactory = Callable[[str], Policy]

BUILTIN: dict[str, Callable[[], Policy]] = {
    "fixed": FixedPolicy,
    "pid": PidPolicy,
    "onlinelp": OnlineLpPolicy,
    "oracle": OraclePolicy,
}
# Prefixes of this package (a plugin may not take them), with how each is written.
_OWN_FACTORIES: dict[str, tuple[PolicyFactory, str]] = {
    "calibrated": (make_calibrated_policy, "calibrated:POLICY"),
}
_FACTORIES: dict[str, PolicyFactory] = {k: f for k, (f, _) in _OWN_FACTORIES.items()}
_USAGE: dict[str, str] = {k: usage for k, (_, usage) in _OWN_FACTORIES.items()}


def register_policy_factory(prefix: str, factory: PolicyFactory, usage: str | None = None) -> None:
    """Make ``make_policy("PREFIX:ARG")`` call ``factory("ARG")``; ``usage`` is how the
    policy is written in messages (default ``PREFIX:NAME``)."""
    if not prefix or ":" in prefix or prefix in BUILTIN or prefix in _OWN_FACTORIES:
        raise InvalidInput(f"cannot register policy prefix {prefix!r}")
    _FACTORIES[prefix] = factory
    _USAGE[prefix] = usage or f"{prefix}:NAME"


def load_policy_plugins() -> None:
    """Import the ``adbot.policies`` entry points (each registers its factories)."""
    for entry in entry_points(group="adbot.policies"):
        entry.load()


def known_policies() -> list[str]:
    builtin = ["fixed[:A]" if name == "fixed" else name for name in BUILTIN]
    return [*builtin, *(_USAGE[prefix] for prefix in sorted(_FACTORIES))]


def make_policy(spec: str) -> Policy:
    """A fresh policy from its name: fixed, fixed:ALPHA, pid, onlinelp, oracle, PREFIX:ARG."""
    name, colon, arg = spec.strip().partition(":")
    named = name in BUILTIN or name in _FACTORIES
    takes_argument = name == "fixed" or ":" in _USAGE.get(name, "")
    if colon and named and not takes_argument:
        # ``pid:`` or ``prior:`` ran as ``pid`` or ``prior`` under the name ``pid:``, and
        # ``onlinelp:x`` was an "unknown policy"; a prefix that takes an argument says what
        # it needs itself (``ppo:``, ``calibrated:``).
        drop = "the ':'" if not arg else repr(f":{arg}")
        raise InvalidInput(f"policy {spec!r}: {name} takes no argument; drop {drop}")
    if name == "fixed" and colon:
        try:
            alpha = float(arg)
        except ValueError:
            raise InvalidInput(f"policy {spec!r}: fixed:ALPHA needs a number") from None
        if not 0 < alpha < float("inf"):
            raise InvalidInput(f"policy {spec!r}: alpha must be positive and finite")
        return FixedPolicy(alpha, name=spec)
    if name in BUILTIN and not arg:
        return BUILTIN[name]()
    if name in _FACTORIES:
        return _FACTORIES[name](arg)
    known = ", ".join(known_policies())
    raise InvalidInput(f"unknown policy {spec!r} (known: {known})")
