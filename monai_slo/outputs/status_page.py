"""The read-only status page the daemon serves at ``/``: at a glance, does each service work?

Every environment and service with its state in big words (UP, DOWN, NO DATA, MAINTENANCE),
availability against the objective over the SLO window, error budget left, and a 90-day
strip with one bar per UTC day. No scripts or external assets; the page reloads itself.

The current figures are evaluated per request (as /metrics does); the 90-day strip costs one
history query per service and is cached per service for a minute.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from monai_slo.config.maintenance import merge
from monai_slo.config.model import Config, Service
from monai_slo.durations import format_duration
from monai_slo.history.evaluation import (
    LatencyReport,
    ServiceReport,
    evaluate,
    maintenance_windows,
    service_spans,
)
from monai_slo.history.store import HistoryStore, IncidentRow, MaintenanceRow, ReasonMark
from monai_slo.outputs.report import DAY, DayStats, daily_stats, utc_day_start
from monai_slo.outputs.report_data import objective_text, percent
from monai_slo.outputs.report_html import (
    BASE_CSS,
    COLOURS,
    DAY_WORDS,
    day_bars,
    esc,
    html_page,
    incident_notes,
    legend,
    window_words,
)
from monai_slo.periods import CalendarWindow
from monai_slo.slo.availability import State, WindowStats

STRIP_DAYS = 90
STRIP_TTL = 60.0
REFRESH_SECONDS = 30
DETAIL_CHARS = 160

_WORDS = {
    "up": ("UP", "working"),
    "down": ("DOWN", "not responding to its checks"),
    "nodata": ("NO DATA", "not being checked right now; its state is unknown"),
    "maintenance": ("MAINTENANCE", "planned work; may be unavailable"),
}


@dataclass(frozen=True, slots=True)
class _Strip:
    expires: float
    days: tuple[DayStats, ...]


class StatusPage:
    """Renders the page from the live config and the history store; safe to call from several
    server threads at once."""

    def __init__(
        self,
        config: Callable[[], Config],
        store: HistoryStore,
        *,
        clock: Callable[[], float] = time.time,
        days: int = STRIP_DAYS,
        strip_ttl: float = STRIP_TTL,
    ) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self._days = days
        self._ttl = strip_ttl
        self._strips: dict[tuple[object, ...], _Strip] = {}
        self._lock = threading.Lock()
        self.strip_queries = 0
        """History queries made for strips (a test sees the cache work)."""

    def render(self) -> bytes:
        return self.html().encode("utf-8")

    def html(self) -> str:
        config = self._config()
        now = self._clock()
        reports = evaluate(config, self._store, now)
        strips = self._strips_for(config, now)
        try:
            incidents = self._store.incidents(now - self._days * DAY)
        except sqlite3.Error:
            incidents = []  # the page still shows the state; the store counts read errors
        by_key = {report.service.key: report for report in reports}
        open_by_key = {(i.environment, i.service): i for i in incidents if i.resolved is None}
        sections = []
        for environment in config.environments:
            where = environment.location + (
                f" ({environment.provider})" if environment.provider else ""
            )
            cards = "".join(
                _card(by_key[s.key], strips[s.key], now, self._days, open_by_key.get(s.key))
                for s in environment.services
            )
            sections.append(
                f'<section class="environment"><h2>{esc(environment.name)} '
                f'<span class="muted">{esc(environment.tier)} tier, {esc(where)}</span></h2>'
                f"{cards}</section>"
            )
        updated = datetime.fromtimestamp(now).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
        meanings = " · ".join(
            f"<b>{esc(word)}</b> = {esc(meaning)}" for word, meaning in _WORDS.values()
        )
        body = (
            "<h1>Service status</h1>"
            f'<p class="muted">Updated {esc(updated)}; this page refreshes every '
            f"{REFRESH_SECONDS} seconds. {meanings}.</p>"
            f"{_banner(reports)}{''.join(sections)}{_incidents(incidents, self._days)}"
            f"{legend([(k, DAY_WORDS[k]) for k in ('ok', 'degraded', 'bad', 'nodata')])}"
            f'<p class="muted">Bars: one per UTC day over the last {self._days} days, '
            "coloured by that day's availability against the service's objective "
            "(best-effort services: green without downtime). Planned maintenance is left "
            "out of availability.</p>"
        )
        head = f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        return html_page("Service status — monai-slo", STATUS_CSS, body, head)

    def _strips_for(
        self, config: Config, now: float
    ) -> dict[tuple[str, str], tuple[DayStats, ...]]:
        start = utc_day_start(now) - (self._days - 1) * DAY
        expires_base = time.monotonic()
        stored: list[MaintenanceRow] | None = None
        found: dict[tuple[str, str], tuple[DayStats, ...]] = {}
        with self._lock:
            fresh: dict[tuple[object, ...], _Strip] = {}
            for service in config.services():
                # Reloads may change a service's checks: they are part of the key.
                key = (service.key, tuple(ref.key for ref in service.checks))
                strip = self._strips.get(key)
                if strip is None or strip.expires <= expires_base:
                    if stored is None:
                        stored = self._store.maintenance(start)
                    days = self._strip(service, start, now, stored)
                    strip = _Strip(expires_base + self._ttl, days)
                fresh[key] = strip
                found[service.key] = strip.days
            self._strips = fresh  # services a reload removed drop out
        return found

    def _strip(
        self, service: Service, start: float, now: float, stored: Sequence[MaintenanceRow]
    ) -> tuple[DayStats, ...]:
        excluded = merge(maintenance_windows(service, stored, start, now))
        self.strip_queries += 1
        _, _, spans = service_spans(self._store, service, start, now)
        return tuple(daily_stats(spans, excluded, start, now))


STATUS_CSS = (
    BASE_CSS
    + f"""
