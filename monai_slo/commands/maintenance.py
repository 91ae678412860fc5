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
from monai_slo.config.model import Config, Service
from monai_slo.durations import format_duration
from monai_slo.history.evaluation import maintenance_windows
from monai_slo.history.store import HistoryStore, MaintenanceRow
from monai_slo.outputs.report_html import audit_text
from monai_slo.safe_text import cell
from monai_slo.slo.availability import ALERT_WINDOWS


def cli_user() -> str:
    """The OS user running the command, as the audit trail names them ("unknown" when the
    platform cannot tell)."""
    try:
        return getpass.getuser() or "unknown"
    except Exception:  # no login name, no USER/LOGNAME, no passwd entry
        return "unknown"


def resolve_targets(
    config: Config, environment: str | None, service: str | None
) -> list[Service] | str:
    """The services a command names, or an error message."""
    if environment is None and service is None:
        return "name a service (--service) or an environment (--environment)"
    matches = [
        s
        for s in config.services()
        if environment in (None, s.environment) and service in (None, s.name)
    ]
    if not matches:
        return (
            f"no service matches --environment {environment} --service {service} in {config.source}"
        )
    if service is not None and len({s.environment for s in matches}) > 1:
        names = ", ".join(sorted({s.environment for s in matches}))
        return f"service {service!r} exists in several environments ({names}); add --environment"
    return matches


def start(
    config: Config,
    *,
    environment: str | None,
    service: str | None,
    duration: float,
    reason: str,
    start_at: float | None = None,
) -> int:
    targets = resolve_targets(config, environment, service)
    if isinstance(targets, str):
        print(targets, file=sys.stderr)
        return ExitCode.USAGE
    now = time.time()
    begin = now if start_at is None else start_at
    store = HistoryStore(config.storage, retention=config.retention)
    try:
        env_name = targets[0].environment
        window_id = store.add_maintenance(
            env_name, service, begin, begin + duration, reason=reason, now=now, author=cli_user()
        )
    finally:
        store.close()
    scope = f"{env_name}/{service}" if service else f"{env_name} (every service)"
    print(
        f"maintenance #{window_id} for {scope}: {utc(begin)} to {utc(begin + duration)} "
        f"({format_duration(duration)}){': ' + reason if reason else ''}"
    )
    return ExitCode.OK


def stop(
    config: Config, *, environment: str | None, service: str | None, window_id: int | None
) -> int:
    if window_id is None:
        targets = resolve_targets(config, environment, service)
        if isinstance(targets, str):
            print(targets, file=sys.stderr)
            return ExitCode.USAGE
        environment = targets[0].environment
    store = HistoryStore(config.storage, retention=config.retention)
    try:
        changed = store.end_maintenance(
            time.time(),
            window_id=window_id,
            environment=environment,
            service=service,
            author=cli_user(),
        )
    finally:
        store.close()
    if not changed:
        print("no active or planned maintenance matched", file=sys.stderr)
        return ExitCode.FAILED
    print(f"ended {changed} maintenance window{'s' if changed != 1 else ''}")
    return ExitCode.OK


def list_windows(config: Config, *, past: float, output: str = "table") -> int:
    """Active and upcoming windows (config and CLI), and those ended within ``past`` seconds."""
    now = time.time()
    horizon = now + 7 * 86400
    stored: list[MaintenanceRow] = []
    if config.storage.exists():  # no history yet: only the config's windows exist
        store = HistoryStore(config.storage, retention=config.retention, read_only=True)
        try:
            stored = store.maintenance(now - max(past, *ALERT_WINDOWS))
        finally:
            store.close()
    table = Table(title="maintenance", title_justify="left")
    audit = {row.id: row for row in stored}
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
    data: list[dict[str, object]] = []
    rows = set()
    for service in config.services():
        for window in maintenance_windows(service, stored, now - past, horizon):
            scope = service.name
            key = (window.id, service.environment, scope, window.start)
            if key in rows:
                continue
            rows.add(key)
            state = (
                "active" if window.active(now) else ("ended" if window.end <= now else "planned")
            )
            source = "config" if window.id is None else "cli"
            row = audit.get(window.id) if window.id is not None else None
            data.append(
                {
                    "id": window.id,
                    "environment": service.environment,
                    "service": scope,
                    "start": utc(window.start),
                    "end": utc(window.end),
                    "state": state,
                    "source": source,
                    "reason": window.reason,
                    "created_by": None if row is None else row.created_by,
                    "created": None if row is None or not row.created else utc(row.created),
                    "ended_by": None if row is None else row.ended_by,
                    "ended_at": None if row is None or row.ended_at is None else utc(row.ended_at),
                    "planned_end": None
                    if row is None or row.planned_end is None
                    else utc(row.planned_end),
                }
            )
            table.add_row(
                "" if window.id is None else str(window.id),
                service.environment,
                scope,
                utc(window.start),
                utc(window.end),
                state,
                source,
                cell(window.reason),
                cell(audit_text(row) if window.id is not None else "from the config file"),
            )
    if output != "table":
        print_data(data, output)
    else:
        console().print(table)
    return ExitCode.OK
