"""``monai-slo status`` as text: the services (one table per environment, one wide table, or one
block per service below 100 columns) and the checks' last results, which can be thousands of
rows. Plain text (:mod:`monai_slo.commands.text_table`): rich took most of a second to lay
out 1,000 check rows; the layout rules are the same (every line fits, numbers are never cut,
names and details fold), and colour is added on a terminal only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from monai_slo.commands import text_table
from monai_slo.commands.text_table import CYAN, DIM, GREEN, RED, YELLOW, Cell, Column, Styled
from monai_slo.durations import format_duration
from monai_slo.safe_text import clean
from monai_slo.slo.availability import State

if TYPE_CHECKING:
    from monai_slo.history.evaluation import CheckReport, LatencyReport, ServiceReport

_STATE = {
    State.UP: ("UP", GREEN),
    State.DOWN: ("DOWN", RED),
    State.NO_DATA: ("NO DATA", YELLOW),
}
SUMMARY_WINDOWS = ("1h", "1d")
COMPACT_WIDTH = 100
"""Below this many columns the status table is printed one block per service."""
BURN_NOTE = (
    "burn: how fast the error budget is being spent; 1x spends it exactly over the SLO "
    "window, 14.4x spends a 30-day budget in 2 days"
)
REASON_LIMIT = 400
"""Characters of a failure's reason and detail shown in the checks table."""


def percent(ratio: float | None, digits: int = 3) -> str:
    return "—" if ratio is None else f"{ratio * 100:.{digits}f}%"


def budget_words(remaining: float | None) -> str:
    """``62.5% left``, or ``overspent 6.6x`` once more than the whole budget is used."""
    if remaining is None:
        return "—"
    if remaining < 0:
        return f"overspent {1 - remaining:.1f}x"
    return f"{remaining * 100:.1f}% left"


def _budget(remaining: float | None) -> Cell:
    text = budget_words(remaining)
    if remaining is None or remaining >= 0.25:
        return text
    return Styled(text, RED if remaining < 0 else YELLOW)


def _state(state: State, maintenance: bool = False) -> Styled:
    word, sgr = _STATE[state]
    return Styled(f"{word} (maintenance)", CYAN) if maintenance else Styled(word, sgr)


def _objective(objective: float | None) -> str:
    return "best effort" if objective is None else f"{objective:g}%"


def _burn(burn: float | None) -> str:
    return "—" if burn is None else f"{burn:.2f}x"


def _number(name: str) -> Column:
    return Column(name, right=True)


def status_table(
    reports: Iterable[ServiceReport],
    *,
    wide: bool = False,
    width: int | None = None,
    colour: bool = False,
) -> str:
    """The services: one table per environment (its SLO window in the header, so the service
    name keeps the room), one wide table with ``wide``, one block per service below 100
    columns."""
    reports = list(reports)
    size = width or 200
    if wide:
        return _status_wide(reports, size, colour)
    if width is not None and width < COMPACT_WIDTH:
        return _status_blocks(reports, size, colour)
    by_environment: dict[str, list[ServiceReport]] = {}
    for report in reports:
        by_environment.setdefault(report.service.environment, []).append(report)
    parts = ["services\n"]
    for environment, group in by_environment.items():
        windows = sorted({r.slo_window.label for r in group})
        slo_header = f"SLO {windows[0]}" if len(windows) == 1 else "SLO WINDOW"
        columns = [Column("SERVICE", fold=True), Column("STATE")] + [
            _number(name)
            for name in (*SUMMARY_WINDOWS, slo_header, "OBJECTIVE", "BUDGET", "BURN 1h")
        ]
        rows = [
            [clean(r.service.name), *_figures(r, window_suffix=len(windows) > 1)] for r in group
        ]
        title = f"{clean(environment)} ({group[0].service.tier})"
        parts.append(text_table.render(title, columns, rows, width=size, colour=colour))
    parts.append(_note(size, colour))
    return "\n".join(parts)


def _note(width: int, colour: bool) -> str:
    lines = text_table.render("", [Column("", fold=True)], [[BURN_NOTE]], width=width, header=False)
    return f"\x1b[{DIM}m{lines.rstrip()}\x1b[0m\n" if colour else lines


