"""Real HTTP(S) peers on loopback for check, daemon and demo tests.

``HttpPeer`` is a ThreadingHTTPServer whose answer can be changed while it runs::

    with HttpPeer() as peer:
        peer.status = 503
        peer.body = b"down"
        peer.delay = 2.0        # wait before answering (cut short by stop())
        peer.dribble = 0.05     # send the body one byte at a time, pausing between bytes
        ...
        peer.requests[-1].headers["Authorization"]

With ``tls=trustme.CA()`` it serves HTTPS with a leaf for 127.0.0.1, ::1 and localhost.
"""

from __future__ import annotations

import datetime as dt
import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

__all__ = [
    "HttpPeer",
    "RecordedRequest",
    "Route",
    "http_peer",
    "https_peer",
    "tls_ca",
    "tls_ca_file",
]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the peer received it. Header lookup is case-insensitive."""

    method: str
    path: str
    headers: Any  # email.message.Message: case-insensitive .get() and []
    body: bytes


@dataclass
class Route:
    """A fixed answer for one path, overriding the peer's default behaviour."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, peer: HttpPeer, address: tuple[str, int]) -> None:
        self.peer = peer
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() does a reverse lookup (getfqdn) we have no use for.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs in the connection's own thread, so a client that never
        # completes it cannot stall the accept loop.
        context = self.peer._server_context
        if context is not None:
            try:
                request.settimeout(5)
                request = context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                self.peer.tls_errors.append(exc)
                request.close()
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-answer is what several tests do on purpose.
        pass


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 5

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        peer = self.server.peer
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        peer.requests.append(RecordedRequest(self.command, self.path, self.headers, body))
        peer._received.set()

        route = peer.routes.get(self.path.split("?", 1)[0])
        if route is None and peer.delay > 0 and peer._stopping.wait(peer.delay):
            return
        status, payload, extra = (
            (route.status, route.body, route.headers)
            if route is not None
            else (peer.status, peer.body, peer.response_headers)
        )
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        pause = peer.dribble if route is None else 0.0
        if pause > 0:
            for index in range(len(payload)):
                self.wfile.write(payload[index : index + 1])
                self.wfile.flush()
                if peer._stopping.wait(pause):
                    return
        else:
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_OPTIONS = do_DELETE = _serve


class HttpPeer:
    """A real HTTP(S) server on 127.0.0.1 with behaviour settable at any time."""

    def __init__(
        self,
        *,
        tls: trustme.CA | None = None,
        status: int = 200,
        body: bytes = b"ok\n",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.status = status
        self.body = body
        self.response_headers: dict[str, str] = {"Content-Type": "text/plain; charset=utf-8"}
        self.delay = 0.0
        self.dribble = 0.0
        self.routes: dict[str, Route] = {}
        self.requests: list[RecordedRequest] = []
        self.tls_errors: list[BaseException] = []
        self.ca = tls
        self.ca_file: Path | None = None  # set by fixtures that write the CA out
        self.cert_not_after: float | None = None
        self._host = host
        self._port = port
        self._stopping = threading.Event()
        self._received = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._server_context: ssl.SSLContext | None = None
        if tls is not None:
            # Whole seconds, so the expiry a check reports can be compared exactly.
            not_after = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=90)
            leaf = tls.issue_cert("127.0.0.1", "::1", "localhost", not_after=not_after)
            self.cert_not_after = not_after.timestamp()
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            leaf.configure_cert(context)
            self._server_context = context

    @property
    def scheme(self) -> str:
        return "https" if self._server_context is not None else "http"

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("peer not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{self.scheme}://{host}:{self.port}/"

    @property
    def last_request(self) -> RecordedRequest:
        if not self.requests:
            raise AssertionError("the peer has received no request")
        return self.requests[-1]

    @property
    def received_headers(self) -> Any:
        """Headers of the latest request (case-insensitive ``.get()``)."""
        return self.last_request.headers

    def wait_for_request(self, timeout: float = 5.0) -> RecordedRequest:
        """Block until at least one request has arrived."""
        if not self._received.wait(timeout):
            raise AssertionError(f"no request within {timeout}s")
        return self.last_request

    def start(self) -> HttpPeer:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(self, (self._host, self._port))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"http-peer-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop at once: delayed and dribbling answers are cut short."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> HttpPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    """A plain HTTP peer answering 200 ``ok``."""
    with HttpPeer() as peer:
        yield peer


@pytest.fixture(scope="session")
def tls_ca() -> trustme.CA:
    """A throwaway CA; its certificates are trusted only where its PEM is given."""
    return trustme.CA()


@pytest.fixture
def tls_ca_file(tls_ca: trustme.CA, tmp_path: Path) -> Path:
    """The test CA's certificate as a PEM file, for ``ca_file``."""
    path = tmp_path / "test-ca.pem"
    tls_ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def https_peer(tls_ca: trustme.CA, tls_ca_file: Path) -> Iterator[HttpPeer]:
    """An HTTPS peer with a cert from ``tls_ca``; ``peer.ca_file`` is the CA's PEM path."""
    with HttpPeer(tls=tls_ca) as peer:
        peer.ca_file = tls_ca_file
        yield peer
