"""`monai-slo incident open|update|resolve|list`: operators' notes on what went wrong and what is
being done, stored in the history database beside the outages they explain, so the status page
(current incident and the last 90 days) and the report show them."""

from __future__ import annotations

import sys
import time

from rich.table import Table

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.commands.maintenance import cli_user
from monai_slo.commands.output import print_data
from monai_slo.commands.tables import console
from monai_slo.config.maintenance import utc
from monai_slo.config.model import Config
from monai_slo.history.store import HistoryStore, IncidentRow
from monai_slo.history.windows import resolve_targets
from monai_slo.safe_text import cell, clean

LIST_DAYS = 90


def _open_incident(store: HistoryStore, environment: str, service: str) -> IncidentRow | None:
    open_ones = [
        incident
        for incident in store.incidents(time.time())
        if incident.resolved is None
        and (incident.environment, incident.service) == (environment, service)
    ]
    return open_ones[-1] if open_ones else None


def incident_command(
    config: Config,
    action: str,
    *,
    environment: str | None,
    service: str,
    text: str,
) -> int:
    """open: a new incident (one open per service); update/resolve: a note on the open one."""
    targets = resolve_targets(config, environment, service)
    if isinstance(targets, str):
        print(targets, file=sys.stderr)
        return ExitCode.USAGE
    env_name = targets[0].environment
    if action in ("open", "update") and not text.strip():
        print(f"incident {action}: say what is happening (the text argument)", file=sys.stderr)
        return ExitCode.USAGE
    now = time.time()
    author = cli_user()
    store = HistoryStore(config.storage, retention=config.retention)
    try:
        current = _open_incident(store, env_name, service)
        if action == "open":
            if current is not None:
                print(
                    f"incident #{current.id} is already open on {env_name}/{service}; "
                    "use `incident update` or `incident resolve`",
                    file=sys.stderr,
                )
                return ExitCode.FAILED
            incident_id = store.open_incident(env_name, service, text, author=author, now=now)
            print(f"incident #{incident_id} opened on {env_name}/{service} by {clean(author)}")
            return ExitCode.OK
        if current is None:
            print(f"no open incident on {env_name}/{service}", file=sys.stderr)
            return ExitCode.FAILED
        store.note_incident(current.id, text, author=author, now=now, resolve=action == "resolve")
    finally:
        store.close()
    done = "resolved" if action == "resolve" else "updated"
    print(f"incident #{current.id} on {env_name}/{service} {done} by {clean(author)}")
    return ExitCode.OK


def list_incidents(config: Config, *, output: str = "table", days: int = LIST_DAYS) -> int:
    """Open incidents and those resolved within ``days`` days, with every note."""
    incidents: list[IncidentRow] = []
    if config.storage.exists():
        store = HistoryStore(config.storage, retention=config.retention, read_only=True)
        try:
            incidents = store.incidents(time.time() - days * 86400)
        finally:
            store.close()
    if output != "table":
        print_data(
            [
                {
                    "id": i.id,
                    "environment": i.environment,
                    "service": i.service,
                    "state": "open" if i.resolved is None else "resolved",
                    "opened": utc(i.opened),
                    "opened_by": i.opened_by,
                    "resolved": None if i.resolved is None else utc(i.resolved),
                    "resolved_by": i.resolved_by,
                    "updates": [
                        {"at": utc(u.at), "author": u.author, "state": u.state, "text": u.text}
                        for u in i.updates
                    ],
                }
                for i in incidents
            ],
            output,
        )
        return ExitCode.OK
    table = Table(title="incidents", title_justify="left")
    for column in ("ID", "ENVIRONMENT", "SERVICE", "STATE", "OPENED", "RESOLVED", "NOTES"):
        table.add_column(column, overflow="fold")
    for i in incidents:
        notes = " | ".join(
            f"{utc(u.at)} {u.state} by {u.author}" + (f": {u.text}" if u.text else "")
            for u in i.updates
        )
        table.add_row(
            str(i.id),
            cell(i.environment),
            cell(i.service),
            "open" if i.resolved is None else "resolved",
            cell(f"{utc(i.opened)} by {i.opened_by}"),
            "" if i.resolved is None else cell(f"{utc(i.resolved)} by {i.resolved_by or ''}"),
            cell(notes, 4000),
        )
    console().print(table)
    return ExitCode.OK
