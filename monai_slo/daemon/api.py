"""The daemon's JSON API under ``/api/v1/``, answered on the listener's worker threads (never on
its event loop; monai_slo.daemon.server is the transport):

* ``GET /api/v1/status``: the status document (``monai-slo status -o json``) from the daemon's
  own figures, with the canaries in flight per check; a check whose newest canary is still on
  its way is ``pending``, not up.
* ``GET /api/v1/maintenance``: the windows, as ``maintenance list -o json`` lists them.
* ``POST /api/v1/maintenance``: start a window, the JSON twin of ``maintenance start``:
  ``{"service": "pacs", "environment": "radiology", "duration": "2h", "reason": "upgrade"}``
  (``service`` and/or ``environment``; ``duration`` or ``end``; ``start`` optional, default
  now; times ISO 8601 with a zone).
* ``DELETE /api/v1/maintenance/{id}``: end that window; ``DELETE
  /api/v1/maintenance?service=pacs&environment=radiology``: end the target's windows, as
  ``maintenance stop --service`` does.

The listener has already checked basic auth (when configured) and bounded the body and the time
to send it. Changes are refused (403) when no basic auth is configured, unless the listener is
bound to loopback, where only local users reach it. The author a window records is the
authenticated user, or ``api@<client address>`` on an unauthenticated loopback listener; the
window takes the CLI's own path into the history (monai_slo.history.windows), so ``maintenance
list``, the status page and the report show it with its author.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self
from urllib.parse import parse_qs

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from monai_slo.config.model import Config
from monai_slo.durations import Duration
from monai_slo.history.evaluation import ServiceReport
from monai_slo.history.store import HistoryStore
from monai_slo.history.windows import REASON_LIMIT, end_windows, listed_windows, start_window
from monai_slo.outputs.status_data import status_data
from monai_slo.safe_text import clean
from monai_slo.slo.availability import ALERT_WINDOWS

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
STATUS_PATH = "/api/v1/status"
MAINTENANCE_PATH = "/api/v1/maintenance"
LISTED_PAST = 86400.0  # ended windows listed, as `maintenance list` does by default
CheckKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class ApiRequest:
    method: str
    path: str
    query: str
    body: bytes
    user: str | None
    """The authenticated basic-auth user; None when the listener has no basic auth."""
    client: str
    """The client's address."""


@dataclass(frozen=True, slots=True)
class ApiAnswer:
    status: int
    document: Any
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> bytes:
        return json.dumps(self.document, default=str).encode() + b"\n"


def _error(status: int, message: str, **extra: Any) -> ApiAnswer:
    return ApiAnswer(status, {"error": message, **extra})


def is_loopback(host: str) -> bool:
    """Whether a listen host is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def changes_refused(auth_enabled: bool, host: str) -> str | None:
    """Why the API refuses changes on this listener (None: it accepts them): without basic
    auth anyone who reaches the port could silence alerts, so only loopback may."""
    if auth_enabled or is_loopback(host):
        return None
    return (
        "changes through the API need basic auth: add basic_auth_users to the web config "
        "(web_config_file), or listen on loopback"
    )


class MaintenanceRequest(BaseModel):
    """The body of ``POST /api/v1/maintenance``: ``maintenance start``'s options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    environment: str | None = None
    service: str | None = None
    duration: Duration | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    reason: str = Field("", max_length=REASON_LIMIT)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.environment is None and self.service is None:
            raise ValueError("name a service or an environment (or both)")
        if (self.duration is None) == (self.end is None):
            raise ValueError("give either duration or end")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be positive")
        return self

    def window(self, now: float) -> tuple[float, float]:
        begin = now if self.start is None else self.start.timestamp()
        end = begin + self.duration if self.duration is not None else _stamp(self.end)
        return begin, end


def _stamp(moment: datetime | None) -> float:
    assert moment is not None
    return moment.timestamp()


