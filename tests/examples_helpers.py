"""How many examples the randomized tests try: each test's own count by default (what CI
pays for), or ``ADBOT_TEST_EXAMPLES`` examples per hypothesis test and per schemathesis
operation when that variable is set, to hunt for latent defects far harder than CI does::

    ADBOT_TEST_EXAMPLES=300 pytest tests/api -p no:xdist --hypothesis-seed=7

``tests/conftest.py`` applies it to every ``@given`` test; the schemathesis tests read
``examples()`` for their ``max-examples``.
"""

from __future__ import annotations

import os

EXAMPLES_VAR = "ADBOT_TEST_EXAMPLES"


def examples_override() -> int | None:
    """``ADBOT_TEST_EXAMPLES`` as a positive count, or None when it is unset or empty."""
    value = os.environ.get(EXAMPLES_VAR, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{EXAMPLES_VAR} must be a positive whole number, got {value!r}")
    return int(value)


def examples(default: int) -> int:
    """A test's example count: ``default``, or ``ADBOT_TEST_EXAMPLES`` when set."""
    override = examples_override()
    return default if override is None else override