def _status_wide(reports: Sequence[ServiceReport], width: int, colour: bool) -> str:
    columns = [Column("ENVIRONMENT", fold=True), Column("TIER"), Column("SERVICE", fold=True)]
    columns += [Column("STATE")] + [
        _number(name)
        for name in (*SUMMARY_WINDOWS, "SLO WINDOW", "OBJECTIVE", "BUDGET", "BURN 1h", "COVERAGE")
    ]
    rows = [
        [
            clean(r.service.environment),
            str(r.service.tier),
            clean(r.service.name),
            *_figures(r, window_suffix=True),
            percent(r.slo_window.stats.coverage, 1),
        ]
        for r in reports
    ]
    return (
        text_table.render("services", columns, rows, width=width, colour=colour)
        + "\n"
        + _note(width, colour)
    )


def _figures(report: ServiceReport, *, window_suffix: bool) -> list[Cell]:
    """STATE, the summary windows, the SLO window, OBJECTIVE, BUDGET, BURN 1h of one service."""
    by_label = {w.label: w for w in report.windows}
    slo = report.slo_window
    availability = percent(slo.stats.availability)
    return [
        _state(report.state, report.maintenance_active),
        *(percent(by_label[label].stats.availability) for label in SUMMARY_WINDOWS),
        f"{availability} /{slo.label}" if window_suffix else availability,
        _objective(report.service.objective),
        _budget(report.budget_remaining),
        _burn(by_label["1h"].burn_rate),
    ]


def _status_blocks(reports: Sequence[ServiceReport], width: int, colour: bool) -> str:
    parts = ["services\n"]
    for report in reports:
        service = report.service
        by_label = {w.label: w for w in report.windows}
        slo = report.slo_window
        state = _state(report.state, report.maintenance_active)
        budget = _budget(report.budget_remaining)
        availability = "  ".join(
            f"{label} {percent(by_label[label].stats.availability)}" for label in SUMMARY_WINDOWS
        )
        rows: list[list[Cell]] = [
            ["state", Styled(f"{state.text}  ({service.tier})", state.sgr)],
            ["availability", f"{availability}  {slo.label} {percent(slo.stats.availability)}"],
            [
                "objective",
                f"{_objective(service.objective)}  budget "
                f"{budget.text if isinstance(budget, Styled) else budget}"
                f"  burn 1h {_burn(by_label['1h'].burn_rate)}",
            ],
        ]
        parts.append(
            text_table.render(
                clean(f"{service.environment} / {service.name}"),
                [Column(""), Column("", fold=True)],
                rows,
                width=width,
                colour=colour,
                header=False,
            )
        )
    parts.append(_note(width, colour))
    return "\n".join(parts)


def service_checks_table(
    reports: Iterable[ServiceReport],
    *,
    wide: bool = False,
    width: int = 200,
    colour: bool = False,
    now: float | None = None,
) -> str:
    """Every check's state, last run, share of good runs and last failure."""
    reports = list(reports)
    now = time.time() if now is None else now
    # Latency objectives are shown whenever one exists: they are part of the verdict.
    with_latency = wide or any(report.latency for report in reports)
    names = ("ENVIRONMENT", "SERVICE", "CHECK", "KIND") if wide else ("SERVICE / CHECK",)
    columns = [Column(name, fold=True) for name in names]
    columns += [Column("STATE"), Column("LAST RUN")]
    if wide:
        columns.append(_number("TIME"))
    columns.append(_number("RUNS OK"))
    if with_latency:
        columns.append(Column("LATENCY", fold=True))
    columns.append(Column("REASON / DETAIL", fold=True))
    rows: list[list[Cell]] = []
    for report in reports:
        latency = {lr.ref.key: lr for lr in report.latency}
        service = report.service
        for check in report.checks:
            last = check.last
            ok_ratio = None if check.runs == 0 else (check.runs - check.failures) / check.runs
            config = check.ref.config
            row: list[Cell] = (
                [clean(service.environment), clean(service.name), clean(config.name), config.kind]
                if wide
                else [clean(f"{service.name} / {config.name}")]
            )
            row += [_state(check.state), "never" if last is None else _ago(last.timestamp, now)]
            if wide:
                row.append("" if last is None else f"{last.duration * 1000:.1f} ms")
            row.append(f"{percent(ok_ratio, 2)} of {check.runs}")
            if with_latency:
                row.append(_latency(latency.get(check.ref.key)))
            row.append(_why(check))
            rows.append(row)
    return text_table.render("checks (last result)", columns, rows, width=width, colour=colour)


def _why(check: CheckReport) -> str:
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
    return clean(text, REASON_LIMIT)


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


def _ago(timestamp: float, now: float) -> str:
    seconds = max(0.0, now - timestamp)
    return "just now" if seconds < 1 else f"{format_duration(seconds)} ago"
