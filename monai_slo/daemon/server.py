"""The HTTP listener: /metrics, /-/healthy, /-/ready, the status page at /, and the JSON API
under /api/v1/ (monai_slo.daemon.api answers it; this module is the transport).

The listener must keep answering Prometheus while hostile or broken clients connect, and must
never take from the checks what they need (threads, CPU, file descriptors), or the monitor records
false downtime. So:

* One event-loop thread accepts connections and reads request heads (and does TLS handshakes)
  without blocking: a client that dribbles its request costs a descriptor and a small buffer, not
  a thread. The whole head must arrive within an absolute deadline (``REQUEST_DEADLINE``), not a
  per-``recv`` timeout that one byte a second keeps resetting.
* A request body (the API's POSTs) is read by the loop too, bounded (``MAX_BODY``; larger
  is refused with 413 before it is read) and under its own absolute deadline from the end of
  the head (``BODY_DEADLINE``); chunked bodies are refused (411): every client we serve
  knows the length up front.
* Complete requests go to a fixed pool of worker threads (``WORKERS``). A worker builds the
  answer and sends what the socket takes at once; the loop sends the rest as the client reads
  it, under an absolute deadline (``RESPONSE_DEADLINE``), so a client that stops reading a large
  ``/metrics`` holds no worker.
* Open connections are capped well below the descriptor limit (``connection_limit``). When the cap
  is reached the *oldest connection still sending its head* (else the oldest still sending its
  body) is closed to make room: a real scraper sends its request within milliseconds of
  connecting, so the connections that have had their chance longest are the slow ones.
  Refusing new connections instead would let a flood of slow clients lock Prometheus out.
* When ``accept`` fails for want of descriptors the loop backs off instead of spinning, and at start
  the soft descriptor limit is raised toward the hard one where the platform allows.
* Dropped clients are logged at debug level, with a one-line summary at most once a minute
  (the first at once).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import logging
import os
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CollectorRegistry

from monai_slo.config.web_config import BasicAuth, WebConfig, basic_user
from monai_slo.daemon.api import API_PREFIX, ApiAnswer, ApiRequest
from monai_slo.daemon.listen_error import ListenError
from monai_slo.outputs.exposition import choose_encoder

log = logging.getLogger(__name__)

_OPEN_PATHS = frozenset({"/-/healthy", "/-/ready"})

REQUEST_DEADLINE = 5.0  # seconds from accept to a complete request head, TLS handshake included
RESPONSE_DEADLINE = 10.0  # seconds for the client to take in an answer the socket could not
WORKERS = 8  # threads that answer complete requests; bcrypt may hold at most half of them
MAX_HEAD = 16 * 1024  # bytes of request line and headers; Prometheus sends a few hundred
MAX_BODY = 64 * 1024  # bytes of request body; a maintenance window is a few hundred
BODY_DEADLINE = 10.0  # seconds from a complete head to a complete body
MAX_CONNECTIONS = 512  # a metrics endpoint needs a handful; more is only ever an attack
MIN_CONNECTIONS = 16
TARGET_OPEN_FILES = 65536  # the soft limit raised at start, at most to the hard limit
_ACCEPT_BATCH = 64  # accepts per loop turn, so reading existing clients keeps pace
_ACCEPT_BACKOFF = 0.1  # seconds without accepting after EMFILE and the like
_REPORT_EVERY = 60.0  # seconds between summaries of dropped clients
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_BUSY = b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n"
_TOO_LARGE = (
    b"HTTP/1.0 431 Request Header Fields Too Large\r\n"
    b"Content-Length: 10\r\nConnection: close\r\n\r\ntoo large\n"
)


def _json_error(status: str, message: str) -> bytes:
    """A complete answer the loop sends itself (no worker): ``{"error": message}``."""
    body = json.dumps({"error": message}).encode() + b"\n"
    return (
        f"HTTP/1.0 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


_BODY_TOO_LARGE = _json_error("413 Content Too Large", f"request body larger than {MAX_BODY} bytes")
_LENGTH_REQUIRED = _json_error(
    "411 Length Required", "send the body with a Content-Length (chunked bodies are refused)"
)
_BAD_LENGTH = _json_error("400 Bad Request", "Content-Length is not one non-negative number")


def raise_open_file_limit() -> tuple[int, int] | None:
    """Raise the soft RLIMIT_NOFILE toward the hard limit (at most ``TARGET_OPEN_FILES``) and
    return (soft, hard) as they are afterwards; None where the platform has no such limit.

    Under the systemd unit the call is filtered (``SystemCallFilter=~@resources``) and
    ``LimitNOFILE=`` sets the limit instead; a refusal leaves the limit as it was.
    """
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = TARGET_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, TARGET_OPEN_FILES)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            log.debug("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    return soft, hard


def connection_limit(open_files: int | None) -> int:
    """Connections the listener keeps open at most: a quarter of the soft descriptor limit, so
    three quarters stay for checks, the history store and logging; between 16 and 512."""
    if open_files is None or open_files <= 0:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, open_files // 4))


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    address: Any
    deadline: float
    head: bytearray = field(default_factory=bytearray)
    handshaking: bool = False
    need: int = 0  # head and body bytes to wait for, once the head is in (0: head not yet)
    out: memoryview = field(
        default_factory=lambda: memoryview(b"")
    )  # the rest of the answer, while the loop writes it


class _Handler(BaseHTTPRequestHandler):
    """Answers one request whose head the event loop has already read."""

    server: _App  # type: ignore[assignment]  # not a socketserver: the listener's state
    server_version = "monai-slo"

    def __init__(self, conn: _Conn, app: _App) -> None:
        self._conn = conn
        super().__init__(conn.sock, conn.address, app)  # type: ignore[arg-type]

    def setup(self) -> None:
        self.connection = self.request
        self.rfile = io.BytesIO(bytes(self._conn.head))
        self.answer = self.wfile = _Answer()

    def version_string(self) -> str:
        return self.server_version  # not the Python version: nothing for a scanner to match

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_PATCH(self) -> None:
        self._route("PATCH")

    def _route(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        user = None
        # Liveness and readiness reveal nothing and must answer kubelet and systemd probes,
        # which carry no credentials; everything else needs them when basic auth is on.
        if path not in _OPEN_PATHS and self.server.auth.enabled:
            header = self.headers.get("Authorization")
            verdict = self.server.auth.check(header)
            if verdict == "busy":
                self._send(503, b"authentication busy\n", "text/plain", {"Retry-After": "1"})
                return
            if verdict != "ok":
                self._send(
                    401,
                    b"unauthorized\n",
                    "text/plain",
                    {"WWW-Authenticate": 'Basic realm="monai-slo"'},
                )
                return
            user = basic_user(header)
        if path.startswith(API_PREFIX) and self.server.api is not None:
            client = _host(self.client_address)
            self._answer_api(ApiRequest(method, path, query, self._body(), user, client))
        elif method != "GET":
            self._send(405, b"method not allowed\n", "text/plain", {"Allow": "GET"})
        else:
            self._get(path)

    def _body(self) -> bytes:
        # The loop has read exactly Content-Length bytes after the head (at most MAX_BODY).
        return self.rfile.read()

    def _answer_api(self, request: ApiRequest) -> None:
        assert self.server.api is not None
        try:
            answer = self.server.api(request)
        except Exception:
            log.exception("API request %s %s failed", request.method, request.path[:100])
            answer = ApiAnswer(500, {"error": "internal error; see the daemon's log"})
        headers = {"Cache-Control": "no-store", **answer.headers}
        self._send(answer.status, answer.body(), "application/json", headers)

    def _get(self, path: str) -> None:
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
        # The request line is the client's text: escaped and bounded before it reaches the log.
        message = "".join(
            c if c.isprintable() else f"\\x{ord(c):02x}" for c in (format % args)[:300]
        )
        log.debug("%s %s", self.address_string(), message)


class _Answer(io.BufferedIOBase):
    """Collects the answer: it is sent without blocking, by the worker and then the loop."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any, /) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        return len(chunk)

    def value(self) -> bytes:
        return b"".join(self._chunks)


