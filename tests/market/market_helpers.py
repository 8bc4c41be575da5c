"""Small, fast scenarios for the market tests."""

from __future__ import annotations

import copy
from typing import Any

SMALL: dict[str, Any] = {
    "name": "small-test",
    "seed": 5,
    "horizon": {"days": 2, "steps_per_day": 8, "start_weekday": 4},
    "campaign": {
        "daily_budget": 60.0,
        "target_cpa": 20.0,
        "conversion_value": {"mean": 50.0, "sd_log": 0.4},
        "keywords": 12,
        "quality_score": {"mean": 6.0, "sd": 1.5},
        "min_bid": 0.05,
        "max_bid": 20.0,
    },
    "market": {
        "daily_queries": 3000,
        "volume_zipf": 1.0,
        "hourly_profile": "retail",
        "weekday_profile": [1.0, 1.0, 1.0, 1.0, 1.1, 0.8, 0.7],
        "competitors": 6,
        "participation": 0.7,
        "competitor_cpc": {"mean": 1.2, "sd_log": 0.5},
        "competitor_quality": {"mean": 6.0, "sd": 1.5},
        "slots": 3,
        "position_ctr": [0.1, 0.06, 0.03],
        "cvr": {"mean": 0.08, "sd_log": 0.5},
        "pcvr_noise": 0.25,
        "bid_noise": 0.2,
        "reserve_cpc": 0.1,
        "shocks": [{"day": 1, "step": 2, "competitor_cpc_multiplier": 1.5}],
    },
}


def small_data(**changes: Any) -> dict[str, Any]:
    """A copy of ``SMALL`` with dotted-path changes, e.g. ``campaign__daily_budget=1e9``."""
    data = copy.deepcopy(SMALL)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    return data
