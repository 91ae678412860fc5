"""The availability report for a period: per service objective, achieved availability, downtime
split into unplanned and maintenance, error budget consumed, outages and daily figures.

Everything comes from the history store and the SLO math, so the report agrees with
``monai-slo status`` and /metrics. Rendering lives in :mod:`monai_slo.outputs.report_html`.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path

from monai_slo.config.maintenance import Window, merge
from monai_slo.config.model import Config, Environment, Service
from monai_slo.history.evaluation import maintenance_windows, service_spans
from monai_slo.history.rollup import service_rollups
from monai_slo.history.store import (
    DayRollup,
    HistoryStore,
    IncidentRow,
    MaintenanceRow,
    ReasonMark,
)
from monai_slo.periods import zone
from monai_slo.slo.availability import (
    Segment,
    Span,
    State,
    WindowStats,
    window_stats,
)
from monai_slo.slo.latency import LatencyStats, latency_budget_remaining, latency_stats
from monai_slo.tiers import percent_to_ratio

DAY = 86400.0
# A day that missed its objective by no more than this many daily budgets is "degraded", not "bad".
DEGRADED_BUDGETS = 10
# Best-effort services have no objective; a day with some downtime but at least this is "degraded".
BEST_EFFORT_DEGRADED = 0.95


# An incident opened this soon after an outage ended is listed beside it: operators often
# write one up once the service is back.
INCIDENT_SLACK = 3600.0

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")

Interval = tuple[float, float]


# -- the period ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end), whole days in ``zone`` (UTC unless :meth:`in_zone` moved it)."""

    start: float
    end: float
    label: str
    """As given: ``2026-11`` or ``2026-11-05..2026-11-20``; used in the default file name."""
    title: str
    """For people: ``November 2026`` or ``5 Nov 2026 to 20 Nov 2026``."""
    first: date | None = None
    after: date | None = None
    """The first day and the day after the last."""
    zone: str = "UTC"

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def in_zone(self, name: str) -> Period:
        """The same days from midnight to midnight in the IANA zone ``name`` (a calendar
        window's zone: an SLA month in Berlin starts at Berlin's midnight)."""
        if name == self.zone or self.first is None or self.after is None:
            return self
        tz = zone(name)
        return replace(
            self,
            start=_midnight(self.first, tz),
            end=_midnight(self.after, tz),
            zone=name,
        )

    def day_starts(self) -> list[float]:
        """Each day's first instant in ``zone``, and the period's end: 23 or 25 hours apart
        across a daylight-saving change."""
        if self.first is None or self.after is None:
            count = round(self.seconds / DAY)
            return [self.start + index * DAY for index in range(count)] + [self.end]
        tz = zone(self.zone)
        count = (self.after - self.first).days
        return [_midnight(self.first + timedelta(days=i), tz) for i in range(count)] + [self.end]


def parse_period(text: str) -> Period:
    """``2026-11`` (a calendar month in UTC) or ``2026-11-05..2026-11-20`` (UTC days, both
    included). Raises ValueError saying what was expected."""
    text = text.strip()
    expected = "expected a month such as 2026-11 or a day range such as 2026-11-05..2026-11-20"
    month = _MONTH.match(text)
    if month:
        year, number = int(month.group(1)), int(month.group(2))
        if not 1 <= number <= 12:
            raise ValueError(f"{expected}; got {text!r} (no month {number})")
        first = date(year, number, 1)
        after = first + timedelta(days=calendar.monthrange(year, number)[1])
        return Period(
            _midnight(first), _midnight(after), text, first.strftime("%B %Y"), first, after
        )
    span = _RANGE.match(text)
    if span:
        try:
            first, last = date.fromisoformat(span.group(1)), date.fromisoformat(span.group(2))
        except ValueError as exc:
            raise ValueError(f"{expected}; got {text!r} ({exc})") from exc
        if last < first:
            raise ValueError(f"{expected}; got {text!r} (the last day is before the first)")
        title = f"{first:%-d %b %Y} to {last:%-d %b %Y}"
        after = last + timedelta(days=1)
        return Period(_midnight(first), _midnight(after), text, title, first, after)
    raise ValueError(f"{expected}; got {text!r}")


def _midnight(day: date, tz: tzinfo = UTC) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def utc_day_start(at: float) -> float:
    return at - at % DAY


# -- per-day figures (shared with the status page) -------------------------------------------


