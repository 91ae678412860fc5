"""Where config, history and SLO math meet: one report per service, for /metrics and the CLI."""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monai_slo.config.maintenance import Window, config_windows, merge
from monai_slo.config.model import CheckRef, Config, Service
from monai_slo.durations import format_duration
from monai_slo.history.latency_seconds import FINE_KEEP
from monai_slo.history.store import HistoryStore, LastResult, MaintenanceRow, ReasonMark
from monai_slo.history.timeline import TimelineCache
from monai_slo.slo.availability import (
    ALERT_WINDOWS,
    Segment,
    Span,
    State,
    WindowStats,
    burn_rate,
    error_budget_remaining,
    period_budget_remaining,
    service_timeline,
    state_at,
    window_stats,
)
from monai_slo.slo.latency import (
    LatencyStats,
    latency_budget_remaining,
    latency_burn_rate,
    latency_stats,
)
from monai_slo.tiers import percent_to_ratio

# Past its timeout a run is recorded within the runner's grace; this much more is slack.
SETTLE_SLACK = 60.0


@dataclass(frozen=True, slots=True)
class CheckReport:
    ref: CheckRef
    last: LastResult | None
    state: State
    runs: int
    failures: int
    """Runs and failures over the service's SLO window (hour granularity)."""
    outage_reasons: tuple[ReasonMark, ...] = ()
    """While down: every reason it has failed for since it went down, oldest first."""


@dataclass(frozen=True, slots=True)
class WindowReport:
    label: str
    stats: WindowStats
    burn_rate: float | None
    period: tuple[float, float] | None = None
    """A calendar window's current period [start, end); ``stats`` cover its start to now."""

    @property
    def seconds(self) -> float:
        """The window's length: a calendar period's whole length."""
        return self.period[1] - self.period[0] if self.period else self.stats.window


@dataclass(frozen=True, slots=True)
class LatencyWindowReport:
    label: str
    stats: LatencyStats
    burn_rate: float | None


@dataclass(frozen=True, slots=True)
class LatencyReport:
    """One check's latency objective over the service's windows (its SLO window included)."""

    ref: CheckRef
    threshold: float
    objective_ratio: float
    windows: tuple[LatencyWindowReport, ...]
    slo_window: LatencyWindowReport
    budget_remaining: float | None


@dataclass(frozen=True, slots=True)
class ServiceReport:
    service: Service
    state: State
    windows: tuple[WindowReport, ...]
    slo_window: WindowReport
    budget_remaining: float | None
    checks: tuple[CheckReport, ...]
    """Empty when evaluated with ``checks=False`` (as /metrics does)."""
    maintenance: tuple[Window, ...] = ()
    """Windows (config and CLI) overlapping the longest window up to now."""
    maintenance_active: bool = False
    latency: tuple[LatencyReport, ...] = ()
    """One per check with a latency objective (also with ``checks=False``)."""

    @property
    def objective_ratio(self) -> float | None:
        objective = self.service.objective
        return None if objective is None else percent_to_ratio(objective)


def service_spans(
    store: HistoryStore, service: Service, start: float, end: float
) -> tuple[list[int | None], list[list[Segment]], list[Span]]:
    """Each check's stored id (None: never recorded), its segments over [start, end], and the
    service's merged timeline: the look-up, fetch and merge every reader of one service's
    history does (report, status page)."""
    ids = [store.known_id(ref.key) for ref in service.checks]
    found = store.segments([i for i in ids if i is not None], start, end)
    per_check = [found.get(i, []) if i is not None else [] for i in ids]
    return ids, per_check, service_timeline(per_check, start, end)


@functools.lru_cache(maxsize=1024)
def window_label(seconds: float) -> str:
    # The same few lengths for every service at every scrape (a calendar window's "so far"
    # varies, hence the bound).
    return format_duration(seconds)


def reach(service: Service) -> float:
    """How far back from now the service's windows read history."""
    return max(*ALERT_WINDOWS, service.history_span)


def evaluate(
    config: Config,
    store: HistoryStore,
    now: float,
    *,
    cache: TimelineCache | None = None,
    checks: bool = True,
) -> list[ServiceReport]:
    """One report per service. ``cache`` (kept by /metrics between scrapes) reuses the
    settled part of each timeline; ``checks=False`` leaves out the per-check reports and
    their run counts (one query per check), which /metrics does not use."""
    longest = max((*ALERT_WINDOWS, *config.windows()))
    stored = store.maintenance(now - longest)
    services = list(config.services())
    segments: dict[float, dict[int, list[Segment]]] = {}
    if cache is not None:
        cache.prefetch(store, now)
    else:
        # One query for every service reaching back as far (all of them, unless environments
        # keep different windows), instead of one per service: the same rows per check.
        ids_since: dict[float, list[int]] = {}
        for service in services:
            since = now - reach(service)
            known = (store.known_id(ref.key) for ref in service.checks)
            ids_since.setdefault(since, []).extend(i for i in known if i is not None)
        segments = {since: store.segments(ids, since, now) for since, ids in ids_since.items()}
    counts = _RunCounts(store, services) if checks else None
    return [
        evaluate_service(
            service,
            store,
            now,
            stored,
            cache=cache,
            checks=checks,
            fetched=segments.get(now - reach(service)),
            run_counts=counts,
        )
        for service in services
    ]


