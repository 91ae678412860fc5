"""Tables a person reads at a glance: check results, service status, the tier table."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table

from monai_slo.checks.base import CheckResult
from monai_slo.config.model import CheckRef
from monai_slo.durations import format_duration
from monai_slo.history.evaluation import LatencyReport, ServiceReport
from monai_slo.safe_text import cell
from monai_slo.slo.availability import State
from monai_slo.tiers import MONTH_SECONDS, TIERS, YEAR_SECONDS, allowed_downtime

_STATE_STYLE = {
    State.UP: "[green]UP[/]",
    State.DOWN: "[bold red]DOWN[/]",
    State.NO_DATA: "[yellow]NO DATA[/]",
}
SUMMARY_WINDOWS = ("1h", "1d")
_MAINTENANCE = " [cyan](maintenance)[/]"


def console() -> Console:
    # Piped output (logs, CI) gets wide, colourless lines instead of wrapping at 80.
    tty = sys.stdout.isatty()
    return Console(width=None if tty else 200, no_color=not tty, highlight=False)


def percent(ratio: float | None, digits: int = 3) -> str:
    return "—" if ratio is None else f"{ratio * 100:.{digits}f}%"


def check_table(results: Sequence[tuple[CheckRef, CheckResult]]) -> Table:
    table = Table(title="checks", title_justify="left")
    for column in ("ENVIRONMENT", "SERVICE", "CHECK", "KIND", "RESULT", "TIME", "REASON", "DETAIL"):
        table.add_column(column, justify="right" if column == "TIME" else "left", overflow="fold")
    for ref, result in results:
        table.add_row(
            ref.environment,
            ref.service,
            ref.config.name,
            ref.config.kind,
            "[green]ok[/]" if result.success else "[bold red]FAIL[/]",
            f"{result.duration * 1000:.1f} ms",
            result.reason or "",
            cell(result.detail),
        )
    return table


def status_table(reports: Iterable[ServiceReport]) -> Table:
    table = Table(title="services", title_justify="left")
    for column in (
        "ENVIRONMENT",
        "TIER",
        "SERVICE",
        "STATE",
        *SUMMARY_WINDOWS,
        "SLO WINDOW",
        "OBJECTIVE",
        "BUDGET LEFT",
        "BURN 1h",
        "COVERAGE",
    ):
        table.add_column(
            column,
            justify="left" if column in {"ENVIRONMENT", "TIER", "SERVICE", "STATE"} else "right",
        )
    for report in reports:
        service = report.service
        by_label = {w.label: w for w in report.windows}
        slo = report.slo_window
        burn = by_label["1h"].burn_rate
        table.add_row(
            service.environment,
            service.tier,
            service.name,
            _STATE_STYLE[report.state] + (_MAINTENANCE if report.maintenance_active else ""),
            *(percent(by_label[label].stats.availability) for label in SUMMARY_WINDOWS),
            f"{percent(slo.stats.availability)} /{slo.label}",
            "best effort" if service.objective is None else f"{service.objective:g}%",
            _budget(report.budget_remaining),
            "—" if burn is None else f"{burn:.2f}x",
            percent(slo.stats.coverage, 1),
        )
    return table


def _budget(remaining: float | None) -> str:
    if remaining is None:
        return "—"
    text = f"{remaining * 100:.1f}%"
    return (
        f"[bold red]{text}[/]"
        if remaining < 0
        else (f"[yellow]{text}[/]" if remaining < 0.25 else text)
    )


def service_checks_table(reports: Iterable[ServiceReport]) -> Table:
    table = Table(title="checks (last result)", title_justify="left")
    for column in (
        "ENVIRONMENT",
        "SERVICE",
        "CHECK",
        "KIND",
        "STATE",
        "LAST RUN",
        "TIME",
        "RUNS OK",
        "LATENCY",
        "REASON / DETAIL",
    ):
        table.add_column(column, overflow="fold")
    for report in reports:
        latency = {lr.ref.key: lr for lr in report.latency}
        for check in report.checks:
            last = check.last
            ok_ratio = None if check.runs == 0 else (check.runs - check.failures) / check.runs
            table.add_row(
                report.service.environment,
                report.service.name,
                check.ref.config.name,
                check.ref.config.kind,
                _STATE_STYLE[check.state],
                "never" if last is None else _ago(last.timestamp),
                "" if last is None else f"{last.duration * 1000:.1f} ms",
                f"{percent(ok_ratio, 2)} of {check.runs}",
                _latency(latency.get(check.ref.key)),
                "" if last is None or last.success else cell(f"{last.reason}: {last.detail}"),
            )
    return table


def _latency(report: LatencyReport | None) -> str:
    """``97.00% ≤ 500ms /1d of 99%, budget -200.0%, burn 1h 3.00x`` ("—" without an objective)."""
    if report is None:
        return "—"
    slo = report.slo_window
    burn = next((w.burn_rate for w in report.windows if w.label == "1h"), None)
    return (
        f"{percent(slo.stats.ratio, 2)} ≤ {format_duration(report.threshold)} /{slo.label} "
        f"of {report.objective_ratio * 100:g}%, budget {_budget(report.budget_remaining)}, "
        f"burn 1h {'—' if burn is None else f'{burn:.2f}x'}"
    )


def _ago(timestamp: float) -> str:
    seconds = max(0.0, time.time() - timestamp)
    return "just now" if seconds < 1 else f"{format_duration(seconds)} ago"


def tiers_table() -> Table:
    table = Table(title="MONAI Deploy operating-environment tiers", title_justify="left")
    for column in (
        "TIER",
        "ENVIRONMENT",
        "SPEC AVAILABILITY",
        "OBJECTIVE",
        "DOWNTIME / YEAR",
        "DOWNTIME / 30 DAYS",
    ):
        table.add_column(column)
    for tier in TIERS.values():
        if tier.best_effort:
            objective, year, month = "best effort (none)", "—", "—"
        else:
            assert tier.default_objective is not None and tier.min_objective is not None
            assert tier.max_objective is not None
            objective = (
                f"{tier.default_objective:g}% default, "
                f"[{tier.min_objective:g}, {tier.max_objective:g}]"
            )
            year = _downtime_range(tier.min_objective, tier.max_objective, YEAR_SECONDS)
            month = _downtime_range(tier.min_objective, tier.max_objective, MONTH_SECONDS)
        table.add_row(tier.name, tier.title, tier.spec_availability, objective, year, month)
    table.caption = (
        "cloud is a location (location: cloud, provider: ...), not a tier; "
        "its tier decides the target"
    )
    return table


def _downtime_range(low: float, high: float, period: float) -> str:
    most = format_duration(allowed_downtime(low, period))
    least = format_duration(allowed_downtime(high, period))
    return f"{most} at {low:g}% … {least} at {high:g}%"