def _invalid(exc: ValidationError) -> ApiAnswer:
    """400 naming the first field that is wrong (``"field": null`` for the whole object)."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"].removeprefix("Value error, ")
    return _error(400, f"{where}: {message}" if where else message, field=where)


def _parse(body: bytes) -> dict[str, Any] | ApiAnswer:
    try:
        document = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return _error(400, "request body is not UTF-8 text", field=None)
    except json.JSONDecodeError as exc:
        return _error(400, f"request body is not JSON: {exc}", field=None)
    if not isinstance(document, dict):
        return _error(400, "request body must be a JSON object", field=None)
    return document


class DaemonApi:
    """Answers API requests from the daemon's live config, store, evaluation and runner."""

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        store: HistoryStore,
        reports: Callable[[float], list[ServiceReport]],
        canaries: Callable[[], dict[CheckKey, tuple[int, bool]]],
        refusal: str | None,
        clock: Callable[[], float],
    ) -> None:
        """``reports``: every service evaluated at a time (with per-check reports);
        ``refusal``: why changes are refused (see :func:`changes_refused`), None to accept."""
        self._config = config
        self._store = store
        self._reports = reports
        self._canaries = canaries
        self._refusal = refusal
        self._clock = clock
        self._changes = threading.Lock()  # one change at a time: ids and audit in order

    def __call__(self, request: ApiRequest) -> ApiAnswer:  # noqa: PLR0911 -- one per route
        path = request.path.rstrip("/")
        if path == STATUS_PATH:
            return self._status() if request.method == "GET" else _not_allowed("GET")
        if path == MAINTENANCE_PATH:
            if request.method == "GET":
                return self._list()
            if request.method == "POST":
                return self._changing(request, self._start)
            if request.method == "DELETE":
                return self._changing(request, self._end_target)
            return _not_allowed("GET, POST, DELETE")
        if path.startswith(MAINTENANCE_PATH + "/"):
            if request.method != "DELETE":
                return _not_allowed("DELETE")
            number = path.removeprefix(MAINTENANCE_PATH + "/")
            if not number.isdigit() or len(number) > 18:
                return _error(404, "no such maintenance window; expected its number")
            return self._changing(request, lambda r, author: self._end_id(int(number), author))
        return _error(404, f"no such API path; try {STATUS_PATH} or {MAINTENANCE_PATH}")

    # -- reading ---------------------------------------------------------------------------

    def _status(self) -> ApiAnswer:
        reports = self._reports(self._clock())
        return ApiAnswer(200, status_data(reports, source="daemon", canaries=self._canaries()))

    def _list(self) -> ApiAnswer:
        now = self._clock()
        stored = self._store.maintenance(now - max(LISTED_PAST, *ALERT_WINDOWS))
        listed = listed_windows(self._config(), stored, now, LISTED_PAST)
        return ApiAnswer(200, {"windows": [entry.data() for entry in listed]})

    # -- changing --------------------------------------------------------------------------

    def _changing(
        self, request: ApiRequest, change: Callable[[ApiRequest, str], ApiAnswer]
    ) -> ApiAnswer:
        if self._refusal is not None:
            return _error(403, self._refusal)
        author = request.user if request.user is not None else f"api@{request.client}"
        try:
            with self._changes:
                return change(request, author)
        except sqlite3.Error as exc:
            log.warning("maintenance change through the API failed: %s", exc)
            return _error(503, f"the history database cannot be written now: {exc}")

    def _start(self, request: ApiRequest, author: str) -> ApiAnswer:
        document = _parse(request.body)
        if isinstance(document, ApiAnswer):
            return document
        try:
            wanted = MaintenanceRequest.model_validate(document)
        except ValidationError as exc:
            return _invalid(exc)
        now = self._clock()
        begin, end = wanted.window(now)
        if end <= begin:
            return _error(400, "end: must be after start", field="end")
        started = start_window(
            self._store,
            self._config(),
            environment=wanted.environment,
            service=wanted.service,
            start=begin,
            end=end,
            reason=wanted.reason,
            author=author,
            now=now,
            via="api",
        )
        if isinstance(started, str):
            return _error(404, started)
        log.info(
            "maintenance #%d for %s started by %s through the API",
            started.id,
            clean(started.scope, 200),
            clean(author, 100),
        )
        return ApiAnswer(201, started.data())

    def _end_target(self, request: ApiRequest, author: str) -> ApiAnswer:
        query = parse_qs(request.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"environment", "service"})
        if unknown:
            return _error(400, f"{unknown[0]}: unknown parameter", field=unknown[0])
        for name, values in query.items():
            if len(values) != 1:
                return _error(400, f"{name}: give it once", field=name)
        target = {name: values[0] for name, values in query.items()}
        if not target:
            return _error(
                400, "name a service or an environment (?service=&environment=)", field=None
            )
        changed = end_windows(
            self._store,
            self._config(),
            window_id=None,
            environment=target.get("environment"),
            service=target.get("service"),
            author=author,
            now=self._clock(),
        )
        if isinstance(changed, str):
            return _error(404, changed)
        return self._ended(changed, author, "no active or planned maintenance matched")

    def _end_id(self, window_id: int, author: str) -> ApiAnswer:
        changed = end_windows(
            self._store,
            self._config(),
            window_id=window_id,
            environment=None,
            service=None,
            author=author,
            now=self._clock(),
        )
        assert not isinstance(changed, str)  # a number names no target to resolve
        return self._ended(changed, author, f"no active or planned maintenance window #{window_id}")

    def _ended(self, changed: int, author: str, none: str) -> ApiAnswer:
        if not changed:
            return _error(404, none)
        log.info(
            "%d maintenance window%s ended by %s through the API",
            changed,
            "" if changed == 1 else "s",
            clean(author, 100),
        )
        return ApiAnswer(200, {"ended": changed})


def _not_allowed(allow: str) -> ApiAnswer:
    return ApiAnswer(405, {"error": f"method not allowed; use {allow}"}, {"Allow": allow})
