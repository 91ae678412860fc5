"""``monai-slo status`` as text: the services (one table per environment, one wide table, or one
block per service below 100 columns) and the checks' last results, which can be thousands of
rows, drawn from the status document (monai_slo.outputs.status_data), whichever process
computed it (the daemon or this one from history). Plain text
(:mod:`monai_slo.commands.text_table`): rich took most of a second to lay out 1,000 check
rows; the layout rules are the same (every line fits, numbers are never cut, names and details
fold), and colour is added on a terminal only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from monai_slo.commands import text_table
from monai_slo.commands.text_table import CYAN, DIM, GREEN, RED, YELLOW, Cell, Column, Styled
from monai_slo.durations import format_duration
from monai_slo.safe_text import clean

Entry = dict[str, Any]
"""A service or check of the status document."""

_STATE = {
    "up": ("UP", GREEN),
    "down": ("DOWN", RED),
    "no_data": ("NO DATA", YELLOW),
    "pending": ("PENDING", CYAN),  # a canary on its way: the verdict is still to come
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


def _state(state: str, maintenance: bool = False, in_flight: int | None = None) -> Styled:
    word, sgr = _STATE.get(state, (clean(state, 20).upper(), YELLOW))
    if in_flight:
        word += f" ({in_flight} in flight)"
    return Styled(f"{word} (maintenance)", CYAN) if maintenance else Styled(word, sgr)


def _window(service: Entry, label: str) -> dict[str, Any]:
    found: dict[str, Any] = service["windows"].get(label, {})
    return found


def _objective(objective: float | None) -> str:
    return "best effort" if objective is None else f"{objective:g}%"


def _burn(burn: float | None) -> str:
    return "—" if burn is None else f"{burn:.2f}x"


def _number(name: str) -> Column:
    return Column(name, right=True)


def status_table(
    services: Iterable[Entry],
    *,
    wide: bool = False,
    width: int | None = None,
    colour: bool = False,
) -> str:
    """The services: one table per environment (its SLO window in the header, so the service
    name keeps the room), one wide table with ``wide``, one block per service below 100
    columns."""
    entries = list(services)
    size = width or 200
    if wide:
        return _status_wide(entries, size, colour)
    if width is not None and width < COMPACT_WIDTH:
        return _status_blocks(entries, size, colour)
    by_environment: dict[str, list[Entry]] = {}
    for entry in entries:
        by_environment.setdefault(entry["environment"], []).append(entry)
    parts = ["services\n"]
    for environment, group in by_environment.items():
        windows = sorted({str(e["slo_window"]) for e in group})
        slo_header = f"SLO {windows[0]}" if len(windows) == 1 else "SLO WINDOW"
        columns = [Column("SERVICE", fold=True), Column("STATE")] + [
            _number(name)
            for name in (*SUMMARY_WINDOWS, slo_header, "OBJECTIVE", "BUDGET", "BURN 1h")
        ]
        rows = [[clean(e["service"]), *_figures(e, window_suffix=len(windows) > 1)] for e in group]
        title = f"{clean(environment)} ({group[0]['tier']})"
        parts.append(text_table.render(title, columns, rows, width=size, colour=colour))
    parts.append(_note(size, colour))
    return "\n".join(parts)


def _note(width: int, colour: bool) -> str:
    lines = text_table.render("", [Column("", fold=True)], [[BURN_NOTE]], width=width, header=False)
    return f"\x1b[{DIM}m{lines.rstrip()}\x1b[0m\n" if colour else lines


def _status_wide(entries: Sequence[Entry], width: int, colour: bool) -> str:
    columns = [Column("ENVIRONMENT", fold=True), Column("TIER"), Column("SERVICE", fold=True)]
    columns += [Column("STATE")] + [
        _number(name)
        for name in (*SUMMARY_WINDOWS, "SLO WINDOW", "OBJECTIVE", "BUDGET", "BURN 1h", "COVERAGE")
    ]
    rows = [
        [
            clean(e["environment"]),
            str(e["tier"]),
            clean(e["service"]),
            *_figures(e, window_suffix=True),
            percent(_window(e, e["slo_window"]).get("data_coverage_ratio"), 1),
        ]
        for e in entries
    ]
    return (
        text_table.render("services", columns, rows, width=width, colour=colour)
        + "\n"
        + _note(width, colour)
    )


def _figures(entry: Entry, *, window_suffix: bool) -> list[Cell]:
    """STATE, the summary windows, the SLO window, OBJECTIVE, BUDGET, BURN 1h of one service."""
    label = entry["slo_window"]
    availability = percent(_window(entry, label).get("availability_ratio"))
    return [
        _state(entry["state"], bool(entry.get("maintenance"))),
        *(percent(_window(entry, w).get("availability_ratio")) for w in SUMMARY_WINDOWS),
        f"{availability} /{label}" if window_suffix else availability,
        _objective(entry["objective_percent"]),
        _budget(entry["error_budget_remaining_ratio"]),
        _burn(_window(entry, "1h").get("burn_rate")),
    ]


def _status_blocks(entries: Sequence[Entry], width: int, colour: bool) -> str:
    parts = ["services\n"]
    for entry in entries:
        label = entry["slo_window"]
        state = _state(entry["state"], bool(entry.get("maintenance")))
        budget = _budget(entry["error_budget_remaining_ratio"])
        availability = "  ".join(
            f"{w} {percent(_window(entry, w).get('availability_ratio'))}" for w in SUMMARY_WINDOWS
        )
        slo_availability = percent(_window(entry, label).get("availability_ratio"))
        rows: list[list[Cell]] = [
            ["state", Styled(f"{state.text}  ({entry['tier']})", state.sgr)],
            ["availability", f"{availability}  {label} {slo_availability}"],
            [
                "objective",
                f"{_objective(entry['objective_percent'])}  budget "
                f"{budget.text if isinstance(budget, Styled) else budget}"
                f"  burn 1h {_burn(_window(entry, '1h').get('burn_rate'))}",
            ],
        ]
        parts.append(
            text_table.render(
                clean(f"{entry['environment']} / {entry['service']}"),
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
    checks: Iterable[Entry],
    *,
    wide: bool = False,
    width: int = 200,
    colour: bool = False,
    now: float | None = None,
) -> str:
    """Every check's state, last run, share of good runs and last failure."""
    entries = list(checks)
    now = time.time() if now is None else now
    # Latency objectives are shown whenever one exists: they are part of the verdict.
    with_latency = wide or any(entry.get("latency") for entry in entries)
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
    for check in entries:
        runs, failures = check["runs"], check["failures"]
        ok_ratio = None if runs == 0 else (runs - failures) / runs
        last_run, duration = check["last_run"], check["last_duration_seconds"]
        labels = (check["environment"], check["service"], check["check"], check["kind"])
        row: list[Cell] = (
            [clean(label) for label in labels]
            if wide
            else [clean(f"{check['service']} / {check['check']}")]
        )
        row += [
            _state(check["state"], in_flight=check.get("in_flight")),
            "never" if last_run is None else _ago(last_run, now),
        ]
        if wide:
            row.append("" if duration is None else f"{duration * 1000:.1f} ms")
        row.append(f"{percent(ok_ratio, 2)} of {runs}")
        if with_latency:
            row.append(_latency(check.get("latency")))
        row.append(_why(check))
        rows.append(row)
    return text_table.render("checks (last result)", columns, rows, width=width, colour=colour)