@dataclass(frozen=True, slots=True)
class DayStats:
    start: float
    end: float
    """Midnight the next day, or earlier for a day still in progress."""
    stats: WindowStats
    """Maintenance time removed."""
    maintenance: float
    """Seconds of planned maintenance that day."""
    zone: str = "UTC"
    """Where the day runs from midnight to midnight."""

    @property
    def day(self) -> str:
        tz = UTC if self.zone == "UTC" else zone(self.zone)
        return datetime.fromtimestamp(self.start, tz).strftime("%Y-%m-%d")


def daily_stats(
    spans: Sequence[Span],
    excluded: Sequence[Interval],
    start: float,
    end: float,
    *,
    starts: Sequence[float] | None = None,
    zone_name: str = "UTC",
) -> list[DayStats]:
    """Figures per UTC day from ``start`` (a midnight) to ``end`` (the last day is cut there),
    or per day of ``starts`` (each day's first instant in ``zone_name``, from
    :meth:`Period.day_starts`).

    ``spans`` are a service timeline (sorted, non-overlapping) and ``excluded`` merged
    maintenance; each day looks only at the spans that reach into it, so 90 days of a
    flapping service cost one pass, not 90.
    """
    ends = [span.end for span in spans]
    days = []
    bounds = iter(starts[1:]) if starts else None
    lo = starts[0] if starts else start
    while lo < end:
        hi = min(next(bounds, end) if bounds is not None else lo + DAY, end)
        first = bisect_right(ends, lo)
        last = first
        while last < len(spans) and spans[last].start < hi:
            last += 1
        inside = [(max(a, lo), min(b, hi)) for a, b in excluded if a < hi and b > lo]
        stats = window_stats(spans[first:last], hi, hi - lo, inside)
        days.append(DayStats(lo, hi, stats, sum(b - a for a, b in inside), zone_name))
        lo = hi if bounds is not None else lo + DAY
    return days


def day_class(day: DayStats, objective_ratio: float | None) -> str:
    """``ok``, ``degraded``, ``bad``, ``nodata`` or ``maintenance``: the colour of a day's bar.

    ok: met the objective (best effort: no downtime); degraded: missed it by at most ten
    daily budgets (best effort: at least 95 %); bad: worse.
    """
    stats = day.stats
    availability = stats.availability
    if availability is None:
        return "maintenance" if stats.no_data == 0 and day.maintenance > 0 else "nodata"
    if objective_ratio is None:
        if stats.down == 0:
            return "ok"
        return "degraded" if availability >= BEST_EFFORT_DEGRADED else "bad"
    if availability >= objective_ratio:
        return "ok"
    if availability >= 1 - DEGRADED_BUDGETS * (1 - objective_ratio):
        return "degraded"
    return "bad"


# -- the report model -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckDown:
    """A check that was down during an outage."""

    name: str
    down: float
    """Seconds this check was down within the outage."""
    reason: str | None
    """Its first failure reason in this outage (for history recorded before reasons were
    kept per segment: its last failure, when that falls in this outage)."""
    detail: str
    reasons: tuple[ReasonMark, ...] = ()
    """Every reason it failed for within this outage, in order, each from when it began
    (the first one from the outage's start at the latest)."""


@dataclass(frozen=True, slots=True)
class Outage:
    start: float
    end: float
    in_maintenance: float
    """Seconds of the outage inside planned maintenance."""
    ongoing: bool
    checks: tuple[CheckDown, ...]
    incidents: tuple[IncidentRow, ...] = ()
    """Operators' incidents on the service open at some time during the outage."""

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def unplanned(self) -> float:
        return self.duration - self.in_maintenance


@dataclass(frozen=True, slots=True)
class LatencyPeriod:
    """One check's latency objective over the report's period (maintenance excluded)."""

    check: str
    threshold: float
    objective_ratio: float
    stats: LatencyStats

    @property
    def budget_consumed(self) -> float | None:
        """Slow runs / allowed slow runs; above 1 when overspent."""
        remaining = latency_budget_remaining(self.stats, self.objective_ratio)
        return None if remaining is None else 1 - remaining

    @property
    def met(self) -> bool | None:
        """None when no run was timed."""
        ratio = self.stats.ratio
        return None if ratio is None else ratio >= self.objective_ratio


