"""A small client for a daemon's JSON API (monai_slo.daemon.api), for `maintenance --prober` and
`status`: http.client and json only, so the CLI stays quick to start. TLS certificates are
verified (against the system's CAs, or ``ca_file``); a password is sent only as basic auth and
never appears in an error."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from monai_slo.safe_text import clean

if TYPE_CHECKING:
    import ssl

ERROR_LIMIT = 200  # characters of a prober's own error text shown
MAX_ANSWER = 64 * 1024 * 1024  # bytes; a status document is ~0.5 KiB per check


class ApiError(Exception):
    """One line saying what went wrong talking to a daemon (never the password)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a daemon's API is and how to reach it."""

    url: str
    """``http(s)://host:port`` (a path prefix, if the daemon sits behind a proxy, is kept)."""
    user: str | None = None
    password: str | None = None
    ca_file: str | None = None

    @staticmethod
    def parse(text: str) -> str:
        """The base URL of ``text``, or ValueError saying what is wrong with it."""
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http(s)://host:port; got {clean(text, 100)!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("put the user in --prober-user, not in the URL")
        if parts.query or parts.fragment:
            raise ValueError(f"expected no query or fragment in {clean(text, 100)!r}")
        try:
            parts.port  # noqa: B018 -- raises ValueError for a port out of range
        except ValueError as exc:
            raise ValueError(f"{clean(text, 100)!r}: {exc}") from None
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _context(ca_file: str | None) -> ssl.SSLContext:
    import ssl

    return ssl.create_default_context(cafile=ca_file)


def call(
    endpoint: Endpoint,
    method: str,
    path: str,
    document: Any = None,
    *,
    timeout: float = 10.0,
    connect_timeout: float | None = None,
) -> tuple[int, Any]:
    """One request; (status, decoded JSON answer). Raises ApiError when no connection (TLS
    included) was made within ``connect_timeout`` (default: ``timeout``) or no JSON answer
    came within ``timeout`` seconds in all."""
    parts = urlsplit(endpoint.url)
    deadline = time.monotonic() + timeout
    first = timeout if connect_timeout is None else min(connect_timeout, timeout)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=first, context=_context(endpoint.ca_file)
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=first)
    headers = {"Accept": "application/json", "User-Agent": "monai-slo"}
    if endpoint.user is not None:
        token = f"{endpoint.user}:{endpoint.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
    body = None
    if document is not None:
        body = json.dumps(document).encode()
        headers["Content-Type"] = "application/json"
    try:
        try:
            conn.connect()
        except TimeoutError:
            raise ApiError(f"no connection within {first:g} s") from None
        if conn.sock is not None:  # what is left of the budget for the answer
            conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        conn.request(method, parts.path + path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read(MAX_ANSWER)
        status = response.status
    except TimeoutError:
        raise ApiError(f"no answer within {timeout:g} s") from None
    except OSError as exc:
        raise ApiError(_os_error(exc)) from None
    except http.client.HTTPException as exc:
        raise ApiError(f"not an HTTP answer ({type(exc).__name__})") from None
    finally:
        conn.close()
    try:
        return status, json.loads(data)
    except ValueError:
        if status == 401:
            return status, {"error": "unauthorized"}
        raise ApiError(f"HTTP {status}, not a monai-slo API answer") from None


def _os_error(exc: OSError) -> str:
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({clean(exc.verify_message or str(exc), 120)})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({clean(exc.reason or str(exc), 120)})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host ({clean(str(exc), 120)})"
    return clean(exc.strerror or str(exc), 120)


def error_text(status: int, answer: Any) -> str:
    """A refused request's answer as one line: the HTTP status and the daemon's reason."""
    reason = answer.get("error") if isinstance(answer, dict) else None
    text = f"HTTP {status}"
    if isinstance(reason, str) and reason:
        text += f": {clean(reason, ERROR_LIMIT)}"
    return text
