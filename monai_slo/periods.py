"""Calendar SLO windows: the error budget of a calendar week, month or quarter, reset at the
period's first midnight in the environment's time zone (as SLA contracts and OpenSLO's
``calendar`` time windows define it), instead of a window rolling with now.

Pure math over epoch seconds; the zone rules come from :mod:`zoneinfo` (the system's zone
files, or the ``tzdata`` wheel where the system has none), so a period that spans a daylight
saving change is an hour shorter or longer than its days times 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CalendarUnit = Literal["calendar_week", "calendar_month", "calendar_quarter"]
CALENDAR_UNITS: tuple[CalendarUnit, ...] = get_args(CalendarUnit)

DAY = 86400.0
# What a calendar window stands for where a length is needed (the burn-rate rows' scaling,
# the alert rules, the coarse-interval warning): its usual length.
NOMINAL_SECONDS: dict[CalendarUnit, float] = {
    "calendar_week": 7 * DAY,
    "calendar_month": 30 * DAY,
    "calendar_quarter": 91 * DAY,
}
# The longest a period can be (31-day month, 92-day quarter), plus a day for zone changes:
# how far back history must reach.
LONGEST_SECONDS: dict[CalendarUnit, float] = {
    "calendar_week": 8 * DAY,
    "calendar_month": 32 * DAY,
    "calendar_quarter": 93 * DAY,
}


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/Berlin``, ``UTC``); ValueError naming it if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"expected an IANA time zone such as UTC or Europe/Berlin; got {name!r}"
        ) from exc


@dataclass(frozen=True, slots=True)
class CalendarWindow:
    """A calendar SLO window: weeks start on Monday (ISO 8601), quarters in January, April,
    July and October; every period starts at midnight in ``timezone``."""

    unit: CalendarUnit
    timezone: str = "UTC"

    @property
    def label(self) -> str:
        """The ``window`` label value of its series: the unit's name (``calendar_month``)."""
        return self.unit

    @property
    def nominal(self) -> float:
        return NOMINAL_SECONDS[self.unit]

    @property
    def longest(self) -> float:
        return LONGEST_SECONDS[self.unit]

    def period(self, at: float) -> tuple[float, float]:
        """[start, end) of the period holding the instant ``at``, in epoch seconds."""
        tz = zone(self.timezone)  # ZoneInfo keeps each zone it loaded: no file read per call
        local = datetime.fromtimestamp(at, tz).date()
        first = self._first_day(local)
        after = self._first_day(self._next(first))
        return _midnight(first, tz), _midnight(after, tz)

    def _first_day(self, day: date) -> date:
        if self.unit == "calendar_week":
            return day - timedelta(days=day.weekday())
        if self.unit == "calendar_month":
            return day.replace(day=1)
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)

    def _next(self, first: date) -> date:
        if self.unit == "calendar_week":
            return first + timedelta(days=7)
        months = 1 if self.unit == "calendar_month" else 3
        index = first.month - 1 + months
        return date(first.year + index // 12, index % 12 + 1, 1)


def _midnight(day: date, tz: ZoneInfo) -> float:
    """The first instant of ``day`` in ``tz``: midnight, or the zone's first valid time when a
    daylight-saving change skips midnight."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