@dataclass(frozen=True, slots=True)
class ServicePeriod:
    service: Service
    stats: WindowStats
    """Over [period start, until), maintenance excluded: ``down`` is unplanned downtime."""
    maintenance_down: float
    """Seconds down inside maintenance windows."""
    maintenance: float
    """Seconds of maintenance in [period start, until)."""
    allowed_downtime: float | None
    """Unplanned downtime the objective allows over the whole period less maintenance."""
    spans: tuple[Span, ...]
    excluded: tuple[Interval, ...]
    windows: tuple[Window, ...]
    outages: tuple[Outage, ...]
    days: tuple[DayStats, ...]
    latency: tuple[LatencyPeriod, ...] = ()
    incidents: tuple[IncidentRow, ...] = ()
    """Operators' incidents on the service open at some time in the period."""
    audit: tuple[MaintenanceRow, ...] = ()
    """The stored (CLI) windows among ``windows``: who started and ended them, and when."""
    archived_until: float | None = None
    """Days before this come from the daily rollups (older than the full-resolution
    history): their figures are in ``stats`` and ``days``, but not their outages or spans."""
    rollups: tuple[DayRollup, ...] = ()
    """The service's rolled-up days in the period."""
    check_reasons: tuple[tuple[str, dict[str, int]], ...] = ()
    """Per check, how often it began failing for each reason on the rolled-up days."""

    @property
    def archived_outages(self) -> int:
        return sum(day.outages for day in self.rollups)

    @property
    def objective_ratio(self) -> float | None:
        objective = self.service.objective
        return None if objective is None else percent_to_ratio(objective)

    @property
    def availability(self) -> float | None:
        return self.stats.availability

    @property
    def unplanned_down(self) -> float:
        return self.stats.down

    @property
    def budget_consumed(self) -> float | None:
        """Unplanned downtime / allowed downtime; above 1 when overspent."""
        if self.allowed_downtime is None:
            return None
        if self.allowed_downtime <= 0:
            return 0.0 if self.unplanned_down == 0 else float("inf")
        return self.unplanned_down / self.allowed_downtime

    @property
    def met(self) -> bool | None:
        """None for best effort or when nothing was measured."""
        objective, availability = self.objective_ratio, self.availability
        if objective is None or availability is None:
            return None
        return availability >= objective


@dataclass(frozen=True, slots=True)
class EnvironmentPeriod:
    environment: Environment
    services: tuple[ServicePeriod, ...]
    period: Period | None = None
    """Its own period: the report's days in its calendar window's zone (None: the report's)."""
    until: float | None = None


@dataclass(frozen=True, slots=True)
class AvailabilityReport:
    period: Period
    until: float
    """min(period end, now): the report covers [period start, until)."""
    generated: float
    source: str
    retention: float
    environments: tuple[EnvironmentPeriod, ...]
    archive_retention: float = 0.0
    archived_until: float | None = None
    """Days of the period before this come from the daily rollups (None: none do)."""

    @property
    def in_progress(self) -> bool:
        return self.until < self.period.end


def build_report(
    config: Config, store: HistoryStore, period: Period, now: float
) -> AvailabilityReport:
    until = max(period.start, min(period.end, now))
    # A day earlier: a period in a zone east of UTC starts before the UTC one.
    stored = store.maintenance(period.start - DAY)
    incidents = store.incidents(period.start - DAY)
    rolled = store.rolled_until()
    # Whole UTC days before the first one not rolled up come from the rollups.
    archive_end = None if rolled is None else float(rolled * DAY)
    environments = []
    archived_until = None
    for environment in config.environments:
        own = period
        if environment.calendar is not None:
            zoned = period.in_zone(environment.calendar.timezone)
            # Rolled-up days are UTC days: a period reaching them stays in UTC.
            if archive_end is None or zoned.start >= archive_end:
                own = zoned
        own_until = max(own.start, min(own.end, now))
        split = own.start if archive_end is None else max(own.start, min(own_until, archive_end))
        if split > own.start:
            archived_until = max(archived_until or split, split)
        services = tuple(
            service_period(service, store, own, own_until, stored, incidents=incidents, split=split)
            for service in environment.services
        )
        environments.append(EnvironmentPeriod(environment, services, own, own_until))
    return AvailabilityReport(
        period,
        until,
        now,
        config.source,
        config.retention,
        tuple(environments),
        config.archive_retention,
        archived_until,
    )


