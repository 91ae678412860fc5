"""An HTTP client for checks: one request on a fresh connection, bounded by the deadline.

Built on :mod:`http.client` for its low CPU cost. The socket is opened by
:mod:`monai_slo.checks.net` (lookup, connect and TLS bounded by the deadline) and handed to
http.client wrapped so that every send and every receive is bounded by the time left: a
server that answers one byte at a time cannot hold a check past its deadline. The body is
read up to a limit; redirects are followed on request, never carrying a credential to
another origin. The ``http`` and ``dicomweb`` kinds are built on it.
"""

from __future__ import annotations

import http.client
import io
import re
import socket
import ssl
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, cast
from urllib.parse import urljoin, urlsplit

from pydantic import AfterValidator, Field

from monai_slo.checks.base import Deadline, FailureReason
from monai_slo.checks.net import (
    CERT_EXPIRY,
    ProbeFailure,
    TlsClientOptions,
    cert_expiry,
    connect,
    format_host,
    require_validity,
    tls_handshake,
)
from monai_slo.checks.secrets import SecretRef, SecretUnavailable

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")
_BAD_HEADER_VALUE = re.compile(r"[\r\n\x00]")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 10
# Headers that must not follow a redirect to another origin (as curl and requests do).
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_CHUNK = 64 * 1024


