"""The HTTP listener: /metrics, /-/healthy, /-/ready, and the status page at /."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry

from monai_slo.exposition import choose_encoder
from monai_slo.web_config import BasicAuth, WebConfig

log = logging.getLogger(__name__)


_OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    registry: CollectorRegistry
    ready: Callable[[], bool]
    page: Callable[[], bytes] | None
    tls: ssl.SSLContext | None = None
    auth: BasicAuth = BasicAuth({})
    extra_headers: dict[str, str] = {}  # noqa: RUF012 -- replaced per instance, never mutated

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # The handshake happens in the handler thread (with its timeout), so a client that
            # stalls in it cannot hold up the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "monai-slo"
    timeout = 10  # a client that dribbles its request gets cut off, not a thread forever

    def setup(self) -> None:
        super().setup()
        self._handshake_failed = False
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError) as exc:
                log.debug("TLS handshake with %s failed: %s", self.client_address[0], exc)
                self._handshake_failed = True

    def handle(self) -> None:
        if not self._handshake_failed:
            super().handle()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        # Liveness and readiness reveal nothing and must answer kubelet and systemd probes,
        # which carry no credentials; everything else needs them when basic auth is on.
        if path not in _OPEN_PATHS and not self.server.auth.allows(
            self.headers.get("Authorization")
        ):
            self._send(
                401,
                b"unauthorized\n",
                "text/plain",
                {"WWW-Authenticate": 'Basic realm="monai-slo"'},
            )
            return
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            try:
                body = encoder(self.server.registry)
            except Exception:
                log.exception("metrics collection failed")
                self._send(500, b"metrics collection failed\n", "text/plain")
                return
            self._send(200, body, content_type)
        elif path == "/" and self.server.page is not None:
            try:
                body = self.server.page()
            except Exception:
                log.exception("status page rendering failed")
                self._send(500, b"status page rendering failed\n", "text/plain")
                return
            # Always the live state: a browser or proxy must not show a cached "UP".
            self._send(200, body, "text/html; charset=utf-8", {"Cache-Control": "no-store"})
        elif path == "/-/healthy":
            self._send(200, b"OK\n", "text/plain")
        elif path == "/-/ready":
            ready = self.server.ready()
            self._send(200 if ready else 503, b"ready\n" if ready else b"not ready\n", "text/plain")
        else:
            self._send(404, b"not found; try /metrics\n", "text/plain")

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in {**self.server.extra_headers, **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class MetricsServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        ready: Callable[[], bool],
        page: Callable[[], bytes] | None = None,
        web: WebConfig | None = None,
    ) -> None:
        server_type = _Server6 if ":" in host else _Server
        self._server = server_type((host, port), _Handler)
        self._server.registry = registry
        self._server.ready = ready
        self._server.page = page
        if web is not None:
            self._server.tls = web.ssl_context()
            self._server.auth = BasicAuth(dict(web.basic_auth_users))
            self._server.extra_headers = dict(web.http_server_config.headers)
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() would wait forever on a loop never started
            self._server.shutdown()
        self._server.server_close()