def service_period(
    service: Service,
    store: HistoryStore,
    period: Period,
    until: float,
    stored_maintenance: Sequence[MaintenanceRow],
    *,
    incidents: Sequence[IncidentRow] = (),
    split: float | None = None,
) -> ServicePeriod:
    """The service over the period: from ``split`` on from full-resolution history, before it
    (whole UTC days older than the retention) from the daily rollups."""
    start = period.start if split is None else split
    windows = maintenance_windows(service, stored_maintenance, period.start, period.end)
    ids_in_use = {window.id for window in windows if window.id is not None}
    audit = tuple(row for row in stored_maintenance if row.id in ids_in_use)
    own_incidents = tuple(
        incident
        for incident in incidents
        if (incident.environment, incident.service) == service.key
        and incident.overlaps(period.start, period.end)
    )
    excluded = merge(windows)
    ids, per_check, spans = service_spans(store, service, start, until)
    stats = window_stats(spans, until, until - start, excluded)
    maintenance = _overlap(start, until, excluded)
    objective = service.objective
    allowed = None
    if objective is not None:
        planned_in_period = _overlap(period.start, period.end, excluded)
        allowed = (1 - objective / 100) * (period.seconds - planned_in_period)
    outages = []
    maintenance_down = 0.0
    marks = store.reasons([i for i in ids if i is not None], start, until)
    checks = [
        _DownSegments(
            ref.config.name, check_id, segments, marks.get(check_id, []) if check_id else []
        )
        for ref, check_id, segments in zip(service.checks, ids, per_check, strict=True)
    ]
    for span in spans:
        if span.state is not State.DOWN:
            continue
        planned = _overlap(span.start, span.end, excluded)
        maintenance_down += planned
        ongoing = span.end >= until and until < period.end
        down = _checks_down(store, checks, span)
        explained = tuple(
            i for i in own_incidents if i.overlaps(span.start, span.end + INCIDENT_SLACK)
        )
        outages.append(Outage(span.start, span.end, planned, ongoing, down, explained))
    result = ServicePeriod(
        service,
        stats,
        maintenance_down,
        maintenance,
        allowed,
        tuple(spans),
        tuple(excluded),
        tuple(windows),
        tuple(outages),
        tuple(
            daily_stats(
                spans,
                excluded,
                start,
                until,
                starts=[t for t in period.day_starts() if t >= start],
                zone_name=period.zone,
            )
        ),
        tuple(
            LatencyPeriod(
                ref.config.name,
                ref.config.latency.threshold,
                percent_to_ratio(ref.config.latency.objective),
                latency_stats(
                    store.latency_counts(check_id, start) if check_id is not None else {},
                    until,
                    until - start,
                    excluded,
                ),
            )
            for ref, check_id in zip(service.checks, ids, strict=True)
            if ref.config.latency is not None
        ),
        own_incidents,
        audit,
    )
    if start <= period.start:
        return result
    return _with_rollups(result, store, ids, period.start, start)


