"""``report --format csv``: one row per service and period, the HTML summary's figures (same
rounding, units in the column names), each outage with its reasons, the maintenance windows
with who planned them, the incidents, and the accounting method in a column of its own (a
trailing comment line would be a malformed row to most CSV readers)."""

from __future__ import annotations

import csv
import io

from monai_slo.outputs.report import AvailabilityReport, ServicePeriod
from monai_slo.outputs.report_data import (
    ACCOUNTING_METHOD,
    audit_text,
    met_text,
    minutes,
    percent_number,
    rollup_notice,
    utc_time,
    why_text,
)

COLUMNS = (
    "period",
    "period_start_utc",
    "period_end_utc",
    "environment",
    "tier",
    "service",
    "objective_percent",
    "availability_percent",
    "objective_met",
    "unplanned_down_minutes",
    "maintenance_down_minutes",
    "no_data_minutes",
    "maintenance_minutes",
    "allowed_down_minutes",
    "budget_consumed_percent",
    "outage_count",
    "outages",
    "maintenance_windows",
    "incidents",
    "rollup_notice",
    "accounting_method",
)

# OWASP CSV injection: a spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: str) -> str:
    """A leading quote makes a spreadsheet show the cell as text, never run it."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def render_csv(report: AvailabilityReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for env in report.environments:
        for s in env.services:
            writer.writerow([neutralise(cell) for cell in _row(report, env.environment.tier, s)])
    return out.getvalue()


def _row(report: AvailabilityReport, tier: str, s: ServicePeriod) -> list[str]:
    svc = s.service
    audit = {row.id: row for row in s.audit}
    return [
        report.period.label,
        utc_time(report.period.start),
        utc_time(report.until),
        svc.environment,
        tier,
        svc.name,
        "" if svc.objective is None else f"{svc.objective:g}",
        percent_number(s.availability),
        met_text(s),
        minutes(s.unplanned_down),
        minutes(s.maintenance_down),
        minutes(s.stats.no_data),
        minutes(s.maintenance),
        "" if s.allowed_downtime is None else minutes(s.allowed_downtime),
        percent_number(s.budget_consumed, 1),
        str(len(s.outages) + s.archived_outages),
        " | ".join(
            f"{utc_time(o.start)} to {'ongoing' if o.ongoing else utc_time(o.end)} "
            f"({minutes(o.unplanned)} min unplanned): "
            + "; ".join(f"{c.name}: {why_text(c)}" for c in o.checks)
            + "".join(f"; incident #{i.id}: {i.title}" for i in o.incidents)
            for o in s.outages
        ),
        " | ".join(
            f"{utc_time(w.start, False)} to {utc_time(w.end, False)} {w.reason}: "
            + audit_text(audit.get(w.id) if w.id else None)
            for w in s.windows
        ),
        " | ".join(
            f"#{i.id} {i.title} (opened {utc_time(i.opened)} by {i.opened_by}"
            + (
                f"; resolved {utc_time(i.resolved)} by {i.resolved_by or 'unknown'})"
                if i.resolved is not None
                else "; open)"
            )
            for i in s.incidents
        ),
        rollup_notice(report) or "",
        ACCOUNTING_METHOD,
    ]
