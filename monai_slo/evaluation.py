"""Where config, history and SLO math meet: one report per service, for /metrics and the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monai_slo.config import CheckRef, Config, Service
from monai_slo.durations import format_duration
from monai_slo.maintenance import Window, config_windows, merge
from monai_slo.slo import (
    Segment,
    State,
    WindowStats,
    burn_rate,
    error_budget_remaining,
    service_timeline,
    state_at,
    window_stats,
)
from monai_slo.store import HistoryStore, LastResult, MaintenanceRow

# The burn-rate alert windows (SRE workbook) plus the SLO window itself.
ALERT_WINDOWS: tuple[float, ...] = (300, 1800, 3600, 7200, 21600, 86400, 259200)


@dataclass(frozen=True, slots=True)
class CheckReport:
    ref: CheckRef
    last: LastResult | None
    state: State
    runs: int
    failures: int
    """Runs and failures over the service's SLO window (hour granularity)."""


@dataclass(frozen=True, slots=True)
class WindowReport:
    label: str
    stats: WindowStats
    burn_rate: float | None


@dataclass(frozen=True, slots=True)
class ServiceReport:
    service: Service
    state: State
    windows: tuple[WindowReport, ...]
    slo_window: WindowReport
    budget_remaining: float | None
    checks: tuple[CheckReport, ...]
    maintenance: tuple[Window, ...] = ()
    """Windows (config and CLI) overlapping the longest window up to now."""
    maintenance_active: bool = False

    @property
    def objective_ratio(self) -> float | None:
        objective = self.service.objective
        return None if objective is None else objective / 100


def window_label(seconds: float) -> str:
    return format_duration(seconds)


def evaluate(config: Config, store: HistoryStore, now: float) -> list[ServiceReport]:
    longest = max((*ALERT_WINDOWS, *config.windows()))
    stored = store.maintenance(now - longest)
    return [evaluate_service(service, store, now, stored) for service in config.services()]


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
) -> ServiceReport:
    windows = sorted({*ALERT_WINDOWS, service.window})
    longest = windows[-1]
    if stored_maintenance is None:
        stored_maintenance = store.maintenance(now - longest)
    planned = maintenance_windows(service, stored_maintenance, now - longest, now)
    excluded = merge(planned)
    ids = [store.known_id(ref.key) for ref in service.checks]
    segments_by_id = store.segments([i for i in ids if i is not None], now - longest, now)
    per_check = [segments_by_id.get(i, []) if i is not None else [] for i in ids]
    spans = service_timeline(per_check, now - longest, now)
    objective = None if service.objective is None else service.objective / 100
    reports = []
    for seconds in windows:
        stats = window_stats(spans, now, seconds, excluded)
        rate = burn_rate(stats, objective) if objective is not None else None
        reports.append(WindowReport(window_label(seconds), stats, rate))
    slo_window = next(r for r in reports if r.stats.window == service.window)
    budget = error_budget_remaining(slo_window.stats, objective) if objective is not None else None
    checks = []
    for ref, check_id, segments in zip(service.checks, ids, per_check, strict=True):
        last = store.last_result(check_id) if check_id is not None else None
        check_state = _current_state(segments, now)
        runs, failures = (
            store.run_counts(check_id, now - service.window) if check_id is not None else (0, 0)
        )
        checks.append(CheckReport(ref, last, check_state, runs, failures))
    # "now" is the end of the half-open window, so look an instant before it.
    current = state_at(spans, now - 1e-6)
    return ServiceReport(
        service,
        current,
        tuple(reports),
        slo_window,
        budget,
        tuple(checks),
        tuple(planned),
        any(window.active(now) for window in planned),
    )


def _current_state(segments: list[Segment], now: float) -> State:
    """The store clips segments to now, so only the latest one reaching now is current."""
    if segments and segments[-1].end >= now:
        return State.UP if segments[-1].up else State.DOWN
    return State.NO_DATA
