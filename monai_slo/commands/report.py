"""``monai-slo report``: the availability report for a period, written as HTML."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.config.model import Config
from monai_slo.history.store import HistoryStore
from monai_slo.outputs.report import build_report, default_output, parse_period


def report_command(
    config: Config, period: str, output: Path | None, *, now: float | None = None
) -> int:
    """``monai-slo report --period 2026-11 [-o FILE]``: write the HTML report; 0 written,
    1 no history, 2 a bad period."""
    from monai_slo.outputs.report_html import render_report

    try:
        parsed = parse_period(period)
    except ValueError as exc:
        print(f"--period: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if not config.storage.exists():
        print(f"no history yet at {config.storage}; start `monai-slo run` first", file=sys.stderr)
        return ExitCode.FAILED
    store = HistoryStore(config.storage, retention=config.retention, read_only=True)
    try:
        report = build_report(config, store, parsed, time.time() if now is None else now)
    finally:
        store.close()
    target = output or default_output(parsed)
    target.write_text(render_report(report), encoding="utf-8")
    print(f"wrote {target}")
    return ExitCode.OK