def _with_rollups(
    result: ServicePeriod,
    store: HistoryStore,
    ids: Sequence[int | None],
    start: float,
    split: float,
) -> ServicePeriod:
    """``result`` (from ``split`` on) with the rolled-up days in [start, split) added: their
    seconds in the totals, one DayStats each (a day without a rollup row had no data)."""
    service = result.service
    rollups = service_rollups(store, service, start, split)
    by_day = {row.day: row for row in rollups}
    days = []
    for day in range(int(start // DAY), int(split // DAY)):
        row = by_day.get(day)
        lo = float(day * DAY)
        if row is None:
            days.append(DayStats(lo, lo + DAY, WindowStats(DAY, 0.0, 0.0, DAY), 0.0))
        else:
            stats = WindowStats(DAY, row.up, row.down, row.no_data)
            days.append(DayStats(lo, lo + DAY, stats, row.maintenance))
    known = [i for i in ids if i is not None]
    per_check = store.check_reasons(known, int(start // DAY), int(split // DAY))
    check_reasons = tuple(
        (ref.config.name, dict(sorted(per_check[check_id].items())))
        for ref, check_id in zip(service.checks, ids, strict=True)
        if check_id is not None and per_check.get(check_id)
    )
    archived = WindowStats(
        split - start,
        sum(d.stats.up for d in days),
        sum(d.stats.down for d in days),
        sum(d.stats.no_data for d in days),
    )
    stats = result.stats
    return replace(
        result,
        stats=WindowStats(
            stats.window + archived.window,
            stats.up + archived.up,
            stats.down + archived.down,
            stats.no_data + archived.no_data,
        ),
        maintenance_down=result.maintenance_down + sum(r.maintenance_down for r in rollups),
        maintenance=result.maintenance + sum(d.maintenance for d in days),
        days=(*days, *result.days),
        archived_until=split,
        rollups=tuple(rollups),
        check_reasons=check_reasons,
    )


class _DownSegments:
    """One check's down segments and why it failed in them, searchable by time (a flapping
    month has thousands)."""

    def __init__(
        self,
        name: str,
        check_id: int | None,
        segments: Sequence[Segment],
        marks: Sequence[ReasonMark] = (),
    ) -> None:
        self.name = name
        self.check_id = check_id
        self.down = [seg for seg in segments if not seg.up]
        self.ends = [seg.end for seg in self.down]
        self.marks = list(marks)
        self.mark_times = [mark.at for mark in self.marks]

    def reasons(self, start: float, end: float) -> tuple[ReasonMark, ...]:
        """The reasons in force within [start, end], in order, a repeated one only once in
        a row: for each down segment there, the mark in force where it enters the range and
        the marks after that."""
        found: list[ReasonMark] = []
        index = bisect_right(self.ends, start)
        while index < len(self.down) and self.down[index].start < end:
            seg = self.down[index]
            index += 1
            lo, hi = max(seg.start, start), min(seg.end, end)
            first = bisect_right(self.mark_times, lo) - 1
            if first < 0 or self.marks[first].at < seg.start:
                first += 1  # no mark in force at lo within this segment: the next one, if any
            position = max(first, 0)
            while position < len(self.marks) and self.marks[position].at <= hi:
                mark = self.marks[position]
                position += 1
                if mark.at < seg.start:
                    continue
                if not found or found[-1].reason != mark.reason:
                    found.append(mark)
        return tuple(found)

    def within(self, start: float, end: float) -> float:
        total = 0.0
        index = bisect_right(self.ends, start)
        while index < len(self.down) and self.down[index].start < end:
            seg = self.down[index]
            total += max(0.0, min(seg.end, end) - max(seg.start, start))
            index += 1
        return total


def _checks_down(
    store: HistoryStore, checks: Sequence[_DownSegments], span: Span
) -> tuple[CheckDown, ...]:
    found = []
    for check in checks:
        down = check.within(span.start, span.end)
        if down <= 0 or check.check_id is None:
            continue
        reasons = check.reasons(span.start, span.end)
        if reasons:
            found.append(CheckDown(check.name, down, reasons[0].reason, reasons[0].detail, reasons))
            continue
        # Recorded before reasons were kept per segment: the last result may still say why.
        last = store.last_result(check.check_id)
        reason, detail = None, ""
        if last is not None and not last.success and span.start <= last.timestamp <= span.end:
            reason, detail = (str(last.reason) if last.reason else None), last.detail
        found.append(CheckDown(check.name, down, reason, detail))
    return tuple(found)


def _overlap(a: float, b: float, intervals: Sequence[Interval]) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for start, end in intervals)


# -- the CLI verb ---------------------------------------------------------------------------


def default_output(period: Period, extension: str = "html") -> Path:
    return Path(f"monai-slo-report-{period.label}.{extension}")


def period_from_spans(
    service: Service,
    period: Period,
    until: float,
    spans: Sequence[Span],
    windows: Sequence[Window],
) -> ServicePeriod:
    """The service's figures from an already merged timeline (the fleet SLI an engine
    recorded): the same stats, days and outages as :func:`service_period`, without the
    per-check detail, latency and incidents that only a prober's history holds."""
    excluded = merge(windows)
    stats = window_stats(spans, until, until - period.start, excluded)
    allowed = None
    if service.objective is not None:
        planned_in_period = _overlap(period.start, period.end, excluded)
        allowed = (1 - service.objective / 100) * (period.seconds - planned_in_period)
    outages = tuple(
        Outage(
            span.start,
            span.end,
            _overlap(span.start, span.end, excluded),
            span.end >= until and until < period.end,
            (),
        )
        for span in spans
        if span.state is State.DOWN
    )
    return ServicePeriod(
        service,
        stats,
        sum(outage.in_maintenance for outage in outages),
        _overlap(period.start, until, excluded),
        allowed,
        tuple(spans),
        tuple(excluded),
        tuple(windows),
        outages,
        tuple(daily_stats(spans, excluded, period.start, until)),
    )