@dataclass
class _App:
    """What a request handler needs: the registry, the page, readiness and access control."""

    registry: CollectorRegistry
    ready: Callable[[], bool]
    page: Callable[[], bytes] | None
    auth: BasicAuth
    extra_headers: dict[str, str]
    api: Callable[[ApiRequest], ApiAnswer] | None = None


class _Drops:
    """Counts clients dropped by the listener's limits; logs one summary line at most every
    minute, the first at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._next_report = 0.0  # the first drop is reported at once

    def add(
        self, cause: str, address: Any = None, detail: object = None, *, summarise: bool = True
    ) -> None:
        """``summarise=False`` for what ordinary clients do too (hang up, reset): debug only."""
        if address is not None:
            log.debug("dropped client %s: %s (%s)", _host(address), cause, detail or "-")
        if not summarise:
            return
        with self._lock:
            self._counts[cause] = self._counts.get(cause, 0) + 1
            now = time.monotonic()
            if now < self._next_report:
                return
            counts, self._counts = self._counts, {}
            self._next_report = now + _REPORT_EVERY
        log.warning(
            "listener dropped clients (next summary in %.0f s): %s",
            _REPORT_EVERY,
            ", ".join(f"{count} {name}" for name, count in sorted(counts.items())),
        )


def _host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


def _head_end(head: bytearray, start: int) -> int | None:
    """Where the request head ends (after its blank line), searching from ``start``."""
    ends = [
        found + len(marker)
        for marker in (b"\n\r\n", b"\n\n")
        if (found := head.find(marker, start)) >= 0
    ]
    return min(ends) if ends else None


def _content_length(head: bytes) -> int | bytes:
    """The body length a head announces (0: none), or the answer refusing it."""
    lengths: set[str] = set()
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == b"transfer-encoding":
            return _LENGTH_REQUIRED
        if name == b"content-length":
            lengths.add(value.strip().decode("latin-1"))
    if not lengths:
        return 0
    if len(lengths) > 1 or not (text := lengths.pop()).isdigit() or len(text) > 12:
        return _BAD_LENGTH
    if int(text) > MAX_BODY:
        return _BODY_TOO_LARGE
    return int(text)


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
        api: Callable[[ApiRequest], ApiAnswer] | None = None,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            if os.name != "nt":  # on Windows SO_REUSEADDR lets another process steal the port
                self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(socket.SOMAXCONN)
            self._listener.setblocking(False)
        except OSError as exc:
            self._listener.close()
            raise ListenError(host, port, exc) from None
        self._tls: ssl.SSLContext | None = None
        auth, headers = BasicAuth({}), {}
        if web is not None:
            self._tls = web.ssl_context()
            auth = BasicAuth(dict(web.basic_auth_users))
            headers = dict(web.http_server_config.headers)
        self._app = _App(registry, ready, page, auth, headers, api)
        self.max_connections = MAX_CONNECTIONS
        self._open = 0  # connections accepted and not yet closed, in every stage
        self._open_lock = threading.Lock()
        # Insertion order is deadline order: the oldest first.
        self._reading: dict[_Conn, None] = {}  # TLS handshake or request head under way
        self._bodies: dict[_Conn, None] = {}  # head in, body under way
        self._writing: dict[_Conn, None] = {}  # answers the client has not taken in yet
        self._replies: queue.SimpleQueue[_Conn] = queue.SimpleQueue()  # workers to the loop
        self._work: queue.Queue[_Conn | None] = queue.Queue(maxsize=self.max_connections)
        self._drops = _Drops()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="http", daemon=True)
        self._workers = [
            threading.Thread(target=self._serve, name=f"http-worker-{n}", daemon=True)
            for n in range(WORKERS)
        ]

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def start(self) -> None:
        limits = raise_open_file_limit()
        self.max_connections = connection_limit(limits[0] if limits else None)
        log.debug(
            "listener: at most %d connections, %.0f s to send a request (open-file limit %s)",
            self.max_connections,
            REQUEST_DEADLINE,
            limits[0] if limits else "unknown",
        )
        for worker in self._workers:
            worker.start()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            self._thread.join(5)
        if self._thread.ident is not None:
            # Waiting requests are dropped; each idle worker then takes one stop marker.
            while True:
                try:
                    conn = self._work.get_nowait()
                except queue.Empty:
                    break
                if conn is not None:
                    self._close(conn)
            for _ in self._workers:
                self._work.put(None)
            for worker in self._workers:
                worker.join(1)
        for conn in [*self._reading, *self._bodies, *self._writing]:
            self._forget(conn)
            self._close(conn)
        while not self._replies.empty():
            self._close(self._replies.get())
        self._selector.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    # The event loop: accept, TLS handshake, read request heads, enforce deadlines.

    def _loop(self) -> None:
        selector = self._selector
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        listening = False
        resume_at = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            # At the limit a new client can still come in by evicting a slow one; if every
            # slot is being answered the kernel's backlog holds newcomers until one is free.
            can_accept = now >= resume_at and (
                self._open < self.max_connections or self._evictable() is not None
            )
            if can_accept != listening:
                self._listen(can_accept)
                listening = can_accept
            timeout = 1.0
            for waiting in (self._reading, self._bodies, self._writing):
                if waiting:
                    timeout = min(timeout, next(iter(waiting)).deadline - now)
            if now < resume_at:
                timeout = min(timeout, resume_at - now)
            events = selector.select(max(timeout, 0.0))
            accept = False
            for key, _ in events:
                if key.fileobj is self._listener:
                    accept = True  # after the clients already in: they go first
                else:
                    self._event(key)
            if accept:
                resume_at = self._accept(resume_at)
            self._expire(time.monotonic())
        if listening:
            self._listen(False)

    def _event(self, key: selectors.SelectorKey) -> None:
        if key.fileobj is self._wake_r:
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
            self._take_replies()
        elif key.data in self._writing:
            if self._write(key.data):
                self._forget(key.data)
                self._close(key.data)
        else:
            self._progress(key.data)

    def _listen(self, on: bool) -> None:
        if on:
            self._selector.register(self._listener, selectors.EVENT_READ, None)
        else:
            self._selector.unregister(self._listener)

    def _accept(self, resume_at: float) -> float:
        for _ in range(_ACCEPT_BATCH):
            full = self._open >= self.max_connections
            victim = self._evictable() if full else None
            if full and victim is None:
                return resume_at  # every slot is being answered: leave the rest queued
            try:
                sock, address = self._listener.accept()
            except BlockingIOError:
                return resume_at
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRNOS:
                    # The backlog keeps the connection; the descriptors are the checks' first.
                    self._drops.add("deferred (out of descriptors)")
                    return time.monotonic() + _ACCEPT_BACKOFF
                self._drops.add("accept failed", "?", exc)
                return resume_at
            if victim is not None:
                self._drop(victim, "evicted (connection limit)")
            with self._open_lock:
                self._open += 1
            conn = _Conn(sock, address, time.monotonic() + REQUEST_DEADLINE)
            try:
                sock.setblocking(False)
                if self._tls is not None:
                    conn.sock = self._tls.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
                    conn.handshaking = True
                self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            except (OSError, ValueError) as exc:
                self._close(conn)
                self._drops.add("setup failed", address, exc)
                continue
            self._reading[conn] = None
            self._progress(conn)
        return resume_at

    def _evictable(self) -> _Conn | None:
        """The connection to close for a newcomer at the limit: the oldest still sending its
        head, else the oldest still sending its body; None when every slot is being answered."""
        for waiting in (self._reading, self._bodies):
            if waiting:
                return next(iter(waiting))
        return None

    def _progress(self, conn: _Conn) -> None:
        if conn not in self._reading and conn not in self._bodies:
            return  # closed earlier in this turn; its descriptor may already be reused
        if conn.handshaking and not self._handshake(conn):
            return
        while self._read(conn):
            pass

    def _read(self, conn: _Conn) -> bool:
        """Takes what has arrived; True while more may be waiting."""
        try:
            data = conn.sock.recv(8192)
        except (BlockingIOError, ssl.SSLWantReadError):
            if self._selector.get_key(conn.sock).events != selectors.EVENT_READ:
                self._selector.modify(conn.sock, selectors.EVENT_READ, conn)  # after a TLS write
            return False
        except ssl.SSLWantWriteError:
            self._selector.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return False
        except (OSError, ValueError) as exc:
            self._drop(conn, "read failed", exc, summarise=False)
            return False
        return self._received(conn, data)

    def _received(self, conn: _Conn, data: bytes) -> bool:
        if not data:
            self._drop(conn, "closed before its request", summarise=False)
            return False
        if conn.need:  # the head is in: this is body
            conn.head += data
            if len(conn.head) < conn.need:
                return True
            del conn.head[conn.need :]
            self._dispatch(conn)
            return False
        start = max(0, len(conn.head) - 2)
        conn.head += data
        end = _head_end(conn.head, start)
        if end is not None:
            self._head_done(conn, end)
            return False
        if len(conn.head) > MAX_HEAD:
            self._reply_and_drop(conn, _TOO_LARGE, "request head too large")
            return False
        return True

    def _head_done(self, conn: _Conn, end: int) -> None:
        """The head is in: answer at once, or wait for the body under its own deadline."""
        length = _content_length(bytes(conn.head[:end]))
        if isinstance(length, bytes):
            self._reply_and_drop(conn, length, "request body refused")
            return
        if len(conn.head) >= end + length:
            del conn.head[end + length :]  # anything after the body is not ours to read
            self._dispatch(conn)
            return
        conn.need = end + length
        del self._reading[conn]
        conn.deadline = time.monotonic() + BODY_DEADLINE
        self._bodies[conn] = None  # the same deadline for all: insertion order is deadline order

    def _handshake(self, conn: _Conn) -> bool:
        """Advances the TLS handshake; True once it is done."""
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._selector.modify(sock, selectors.EVENT_READ, conn)
            return False
        except ssl.SSLWantWriteError:
            self._selector.modify(sock, selectors.EVENT_WRITE, conn)
            return False
        except (OSError, ValueError) as exc:
            self._drop(conn, "TLS handshake failed", exc)
            return False
        conn.handshaking = False
        self._selector.modify(sock, selectors.EVENT_READ, conn)
        return True

    def _dispatch(self, conn: _Conn) -> None:
        self._reading.pop(conn, None)
        self._bodies.pop(conn, None)
        self._selector.unregister(conn.sock)
        try:
            self._work.put_nowait(conn)
        except queue.Full:
            self._reply_and_drop(conn, _BUSY, "workers busy")

    def _expire(self, now: float) -> None:
        while self._reading:
            oldest = next(iter(self._reading))
            if oldest.deadline > now:
                break
            self._drop(oldest, "request not complete within the deadline")
        while self._bodies:
            oldest = next(iter(self._bodies))
            if oldest.deadline > now:
                break
            self._drop(oldest, "request body not complete within the deadline")
        while self._writing:
            oldest = next(iter(self._writing))
            if oldest.deadline > now:
                break
            self._drop(oldest, "answer not taken within the deadline")

    def _take_replies(self) -> None:
        """Answers the workers could not send at once: the loop waits for the client."""
        while not self._replies.empty():
            conn = self._replies.get()
            conn.deadline = time.monotonic() + RESPONSE_DEADLINE
            try:
                self._selector.register(conn.sock, selectors.EVENT_WRITE, conn)
            except (OSError, ValueError) as exc:
                self._close(conn)
                self._drops.add("answer not delivered", conn.address, exc, summarise=False)
                continue
            self._writing[conn] = None

    def _write(self, conn: _Conn) -> bool:
        """Sends what the socket takes without blocking; True once the connection is done
        with (all sent, or the client gone)."""
        while conn.out:
            try:
                sent = conn.sock.send(conn.out[:65536])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return False
            except (OSError, ValueError) as exc:
                self._drops.add("answer not delivered", conn.address, exc, summarise=False)
                return True
            conn.out = conn.out[sent:]
        return True

    def _drop(
        self, conn: _Conn, cause: str, detail: object = None, *, summarise: bool = True
    ) -> None:
        self._forget(conn)
        self._close(conn)
        self._drops.add(cause, conn.address, detail, summarise=summarise)

    def _reply_and_drop(self, conn: _Conn, answer: bytes, cause: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            conn.sock.send(answer)  # best effort: a small answer fits the send buffer
        self._drop(conn, cause)

    def _forget(self, conn: _Conn) -> None:
        """The loop stops watching a connection (loop thread only)."""
        if (
            self._reading.pop(conn, False) is None
            or self._bodies.pop(conn, False) is None
            or self._writing.pop(conn, False) is None
        ):
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(conn.sock)

    def _close(self, conn: _Conn) -> None:
        with contextlib.suppress(OSError):
            conn.sock.close()
        with self._open_lock:
            self._open -= 1
            was_full = self._open + 1 >= self.max_connections
        if was_full and threading.current_thread() is not self._thread:
            self._wake()  # the loop may have stopped accepting at the limit

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    # Workers: answer complete requests.

    def _serve(self) -> None:
        while True:
            conn = self._work.get()
            if conn is None:
                return
            try:
                conn.out = memoryview(_Handler(conn, self._app).answer.value())
            except Exception as exc:
                log.warning("request from %s failed: %r", _host(conn.address), exc)
                log.debug("request failure", exc_info=True)
                self._close(conn)
                continue
            # Most answers fit the socket's buffer; a client slow to take in the rest is
            # the loop's to wait for, under a deadline, not a worker's.
            if self._write(conn) or self._stopping.is_set():
                self._close(conn)
            else:
                self._replies.put(conn)
                self._wake()
