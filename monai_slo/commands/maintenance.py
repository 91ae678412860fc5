"""`monai-slo maintenance start|stop|list`: ad hoc windows, stored in the history database so the
daemon (which reads them at every evaluation) and a restart both see them."""

from __future__ import annotations

import getpass
import sys
import time

from rich.table import Table

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.commands.output import print_data
from monai_slo.commands.tables import console
from monai_slo.config.maintenance import utc
from monai_slo.config.model import Config
from monai_slo.durations import format_duration
from monai_slo.history.store import HistoryStore, MaintenanceRow
from monai_slo.history.windows import end_windows, listed_windows, resolve_targets, start_window
from monai_slo.outputs.report_data import audit_text
from monai_slo.safe_text import cell
from monai_slo.slo.availability import ALERT_WINDOWS


def cli_user() -> str:
    """The OS user running the command, as the audit trail names them ("unknown" when the
    platform cannot tell)."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no login name, no USER/LOGNAME, no passwd entry
        return "unknown"


def start(
    config: Config,
    *,
    environment: str | None,
    service: str | None,
    duration: float,
    reason: str,
    start_at: float | None = None,
) -> int:
    now = time.time()
    begin = now if start_at is None else start_at
    store = HistoryStore(config.storage, retention=config.retention)
    try:
        started = start_window(
            store,
            config,
            environment=environment,
            service=service,
            start=begin,
            end=begin + duration,
            reason=reason,
            author=cli_user(),
            now=now,
        )
    finally:
        store.close()
    if isinstance(started, str):
        print(started, file=sys.stderr)
        return ExitCode.USAGE
    print(
        f"maintenance #{started.id} for {started.scope}: {utc(begin)} to {utc(begin + duration)} "
        f"({format_duration(duration)}){': ' + reason if reason else ''}"
    )
    return ExitCode.OK


def stop(
    config: Config, *, environment: str | None, service: str | None, window_id: int | None
) -> int:
    if window_id is None:  # refuse a bad target before opening the history for writing
        targets = resolve_targets(config, environment, service)
        if isinstance(targets, str):
            print(targets, file=sys.stderr)
            return ExitCode.USAGE
    store = HistoryStore(config.storage, retention=config.retention)
    try:
        changed = end_windows(
            store,
            config,
            window_id=window_id,
            environment=environment,
            service=service,
            author=cli_user(),
            now=time.time(),
        )
    finally:
        store.close()
    if isinstance(changed, str):
        print(changed, file=sys.stderr)
        return ExitCode.USAGE
    if not changed:
        print("no active or planned maintenance matched", file=sys.stderr)
        return ExitCode.FAILED
    print(f"ended {changed} maintenance window{'s' if changed != 1 else ''}")
    return ExitCode.OK


def list_windows(config: Config, *, past: float, output: str = "table") -> int:
    """Active and upcoming windows (config and CLI), and those ended within ``past`` seconds."""
    now = time.time()
    stored: list[MaintenanceRow] = []
    if config.storage.exists():  # no history yet: only the config's windows exist
        store = HistoryStore(config.storage, retention=config.retention, read_only=True)
        try:
            stored = store.maintenance(now - max(past, *ALERT_WINDOWS))
        finally:
            store.close()
    listed = listed_windows(config, stored, now, past)
    if output != "table":
        print_data([entry.data() for entry in listed], output)
        return ExitCode.OK
    table = Table(title="maintenance", title_justify="left")
    for column in (
        "ID",
        "ENVIRONMENT",
        "SERVICE",
        "START",
        "END",
        "STATE",
        "SOURCE",
        "REASON",
        "AUDIT",
    ):
        table.add_column(column, overflow="fold")
    for entry in listed:
        window = entry.window
        table.add_row(
            "" if window.id is None else str(window.id),
            entry.environment,
            entry.service,
            utc(window.start),
            utc(window.end),
            entry.state,
            "config" if window.id is None else "cli",
            cell(window.reason),
            cell(audit_text(entry.audit) if window.id is not None else "from the config file"),
        )
    console().print(table)
    return ExitCode.OK
