"""``monai-slo tiers``: the spec's operating-environment tiers and the downtime each allows,
as a table for people or data for scripts. Plain text: printing the tiers imports no rich,
no config model and no history."""

from __future__ import annotations

from typing import Any

from monai_slo.commands import text_table
from monai_slo.commands.text_table import Column
from monai_slo.durations import format_duration
from monai_slo.tiers import MONTH_SECONDS, TIERS, YEAR_SECONDS, allowed_downtime

_COLUMNS = (
    "TIER",
    "ENVIRONMENT",
    "SPEC AVAILABILITY",
    "OBJECTIVE",
    "DOWNTIME / YEAR",
    "DOWNTIME / 30 DAYS",
)
CAPTION = (
    "cloud is a location (location: cloud, provider: ...), not a tier; its tier decides the target"
)


def tiers_text(width: int) -> str:
    rows = []
    for tier in TIERS.values():
        if tier.best_effort:
            objective, year, month = "best effort (none)", "—", "—"
        else:
            assert tier.default_objective is not None and tier.min_objective is not None
            assert tier.max_objective is not None
            objective = (
                f"{tier.default_objective:g}% default, "
                f"[{tier.min_objective:g}, {tier.max_objective:g}]"
            )
            year = _downtime_range(tier.min_objective, tier.max_objective, YEAR_SECONDS)
            month = _downtime_range(tier.min_objective, tier.max_objective, MONTH_SECONDS)
        rows.append([tier.name, tier.title, tier.spec_availability, objective, year, month])
    return text_table.render(
        "MONAI Deploy operating-environment tiers",
        [Column(name, fold=name != "TIER") for name in _COLUMNS],
        rows,
        width=width,
        caption=CAPTION,
    )


def _downtime_range(low: float, high: float, period: float) -> str:
    most = format_duration(allowed_downtime(low, period))
    least = format_duration(allowed_downtime(high, period))
    return f"{most} at {low:g}% … {least} at {high:g}%"


def tiers_rows() -> list[dict[str, Any]]:
    """The tier table as data, with allowed downtime in seconds at each bound."""
    rows = []
    for tier in TIERS.values():
        bounds = [] if tier.best_effort else [tier.min_objective, tier.max_objective]
        rows.append(
            {
                "tier": tier.name,
                "environment": tier.title,
                "spec_availability": tier.spec_availability,
                "best_effort": tier.best_effort,
                "default_objective_percent": tier.default_objective,
                "min_objective_percent": tier.min_objective,
                "max_objective_percent": tier.max_objective,
                "allowed_downtime_seconds": {
                    f"{bound:g}": {
                        "year": allowed_downtime(bound, YEAR_SECONDS),
                        "30d": allowed_downtime(bound, MONTH_SECONDS),
                    }
                    for bound in bounds
                    if bound is not None
                },
            }
        )
    return rows