def check_url(value: str) -> str:
    """Validate an http(s) URL for a config (shared with kinds built on this one)."""
    if not value.isascii() or _BAD_URL_CHARS.search(value):
        raise ValueError("URL must be ASCII without spaces (percent-encode, use punycode)")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL scheme must be http or https, got {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise ValueError("URL has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "URL must not carry credentials; use an Authorization header "
            "with {env: VAR} or {file: PATH}"
        )
    if port == 0:
        raise ValueError("URL port must be 1..65535")
    return value


def check_headers(value: dict[str, SecretRef]) -> dict[str, SecretRef]:
    """Validate header names (and inline values) for a config."""
    for name, ref in value.items():
        if not _TOKEN.match(name):
            raise ValueError(f"invalid header name {name!r}")
        if not ref.is_secret and _BAD_HEADER_VALUE.search(ref.resolve()):
            raise ValueError(f"header {name} contains a line break or NUL")
    return value


Url = Annotated[str, AfterValidator(check_url)]
"""An http(s) URL without credentials, checked at load."""

Headers = Annotated[dict[str, SecretRef], AfterValidator(check_headers)]
"""Request headers by name; a value may be {env: VAR} or {file: PATH}."""


class ClientSettings(TlsClientOptions):
    """The connection keys a kind built on :func:`request` carries (http, dicomweb)."""

    max_body_bytes: Annotated[int, Field(ge=1)] = 1024 * 1024


class _DeadlineReader(io.RawIOBase):
    """Raw reads from a socket, each with the time left as its timeout."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        remaining = self._deadline.remaining()
        if remaining <= 0:
            raise TimeoutError("deadline reached")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(memoryview(buffer))


class _DeadlineSocket:
    """What http.client needs of a socket (sendall, makefile, close), deadline-bounded.

    close() is a no-op because http.client closes the connection as soon as a
    ``Connection: close`` response starts, before its body is read; run() closes the
    real socket when it is done.
    """

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: ReadableBuffer) -> None:
        remaining = self._deadline.remaining()
        if remaining <= 0:
            raise TimeoutError("deadline reached")
        # Since Python 3.5 the timeout bounds the whole sendall(), not each send().
        self._sock.settimeout(remaining)
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: object, **kwargs: object) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        pass


class _TlsConnection(http.client.HTTPConnection):
    """Formats requests as HTTPSConnection does (port 443 is the default) on a socket the
    check already wrapped; HTTPSConnection itself would load the system CA bundle (~25 ms
    of CPU) for a context it never uses."""

    default_port = http.client.HTTPS_PORT


class _Phase:
    """What the probe is doing, so a timeout or reset can say where it happened."""

    def __init__(self) -> None:
        self.now = "connecting"


def resolve_headers(refs: Mapping[str, SecretRef]) -> dict[str, tuple[str, bool]]:
    """name -> (value, came from a secret). Raises ProbeFailure, naming only the source."""
    headers: dict[str, tuple[str, bool]] = {}
    for name, ref in refs.items():
        try:
            value = ref.resolve()
        except SecretUnavailable as exc:
            raise ProbeFailure(FailureReason.SECRET_UNAVAILABLE, f"header {name}: {exc}") from None
        if _BAD_HEADER_VALUE.search(value):
            raise ProbeFailure(
                FailureReason.SECRET_UNAVAILABLE,
                f"header {name}: {ref.describe()} contains a line break or NUL",
            )
        headers[name] = (value, ref.is_secret)
    return headers


def _request_target(url: str) -> str:
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname or "", parts.port or default


class Response:
    """One request on one fresh connection: what came back (body up to the limit).

    ``location`` and ``charset`` are read from the headers only when asked for: most checks
    need neither, and each costs a pass of the email header machinery.
    """

    def __init__(self) -> None:
        self.status = 0
        self.reason = ""
        self.body = b""
        self.complete = True
        self.headers: http.client.HTTPMessage | None = None

    @property
    def location(self) -> str | None:
        found = self.headers.get_all("Location") if self.headers is not None else None
        return ", ".join(found) if found else None

    @property
    def charset(self) -> str:
        found = self.headers.get_content_charset() if self.headers is not None else None
        return found or "utf-8"


def _send(
    conn: http.client.HTTPConnection,
    url: str,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
) -> None:
    given = {name.lower() for name in headers}
    conn.putrequest(
        method,
        _request_target(url),
        skip_host="host" in given,
        skip_accept_encoding="accept-encoding" in given,
    )
    for name, value in headers.items():
        conn.putheader(name, value)
    if "content-length" not in given and (body is not None or method in ("POST", "PUT")):
        conn.putheader("Content-Length", str(len(body or b"")))
    if "connection" not in given:
        conn.putheader("Connection", "close")
    conn.endheaders(body)


def _read_body(response: http.client.HTTPResponse, limit: int) -> tuple[bytes, bool]:
    """Up to ``limit`` bytes of the body, and whether that was all of it."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = response.read(min(_CHUNK, limit - size))
        if not chunk:
            # read(amt) returns short at EOF instead of raising: check the promise.
            if response.length:
                raise http.client.IncompleteRead(b"".join(chunks), response.length)
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    # Stopped at the limit: whatever is left is simply not read.
    return b"".join(chunks), response.isclosed()


def _exchange(
    config: ClientSettings,
    url: str,
    *,
    method: str,
    body: bytes | None,
    headers: dict[str, str],
    deadline: Deadline,
    phase: _Phase,
    values: dict[str, float],
) -> Response:
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    result = Response()

    phase.now = f"connecting to {format_host(host, port)}"
    context = config.tls_context(shared=True) if https else None
    sock = connect(host, port, deadline)
    if context is not None:
        phase.now = "in the TLS handshake"
        tls = tls_handshake(sock, context, host, deadline)  # closes sock if it fails
        expiry = cert_expiry(tls)
        # The configured server's certificate is the one to watch, not a redirect target's.
        if CERT_EXPIRY not in values:
            if expiry is not None:
                values[CERT_EXPIRY] = expiry
            try:
                require_validity(expiry, config.min_days_valid)
            except ProbeFailure:
                tls.close()
                raise
        sock = tls
    conn: http.client.HTTPConnection | None = None
    try:
        conn = (_TlsConnection if https else http.client.HTTPConnection)(host, port)
        # The socket is already connected (and TLS wrapped): http.client only formats
        # the request and parses the response through the deadline-bounded wrapper.
        conn.sock = cast(socket.socket, _DeadlineSocket(sock, deadline))
        phase.now = "sending the request"
        _send(conn, url, method, body, headers)
        phase.now = "waiting for the response"
        response = conn.getresponse()
        result.status = response.status
        values["http_status_code"] = float(response.status)
        result.reason = response.reason
        result.headers = response.headers
        phase.now = "reading the body"
        result.body, result.complete = _read_body(response, config.max_body_bytes)
    finally:
        if conn is not None:
            conn.close()
        sock.close()
    return result


def _redirect_target(
    url: str, location: str, headers: dict[str, tuple[str, bool]]
) -> tuple[str, dict[str, tuple[str, bool]]]:
    """The next URL and the headers that may go to it."""
    target = urljoin(url, location)
    if urlsplit(target).scheme not in ("http", "https") or not urlsplit(target).hostname:
        raise ProbeFailure(FailureReason.PROTOCOL, "redirect to a URL that is not http(s)")
    if _origin(target) != _origin(url):
        # Never hand a credential to another origin than the one it was configured for.
        headers = {
            name: (value, secret)
            for name, (value, secret) in headers.items()
            if not secret and name.lower() not in _CREDENTIAL_HEADERS
        }
    return target, headers


def _after_redirect(status: int, method: str, body: bytes | None) -> tuple[str, bytes | None]:
    """The method and body for the next hop, as browsers and curl -L behave."""
    if status == 303 and method != "HEAD":
        return "GET", None
    if status in (301, 302) and method == "POST":
        return "GET", None
    return method, body


def request(
    settings: ClientSettings,
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str],
    deadline: Deadline,
    values: dict[str, float],
    started: float | None = None,
) -> Response:
    """One request on a fresh connection, bounded by ``deadline``.

    Anything short of a complete response raises :class:`ProbeFailure` with a reason and
    a detail that says where it happened (never a header value). ``values`` receives
    ``http_status_code`` and, over TLS, the certificate expiry (even when it fails).
    """
    started = time.monotonic() if started is None else started
    phase = _Phase()
    try:
        return _exchange(
            settings,
            url,
            method=method,
            body=body,
            headers=dict(headers),
            deadline=deadline,
            phase=phase,
            values=values,
        )
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _failure(exc, phase, time.monotonic() - started) from None


