"""``monai-slo report``: the availability report for a period, as HTML, PDF, CSV or JSON."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.config.model import Config
from monai_slo.history.store import HistoryStore
from monai_slo.outputs.report import AvailabilityReport, build_report, default_output, parse_period

FORMATS = ("html", "pdf", "csv", "json")


def report_command(
    config: Config,
    period: str,
    output: Path | None,
    *,
    now: float | None = None,
    fmt: str = "html",
) -> int:
    """``monai-slo report --period 2026-11 [--format F] [-o FILE|-]``: write the report; 0
    written, 1 no history, 2 a bad period or no PDF printer."""
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
    return write_report(report, fmt, output)


def render(report: AvailabilityReport, fmt: str) -> str | bytes:
    """The report in ``fmt`` (one of :data:`FORMATS`); raises PdfError for pdf."""
    from monai_slo.outputs.report_html import render_report

    if fmt == "json":
        from monai_slo.outputs.report_data import render_json

        return render_json(report)
    if fmt == "csv":
        from monai_slo.outputs.report_csv import render_csv

        return render_csv(report)
    if fmt == "pdf":
        from monai_slo.outputs.report_pdf import render_pdf

        return render_pdf(render_report(report))
    return render_report(report)


def write_report(report: AvailabilityReport, fmt: str, output: Path | None) -> int:
    """Writes ``report`` to ``output`` (``-``: stdout; None: the default name with the
    format's extension) and says where on stdout."""
    from monai_slo.outputs.report_pdf import PdfError

    try:
        content = render(report, fmt)
    except PdfError as exc:
        print(exc, file=sys.stderr)
        return ExitCode.USAGE
    if output is not None and str(output) == "-":
        if isinstance(content, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(content)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(content)
        return ExitCode.OK
    target = output or default_output(report.period, fmt)
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        # newline="": the CSV's CRLF rows as RFC 4180 writes them, on every platform.
        with target.open("w", encoding="utf-8", newline="") as handle:
            handle.write(content)
    print(f"wrote {target}")
    return ExitCode.OK
