"""The ``monai-slo`` command: argument parsing only; each verb calls into the modules."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from monai_slo import __version__
from monai_slo.commands.exit_codes import ExitCode
from monai_slo.commands.output import FORMATS
from monai_slo.config.paths import default_paths
from monai_slo.daemon.listen_error import ListenError
from monai_slo.safe_text import CleanFormatter, JsonFormatter
from monai_slo.tiers import TierName

# Each verb imports what it uses when it runs: the config model (pydantic, the kinds a config
# names), YAML and the history store are not needed to parse arguments or to print `tiers`.
if TYPE_CHECKING:
    from monai_slo.config.model import Config


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if args.log_format == "json"
        else CleanFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), handlers=[handler])
    # APScheduler narrates every job run at INFO; its warnings (missed runs) still show.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.root.level))
    # pynetdicom logs every refused or rejected association at ERROR with tracebacks; the check's
    # own result line already says what happened, so keep its chatter for --log-level debug.
    if logging.root.level > logging.DEBUG:
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args))
    except ListenError as exc:
        print(exc.strerror, file=sys.stderr)
        return ExitCode.USAGE
    except Exception as exc:
        # A SourceError (StoreError) can only come from the YAML (store) module, so if it was
        # never imported there is nothing to catch: one line naming the file and what to do.
        source = sys.modules.get("monai_slo.yaml_source")
        if source is not None and isinstance(exc, source.SourceError):
            print(f"config error:\n{exc}", file=sys.stderr)
            return ExitCode.USAGE
        store = sys.modules.get("monai_slo.history.store")
        if store is None or not isinstance(exc, store.StoreError):
            raise
        print(exc, file=sys.stderr)
        return ExitCode.USAGE


def config_option(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    """``-c FILE``; on a sub-verb too (``maintenance start -c FILE``), where it must not
    reset what was given before the sub-verb."""
    parser.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS if nested else None,
        help=f"config file (default: $MONAI_SLO_CONFIG or {default_paths().config})",
    )


def source_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=("auto", "daemon", "history"),
        default="auto",
        help="auto (default): the running daemon at the config's listen address, else the "
        "history file",
    )


def output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default="table",
        help="table for people (default), json or yaml for scripts",
    )


def prometheus_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--prometheus",
        metavar="URL",
        help="read the fleet SLI the generated rules record from this Prometheus or "
        "VictoriaMetrics query API instead of this host's history",
    )


def _report_parser(report: argparse.ArgumentParser) -> None:
    report.add_argument(
        "--period",
        required=True,
        help="a UTC month such as 2026-11, or days 2026-11-05..2026-11-20",
    )
    report.add_argument(
        "-o",
        "--output",
        help="file to write, - for stdout (default: ./monai-slo-report-PERIOD.FORMAT)",
    )
    report.add_argument(
        "--format",
        choices=("html", "pdf", "csv", "json"),
        default="html",
        help="html (default); pdf (printed by headless Chromium, $MONAI_SLO_CHROMIUM); csv, "
        "one row per service; json, the whole report for scripts",
    )
    prometheus_option(report)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monai-slo",
        description="Availability SLO monitoring for MONAI Deploy operating environments.",
    )
    parser.add_argument("--version", action="version", version=f"monai-slo {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="json: one object per line with stable keys (journald, Loki)",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(
        name: str, help_text: str, func: object, config: bool = True
    ) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        if config:
            config_option(sub)
        sub.set_defaults(func=func)
        return sub

    run = verb("run", "run the daemon (SIGHUP reloads, SIGTERM stops)", _run)
    run.add_argument("--listen", help="override the config's listen address (host:port)")
    check = verb("check", "run every check once and print a table (exit 1 if any failed)", _check)
    check.add_argument("--service", help="only the checks of this service")
    verb("validate", "validate the config and warn about unmeasurable objectives", _validate)
    status = verb(
        "status",
        "availability, error budget and burn rate per service, from the daemon or history",
        _status,
    )
    tiers = verb(
        "tiers", "the operating-environment tiers and their allowed downtime", _tiers, config=False
    )
    source_option(status)
    for sub in (check, status):
        sub.add_argument("--wide", action="store_true", help="every column, however wide")
    prometheus_option(status)
    for sub in (check, status, tiers):
        output_option(sub)
    rules = verb("rules", "write Prometheus recording and alerting rules for the config", _rules)
    rules.add_argument("-o", "--output", help="directory to write into (default: stdout)")
    _conformance_parser(
        verb(
            "conformance",
            "check this host against its tier's hardware requirements",
            _conformance,
            config=False,
        )
    )
    verb("openslo", "write the config's SLOs as OpenSLO v1 documents", _openslo).add_argument(
        "-o", "--output", default="-", help="yaml or - (stdout, default), json, or a directory"
    )
    _report_parser(
        verb("report", "write a self-contained HTML availability report for a period", _report)
    )
    _maintenance_parser(
        verb("maintenance", "start, stop or list planned maintenance", _maintenance)
    )
    _incident_parser(verb("incident", "open, update, resolve or list incidents", _incident))
    demo = verb(
        "demo",
        "run the daemon against local simulated peers, one of them flaky",
        _demo,
        config=False,
    )
    demo.add_argument("--listen", default="127.0.0.1:9790", help="metrics address (host:port)")
    demo.add_argument(
        "--storage",
        default="monai-slo-demo.sqlite",
        help="history file (default: ./monai-slo-demo.sqlite)",
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument(
        "--every",
        type=float,
        default=15.0,
        help="print the status table every N seconds (0: never)",
    )
    return parser


def _maintenance_parser(maintenance: argparse.ArgumentParser) -> None:
    actions = maintenance.add_subparsers(dest="action", required=True, metavar="ACTION")
    begin = actions.add_parser("start", help="start (or schedule) a maintenance window")
    end = actions.add_parser("stop", help="end active maintenance early")
    listing = actions.add_parser("list", help="active, planned and recent windows")
    for sub in (begin, end, listing):
        config_option(sub, nested=True)
    for sub in (begin, end):
        sub.add_argument("--service", help="the service (default: every service of --environment)")
        sub.add_argument("--environment", help="the environment (needed if the name is ambiguous)")
        sub.add_argument(
            "--prober",
            action="append",
            metavar="URL",
            help="send it to this prober's API instead of this host's history (repeatable)",
        )
        sub.add_argument("--prober-user", help="basic-auth user for --prober")
        sub.add_argument(
            "--prober-password-file",
            help="file whose first line is the password (default: $MONAI_SLO_PROBER_PASSWORD)",
        )
        sub.add_argument("--prober-ca", help="CA file the probers' TLS certificates chain to")
    begin.add_argument("--for", dest="duration", required=True, type=_duration, help="e.g. 2h")
    begin.add_argument("--reason", default="", help="shown in list, status and alerts")
    begin.add_argument("--start", help="ISO 8601 start (default: now)")
    end.add_argument("--id", type=int, help="the window number `list` shows")
    output_option(listing)
    listing.add_argument(
        "--past", type=_duration, default=86400.0, help="also show windows ended within this"
    )


def _conformance_parser(conformance: argparse.ArgumentParser) -> None:
    judged = conformance.add_mutually_exclusive_group()
    judged.add_argument("-c", "--config", help="config file (default: as for the other verbs)")
    judged.add_argument(
        "--tier",
        action="append",
        choices=[tier.value for tier in TierName],
        help="judge against this tier without a config (repeatable; the default when there "
        "is no config file: every tier)",
    )
    output_option(conformance)


def _incident_parser(incident: argparse.ArgumentParser) -> None:
    steps = incident.add_subparsers(dest="action", required=True, metavar="ACTION")
    opening = steps.add_parser("open", help="open an incident on a service")
    updating = steps.add_parser("update", help="add a note to the service's open incident")
    resolving = steps.add_parser("resolve", help="resolve the service's open incident")
    incidents = steps.add_parser("list", help="open incidents and those of the last 90 days")
    for sub in (opening, updating, resolving, incidents):
        config_option(sub, nested=True)
    for sub in (opening, updating, resolving):
        sub.add_argument("--service", required=True, help="the service")
        sub.add_argument("--environment", help="the environment (needed if the name is ambiguous)")
    for sub in (opening, updating):
        sub.add_argument("text", help="what is happening, shown on the status page and report")
    resolving.add_argument("text", nargs="?", default="", help="what fixed it (optional)")
    output_option(incidents)


def _load(args: argparse.Namespace) -> Config:
    from monai_slo.config.model import config_path

    return _load_path(config_path(args.config))


def _load_path(path: Path) -> Config:
    """load_config, with any failure a config error naming the file, never a traceback."""
    from monai_slo.config.model import load_config
    from monai_slo.yaml_source import SourceError, SourceIssue

    try:
        return load_config(path)
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError([SourceIssue(str(path), None, "", f"cannot load: {exc!r}")]) from exc


def _run(args: argparse.Namespace) -> int:
    from monai_slo.commands.run import run_command, with_listen
    from monai_slo.config.model import config_path, load_config

    path = config_path(args.config)
    return run_command(
        with_listen(_load_path(path), args.listen),
        lambda: with_listen(load_config(path), args.listen),
    )


def _check(args: argparse.Namespace) -> int:
    from monai_slo.commands.check import check_command

    return check_command(_load(args), args.service, args.output, wide=args.wide)


def _validate(args: argparse.Namespace) -> int:
    from monai_slo.commands.validate import validate_command

    return validate_command(_load(args))


def _status(args: argparse.Namespace) -> int:
    from monai_slo.commands.status import status_command

    if args.prometheus:
        from monai_slo.commands.fleet import fleet_status_command

        return fleet_status_command(_load(args), args.prometheus, args.output, wide=args.wide)
    return status_command(_load(args), args.output, wide=args.wide, source=args.source)


def _tiers(args: argparse.Namespace) -> int:
    from monai_slo.commands.output import print_data
    from monai_slo.commands.text_table import output_width
    from monai_slo.commands.tiers_table import tiers_rows, tiers_text

    if args.output != "table":
        print_data(tiers_rows(), args.output)
    else:
        sys.stdout.write(tiers_text(output_width()))
    return ExitCode.OK


def _rules(args: argparse.Namespace) -> int:
    from monai_slo.commands.rules import rules_command

    return rules_command(_load(args), Path(args.output) if args.output else None)


def _openslo(args: argparse.Namespace) -> int:
    from monai_slo.commands.openslo import openslo_command

    return openslo_command(_load(args), args.output)


def _report(args: argparse.Namespace) -> int:
    from monai_slo.commands.report import report_command

    output = Path(args.output) if args.output else None
    if args.prometheus:
        from monai_slo.commands.fleet import fleet_report_command

        return fleet_report_command(
            _load(args), args.prometheus, args.period, output, fmt=args.format
        )
    return report_command(_load(args), args.period, output, fmt=args.format)


def _conformance(args: argparse.Namespace) -> int:
    from monai_slo.commands.conformance import conformance_command, no_config_file

    if args.tier or no_config_file(args.config):
        tiers = [TierName(tier) for tier in args.tier or ()]
        return conformance_command(None, output=args.output, tiers=tiers)
    return conformance_command(_load(args), output=args.output)


def _duration(text: str) -> float:
    from monai_slo.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _maintenance(args: argparse.Namespace) -> int:
    from monai_slo.commands import maintenance as maintenance_cli

    if args.action != "list" and args.prober:
        return _maintenance_on_probers(args)
    config = _load(args)
    if args.action == "start":
        start_at = _start_at(args)
        if isinstance(start_at, str):
            return ExitCode.USAGE
        return maintenance_cli.start(
            config,
            environment=args.environment,
            service=args.service,
            duration=args.duration,
            reason=args.reason,
            start_at=start_at,
        )
    if args.action == "stop":
        return maintenance_cli.stop(
            config, environment=args.environment, service=args.service, window_id=args.id
        )
    return maintenance_cli.list_windows(config, past=args.past, output=args.output)


def _start_at(args: argparse.Namespace) -> float | str | None:
    """``--start`` as a timestamp (None: now); "invalid" once the error is printed."""
    from monai_slo.config.maintenance import parse_start

    try:
        return parse_start(args.start, time.time()) if args.start else None
    except ValueError as exc:
        print(
            f"--start: expected an ISO 8601 time such as 2026-12-01T22:00+01:00 ({exc})",
            file=sys.stderr,
        )
        return "invalid"


def _maintenance_on_probers(args: argparse.Namespace) -> int:
    """``maintenance start|stop --prober URL ...``: the probers' own configs name the
    services, so this host needs no config."""
    from monai_slo.commands import probers

    found = probers.endpoints(
        args.prober, args.prober_user, args.prober_password_file, args.prober_ca
    )
    if isinstance(found, str):
        print(found, file=sys.stderr)
        return ExitCode.USAGE
    if args.action == "start":
        start_at = _start_at(args)
        if isinstance(start_at, str):
            return ExitCode.USAGE
        return probers.start(
            found,
            environment=args.environment,
            service=args.service,
            duration=args.duration,
            reason=args.reason,
            start_at=start_at,
        )
    if args.id is None and args.environment is None and args.service is None:
        print("name a service (--service), an environment (--environment) or --id", file=sys.stderr)
        return ExitCode.USAGE
    return probers.stop(
        found, environment=args.environment, service=args.service, window_id=args.id
    )


def _incident(args: argparse.Namespace) -> int:
    from monai_slo.commands import incident as incident_cli

    config = _load(args)
    if args.action == "list":
        return incident_cli.list_incidents(config, output=args.output)
    return incident_cli.incident_command(
        config,
        args.action,
        environment=args.environment,
        service=args.service,
        text=args.text,
    )


def _demo(args: argparse.Namespace) -> int:
    from monai_slo.commands.demo import run_demo

    return run_demo(
        listen=args.listen,
        storage=Path(args.storage).resolve(),
        duration=args.duration,
        every=args.every,
    )


if __name__ == "__main__":
    sys.exit(main())
