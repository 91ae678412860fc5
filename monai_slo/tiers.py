"""The operating-environment tiers of the MONAI Deploy spec, as data.

Source: the MONAI Deploy Operating Environments spec, section Environment Details (one
subsection per tier). Objectives are percentages.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class TierName(StrEnum):
    DESKTOP = "desktop"
    WORKSTATION = "workstation"
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class Tier:
    name: TierName
    title: str
    spec_availability: str
    """The spec's own words for the tier's availability."""
    default_objective: float | None
    """Percent; None for best-effort tiers, which have no objective."""
    min_objective: float | None
    max_objective: float | None
    gpu_required: bool
    kubernetes: bool

    @property
    def best_effort(self) -> bool:
        return self.default_objective is None


TIERS: dict[TierName, Tier] = {
    tier.name: tier
    for tier in (
        Tier(
            TierName.DESKTOP,
            "Desktop/Laptop",
            "none (single user)",
            None,
            None,
            None,
            gpu_required=False,
            kubernetes=False,
        ),
        Tier(
            TierName.WORKSTATION,
            "Workstation",
            "best effort",
            None,
            None,
            None,
            gpu_required=True,
            kubernetes=False,
        ),
        Tier(
            TierName.DEVELOPMENT,
            "Development/Integration Server",
            "best effort",
            None,
            None,
            None,
            gpu_required=True,
            kubernetes=False,
        ),
        Tier(
            TierName.STAGING,
            "Staging Server",
            "98% (~a week of unplanned downtime per year)",
            98.0,
            98.0,
            99.999,
            gpu_required=True,
            kubernetes=True,
        ),
        Tier(
            TierName.PRODUCTION,
            "Production Server",
            "highly available, 99% to 99.999%",
            99.9,
            99.0,
            99.999,
            gpu_required=True,
            kubernetes=True,
        ),
    )
}

YEAR_SECONDS = 365 * 86400
MONTH_SECONDS = 30 * 86400


def allowed_downtime(objective_percent: float, period_seconds: float) -> float:
    """Seconds of unplanned downtime an objective allows over a period."""
    return (1 - objective_percent / 100) * period_seconds


def percent_to_ratio(percent: float) -> float:
    """99.9 -> 0.999 exactly as written (not 0.9990000000000001): a ratio people read on
    /metrics and in rules, and compare with the percent they configured."""
    return float(Decimal(repr(percent)) / 100)
