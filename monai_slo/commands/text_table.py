"""Plain-text tables for the verbs a person runs often: ``tiers`` and the check rows of
``status``, which can be thousands long.

rich lays a 1,000-row table out in most of a second and costs ~60 ms to import; these tables
need neither its markup nor its boxes. Same rules as the rich tables: every line fits the
width, numbers are never cut (their columns do not wrap), names and details fold. Cells are
peer text already passed through :func:`monai_slo.safe_text.clean`; colour (SGR) is added only
on a terminal without ``NO_COLOR``.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

GAP = "  "
_MIN_FOLD = 6
"""A folding column is never made narrower than this (or its natural width)."""

GREEN, RED, YELLOW, CYAN, DIM = "32", "1;31", "33", "36", "2"


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    right: bool = False
    fold: bool = False
    """May wrap onto more lines when the table is too wide (numbers never do)."""


@dataclass(frozen=True, slots=True)
class Styled:
    """A cell shown in a colour on a terminal: ``Styled("DOWN", RED)``."""

    text: str
    sgr: str


Cell = str | Styled


def output_width() -> int:
    """A terminal's own width; piped output (logs, CI) gets COLUMNS, or wide lines (200)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return int(columns)
    return shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else 200


def colour_enabled() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def width_of(text: str) -> int:
    """Terminal cells ``text`` takes: wide East Asian characters two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(
        0
        if unicodedata.combining(char)
        else (2 if unicodedata.east_asian_width(char) in "WF" else 1)
        for char in text
    )


def _fold(text: str, width: int) -> list[str]:
    if width_of(text) <= width:
        return [text]
    lines = textwrap.wrap(text, width, break_on_hyphens=False) or [""]
    # textwrap counts characters; a line of wide characters is cut again by cells.
    out: list[str] = []
    for wrapped in lines:
        rest = wrapped
        while width_of(rest) > width:
            cut = width
            while cut > 1 and width_of(rest[:cut]) > width:
                cut -= 1
            out.append(rest[:cut])
            rest = rest[cut:]
        out.append(rest)
    return out


def _widths(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> list[int]:
    widths = [width_of(c.header) for c in columns]
    for row in rows:
        for i, text in enumerate(row):
            if (w := width_of(text)) > widths[i]:
                widths[i] = w
    excess = sum(widths) + len(GAP) * (len(columns) - 1) - width
    floors = [min(w, _MIN_FOLD) if c.fold else w for c, w in zip(columns, widths, strict=True)]
    while excess > 0:
        # Take from the widest folding column first, so the columns end up balanced.
        room = [(w - f, i) for i, (w, f) in enumerate(zip(widths, floors, strict=True)) if w > f]
        if not room:
            break  # nothing left to fold: the line is as narrow as its numbers allow
        widest = max(room)[1]
        second = max((widths[i] for _, i in room if i != widest), default=floors[widest])
        take = min(excess, widths[widest] - max(second, floors[widest]) or 1)
        widths[widest] -= take
        excess -= take
    return widths


def render(
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    *,
    width: int,
    caption: str = "",
    colour: bool = False,
    header: bool = True,
) -> str:
    """The table as text, one header rule, each row's cells folded to their column;
    ``header=False``: rows only (a block of label / value lines)."""
    texts = [[c.text if isinstance(c, Styled) else c for c in row] for row in rows]
    widths = (
        _widths(columns, texts, width)
        if header
        else _widths([Column("", c.right, c.fold) for c in columns], texts, width)
    )
    lines = [title] if title else []

    def line(cells: Sequence[list[str]], styles: Sequence[str]) -> None:
        for depth in range(max(len(c) for c in cells)):
            parts = []
            for column, size, folded, sgr in zip(columns, widths, cells, styles, strict=True):
                text = folded[depth] if depth < len(folded) else ""
                pad = " " * (size - width_of(text))
                if colour and sgr and text:
                    text = f"\x1b[{sgr}m{text}\x1b[0m"
                parts.append(pad + text if column.right else text + pad)
            lines.append(GAP.join(parts).rstrip())

    if header:
        heads = [_fold(c.header, w) for c, w in zip(columns, widths, strict=True)]
        line(heads, [""] * len(columns))
        lines.append("─" * (sum(widths) + len(GAP) * (len(widths) - 1)))
    for row, text_row in zip(rows, texts, strict=True):
        line(
            [
                [t] if not c.fold else _fold(t, w)
                for c, t, w in zip(columns, text_row, widths, strict=True)
            ],
            [cell.sgr if isinstance(cell, Styled) else "" for cell in row],
        )
    if caption:
        lines += _fold(caption, max(width, 1))
    return "\n".join(lines) + "\n"
