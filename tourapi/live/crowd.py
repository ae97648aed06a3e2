"""Crowd levels from occupancy against capacity (the tiers of Chinese scenic-area rules)."""

from __future__ import annotations

LEVELS = ("comfortable", "busy", "crowded", "full")
# Lower bounds of each level as a share of capacity: busy from 80%, crowded from 90%, full from 100%.
THRESHOLDS = ((1.0, "full"), (0.9, "crowded"), (0.8, "busy"))


def crowd_level(occupancy: int, capacity: int) -> str:
    if capacity <= 0:
        return "full" if occupancy > 0 else "comfortable"
    ratio = occupancy / capacity
    for bound, level in THRESHOLDS:
        if ratio >= bound:
            return level
    return "comfortable"
