"""Planned maintenance: recurring (cron + duration + time zone) or one-off windows.

Time inside a window leaves the SLI (numerator and denominator): the spec counts *unplanned*
downtime. Checks still run and their results are still recorded and shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from monai_slo.durations import Duration

# A recurring schedule firing more often than this is a mistake, not maintenance.
MAX_OCCURRENCES_PER_DAY = 96


class MaintenanceSpec(BaseModel):
    """A config window: ``schedule`` + ``duration`` (+ ``timezone``), or ``start`` + ``end``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: str | None = None
    duration: Duration | None = None
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    reason: str = ""

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from croniter import croniter  # only configs with a cron window pay its import

        if not croniter.is_valid(value):
            raise ValueError(f"expected a cron expression such as '0 2 * * SUN'; got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"expected an IANA time zone such as Europe/Berlin; got {value!r}"
            ) from exc
        return value

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        recurring = self.schedule is not None or self.duration is not None
        one_off = self.start is not None or self.end is not None
        if recurring == one_off:
            raise ValueError("expected either schedule + duration, or start + end")
        if recurring and (self.schedule is None or self.duration is None):
            raise ValueError("a recurring window needs both schedule and duration")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both start and end")
            if self._aware(self.end) <= self._aware(self.start):
                raise ValueError("end must be after start")
        return self

    def _aware(self, moment: datetime) -> datetime:
        return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(self.timezone))

    def windows(self, since: float, until: float) -> list[Window]:
        """Occurrences overlapping [since, until]."""
        if self.start is not None and self.end is not None:
            start, end = self._aware(self.start).timestamp(), self._aware(self.end).timestamp()
            return [Window(start, end, self.reason)] if start < until and end > since else []
        assert self.schedule is not None and self.duration is not None
        zone = ZoneInfo(self.timezone)
        first = datetime.fromtimestamp(since - self.duration, zone)
        from croniter import croniter

        occurrences = croniter(self.schedule, first)
        found = []
        limit = int(MAX_OCCURRENCES_PER_DAY * (until - since + self.duration) / 86400) + 2
        for _ in range(limit):
            start = occurrences.get_next(datetime).timestamp()
            if start >= until:
                break
            if start + self.duration > since:
                found.append(Window(start, start + self.duration, self.reason))
        return found


@dataclass(frozen=True, slots=True)
class Window:
    start: float
    end: float
    reason: str
    id: int | None = None
    """Set for windows started from the CLI (stored in the history database)."""

    def active(self, now: float) -> bool:
        return self.start <= now < self.end


def merge(windows: Iterable[Window]) -> list[tuple[float, float]]:
    """Union of windows as sorted, non-overlapping intervals (so overlaps are not counted twice)."""
    merged: list[tuple[float, float]] = []
    for window in sorted(windows, key=lambda w: w.start):
        if merged and window.start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], window.end))
        else:
            merged.append((window.start, window.end))
    return merged


def config_windows(specs: Sequence[MaintenanceSpec], since: float, until: float) -> list[Window]:
    return [window for spec in specs for window in spec.windows(since, until)]


def utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_start(text: str | None, now: float) -> float:
    """CLI --start: ISO 8601 (a zone, else local time), or now."""
    if not text:
        return now
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()
