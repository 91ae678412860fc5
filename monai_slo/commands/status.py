"""``monai-slo status``: per service objective, availability per window, error budget, burn
rate and current state.

It asks the running daemon at the config's ``listen`` address first (``/api/v1/status``: its
figures are in memory, and only it knows which canaries are still in flight, shown as pending);
when nothing accepts the connection within half a second (or the answer takes over 5 s), the
listener needs TLS or basic auth, or the daemon runs another config, it reads the history file
(never written). The output says which: ``source`` in ``-o json``, one line on stderr with the
tables.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.commands.output import print_data

if TYPE_CHECKING:
    from monai_slo.config.model import Config

SOURCES = ("auto", "daemon", "history")
# Nothing listening is known at once and a dead host within DAEMON_CONNECT; a daemon that
# answers is given longer, as reading the history instead would take longer still.
DAEMON_CONNECT = 0.5
DAEMON_ANSWER = 5.0
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def status_command(
    config: Config, output: str = "table", *, wide: bool = False, source: str = "auto"
) -> int:
    document: dict[str, Any] | None = None
    note = ""
    if source != "history":
        document, note = from_daemon(config)
        if document is None and source == "daemon":
            print(f"status: {note}", file=sys.stderr)
            return ExitCode.FAILED
    if document is None:
        if not config.storage.exists():
            print(
                f"no history yet at {config.storage}; start `monai-slo run` first", file=sys.stderr
            )
            return ExitCode.FAILED
        document = from_history(config)
        note = f"history file {config.storage}" + (f" ({note})" if note else "")
    if output != "table":
        print_data(document, output)
        return ExitCode.OK
    from monai_slo.commands.status_tables import service_checks_table, status_table
    from monai_slo.commands.text_table import colour_enabled, output_width

    width, colour = output_width(), colour_enabled()
    services, checks = document["services"], document["checks"]
    sys.stdout.write(status_table(services, wide=wide, width=width, colour=colour) + "\n")
    sys.stdout.write(service_checks_table(checks, wide=wide, width=width, colour=colour))
    sys.stdout.flush()
    print(f"source: {note}", file=sys.stderr)
    return ExitCode.OK


def from_history(config: Config) -> dict[str, Any]:
    """The status document evaluated from the history file, read-only."""
    from monai_slo.history.evaluation import evaluate
    from monai_slo.history.store import HistoryStore
    from monai_slo.outputs.status_data import status_data

    store = HistoryStore(config.storage, retention=config.retention, read_only=True)
    try:
        reports = evaluate(config, store, time.time())
    finally:
        store.close()
    return status_data(reports, source="history")


def daemon_url(listen: str) -> str:
    """Where this host reaches a daemon listening on ``listen``."""
    from monai_slo.config.model import parse_listen

    host, port = parse_listen(listen)
    host = _ANY_ADDRESS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def from_daemon(config: Config) -> tuple[dict[str, Any] | None, str]:
    """The running daemon's status document and "daemon at ADDRESS", or None and why not."""
    from monai_slo.daemon.client import ApiError, Endpoint, call

    where = f"the daemon at {config.listen}"
    web = config.web
    if web is not None and web.tls_server_config is not None:
        return None, f"{where} needs TLS"
    if web is not None and web.basic_auth_users:
        return None, f"{where} needs basic auth"
    try:
        status, document = call(
            Endpoint(daemon_url(config.listen)),
            "GET",
            "/api/v1/status",
            timeout=DAEMON_ANSWER,
            connect_timeout=DAEMON_CONNECT,
        )
    except ApiError as exc:
        return None, f"no daemon answered at {config.listen}: {exc}"
    if status != 200:
        return None, f"{where} answered HTTP {status}"
    if not _same_checks(config, document):
        return None, f"{where} runs another config (or an older one: reload it with SIGHUP)"
    return document, f"daemon at {config.listen}"


def _same_checks(config: Config, document: Any) -> bool:
    """Whether a document describes exactly this config's checks (a daemon for another config
    may listen on the same address)."""
    if not isinstance(document, dict) or document.get("source") != "daemon":
        return False
    services, checks = document.get("services"), document.get("checks")
    if not isinstance(services, list) or not isinstance(checks, list):
        return False
    try:
        answered = [(c["environment"], c["service"], c["check"]) for c in checks]
    except (TypeError, KeyError):
        return False
    return answered == [ref.key for ref in config.checks()] and len(services) == len(
        list(config.services())
    )
