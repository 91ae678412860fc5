"""`monai-slo maintenance start|stop --prober URL ...`: one window sent to every prober's API
(monai_slo.daemon.api), one line per prober, exit 1 if any prober failed.

Credentials: ``--prober-user NAME`` with the password in ``$MONAI_SLO_PROBER_PASSWORD`` or
the first line of ``--prober-password-file FILE`` (never on the command line, where ``ps``
shows it; never printed). TLS certificates are verified, against ``--prober-ca FILE`` when the
probers use a private CA.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.daemon.client import ApiError, Endpoint, call, error_text
from monai_slo.safe_text import clean

PASSWORD_ENV = "MONAI_SLO_PROBER_PASSWORD"  # noqa: S105 -- the variable's name
TIMEOUT = 10.0  # seconds per prober
PARALLEL = 8  # probers asked at once
MAINTENANCE = "/api/v1/maintenance"


def endpoints(
    urls: Sequence[str], user: str | None, password_file: str | None, ca_file: str | None
) -> list[Endpoint] | str:
    """The probers to ask, or a usage error."""
    password = None
    if password_file is not None:
        try:
            lines = Path(password_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            return f"--prober-password-file {password_file}: cannot read it ({exc})"
        password = lines[0] if lines else ""
    elif user is not None:
        password = os.environ.get(PASSWORD_ENV)
    if user is None and password is not None and password_file is not None:
        return "--prober-password-file needs --prober-user"
    if user is not None and password is None:
        return f"--prober-user needs the password in ${PASSWORD_ENV} or --prober-password-file"
    if ca_file is not None and not Path(ca_file).is_file():
        return f"--prober-ca {ca_file}: no such file"
    found = []
    for url in urls:
        try:
            base = Endpoint.parse(url)
        except ValueError as exc:
            return f"--prober: {exc}"
        found.append(Endpoint(base, user, password, ca_file))
    return found


def _each(probers: Sequence[Endpoint], ask: Callable[[Endpoint], str], action: str) -> int:
    """``ask`` every prober at once (it returns the ok line, or raises ApiError); one line per
    prober in the order given."""

    def one(prober: Endpoint) -> tuple[bool, str]:
        try:
            return True, ask(prober)
        except ApiError as exc:
            return False, str(exc)

    with ThreadPoolExecutor(min(PARALLEL, len(probers))) as pool:
        outcomes = list(pool.map(one, probers))
    for prober, (ok, line) in zip(probers, outcomes, strict=True):
        print(f"{prober.url}: {'ok' if ok else 'error'}: {line}")
    failed = sum(1 for ok, _ in outcomes if not ok)
    if failed:
        print(f"{action} failed on {failed} of {len(probers)} probers", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK


def start(
    probers: Sequence[Endpoint],
    *,
    environment: str | None,
    service: str | None,
    duration: float,
    reason: str,
    start_at: float | None,
) -> int:
    window: dict[str, Any] = {"duration": duration, "reason": reason}
    if environment is not None:
        window["environment"] = environment
    if service is not None:
        window["service"] = service
    if start_at is not None:
        window["start"] = datetime.fromtimestamp(start_at, UTC).isoformat()

    def ask(prober: Endpoint) -> str:
        status, answer = call(prober, "POST", MAINTENANCE, window, timeout=TIMEOUT)
        if status != 201 or not isinstance(answer, dict):
            raise ApiError(error_text(status, answer))
        return clean(
            f"maintenance #{answer.get('id')} for {_scope(answer)}: "
            f"{answer.get('start')} to {answer.get('end')}",
            300,
        )

    return _each(probers, ask, "maintenance start")


def stop(
    probers: Sequence[Endpoint],
    *,
    environment: str | None,
    service: str | None,
    window_id: int | None,
) -> int:
    if window_id is not None:
        path = f"{MAINTENANCE}/{window_id}"
    else:
        target = {"environment": environment, "service": service}
        path = f"{MAINTENANCE}?{urlencode({k: v for k, v in target.items() if v is not None})}"

    def ask(prober: Endpoint) -> str:
        status, answer = call(prober, "DELETE", path, timeout=TIMEOUT)
        if status != 200 or not isinstance(answer, dict):
            raise ApiError(error_text(status, answer))
        ended = answer.get("ended")
        return f"ended {ended} maintenance window{'' if ended == 1 else 's'}"

    return _each(probers, ask, "maintenance stop")


def _scope(answer: dict[str, Any]) -> str:
    environment, service = answer.get("environment"), answer.get("service")
    return f"{environment}/{service}" if service else f"{environment} (every service)"
