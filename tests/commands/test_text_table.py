"""The plain-text tables (`tiers`, the rows of `status`): every line fits the width, numbers
are never cut, names and details fold onto more lines and lose no character."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from monai_slo.commands.text_table import Column, Styled, render, width_of

_COLUMNS = [Column("NAME", fold=True), Column("RUNS", right=True), Column("DETAIL", fold=True)]
_ROWS = [
    ["pacs / dicom-echo-primary", "99.99% of 86400", "refused: connection refused by 10.0.0.1"],
    ["gw / 検査ゲートウェイ", "100.00% of 12", ""],
    ["x", Styled("12.5% of 8", "1;31"), "a" * 120],
]


@pytest.mark.parametrize("width", [40, 60, 80, 200])
def test_lines_fit_numbers_whole_text_kept(width: int) -> None:
    text = render("", _COLUMNS, _ROWS, width=width)
    lines = text.splitlines()
    assert max(width_of(line) for line in lines) <= width
    for number in ("99.99% of 86400", "100.00% of 12", "12.5% of 8"):
        assert number in text  # on one line, whole
    body = "\n".join(line for line in lines if not line.startswith("─"))
    shown = sorted("".join(body.split()))
    given = [c.header for c in _COLUMNS] + [
        c.text if isinstance(c, Styled) else c for row in _ROWS for c in row
    ]
    assert shown == sorted("".join("".join(given).split()))  # every character, once
    assert "\x1b" not in text  # no colour unless asked


def test_colour_only_when_asked_and_alignment_kept() -> None:
    plain = render("", _COLUMNS, _ROWS, width=200).splitlines()
    coloured = render("", _COLUMNS, _ROWS, width=200, colour=True).splitlines()
    assert "\x1b[1;31m12.5% of 8\x1b[0m" in coloured[4]
    assert coloured[4].replace("\x1b[1;31m", "").replace("\x1b[0m", "") == plain[4]


def test_right_aligned_numbers_and_wide_characters_line_up() -> None:
    """A wide-character name (two cells each) still pads its column to the same edge."""
    lines = render("", _COLUMNS, _ROWS, width=200).splitlines()[2:]
    numbers = ("99.99% of 86400", "100.00% of 12", "12.5% of 8")
    ends = {
        width_of(line[: line.index(n) + len(n)]) for line, n in zip(lines, numbers, strict=True)
    }
    assert len(ends) == 1


@pytest.mark.parametrize("columns", [80, 120])
def test_tiers_fits_and_shows_every_figure(columns: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "monai_slo", "tiers"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": str(columns)},
        check=True,
    )
    assert max(width_of(line) for line in done.stdout.splitlines()) <= columns
    squeezed = "".join(done.stdout.split())
    for figure in ("7d7h12m", "5m15s", "99.999%", "25.9s", "3d15h36m"):
        assert figure in squeezed
    assert "cloud is a location" in done.stdout
