"""Tables a person reads at a glance, and the same facts as data for scripts (``-o json``).

The default layouts are whole at 100 columns and readable at 80 (the status table becomes one
block per service below 100 columns); ``--wide`` shows every column. Numbers are never cut:
their columns do not wrap, names and details do.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from monai_slo.durations import format_duration
from monai_slo.safe_text import cell
from monai_slo.slo.availability import State

if TYPE_CHECKING:  # types only: `tiers` prints without the config model, history or kinds
    from monai_slo.checks.base import CheckResult
    from monai_slo.config.model import CheckRef
    from monai_slo.history.evaluation import CheckReport, LatencyReport, ServiceReport

_STATE_STYLE = {
    State.UP: "[green]UP[/]",
    State.DOWN: "[bold red]DOWN[/]",
    State.NO_DATA: "[yellow]NO DATA[/]",
}
SUMMARY_WINDOWS = ("1h", "1d")
_MAINTENANCE = " [cyan](maintenance)[/]"
COMPACT_WIDTH = 100
"""Below this many columns the status table is printed one block per service."""
BURN_NOTE = (
    "burn: how fast the error budget is being spent; 1x spends it exactly over the SLO "
    "window, 14.4x spends a 30-day budget in 2 days"
)


def console() -> Console:
    # A terminal gets its own width; piped output (logs, CI) gets COLUMNS, or wide lines.
    tty = sys.stdout.isatty()
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else (None if tty else 200)
    return Console(width=width, no_color=not tty, highlight=False)


def percent(ratio: float | None, digits: int = 3) -> str:
    return "—" if ratio is None else f"{ratio * 100:.{digits}f}%"


def _table(title: str) -> Table:
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)


def _number_column(table: Table, name: str) -> None:
    table.add_column(name, justify="right", no_wrap=True)


def _name(*parts: str) -> Text:
    return cell(" / ".join(parts))


def check_table(results: Sequence[tuple[CheckRef, CheckResult]], *, wide: bool = False) -> Table:
    table = _table("checks")
    if wide:
        for column in ("ENVIRONMENT", "SERVICE", "CHECK", "KIND"):
            table.add_column(column, overflow="fold")
    else:
        table.add_column("SERVICE / CHECK", overflow="fold", ratio=1)
    table.add_column("RESULT", no_wrap=True)
    _number_column(table, "TIME")
    table.add_column("REASON / DETAIL", overflow="fold", ratio=2)
    for ref, result in results:
        names: list[RenderableType] = (
            [ref.environment, ref.service, ref.config.name, ref.config.kind]
            if wide
            else [_name(ref.service, ref.config.name)]
        )
        why = "" if result.success else f"{result.reason or ''}: "
        table.add_row(
            *names,
            "[green]ok[/]" if result.success else "[bold red]FAIL[/]",
            f"{result.duration * 1000:.1f} ms",
            cell(f"{why}{result.detail}", 400),
        )
    return table


def check_rows(results: Sequence[tuple[CheckRef, CheckResult]]) -> list[dict[str, Any]]:
    """What ``check_table`` shows, as data."""
    return [
        {
            "environment": ref.environment,
            "service": ref.service,
            "check": ref.config.name,
            "kind": ref.config.kind,
            "success": result.success,
            "duration_seconds": round(result.duration, 6),
            "reason": None if result.reason is None else str(result.reason),
            "detail": result.detail,
        }
        for ref, result in results
    ]


def budget_words(remaining: float | None) -> str:
    """``62.5% left``, or ``overspent 6.6x`` once more than the whole budget is used."""
    if remaining is None:
        return "—"
    if remaining < 0:
        return f"overspent {1 - remaining:.1f}x"
    return f"{remaining * 100:.1f}% left"


def _budget(remaining: float | None) -> str:
    text = budget_words(remaining)
    if remaining is None:
        return text
    return (
        f"[bold red]{text}[/]"
        if remaining < 0
        else (f"[yellow]{text}[/]" if remaining < 0.25 else text)
    )


def _objective(objective: float | None) -> str:
    return "best effort" if objective is None else f"{objective:g}%"


def _burn(burn: float | None) -> str:
    return "—" if burn is None else f"{burn:.2f}x"


def status_table(
    reports: Iterable[ServiceReport], *, wide: bool = False, width: int | None = None
) -> RenderableType:
    """The services: one table per environment (its SLO window in the header, so the service
    name keeps the room), one wide table with ``wide``, one block per service below 100
    columns."""
    reports = list(reports)
    if wide:
        return _status_wide(reports)
    if width is not None and width < COMPACT_WIDTH:
        return _status_blocks(reports)
    by_environment: dict[str, list[ServiceReport]] = {}
    for report in reports:
        by_environment.setdefault(report.service.environment, []).append(report)
    parts: list[RenderableType] = [Text("services", style="italic")]
    for environment, group in by_environment.items():
        first = group[0]
        table = _table(f"{environment} ({first.service.tier})")
        table.add_column("SERVICE", overflow="fold")
        table.add_column("STATE", no_wrap=True)
        windows = sorted({r.slo_window.label for r in group})
        slo_header = f"SLO {windows[0]}" if len(windows) == 1 else "SLO WINDOW"
        for column in (*SUMMARY_WINDOWS, slo_header, "OBJECTIVE", "BUDGET", "BURN 1h"):
            _number_column(table, column)
        for report in group:
            table.add_row(
                cell(report.service.name), *_figures(report, window_suffix=len(windows) > 1)
            )
        parts.append(table)
    parts.append(Text(BURN_NOTE, style="dim"))
    return Group(*parts)


def _status_wide(reports: Sequence[ServiceReport]) -> Table:
    table = _table("services")
    table.add_column("ENVIRONMENT", overflow="fold")
    table.add_column("TIER", no_wrap=True)
    table.add_column("SERVICE", overflow="fold")
    table.add_column("STATE", no_wrap=True)
    for column in (*SUMMARY_WINDOWS, "SLO WINDOW", "OBJECTIVE", "BUDGET", "BURN 1h", "COVERAGE"):
        _number_column(table, column)
    for report in reports:
        service = report.service
        table.add_row(
            cell(service.environment),
            service.tier,
            cell(service.name),
            *_figures(report, window_suffix=True),
            percent(report.slo_window.stats.coverage, 1),
        )
    table.caption = BURN_NOTE
    return table


def _figures(report: ServiceReport, *, window_suffix: bool) -> list[str]:
    """STATE, the summary windows, the SLO window, OBJECTIVE, BUDGET, BURN 1h of one service."""
    by_label = {w.label: w for w in report.windows}
    slo = report.slo_window
    availability = percent(slo.stats.availability)
    return [
        _STATE_STYLE[report.state] + (_MAINTENANCE if report.maintenance_active else ""),
        *(percent(by_label[label].stats.availability) for label in SUMMARY_WINDOWS),
        f"{availability} /{slo.label}" if window_suffix else availability,
        _objective(report.service.objective),
        _budget(report.budget_remaining),
        _burn(by_label["1h"].burn_rate),
    ]


def _status_blocks(reports: Sequence[ServiceReport]) -> RenderableType:
    blocks: list[RenderableType] = [Text("services", style="italic")]
    for report in reports:
        service = report.service
        by_label = {w.label: w for w in report.windows}
        slo = report.slo_window
        block = Table.grid(padding=(0, 2))
        block.add_column(no_wrap=True)
        block.add_column(overflow="fold")
        block.title = f"{service.environment} / {service.name}"
        block.title_justify = "left"
        state = _STATE_STYLE[report.state] + (_MAINTENANCE if report.maintenance_active else "")
        block.add_row("state", f"{state}  ({service.tier})")
        block.add_row(
            "availability",
            "  ".join(
                f"{label} {percent(by_label[label].stats.availability)}"
                for label in SUMMARY_WINDOWS
            )
            + f"  {slo.label} {percent(slo.stats.availability)}",
        )
        block.add_row(
            "objective",
            f"{_objective(service.objective)}  budget {_budget(report.budget_remaining)}"
            f"  burn 1h {_burn(by_label['1h'].burn_rate)}",
        )
        blocks.append(block)
    blocks.append(Text(BURN_NOTE, style="dim"))
    return Group(*blocks)


def service_checks_table(reports: Iterable[ServiceReport], *, wide: bool = False) -> Table:
    reports = list(reports)
    # Latency objectives are shown whenever one exists: they are part of the verdict.
    with_latency = wide or any(report.latency for report in reports)
    table = _table("checks (last result)")
    if wide:
        for column in ("ENVIRONMENT", "SERVICE", "CHECK", "KIND"):
            table.add_column(column, overflow="fold")
    else:
        table.add_column("SERVICE / CHECK", overflow="fold", ratio=1)
    table.add_column("STATE", no_wrap=True)
    table.add_column("LAST RUN", no_wrap=True)
    if wide:
        _number_column(table, "TIME")
    _number_column(table, "RUNS OK")
    if with_latency:
        table.add_column("LATENCY", overflow="fold")
    table.add_column("REASON / DETAIL", overflow="fold", ratio=2)
    for report in reports:
        latency = {lr.ref.key: lr for lr in report.latency}
        for check in report.checks:
            last = check.last
            ok_ratio = None if check.runs == 0 else (check.runs - check.failures) / check.runs
            ref = check.ref
            row: list[RenderableType] = (
                [report.service.environment, report.service.name, ref.config.name, ref.config.kind]
                if wide
                else [_name(report.service.name, ref.config.name)]
            )
            row += [_STATE_STYLE[check.state], "never" if last is None else _ago(last.timestamp)]
            if wide:
                row.append("" if last is None else f"{last.duration * 1000:.1f} ms")
            row.append(f"{percent(ok_ratio, 2)} of {check.runs}")
            if with_latency:
                row.append(_latency(latency.get(ref.key)))
            row.append(_why(check))
            table.add_row(*row)
    return table


def _why(check: CheckReport) -> RenderableType:
    """The last failure, and while down the earlier reasons of this outage before it."""
    last = check.last
    if last is None or last.success:
        return ""
    text = f"{last.reason}: {last.detail}"
    earlier = [mark for mark in check.outage_reasons if mark.reason != str(last.reason)]
    if earlier:
        text += "; earlier in this outage: " + ", ".join(
            dict.fromkeys(mark.reason or "failed" for mark in earlier)
        )
    return cell(text, 400)


def _latency(report: LatencyReport | None) -> str:
    """``97.00% ≤ 500ms /1d of 99%, budget -200.0%, burn 1h 3.00x`` ("—" without an objective)."""
    if report is None:
        return "—"
    slo = report.slo_window
    burn = next((w.burn_rate for w in report.windows if w.label == "1h"), None)
    return (
        f"{percent(slo.stats.ratio, 2)} ≤ {format_duration(report.threshold)} /{slo.label} "
        f"of {report.objective_ratio * 100:g}%, budget {budget_words(report.budget_remaining)}, "
        f"burn 1h {'—' if burn is None else f'{burn:.2f}x'}"
    )


def _ago(timestamp: float) -> str:
    seconds = max(0.0, time.time() - timestamp)
    return "just now" if seconds < 1 else f"{format_duration(seconds)} ago"
