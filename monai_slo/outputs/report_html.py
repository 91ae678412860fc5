"""HTML for the availability report, and the pieces the status page shares with it.

Self-contained on purpose: inline CSS and SVG, no scripts, fonts, images or links to fetch,
so the file can be mailed to a change board or opened on an air-gapped ward PC. Every string
that comes from the config or the history goes through :func:`esc`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from monai_slo import __version__
from monai_slo.durations import format_duration
from monai_slo.history.store import IncidentRow
from monai_slo.outputs.report import (
    AvailabilityReport,
    CheckDown,
    DayStats,
    Interval,
    Outage,
    Period,
    ServicePeriod,
    day_class,
)
from monai_slo.outputs.report_data import (
    ACCOUNTING_METHOD,
    audit_text,
    method_text,
    minutes,
    objective_text,
    percent,
    rollup_notice,
    utc_time,
)
from monai_slo.periods import CalendarWindow, zone
from monai_slo.slo.availability import Span, State

# One palette for states and day bars; every colour is also said in words next to it.
COLOURS = {
    "up": "#2e7d32",
    "down": "#c62828",
    "nodata": "#9e9e9e",
    "maintenance": "#1565c0",
    "ok": "#2e7d32",
    "degraded": "#f9a825",
    "bad": "#c62828",
}
DAY_WORDS = {
    "ok": "met the objective",
    "degraded": "below the objective",
    "bad": "well below the objective",
    "nodata": "no data",
    "maintenance": "maintenance all day",
}
# Past this many outages in a period, the report lists the longest ones only.
MAX_OUTAGES_LISTED = 200
BEST_EFFORT_DAY_WORDS = {
    **DAY_WORDS,
    "ok": "no downtime",
    "degraded": "some downtime",
    "bad": "down more than 5 %",
}

BASE_CSS = """
*{box-sizing:border-box}
body{font-family:"DejaVu Sans",Arial,Helvetica,sans-serif;color:#212121;background:#fff;
margin:0 auto;padding:16px 24px;max-width:1100px;line-height:1.4}
h1{font-size:26px;margin:0 0 4px}h2{font-size:21px;margin:28px 0 8px;border-bottom:2px solid #ddd}
h3{font-size:17px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f2f2f2;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#616161;font-size:13px}
.legend{font-size:13px;margin:4px 0}
.legend span.sw{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;
vertical-align:-1px;border-radius:2px}
.met{color:#2e7d32;font-weight:bold}.missed{color:#c62828;font-weight:bold}
svg{display:block;width:100%;height:auto}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def window_words(label: str, calendar: CalendarWindow | None, now: float) -> str:
    """``the last 30d``, or for a calendar window ``this calendar month (since 1 Dec 2026
    00:00 Europe/Berlin)``: its budget was reset then."""
    if calendar is None or label != calendar.label:
        return f"the last {label}"
    start, _ = calendar.period(now)
    local = datetime.fromtimestamp(start, zone(calendar.timezone))
    unit = calendar.unit.removeprefix("calendar_")
    return f"this calendar {unit} (since {local:%-d %b %Y %H:%M} {calendar.timezone})"


def legend(items: Iterable[tuple[str, str]]) -> str:
    swatches = "".join(
        f'<span class="sw" style="background:{COLOURS[key]}"></span>{esc(words)}'
        for key, words in items
    )
    return f'<div class="legend">{swatches}</div>'


def day_bars(
    days: Sequence[DayStats],
    objective_ratio: float | None,
    *,
    width: float,
    height: float,
    y: float = 0,
    slots: int | None = None,
) -> str:
    """One bar per day, coloured by :func:`day_class`, each with a tooltip in words."""
    count = slots or len(days) or 1
    step = width / count
    gap = min(2.0, step * 0.2)
    words = DAY_WORDS if objective_ratio is not None else BEST_EFFORT_DAY_WORDS
    bars = []
    for index, day in enumerate(days):
        kind = day_class(day, objective_ratio)
        stats = day.stats
        tip = (
            f"{day.day}: {words[kind]}; availability {percent(stats.availability)}, "
            f"down {minutes(stats.down)} min, no data {minutes(stats.no_data)} min"
            + (f", maintenance {minutes(day.maintenance)} min" if day.maintenance else "")
        )
        bars.append(
            f'<rect x="{index * step:.2f}" y="{y:.2f}" width="{step - gap:.2f}" '
            f'height="{height:.2f}" rx="1.5" fill="{COLOURS[kind]}" '
            f'data-day="{day.day}" data-class="{kind}"><title>{esc(tip)}</title></rect>'
        )
    return "".join(bars)


def state_strip(
    spans: Sequence[Span],
    excluded: Sequence[Interval],
    start: float,
    end: float,
    *,
    width: float,
    height: float,
    y: float = 0,
) -> str:
    """The service's state across [start, end): green up, red down, grey no data, blue
    maintenance. Outages get at least a pixel so a minute in a month still shows."""
    scale = width / (end - start) if end > start else 0.0
    parts = [f'<rect x="0" y="{y}" width="{width}" height="{height}" fill="{COLOURS["nodata"]}"/>']
    names = {State.UP: "up", State.DOWN: "down", State.NO_DATA: "nodata"}
    for span in sorted(spans, key=lambda s: s.state is State.DOWN):  # down drawn last
        a, b = max(span.start, start), min(span.end, end)
        if b <= a or span.state is State.NO_DATA:
            continue
        w = (b - a) * scale
        if span.state is State.DOWN:
            w = max(w, 1.5)
        parts.append(
            f'<rect x="{(a - start) * scale:.2f}" y="{y}" width="{w:.2f}" height="{height}" '
            f'fill="{COLOURS[names[span.state]]}"/>'
        )
    for a0, b0 in excluded:
        a, b = max(a0, start), min(b0, end)
        if b > a:
            parts.append(
                f'<rect x="{(a - start) * scale:.2f}" y="{y}" '
                f'width="{max((b - a) * scale, 1.5):.2f}" height="{height}" '
                f'fill="{COLOURS["maintenance"]}"/>'
            )
    return "".join(parts)


# -- the report -------------------------------------------------------------------------------


def render_report(report: AvailabilityReport) -> str:
    period = report.period
    services = [s for env in report.environments for s in env.services]
    covered = f"{utc_time(period.start, False)} to {utc_time(report.until, False)} UTC" + (
        " (period in progress)" if report.in_progress else ""
    )
    body = [
        f"<h1>Availability report: {esc(period.title)}</h1>",
        f'<p class="muted">Covers {esc(covered)}. Generated {esc(utc_time(report.generated))} '
        f"UTC by monai-slo {esc(__version__)} from {esc(report.source)}.</p>",
        *_archive_notice(report),
        "<h2>Summary</h2>",
        _summary_table(services),
    ]
    for env in report.environments:
        environment = env.environment
        where = environment.location + (
            f" ({environment.provider})" if environment.provider else ""
        )
        body.append(
            f'<section class="environment"><h2>{esc(environment.name)} '
            f'<span class="muted">{esc(environment.tier)} tier, {esc(where)}</span></h2>'
        )
        own = env.period or period
        if own.zone != "UTC":
            body.append(
                f'<p class="muted" data-zone="{esc(own.zone)}">Days here run from midnight to '
                f"midnight in {esc(own.zone)} (its calendar SLO window's zone): "
                f"{esc(utc_time(own.start, False))} to {esc(utc_time(own.end, False))} UTC.</p>"
            )
        body.extend(
            _service_section(report, service, own, env.until or report.until)
            for service in env.services
        )
        body.append("</section>")
    body.append(_method(report))
    body.append(_footer())
    return html_page(f"Availability report {period.label}", REPORT_CSS, "".join(body))


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


REPORT_CSS = (
    BASE_CSS
    + """
section.service{break-inside:avoid;page-break-inside:avoid;margin-bottom:18px}
dl.figures{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:6px 14px;margin:6px 0}
dl.figures div{border:1px solid #ddd;border-radius:4px;padding:4px 8px}
dl.figures dt{font-size:12px;color:#616161}dl.figures dd{margin:0;font-size:18px;font-weight:bold}
@media print{body{padding:0;max-width:none}h2{break-after:avoid}footer.method{display:none}}
footer.method{margin-top:24px;border-top:1px solid #ddd;padding-top:6px;font-size:12px;
color:#616161}
"""
    # Printed (the PDF), the method is in every page's bottom margin instead.
    + "@page{size:A4;margin:14mm 12mm 22mm;@bottom-left{content:"
    + _css_string(ACCOUNTING_METHOD)
    + ' " Page " counter(page) " of " counter(pages);font-size:7pt;color:#616161;'
    + 'font-family:"DejaVu Sans",Arial,sans-serif}}\n'
)


def _archive_notice(report: AvailabilityReport) -> list[str]:
    notice = rollup_notice(report)
    if notice is None or report.archived_until is None:
        return []
    return [
        f'<p class="archived" data-archived-until="{report.archived_until:.0f}"><b>From daily '
        f"rollups:</b> {esc(notice)}</p>"
    ]


def _archived_table(s: ServicePeriod) -> str:
    """The rolled-up days with an outage, and each check's failure reasons over them."""
    if s.archived_until is None:
        return ""
    rows = "".join(
        f"<tr><td>{esc(utc_time(day.start, False)[:10])}</td><td class=num>{day.outages}</td>"
        f"<td class=num>{minutes(day.down)}</td><td class=num>{minutes(day.maintenance_down)}</td>"
        f"<td>{esc(_counts(day.reasons))}</td></tr>"
        for day in s.rollups
        if day.outages or day.down or day.maintenance_down
    )
    reasons = "; ".join(f"{name}: {_counts(counts)}" for name, counts in s.check_reasons)
    table = (
        "<table><caption style='text-align:left'>Outages per day from the daily rollups "
        f"({s.archived_outages} in all)</caption><tr><th>Day (UTC)</th><th class=num>Outages"
        "</th><th class=num>Unplanned down (min)</th><th class=num>Down in maintenance (min)"
        f"</th><th>Reasons</th></tr>{rows}</table>"
        if rows
        else "<p>No outages on the rolled-up days.</p>"
    )
    why = f"<p>Failure reasons per check on those days: {esc(reasons)}.</p>" if reasons else ""
    return f'<div class="archived" data-archived="{s.archived_outages}">{table}{why}</div>'


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} ({count})" for reason, count in sorted(counts.items()))


def html_page(title: str, css: str, body: str, head_extra: str = "") -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{head_extra}'
        f"<title>{esc(title)}</title><style>{css}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _met(service: ServicePeriod) -> str:
    met = service.met
    if service.objective_ratio is None:
        return '<span class="muted">best effort</span>'
    if met is None:
        return "no data"
    return '<span class="met">met</span>' if met else '<span class="missed">missed</span>'


def _summary_table(services: Sequence[ServicePeriod]) -> str:
    head = (
        "<tr><th>Environment</th><th>Tier</th><th>Service</th><th class=num>Objective</th>"
        "<th class=num>Achieved</th><th>Objective met</th><th class=num>Unplanned down (min)</th>"
        "<th class=num>Down in maintenance (min)</th><th class=num>No data (min)</th>"
        "<th class=num>Error budget consumed</th></tr>"
    )
    rows = []
    for s in services:
        svc = s.service
        rows.append(
            f'<tr data-service="{esc(svc.environment)}/{esc(svc.name)}">'
            f"<td>{esc(svc.environment)}</td><td>{esc(svc.tier)}</td><td>{esc(svc.name)}</td>"
            f'<td class=num data-figure="objective">{esc(objective_text(svc.objective))}</td>'
            f'<td class=num data-figure="availability">{percent(s.availability)}</td>'
            f'<td data-figure="met">{_met(s)}</td>'
            f'<td class=num data-figure="unplanned">{minutes(s.unplanned_down)}</td>'
            f'<td class=num data-figure="maintenance-down">{minutes(s.maintenance_down)}</td>'
            f'<td class=num data-figure="nodata">{minutes(s.stats.no_data)}</td>'
            f'<td class=num data-figure="budget">{percent(s.budget_consumed, 1)}</td></tr>'
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _service_section(
    report: AvailabilityReport, s: ServicePeriod, period: Period, until: float
) -> str:
    svc = s.service
    allowed = "—" if s.allowed_downtime is None else f"{minutes(s.allowed_downtime)} min"
    figures = [
        ("Objective", objective_text(svc.objective)),
        ("Achieved availability", percent(s.availability)),
        ("Unplanned downtime", f"{minutes(s.unplanned_down)} min"),
        ("Allowed downtime", allowed),
        ("Error budget consumed", percent(s.budget_consumed, 1)),
        ("Down during maintenance", f"{minutes(s.maintenance_down)} min"),
        ("Maintenance", f"{minutes(s.maintenance)} min"),
        ("No data", f"{minutes(s.stats.no_data)} min"),
    ]
    if svc.calendar is not None:
        # The daemon's budget resets at the zone's midnight; this report's days are UTC days.
        unit = svc.calendar.unit.removeprefix("calendar_")
        figures.append(("SLO window", f"calendar {unit}, {svc.calendar.timezone}"))
    for latency in s.latency:
        figures += [
            (
                f"{latency.check}: runs within {format_duration(latency.threshold)}",
                f"{percent(latency.stats.ratio)} (objective {latency.objective_ratio * 100:g}%)",
            ),
            (f"{latency.check}: latency budget consumed", percent(latency.budget_consumed, 1)),
        ]
    cells = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in figures)
    return (
        f'<section class="service" data-service="{esc(svc.environment)}/{esc(svc.name)}">'
        f"<h3>{esc(svc.name)} {_met(s)}</h3>"
        f'<dl class="figures">{cells}</dl>'
        f"{_chart(s, period, until)}"
        f"{_archived_table(s)}"
        f"{_outages_table(s.outages)}"
        f"{_incidents_table(s.incidents)}"
        f"{_maintenance_table(s)}"
        "</section>"
    )


def _chart(s: ServicePeriod, period: Period, until: float) -> str:
    width, strip, bars = 760.0, 26.0, 22.0
    starts = period.day_starts()[:-1]
    slots = max(1, len(starts))
    step = width / slots
    labels = []
    tz = UTC if period.zone == "UTC" else zone(period.zone)
    for index, day_start in enumerate(starts):
        day = datetime.fromtimestamp(day_start, tz)
        if index == 0 or day.day == 1 or day.day % 5 == 0:
            labels.append(
                f'<text x="{index * step + step / 2:.1f}" y="{strip + bars + 24}" '
                f'font-size="10" text-anchor="middle" fill="#424242">{day.day}</text>'
            )
    label = (
        f"{svc_label(s)}: state over the period and availability per day; {len(s.outages)} outages"
    )
    # Rolled-up days keep no spans: the strip starts after them.
    begin = s.archived_until or period.start
    offset = width * (begin - period.start) / period.seconds
    svg = (
        f'<svg viewBox="0 0 {width:.0f} {strip + bars + 30:.0f}" role="img" '
        f'aria-label="{esc(label)}"><g transform="translate({offset:.2f},0)">'
        + state_strip(
            s.spans,
            s.excluded,
            begin,
            until,
            width=width * ((until - begin) / period.seconds),
            height=strip,
        )
        + "</g>"
        + day_bars(s.days, s.objective_ratio, width=width, height=bars, y=strip + 6, slots=slots)
        + "".join(labels)
        + "</svg>"
    )
    words = DAY_WORDS if s.objective_ratio is not None else BEST_EFFORT_DAY_WORDS
    return (
        '<div class="chart"><div class="muted">Top: state across the period. '
        f"Bottom: each {'UTC ' if period.zone == 'UTC' else ''}day (day of month below).</div>"
        + svg
        + legend(
            [
                ("up", "up"),
                ("down", "down"),
                ("nodata", "no data"),
                ("maintenance", "maintenance"),
            ]
        )
        + legend([(k, words[k]) for k in ("ok", "degraded", "bad")])
        + "</div>"
    )


def svc_label(s: ServicePeriod) -> str:
    return f"{s.service.environment}/{s.service.name}"


def _outages_table(outages: Sequence[Outage]) -> str:
    if not outages:
        return "<p>No outages in this period.</p>"
    listed = outages
    note = ""
    if len(outages) > MAX_OUTAGES_LISTED:
        # A flapping check makes thousands; the longest tell the story, in time order.
        by_length = sorted(outages, key=lambda o: o.duration, reverse=True)
        listed = sorted(by_length[:MAX_OUTAGES_LISTED], key=lambda o: o.start)
        rest = by_length[MAX_OUTAGES_LISTED:]
        note = (
            f"<p>The {MAX_OUTAGES_LISTED} longest are listed; {len(rest)} shorter outages "
            f"({minutes(sum(o.unplanned for o in rest))} min unplanned) are not.</p>"
        )
    rows = []
    for outage in listed:
        checks = "; ".join(_check_down(c) for c in outage.checks)
        end = "ongoing" if outage.ongoing else utc_time(outage.end)
        explained = "<br>".join(
            f'<span data-incident="{incident.id}">#{incident.id}: {esc(incident.title)}</span>'
            for incident in outage.incidents
        )
        rows.append(
            f'<tr class="outage"><td>{esc(utc_time(outage.start))}</td><td>{esc(end)}</td>'
            f"<td class=num>{esc(format_duration(outage.duration))}</td>"
            f"<td class=num>{minutes(outage.unplanned)}</td>"
            f"<td class=num>{minutes(outage.in_maintenance)}</td><td>{checks}</td>"
            f"<td>{explained or '—'}</td></tr>"
        )
    return (
        f"<table><caption style='text-align:left'>Outages ({len(outages)}), times in UTC"
        "</caption><tr><th>Start</th><th>End</th><th class=num>Duration</th>"
        "<th class=num>Unplanned (min)</th><th class=num>In maintenance (min)</th>"
        f"<th>Checks down and why</th><th>Incident</th></tr>{''.join(rows)}</table>{note}"
    )


def _check_down(check: CheckDown) -> str:
    """``echo (down 5m: timeout: no answer; from 10:05:00 refused: ...)``."""
    down = f"down {format_duration(check.down)}"
    if check.reasons:
        whys = []
        for index, mark in enumerate(check.reasons):
            why = f"{mark.reason or 'failed'}" + (f": {mark.detail}" if mark.detail else "")
            if index:
                why = f"from {utc_time(mark.at)} {why}"
            whys.append(
                f'<span class="reason" data-reason="{esc(mark.reason or "")}">{esc(why)}</span>'
            )
        return f"{esc(check.name)} ({esc(down)}: {'; '.join(whys)})"
    if check.reason:  # history from before reasons were kept per outage
        detail = f": {check.detail}" if check.detail else ""
        return (
            f"{esc(check.name)} ({esc(down)}, last failure: "
            f'<span class="reason" data-reason="{esc(check.reason)}">'
            f"{esc(check.reason + detail)}</span>)"
        )
    return f"{esc(check.name)} ({esc(down)}, reason not recorded)"


def _incidents_table(incidents: Sequence[IncidentRow]) -> str:
    if not incidents:
        return ""
    rows = "".join(
        f'<tr class="incident" data-incident="{incident.id}"><td>#{incident.id}</td>'
        f"<td>{esc(utc_time(incident.opened))}<br>{esc(incident.opened_by)}</td>"
        + (
            f"<td>{esc(utc_time(incident.resolved))}<br>{esc(incident.resolved_by or '')}</td>"
            if incident.resolved is not None
            else "<td>open</td>"
        )
        + f"<td>{incident_notes(incident)}</td></tr>"
        for incident in incidents
    )
    return (
        "<table><caption style='text-align:left'>Incidents, times in UTC</caption>"
        "<tr><th>#</th><th>Opened</th><th>Resolved</th><th>Notes</th></tr>"
        f"{rows}</table>"
    )


def incident_notes(incident: IncidentRow) -> str:
    """Each note of an incident on its own line: time, author, what it said (escaped)."""
    return "<br>".join(
        f'<span class="note" data-state="{esc(note.state)}">{esc(utc_time(note.at))} '
        f"{esc(note.state)} by {esc(note.author or 'unknown')}"
        + (f": {esc(note.text)}" if note.text else "")
        + "</span>"
        for note in incident.updates
    )


def _maintenance_table(s: ServicePeriod) -> str:
    if not s.windows:
        return ""
    audit = {row.id: row for row in s.audit}
    rows = "".join(
        f"<tr><td>{esc(utc_time(w.start, False))}</td><td>{esc(utc_time(w.end, False))}</td>"
        f"<td class=num>{esc(format_duration(w.end - w.start))}</td>"
        f"<td>{esc(w.reason) or '—'}</td>"
        f'<td data-audit="{w.id or "config"}">'
        f"{esc(audit_text(audit.get(w.id) if w.id else None))}</td></tr>"
        for w in s.windows
    )
    return (
        "<table><caption style='text-align:left'>Planned maintenance, times in UTC</caption>"
        "<tr><th>Start</th><th>End</th><th class=num>Length</th><th>Reason</th>"
        f"<th>Planned by</th></tr>{rows}</table>"
    )


def _method(report: AvailabilityReport) -> str:
    return f"<h2>How these figures are computed</h2><p class='muted'>{esc(method_text(report))}</p>"


def _footer() -> str:
    """The accounting method under the page (and, printed, in every PDF page's margin)."""
    return f'<footer class="method" data-method>{esc(ACCOUNTING_METHOD)}</footer>'
