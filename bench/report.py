"""The result table: each figure beside its baselines, the ratio, and the target."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Baseline:
    name: str
    value: float


@dataclass(frozen=True, slots=True)
class Row:
    """One figure. ``target`` is text for the table; ``met`` None when there is none."""

    section: str
    figure: str
    value: float
    unit: str
    baselines: Sequence[Baseline] = ()
    target: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Report:
    machine: dict[str, str]
    command: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, rows: Iterable[Row]) -> None:
        self.rows.extend(rows)


def _number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "%":
        text = f"{value:.2f}"
    elif abs(value) >= 100 or value == int(value):
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def _ratio(value: float, baseline: float) -> str:
    if baseline == 0 or math.isnan(value) or math.isnan(baseline):
        return "n/a"
    ratio = value / baseline
    return f"{ratio:.2f}x" if ratio >= 0.01 else f"{ratio:.4f}x"


def _met(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "NO")


_HEADER = ("figure", "monai-slo", "baseline", "baseline value", "ratio", "target", "met")


def table_rows(report: Report) -> list[tuple[str, ...]]:
    lines: list[tuple[str, ...]] = []
    for row in report.rows:
        value = _number(row.value, row.unit)
        first = (f"[{row.section}] {row.figure}", value)
        baselines: list[Baseline | None] = [*row.baselines] or [None]
        for index, baseline in enumerate(baselines):
            lead = first if index == 0 else ("", "")
            target = (row.target, _met(row.met)) if index == 0 else ("", "")
            if baseline is None:
                lines.append((*lead, "", "", "", *target))
            else:
                lines.append(
                    (
                        *lead,
                        baseline.name,
                        _number(baseline.value, row.unit),
                        _ratio(row.value, baseline.value),
                        *target,
                    )
                )
    return lines


def text(report: Report) -> str:
    """A fixed-width table for the terminal, machine first."""
    out = ["machine: " + "; ".join(f"{k} {v}" for k, v in report.machine.items()), ""]
    lines = [_HEADER, *table_rows(report)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(_HEADER))]
    for number, line in enumerate(lines):
        out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if number == 0:
            out.append("  ".join("-" * width for width in widths))
    out += ["", *report.notes]
    return "\n".join(out).rstrip() + "\n"


def markdown(report: Report) -> str:
    """The same table in Markdown, for docs/performance.md."""
    out = [f"Command: `{report.command}`", ""]
    out += ["| machine | |", "|---|---|"]
    out += [f"| {key} | {value} |" for key, value in report.machine.items()]
    out += ["", "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    for line in table_rows(report):
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |")
    if report.notes:
        out += ["", *(f"- {note}" for note in report.notes)]
    return "\n".join(out) + "\n"
