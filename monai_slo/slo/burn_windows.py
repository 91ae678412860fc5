"""Multi-window multi-burn-rate alert rows: data in ``burn_windows.yaml``, math here.

The factors in the data are for ``base_window`` (30 days). For an SLO window ``W`` a row keeps
its windows (the daemon exposes exactly those) and its factor becomes ``factor * W / base``:
a burn rate ``r`` sustained over ``long`` spends ``r * long / W`` of the budget, so scaling the
factor with ``W`` keeps the budget share that fires the row constant (14.4x over 1h spends
2 % of a 30-day budget; 3.36x over 1h spends 2 % of a 7-day budget). Rows whose long window
is longer than ``W`` are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monai_slo.durations import Duration, format_duration
from monai_slo.slo.availability import ALERT_WINDOWS

Severity = Literal["page", "ticket"]


class BurnRow(BaseModel):
    """One row of the table: fire at ``severity`` when both windows burn faster than factor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    severity: Severity
    long: Duration
    short: Duration
    factor: float = Field(gt=0)

    @field_validator("long", "short")
    @classmethod
    def _a_window_the_daemon_exposes(cls, value: float) -> float:
        if value not in ALERT_WINDOWS:
            raise ValueError(
                "expected a window the daemon exposes: "
                + ", ".join(format_duration(w) for w in ALERT_WINDOWS)
                + f"; got {format_duration(value)}"
            )
        return value

    @model_validator(mode="after")
    def _short_below_long(self) -> Self:
        if self.short >= self.long:
            raise ValueError(
                f"short ({format_duration(self.short)}) must be shorter than long "
                f"({format_duration(self.long)})"
            )
        return self


class BurnWindows(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_window: Duration
    rows: tuple[BurnRow, ...] = Field(min_length=1)

    def budget_share(self, row: BurnRow) -> float:
        """Share of the SLO window's budget spent when ``row`` just fires (0.02 for 14.4x/1h)."""
        return row.factor * row.long / self.base_window

    def for_window(self, slo_window: float) -> list[ScaledRow]:
        """The rows that apply to an SLO window, their factors scaled to it."""
        return [
            ScaledRow(row, row.factor * slo_window / self.base_window, self.budget_share(row))
            for row in self.rows
            if row.long <= slo_window
        ]


@dataclass(frozen=True, slots=True)
class ScaledRow:
    row: BurnRow
    factor: float
    """Burn-rate threshold for this SLO window."""
    budget_share: float
    """Share of the budget spent over the long window when the row fires."""


def max_burn_rate(objective_percent: float) -> float:
    """The burn rate of a total outage: a threshold at or above it can never be exceeded."""
    return 1 / (1 - objective_percent / 100)


def load_burn_windows(text: str | None = None) -> BurnWindows:
    """The shipped table (``burn_windows.yaml``), or ``text`` in the same shape."""
    if text is None:
        text = resources.files("monai_slo.slo").joinpath("burn_windows.yaml").read_text("utf-8")
    return BurnWindows.model_validate(yaml.safe_load(text))