.banner{{font-size:24px;font-weight:bold;color:#fff;padding:14px 18px;border-radius:6px;
margin:10px 0}}
.banner.up{{background:{COLOURS["up"]}}}.banner.down{{background:{COLOURS["down"]}}}
.banner.nodata{{background:#616161}}
.card{{display:grid;grid-template-columns:280px 1fr;gap:4px 16px;border:1px solid #ccc;
border-left-width:10px;border-radius:6px;padding:10px 14px;margin:10px 0}}
.card.up{{border-left-color:{COLOURS["up"]}}}.card.down{{border-left-color:{COLOURS["down"]}}}
.card.nodata{{border-left-color:{COLOURS["nodata"]}}}
.card.maintenance{{border-left-color:{COLOURS["maintenance"]}}}
.state{{font-size:28px;font-weight:bold;color:#fff;text-align:center;
border-radius:6px;padding:8px 4px;align-self:start}}
.state.up{{background:{COLOURS["up"]}}}.state.down{{background:{COLOURS["down"]}}}
.state.nodata{{background:#616161}}.state.maintenance{{background:{COLOURS["maintenance"]}}}
.name{{font-size:22px;font-weight:bold}}
.figs{{font-size:16px}}.figs b{{font-size:18px}}
.why{{font-size:15px;color:{COLOURS["down"]};font-weight:bold}}
.maint{{font-size:15px;color:{COLOURS["maintenance"]};font-weight:bold}}
.strip{{grid-column:1 / -1}}
.axis{{display:flex;justify-content:space-between;font-size:12px;color:#616161}}
@media (max-width:640px){{.card{{grid-template-columns:1fr}}}}
"""
)


def _state_key(report: ServiceReport) -> str:
    if report.maintenance_active:
        return "maintenance"
    return {State.UP: "up", State.DOWN: "down", State.NO_DATA: "nodata"}[report.state]


def _banner(reports: Sequence[ServiceReport]) -> str:
    total = len(reports)
    down = [r for r in reports if r.state is State.DOWN and not r.maintenance_active]
    maintenance = sum(1 for r in reports if r.maintenance_active)
    unknown = sum(1 for r in reports if r.state is State.NO_DATA and not r.maintenance_active)
    extra = []
    if maintenance:
        extra.append(f"{maintenance} in planned maintenance")
    if unknown:
        extra.append(f"{unknown} without data")
    note = f" ({', '.join(extra)})" if extra else ""
    if down:
        names = ", ".join(f"{r.service.name} ({r.service.environment})" for r in down)
        return (
            f'<div class="banner down" data-figure="banner">{len(down)} of {total} '
            f"services DOWN: {esc(names)}{esc(note)}</div>"
        )
    if unknown and unknown + maintenance == total:
        return f'<div class="banner nodata" data-figure="banner">No data yet{esc(note)}</div>'
    return (
        f'<div class="banner up" data-figure="banner">All measured services are up{esc(note)}</div>'
    )


def _incidents(incidents: Sequence[IncidentRow], days: int) -> str:
    """Every incident open now or resolved within the strip's days, newest first."""
    if not incidents:
        return ""
    items = "".join(
        f'<li class="incident" data-incident="{i.id}"><b>#{i.id} {esc(i.service)} '
        f"({esc(i.environment)})</b> {'open' if i.resolved is None else 'resolved'}"
        f"<br>{incident_notes(i)}</li>"
        for i in sorted(incidents, key=lambda i: i.opened, reverse=True)
    )
    return f'<h2>Incidents, last {days} days</h2><ul class="incidents">{items}</ul>'


def _card(
    report: ServiceReport,
    days: Sequence[DayStats],
    now: float,
    span_days: int,
    incident: IncidentRow | None = None,
) -> str:
    service = report.service
    key = _state_key(report)
    word, meaning = _WORDS[key]
    slo = report.slo_window
    objective = report.objective_ratio
    figures = (
        f'<b data-figure="availability">{percent(slo.stats.availability)}</b> available over '
        f"{esc(window_words(slo.label, service.calendar, now))} (objective "
        f'<b data-figure="objective">{esc(objective_text(service.objective))}</b>)'
    )
    if objective is not None:
        figures += (
            f' · <b data-figure="budget">{_budget(report.budget_remaining)}</b> of error '
            "budget left"
        )
    lines = [f'<div class="figs">{figures}</div>']
    lines += [_latency_line(latency, service.calendar, now) for latency in report.latency]
    failing = [check for check in report.checks if check.state is State.DOWN]
    if failing and report.state is State.DOWN:
        reasons = "; ".join(
            check.ref.config.name
            + (
                f": {check.last.reason}"
                + (f" ({check.last.detail[:DETAIL_CHARS]})" if check.last.detail else "")
                if check.last is not None and check.last.reason
                else ""
            )
            + _earlier(check.outage_reasons, check.last.reason if check.last else None)
            for check in failing
        )
        lines.append(f'<div class="why" data-figure="failing">Failing now: {esc(reasons)}</div>')
    if incident is not None:
        opened = datetime.fromtimestamp(incident.opened).astimezone().strftime("%Y-%m-%d %H:%M %Z")
        lines.append(
            f'<div class="why" data-current-incident="{incident.id}">Incident #{incident.id} '
            f"(opened {esc(opened)} by {esc(incident.opened_by)}): {esc(incident.latest)}</div>"
        )
    active = [window for window in report.maintenance if window.active(now)]
    if active:
        window = max(active, key=lambda w: w.end)
        until = datetime.fromtimestamp(window.end).astimezone().strftime("%Y-%m-%d %H:%M %Z")
        reason = f": {window.reason}" if window.reason else ""
        lines.append(
            f'<div class="maint">Planned maintenance until {esc(until)}{esc(reason)}</div>'
        )
    total = WindowStats(
        span_days * DAY,
        sum(d.stats.up for d in days),
        sum(d.stats.down for d in days),
        sum(d.stats.no_data for d in days),
    )
    label = f"{service.environment}/{service.name}: availability per day, last {span_days} days"
    strip = (
        f'<div class="strip"><svg viewBox="0 0 900 34" preserveAspectRatio="none" '
        f'style="height:34px" role="img" aria-label="{esc(label)}">'
        f"{day_bars(days, objective, width=900, height=34, slots=span_days)}</svg>"
        f'<div class="axis"><span>{span_days} days ago</span><span>'
        f'<span data-figure="availability-days">{percent(total.availability)}</span> over '
        f"{span_days} days</span><span>today</span></div></div>"
    )
    return (
        f'<div class="card {key}" data-service="{esc(service.environment)}/{esc(service.name)}">'
        f'<div class="state {key}" data-figure="state" title="{esc(meaning)}">{word}</div>'
        f'<div><div class="name">{esc(service.name)}</div>{"".join(lines)}</div>'
        f"{strip}</div>"
    )


def _earlier(marks: Sequence[ReasonMark], last: object) -> str:
    """Other reasons earlier in the same outage, in words ("" when there were none)."""
    others = dict.fromkeys(m.reason or "failed" for m in marks if m.reason != (last and str(last)))
    return f" (earlier in this outage: {', '.join(others)})" if others else ""


def _latency_line(report: LatencyReport, calendar: CalendarWindow | None, now: float) -> str:
    """One check's latency objective: share of runs within the threshold, budget left."""
    slo = report.slo_window
    check = report.ref.config.name
    return (
        f'<div class="figs" data-latency="{esc(check)}">{esc(check)}: '
        f'<b data-figure="latency">{percent(slo.stats.ratio)}</b> of runs within '
        f"{esc(format_duration(report.threshold))} over "
        f"{esc(window_words(slo.label, calendar, now))} (objective "
        f'<b data-figure="latency-objective">{report.objective_ratio * 100:g}%</b>) · '
        f'<b data-figure="latency-budget">{_budget(report.budget_remaining)}</b> of latency '
        "budget left</div>"
    )


def _budget(remaining: float | None) -> str:
    if remaining is None:
        return "—"
    if remaining < 0:
        return f"none (overspent by {percent(-remaining, 1)})"
    return percent(remaining, 1)