def fetch(
    settings: ClientSettings,
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, tuple[str, bool]],
    deadline: Deadline,
    values: dict[str, float],
    follow_redirects: bool = False,
) -> Response:
    """:func:`request`, following redirects when asked (at most 10, as browsers do).

    ``headers`` maps a name to (value, came from a secret): a secret, and any credential
    header, is dropped when a redirect leads to another origin.
    """
    started = time.monotonic()
    for _hop in range(_MAX_REDIRECTS + 1):
        response = request(
            settings,
            url,
            method=method,
            body=body,
            headers={name: value for name, (value, _) in headers.items()},
            deadline=deadline,
            values=values,
            started=started,
        )
        if not (follow_redirects and response.status in _REDIRECTS and response.location):
            return response
        url, headers = _redirect_target(url, response.location, dict(headers))
        method, body = _after_redirect(response.status, method, body)
    raise ProbeFailure(FailureReason.PROTOCOL, f"more than {_MAX_REDIRECTS} redirects")


def _failure(exc: Exception, phase: _Phase, elapsed: float) -> ProbeFailure:
    """Map what http.client and the socket raised to a reason; never echo a header value."""
    if isinstance(exc, TimeoutError):
        return ProbeFailure(FailureReason.TIMEOUT, f"timed out {phase.now} after {elapsed:.2f}s")
    if isinstance(exc, http.client.HTTPException):
        # RemoteDisconnected, BadStatusLine, IncompleteRead, LineTooLong, ...
        return ProbeFailure(
            FailureReason.PROTOCOL, f"malformed response {phase.now}: {type(exc).__name__}"
        )
    if isinstance(exc, ssl.SSLError):
        return ProbeFailure(FailureReason.TLS, f"TLS error {phase.now}: {exc.reason or exc}")
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return ProbeFailure(FailureReason.CONNECTION, f"connection failed {phase.now}: {reason}")
    # http.client rejects odd header values with the value in the message: never let that
    # text reach the framework's generic error handler.
    return ProbeFailure(FailureReason.PROTOCOL, f"request could not be formed {phase.now}")
