"""``status --prometheus URL`` and ``report --prometheus URL``: the fleet's figures as the
engine evaluating the generated rules recorded them, printed and rendered as for one prober."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.commands.output import print_data
from monai_slo.config.model import Config
from monai_slo.outputs.prometheus_source import EngineError, PrometheusSource


def _probers_line(url: str, probers: tuple[str, ...]) -> str:
    names = ", ".join(probers) if probers else "none"
    return f"fleet view from {url}: {len(probers)} probers reporting ({names})"


def fleet_status_command(
    config: Config, url: str, output: str = "table", *, wide: bool = False
) -> int:
    from monai_slo.commands.status_tables import status_table
    from monai_slo.commands.text_table import colour_enabled, output_width
    from monai_slo.outputs.fleet_view import fleet_status
    from monai_slo.outputs.status_data import status_data

    try:
        fleet = fleet_status(config, PrometheusSource(url), time.time())
    except EngineError as exc:
        print(f"status --prometheus: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    data = status_data(fleet.reports, source="prometheus")
    data["probers"] = list(fleet.probers)
    for service in data["services"]:
        service["probers_reporting"] = fleet.reporting.get(
            (service["environment"], service["service"]), 0
        )
    if output != "table":
        print_data(data, output)
        return ExitCode.OK
    width, colour = output_width(), colour_enabled()
    sys.stdout.write(_probers_line(url, fleet.probers) + "\n")
    sys.stdout.write(status_table(data["services"], wide=wide, width=width, colour=colour) + "\n")
    return ExitCode.OK


def fleet_report_command(
    config: Config,
    url: str,
    period: str,
    output: Path | None,
    *,
    now: float | None = None,
    fmt: str = "html",
) -> int:
    from monai_slo.commands.report import write_report
    from monai_slo.outputs.fleet_view import fleet_report
    from monai_slo.outputs.report import parse_period

    try:
        parsed = parse_period(period)
    except ValueError as exc:
        print(f"--period: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        report, probers = fleet_report(
            config, PrometheusSource(url), parsed, time.time() if now is None else now
        )
    except EngineError as exc:
        print(f"report --prometheus: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    # On stderr when the report itself goes to stdout (-o -).
    to_stdout = output is not None and str(output) == "-"
    print(_probers_line(url, probers), file=sys.stderr if to_stdout else sys.stdout)
    return write_report(report, fmt, output)
