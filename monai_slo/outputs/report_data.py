"""The report as data: the figures, their rounding and the accounting method in words, written
once for every format (HTML, PDF, CSV, JSON).

:func:`report_document` is ``report --format json``: stable keys (README, "Report"), times as
ISO 8601 UTC, durations in seconds, ratios from 0 to 1. The HTML and CSV show the same figures
rounded by :func:`percent` and :func:`minutes`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from monai_slo import __version__
from monai_slo.durations import format_duration
from monai_slo.history.store import IncidentRow, MaintenanceRow
from monai_slo.outputs.report import AvailabilityReport, CheckDown, Outage, ServicePeriod

SCHEMA = "monai-slo-report/1"

# The page footer of every format: how the figures are counted, in plain words.
ACCOUNTING_METHOD = (
    "Time-weighted availability: each check result counts until the next one, at most its "
    "staleness limit. Planned maintenance is excluded from the measured time. Time without "
    "results is no data, counted neither up nor down. A service is down while any check is down."
)


def percent_number(ratio: float | None, digits: int = 3) -> str:
    """``99.907`` for 0.99907; "" when unknown, ``inf`` for an objective allowing no downtime."""
    if ratio is None:
        return ""
    if ratio == float("inf"):
        return "inf"
    return f"{ratio * 100:.{digits}f}"


def percent(ratio: float | None, digits: int = 3) -> str:
    """``99.907%``: :func:`percent_number` for people."""
    number = percent_number(ratio, digits)
    return {"": "—", "inf": "∞"}.get(number, f"{number}%")


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def utc_time(at: float, seconds: bool = True) -> str:
    return datetime.fromtimestamp(at, UTC).strftime(
        "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    )


def objective_text(objective: float | None) -> str:
    return "best effort" if objective is None else f"{objective:g}%"


def met_text(service: ServicePeriod) -> str:
    """``met``, ``missed``, ``best effort`` or ``no data``."""
    if service.objective_ratio is None:
        return "best effort"
    met = service.met
    return "no data" if met is None else ("met" if met else "missed")


def method_text(report: AvailabilityReport) -> str:
    """The accounting method in full (the report's closing section)."""
    return (
        "Availability is time-weighted: each check result stands for the time until the next "
        "one, at most its staleness limit; later time is no data, neither up nor down. A "
        "service is down while any of its checks is down. Planned maintenance is left out of "
        "the measured time, so achieved availability = up / (up + unplanned down), and "
        "downtime inside maintenance is listed separately. Error budget consumed = unplanned "
        "downtime / allowed downtime, where allowed downtime = (1 - objective) x (period - "
        "maintenance). Each outage lists every failure reason of its checks, each from when "
        "it began; full-resolution history is kept for "
        f"{format_duration(report.retention)}, then one row per check and service per UTC "
        "day (the same seconds, outages counted, reasons with counts) for "
        f"{format_duration(report.archive_retention)}; older time shows as no data."
    )


def rollup_notice(report: AvailabilityReport) -> str | None:
    """Where the figures of days older than the full-resolution history come from."""
    if report.archived_until is None:
        return None
    return (
        f"The days before {utc_time(report.archived_until, False)} UTC are older than the "
        f"full-resolution history (kept {format_duration(report.retention)}); their figures "
        f"come from the daily rollups (kept {format_duration(report.archive_retention)}): "
        "seconds up, down, without data and in maintenance, outages counted and failure "
        "reasons with counts per day. Those days' outages are not listed one by one, and the "
        "state strip starts after them."
    )


def why_text(check: CheckDown) -> str:
    """``timeout: no answer; from 2026-11-10 10:05:00 refused`` (not escaped)."""
    if check.reasons:
        whys = []
        for index, mark in enumerate(check.reasons):
            why = (mark.reason or "failed") + (f": {mark.detail}" if mark.detail else "")
            whys.append(f"from {utc_time(mark.at)} {why}" if index else why)
        return "; ".join(whys)
    if check.reason:  # history from before reasons were kept per outage
        return "last failure: " + check.reason + (f": {check.detail}" if check.detail else "")
    return "reason not recorded"


def audit_text(row: MaintenanceRow | None) -> str:
    """Who planned a window and who ended it early, in words (not escaped)."""
    if row is None:
        return "from the config file"
    made = f"started by {row.created_by or 'unknown (recorded before authors were kept)'}"
    if row.created:
        made += f" at {utc_time(row.created)}"
    if row.via == "api":
        made += " through the daemon's API"
    if row.ended_by is not None:
        made += f"; ended early by {row.ended_by or 'unknown'}"
        if row.ended_at is not None:
            made += f" at {utc_time(row.ended_at)}"
        if row.planned_end is not None:
            made += f" (planned until {utc_time(row.planned_end)})"
    return made


# -- JSON -------------------------------------------------------------------------------------


def iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _finite(value: float | None) -> float | None:
    """JSON has no infinity: an overspent 100 % objective's budget is null (and ``met`` false)."""
    return None if value is None or value == float("inf") else value


def report_document(report: AvailabilityReport) -> dict[str, Any]:
    """The whole report as JSON-ready data (``report --format json``)."""
    period = report.period
    return {
        "schema": SCHEMA,
        "generator": f"monai-slo {__version__}",
        "generated": iso(report.generated),
        "source": report.source,
        "period": {
            "label": period.label,
            "title": period.title,
            "start": iso(period.start),
            "end": iso(period.end),
            "until": iso(report.until),
            "in_progress": report.in_progress,
        },
        "accounting_method": {
            "summary": ACCOUNTING_METHOD,
            "details": method_text(report),
            "retention_seconds": report.retention,
            "archive_retention_seconds": report.archive_retention,
        },
        "rollup_notice": rollup_notice(report),
        "archived_until": iso(report.archived_until),
        "services": [
            _service(env.environment.tier, s) for env in report.environments for s in env.services
        ],
    }


def _service(tier: str, s: ServicePeriod) -> dict[str, Any]:
    audit = {row.id: row for row in s.audit}
    return {
        "environment": s.service.environment,
        "service": s.service.name,
        "tier": tier,
        "objective_percent": s.service.objective,
        "availability": s.availability,
        "met": s.met,
        "status": met_text(s),
        "unplanned_down_seconds": s.unplanned_down,
        "maintenance_down_seconds": s.maintenance_down,
        "maintenance_seconds": s.maintenance,
        "no_data_seconds": s.stats.no_data,
        "allowed_downtime_seconds": s.allowed_downtime,
        "budget_consumed": _finite(s.budget_consumed),
        "outages": [_outage(outage) for outage in s.outages],
        "maintenance": [
            _window(w.start, w.end, w.reason, audit.get(w.id) if w.id else None) for w in s.windows
        ],
        "incidents": [_incident(incident) for incident in s.incidents],
        "archived": None
        if s.archived_until is None
        else {
            "until": iso(s.archived_until),
            "outages": s.archived_outages,
            "reasons": dict(s.check_reasons),
        },
    }


def _outage(outage: Outage) -> dict[str, Any]:
    return {
        "start": iso(outage.start),
        "end": None if outage.ongoing else iso(outage.end),
        "ongoing": outage.ongoing,
        "duration_seconds": outage.duration,
        "unplanned_seconds": outage.unplanned,
        "in_maintenance_seconds": outage.in_maintenance,
        "checks": [
            {
                "check": check.name,
                "down_seconds": check.down,
                "reason": check.reason,
                "detail": check.detail,
                "reasons": [
                    {"at": iso(mark.at), "reason": mark.reason, "detail": mark.detail}
                    for mark in check.reasons
                ],
            }
            for check in outage.checks
        ],
        "incidents": [incident.id for incident in outage.incidents],
    }


def _window(start: float, end: float, reason: str, row: MaintenanceRow | None) -> dict[str, Any]:
    return {
        "start": iso(start),
        "end": iso(end),
        "reason": reason,
        "source": "config" if row is None else row.via,
        "created_by": None if row is None else row.created_by,
        "created": None if row is None or not row.created else iso(row.created),
        "ended_by": None if row is None else row.ended_by,
        "ended_at": None if row is None else iso(row.ended_at),
        "planned_end": None if row is None else iso(row.planned_end),
    }


def _incident(incident: IncidentRow) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "opened": iso(incident.opened),
        "opened_by": incident.opened_by,
        "resolved": iso(incident.resolved),
        "resolved_by": incident.resolved_by,
        "notes": [
            {"at": iso(note.at), "state": note.state, "author": note.author, "text": note.text}
            for note in incident.updates
        ],
    }


def render_json(report: AvailabilityReport) -> str:
    return json.dumps(report_document(report), indent=2, ensure_ascii=False) + "\n"
