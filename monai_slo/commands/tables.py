"""Tables a person reads at a glance, and the same facts as data for scripts (``-o json``).

The default layouts are whole at 100 columns and readable at 80; ``--wide`` shows every
column. Numbers are never cut: their columns do not wrap, names and details do. ``status``
and ``tiers`` are printed as plain text (``status_tables.py``, ``tiers_table.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from monai_slo.safe_text import cell

if TYPE_CHECKING:  # types only: the table verbs print without importing history or kinds
    from monai_slo.checks.base import CheckResult
    from monai_slo.config.model import CheckRef


def console() -> Console:
    # A terminal gets its own width; piped output (logs, CI) gets COLUMNS, or wide lines.
    tty = sys.stdout.isatty()
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() else (None if tty else 200)
    return Console(width=width, no_color=not tty, highlight=False)


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