def _why(check: Entry) -> str:
    """The last failure, and while down the earlier reasons of this outage before it."""
    if check["reason"] is None:
        return ""
    text = f"{check['reason']}: {check['detail']}"
    earlier = [mark for mark in check["outage_reasons"] if mark["reason"] != check["reason"]]
    if earlier:
        text += "; earlier in this outage: " + ", ".join(
            dict.fromkeys(mark["reason"] or "failed" for mark in earlier)
        )
    return clean(text, REASON_LIMIT)


def _latency(latency: dict[str, Any] | None) -> str:
    """``97.00% ≤ 500ms /1d of 99%, budget -200.0%, burn 1h 3.00x`` ("—" without an objective)."""
    if latency is None:
        return "—"
    burn = latency.get("windows", {}).get("1h", {}).get("burn_rate")
    return (
        f"{percent(latency['ratio'], 2)} ≤ {format_duration(latency['threshold_seconds'])} "
        f"/{latency.get('slo_window', '')} of {latency['objective_ratio'] * 100:g}%, "
        f"budget {budget_words(latency['error_budget_remaining_ratio'])}, "
        f"burn 1h {'—' if burn is None else f'{burn:.2f}x'}"
    )


def _ago(timestamp: float, now: float) -> str:
    seconds = max(0.0, now - timestamp)
    return "just now" if seconds < 1 else f"{format_duration(seconds)} ago"