class _RunCounts:
    """Every check's run counts from an hour on, fetched for all checks at once on the first
    request for that hour (one query, not one per check; services share their SLO window)."""

    def __init__(self, store: HistoryStore, services: Sequence[Service]) -> None:
        self._store = store
        known = (store.known_id(ref.key) for service in services for ref in service.checks)
        self._ids = [i for i in known if i is not None]
        self._by_hour: dict[int, dict[int, tuple[int, int]]] = {}

    def __call__(self, check_id: int, since: float) -> tuple[int, int]:
        hour = int(since // 3600)
        counts = self._by_hour.get(hour)
        if counts is None:
            counts = self._by_hour[hour] = self._store.run_counts_many(self._ids, since)
        found = counts.get(check_id)
        return found if found is not None else self._store.run_counts(check_id, since)


def maintenance_windows(
    service: Service, stored: Sequence[MaintenanceRow], since: float, until: float
) -> list[Window]:
    """The service's windows from the config and from the CLI, overlapping [since, until]."""
    found = config_windows(service.maintenance, since, until)
    found += [
        Window(row.start, row.end, row.reason, row.id)
        for row in stored
        if row.covers(service.environment, service.name) and row.start < until and row.end > since
    ]
    return sorted(found, key=lambda w: w.start)


def evaluate_service(
    service: Service,
    store: HistoryStore,
    now: float,
    stored_maintenance: Sequence[MaintenanceRow] | None = None,
    *,
    cache: TimelineCache | None = None,
    checks: bool = True,
    fetched: dict[int, list[Segment]] | None = None,
    run_counts: Callable[[int, float], tuple[int, int]] | None = None,
) -> ServiceReport:
    """``fetched``: each check's segments over the longest window, already fetched (by
    :func:`evaluate`, for every service at once); read from ``store`` when not given. So are
    ``run_counts`` (by :func:`evaluate`, for every check at once)."""
    count_runs = store.run_counts if run_counts is None else run_counts
    calendar = service.calendar
    # A calendar window is its period so far; a rolling SLO window is one more length.
    period = calendar.period(now) if calendar is not None else None
    windows = sorted({*ALERT_WINDOWS, *(() if period else (service.window,))})
    slo_seconds = now - period[0] if period else service.window
    measured = (*windows, slo_seconds) if period else tuple(windows)
    longest = reach(service)
    if stored_maintenance is None:
        stored_maintenance = store.maintenance(now - longest)
    planned = maintenance_windows(service, stored_maintenance, now - longest, now)
    excluded = merge(planned)
    ids = [store.known_id(ref.key) for ref in service.checks]
    # "now" is the end of the half-open window, so the current state is an instant before it.
    if cache is None:
        segments_by_id = (
            fetched
            if fetched is not None
            else store.segments([i for i in ids if i is not None], now - longest, now)
        )
        per_check = [segments_by_id.get(i, []) if i is not None else [] for i in ids]
        spans = service_timeline(per_check, now - longest, now)
        # Spans are in order and disjoint: a window only needs those ending inside it (the
        # ones before add nothing), so the short windows do not pass over 30 days each.
        ends = [span.end for span in spans]
        all_stats = [
            window_stats(spans[bisect.bisect_right(ends, now - seconds) :], now, seconds, excluded)
            for seconds in measured
        ]
        current = state_at(spans, now - 1e-6)
    else:
        settle = max((ref.config.timeout for ref in service.checks), default=0.0) + SETTLE_SLACK
        timeline, per_check = cache.timeline(
            service.key, ids, store, now - longest, now, settle=settle
        )
        all_stats = [timeline.stats(now, seconds, excluded) for seconds in measured]
        current = timeline.state_at(now - 1e-6)
    objective = None if service.objective is None else percent_to_ratio(service.objective)
    reports = []
    for seconds, stats in zip(windows, all_stats, strict=False):
        rate = burn_rate(stats, objective) if objective is not None else None
        reports.append(WindowReport(window_label(seconds), stats, rate))
    slo_window, budget = _slo_window(
        service, reports, all_stats[-1], period, objective, stored_maintenance
    )
    check_reports = []
    if checks:
        for ref, check_id, segments in zip(service.checks, ids, per_check, strict=True):
            last = store.last_result(check_id) if check_id is not None else None
            check_state = _current_state(segments, now)
            runs, failures = (
                count_runs(check_id, now - slo_seconds) if check_id is not None else (0, 0)
            )
            reasons: tuple[ReasonMark, ...] = ()
            if check_state is State.DOWN and check_id is not None:
                down_since = segments[-1].start
                reasons = tuple(
                    mark
                    for mark in store.reasons([check_id], down_since, now).get(check_id, [])
                    if mark.at >= down_since
                )
            check_reports.append(CheckReport(ref, last, check_state, runs, failures, reasons))
    latency = tuple(
        latency_report(
            ref,
            store,
            check_id,
            now,
            windows=windows,
            slo_window=slo_seconds,
            excluded=excluded,
            slo_label=service.window_label,
        )
        for ref, check_id in zip(service.checks, ids, strict=True)
        if ref.config.latency is not None
    )
    return ServiceReport(
        service,
        current,
        tuple(reports),
        slo_window,
        budget,
        tuple(check_reports),
        tuple(planned),
        any(window.active(now) for window in planned),
        latency,
    )


def _slo_window(  # noqa: PLR0917 -- private helper, called with all six positionally
    service: Service,
    reports: list[WindowReport],
    slo_stats: WindowStats,
    period: tuple[float, float] | None,
    objective: float | None,
    stored_maintenance: Sequence[MaintenanceRow],
) -> tuple[WindowReport, float | None]:
    """The SLO window's report and the budget left over it. A calendar window's report is
    appended to ``reports`` (a rolling one is among them already)."""
    if period is None:
        slo_window = next(r for r in reports if r.stats.window == service.window)
        budget = (
            error_budget_remaining(slo_window.stats, objective) if objective is not None else None
        )
        return slo_window, budget
    slo_window = WindowReport(
        service.window_label,
        slo_stats,
        burn_rate(slo_stats, objective) if objective is not None else None,
        period,
    )
    reports.append(slo_window)
    if objective is None:
        return slo_window, None
    # The allowance is over the whole period, maintenance planned later in it included, so
    # the budget is known the moment the period starts.
    ahead = merge(maintenance_windows(service, stored_maintenance, period[0], period[1]))
    base = (period[1] - period[0]) - _overlap(period[0], period[1], ahead)
    return slo_window, period_budget_remaining(slo_stats, objective, base)


def latency_report(
    ref: CheckRef,
    store: HistoryStore,
    check_id: int | None,
    now: float,
    *,
    windows: Sequence[float],
    slo_window: float,
    excluded: Sequence[tuple[float, float]] = (),
    slo_label: str | None = None,
) -> LatencyReport:
    """The check's latency SLI, burn rate per window and budget left over ``slo_window``
    seconds (a calendar window: its period so far, labelled ``slo_label``), from the store's
    hourly counts and, for windows up to an hour, its runs per second."""
    latency = ref.config.latency
    assert latency is not None
    objective = percent_to_ratio(latency.objective)
    since = now - max(*windows, slo_window)
    hours = store.latency_counts(check_id, since) if check_id is not None else {}
    # The windows that fit in the last hour are counted exactly, per second.
    short = [w for w in (*windows, slo_window) if w <= FINE_KEEP]
    recent = (
        store.latency_by_second(check_id, now - max(short))
        if check_id is not None and short
        else None
    )
    reports = []
    for seconds in windows:
        stats = latency_stats(hours, now, seconds, excluded, recent)
        reports.append(
            LatencyWindowReport(window_label(seconds), stats, latency_burn_rate(stats, objective))
        )
    found = next((r for r in reports if r.stats.window == slo_window), None)
    if found is None or (slo_label is not None and found.label != slo_label):
        stats = latency_stats(hours, now, slo_window, excluded, recent)
        found = LatencyWindowReport(
            slo_label or window_label(slo_window), stats, latency_burn_rate(stats, objective)
        )
        reports.append(found)
    slo = found
    return LatencyReport(
        ref,
        latency.threshold,
        objective,
        tuple(reports),
        slo,
        latency_budget_remaining(slo.stats, objective),
    )


def _overlap(a: float, b: float, intervals: Sequence[tuple[float, float]]) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for start, end in intervals)


def _current_state(segments: list[Segment], now: float) -> State:
    """The store clips segments to now, so only the latest one reaching now is current."""
    if segments and segments[-1].end >= now:
        return State.UP if segments[-1].up else State.DOWN
    return State.NO_DATA
