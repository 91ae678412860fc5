"""Real DICOM peers on loopback for check and daemon tests.

* ``OrthancPeer``: Orthanc with a generated config in a temporary directory, checking the
  called AE title (``ORTHANC``) and always allowing C-ECHO.
* ``StorescpPeer``: DCMTK ``storescp`` (AE ``STORESCP``); with ``refuse=True`` it rejects
  every association (DCMTK 3.6 has no option to reject only a wrong called AE).
* ``DcmqrscpPeer``: DCMTK ``dcmqrscp`` (AE ``DCMQRSCP``), an empty archive answering C-FIND.
* ``PynetdicomPeer``: a pynetdicom Verification SCP whose behaviour a test chooses
  (calling AE allow-list, a chosen rejection, C-ECHO status or delay, abort on C-ECHO),
  optionally over TLS and answering C-FIND with chosen statuses.
* ``SilentListener``: accepts TCP connections and never says a word.

Every peer listens on a free port, is ready when ``start()`` returns (polled, not slept)
and releases everything on ``stop()``; all are context managers. Orthanc and storescp bind
every interface (neither version here can bind loopback only), so ports are random.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import logging
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from tests.fixtures_env import missing_peer
from tests.fixtures_net import free_port

__all__ = [
    "HOSTILE_MODES",
    "DcmqrscpPeer",
    "HostileDicomPeers",
    "OrthancPeer",
    "PynetdicomPeer",
    "SilentListener",
    "StorescpPeer",
    "free_port",
    "open_fd_count",
    "orthanc",
    "require_binary",
    "silent_listener",
    "storescp",
    "wait_for_port",
]

logging.getLogger("pynetdicom").setLevel(logging.WARNING)

LOOPBACK = "127.0.0.1"
ORTHANC_PLUGINS = "/usr/share/orthanc/plugins"

# Peers started and not yet stopped; a test that fails before its cleanup must not leave
# an Orthanc or storescp running after the session.
_RUNNING: set[_ProcessPeer] = set()


@atexit.register
def _stop_leftovers() -> None:
    for peer in list(_RUNNING):
        peer.stop(kill=True)


def open_fd_count() -> int:
    """Open file descriptors of this process (Linux)."""
    return len(os.listdir("/proc/self/fd"))


def require_binary(name: str, *fallbacks: str) -> str:
    """Path of an executable, or `missing_peer` (skip; fail under CI=true) when absent."""
    found = shutil.which(name) or next((p for p in fallbacks if os.access(p, os.X_OK)), None)
    if found is None:
        missing_peer(f"{name} is not installed (scripts/install-test-deps.sh installs it)")
    return found


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for_port(
    port: int,
    *,
    host: str = LOOPBACK,
    timeout: float = 20.0,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    """Poll until ``host:port`` accepts a TCP connection; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            tail = _log_tail(log) if log else ""
            raise RuntimeError(f"peer exited with {process.returncode} before listening\n{tail}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            tail = _log_tail(log) if log else ""
            raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s\n{tail}")
        time.sleep(0.02)  # poll interval, not synchronisation: the loop re-checks


class _ProcessPeer:
    """A peer run as a child process with its output captured in ``log_path``."""

    def __init__(self, workdir: Path | None) -> None:
        self._own_tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix=f"{type(self).__name__}-")
            workdir = Path(self._own_tmp.name)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{type(self).__name__.lower()}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> Self:
        if self.running:
            return self
        command = self._command()
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            command,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        _RUNNING.add(self)
        try:
            self._wait_ready(self._process, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        """End the process (SIGTERM, or SIGKILL with ``kill``) and wait for it.

        ``kill`` is for speed: Orthanc takes about 3 s to stop gracefully.
        """
        process, self._process = self._process, None
        _RUNNING.discard(self)
        if process is not None and process.poll() is None:
            if kill:
                process.kill()
            else:
                process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop at once (SIGKILL) and remove the working directory if this peer made it."""
        self.stop(kill=True)
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
            self._own_tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class OrthancPeer(_ProcessPeer):
    """Orthanc on loopback-only HTTP and a DICOM port, state kept in ``workdir``.

    ``stop()`` then ``start()`` restarts it on the same ports with the same storage.
    ``extra_config`` is merged over the generated configuration.
    """

    host = LOOPBACK

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        aet: str = "ORTHANC",
        dicom_port: int | None = None,
        http_port: int | None = None,
        plugins: bool = False,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(workdir)
        self.binary = require_binary("Orthanc", "/usr/sbin/Orthanc")
        self.aet = aet
        self.dicom_port = dicom_port or free_port()
        self.http_port = http_port or free_port()
        self.plugins = plugins
        self.extra_config = dict(extra_config or {})
        self.config_path = self.workdir / "orthanc.json"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.http_port}"

    def config(self) -> dict[str, Any]:
        storage = str(self.workdir / "storage")
        config: dict[str, Any] = {
            "Name": "monai-slo-test",
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowFind": True,
            "DicomModalities": {},
            "OrthancPeers": {},
            "SaveJobs": False,
            "Plugins": [ORTHANC_PLUGINS] if self.plugins else [],
        }
        config.update(self.extra_config)
        return config

    def _command(self) -> list[str]:
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        return [self.binary, str(self.config_path)]

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._http_ready():
            if process.poll() is not None or time.monotonic() >= deadline:
                state = "exited" if process.poll() is not None else "not ready"
                raise RuntimeError(f"Orthanc {state} ({self.url})\n{_log_tail(self.log_path)}")
            time.sleep(0.02)  # poll interval, not synchronisation: the loop re-checks
        wait_for_port(
            self.dicom_port,
            timeout=max(0.1, deadline - time.monotonic()),
            process=process,
            log=self.log_path,
        )

    def _http_ready(self) -> bool:
        # http.client, not urllib: no proxy from the environment may get in the way.
        conn = http.client.HTTPConnection(LOOPBACK, self.http_port, timeout=1.0)
        try:
            conn.request("GET", "/system")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()


class StorescpPeer(_ProcessPeer):
    """DCMTK storescp; ``refuse=True`` rejects every association (permanent, no reason)."""

    host = LOOPBACK

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        aet: str = "STORESCP",
        port: int | None = None,
        refuse: bool = False,
    ) -> None:
        super().__init__(workdir)
        self.binary = require_binary("storescp")
        self.aet = aet
        self.port = port or free_port()
        self.dicom_port = self.port
        self.refuse = refuse

    def _command(self) -> list[str]:
        out = self.workdir / "received"
        out.mkdir(exist_ok=True)
        command = [self.binary, "--aetitle", self.aet, "--output-directory", str(out)]
        command += ["--acse-timeout", "5", "--dimse-timeout", "5"]
        if self.refuse:
            command.append("--refuse")
        return [*command, str(self.port)]

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        wait_for_port(self.port, timeout=timeout, process=process, log=self.log_path)


class DcmqrscpPeer(_ProcessPeer):
    """DCMTK dcmqrscp with an empty storage area, single process, any calling AE."""

    host = LOOPBACK

    def __init__(
        self, workdir: Path | None = None, *, aet: str = "DCMQRSCP", port: int | None = None
    ) -> None:
        super().__init__(workdir)
        self.binary = require_binary("dcmqrscp")
        self.aet = aet
        self.port = port or free_port()
        self.dicom_port = self.port

    def _command(self) -> list[str]:
        storage = self.workdir / "db"
        storage.mkdir(exist_ok=True)
        config = self.workdir / "dcmqrscp.cfg"
        config.write_text(
            f"NetworkTCPPort = {self.port}\nMaxPDUSize = 16384\nMaxAssociations = 4\n"
            "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
            f"AETable BEGIN\n{self.aet} {storage} R (10, 64mb) ANY\nAETable END\n"
        )
        return [self.binary, "--single-process", "--config", str(config), str(self.port)]

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        wait_for_port(self.port, timeout=timeout, process=process, log=self.log_path)


class PynetdicomPeer:
    """A pynetdicom Verification SCP on 127.0.0.1, in this process.

    ``echo_status``: what C-ECHO answers; ``echo_delay``: seconds before answering (cut
    short by ``stop()``); ``abort_on_echo``: abort instead of answering;
    ``require_calling_aet``: reject other calling AEs; ``reject``: reject every
    association with this (result, source, diagnostic), e.g. ``(2, 3, 1)`` for transient
    congestion. ``find_statuses``: also a Study Root C-FIND SCP answering with these
    statuses in turn (e.g. ``[0xFF00, 0x0000]``: one match, then success), each after
    ``find_delay`` seconds; the request identifiers land in ``find_queries``.
    ``ssl_context``: serve DICOM over TLS with this server context.
    """

    host = LOOPBACK

    def __init__(
        self,
        *,
        aet: str = "PYNETDICOM",
        echo_status: int = 0x0000,
        echo_delay: float = 0.0,
        abort_on_echo: bool = False,
        require_calling_aet: list[str] | None = None,
        require_called_aet: bool = True,
        reject: tuple[int, int, int] | None = None,
        find_statuses: Sequence[int] | None = None,
        find_delay: float = 0.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.aet = aet
        self.find_statuses = list(find_statuses or [])
        self.find_delay = find_delay
        self.find_queries: list[Dataset] = []
        self.ssl_context = ssl_context
        self.echo_status = echo_status
        self.echo_delay = echo_delay
        self._stopping = threading.Event()
        self.abort_on_echo = abort_on_echo
        self.echoes = 0
        self._ae = AE(ae_title=aet)
        self._ae.add_supported_context(Verification)
        if find_statuses is not None:
            self._ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
        self._ae.require_called_aet = require_called_aet
        if require_calling_aet:
            self._ae.require_calling_aet = require_calling_aet
        self.reject = reject
        self._server: Any = None
        self.port = 0

    @property
    def dicom_port(self) -> int:
        return self.port

    def _on_echo(self, event: Any) -> int:
        self.echoes += 1
        if self.echo_delay:
            self._stopping.wait(self.echo_delay)  # simulates a slow peer; stop() ends it
        if self.abort_on_echo:
            event.assoc.abort()
        return self.echo_status

    def _on_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        self.find_queries.append(event.identifier)
        for number, status in enumerate(self.find_statuses):
            if self.find_delay and self._stopping.wait(self.find_delay):
                return
            if status in (0xFF00, 0xFF01):
                match = Dataset()
                match.QueryRetrieveLevel = "STUDY"
                match.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.{number + 1}"
                yield status, match
            else:
                yield status, None

    def _on_requested(self, event: Any) -> None:
        if self.reject is not None:
            event.assoc.acse.send_reject(*self.reject)
            # Wait until the A-ASSOCIATE-RJ is out: pynetdicom's server otherwise closes
            # the connection right after this handler, racing the rejection.
            event.assoc.kill()

    def start(self) -> Self:
        self._stopping.clear()
        handlers: list[Any] = [
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_FIND, self._on_find),
        ]
        self._server = self._ae.start_server(
            (LOOPBACK, 0), block=False, evt_handlers=handlers, ssl_context=self.ssl_context
        )
        self.port = int(self._server.server_address[1])
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()  # stops the listener and joins its thread
            self._server = None
        self._ae.shutdown()  # aborts any association still running

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SilentListener:
    """Accepts TCP connections on 127.0.0.1 and never reads or writes a byte.

    The accepted connections are held open (so the client sees silence, not a close)
    until ``stop()``, which closes them and the listening socket and joins the thread.
    With ``reply`` it sends those bytes once on each connection, then keeps silent (a
    peer that answers in the wrong protocol).
    """

    host = LOOPBACK

    def __init__(self, reply: bytes = b"") -> None:
        self.reply = reply
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self.port = 0
        self.accepted = 0

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((LOOPBACK, 0))
        listener.listen(64)
        listener.settimeout(0.05)  # lets the accept loop notice stop()
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, name="silent-listener", daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            self.accepted += 1
            if self.reply:
                conn.sendall(self.reply)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for conn in self._held:
            conn.close()
        self._held.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _peer_fixture(peer: Callable[[], Any]) -> Iterator[Any]:
    with peer() as running:
        yield running


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    """A running Orthanc shared by a module's tests; tests that stop it make their own."""
    yield from _peer_fixture(lambda: OrthancPeer(tmp_path_factory.mktemp("orthanc")))


@pytest.fixture
def storescp(tmp_path: Path) -> Iterator[StorescpPeer]:
    """A running storescp (AE STORESCP) for one test: it serves one association at a time."""
    yield from _peer_fixture(lambda: StorescpPeer(tmp_path / "storescp"))


@pytest.fixture
def silent_listener() -> Iterator[SilentListener]:
    """A TCP listener that accepts and never answers."""
    yield from _peer_fixture(SilentListener)


@pytest.fixture
def hung_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """getaddrinfo() that never answers (until the test ends): a resolver gone silent."""
    release = threading.Event()

    def hang(*args: object, **kwargs: object) -> list[Any]:
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    yield
    release.set()


# --- Hostile DICOM peers ----------------------------------------------------------------------

HOSTILE_MODES = (
    "dribble",
    "huge_pdu",
    "flood",
    "slow_flood",
    "truncated_ac",
    "no_items_ac",
    "garbled_command",
    "silent_after_ac",
)
"""What a :class:`HostileDicomPeers` port does once it has read the A-ASSOCIATE-RQ.

* ``dribble``: an A-ASSOCIATE-AC header announcing 16,000 bytes, then one byte per 100 ms;
* ``huge_pdu``: the same announcing 4,294,967,040 bytes;
* ``flood``: a valid A-ASSOCIATE-AC, then P-DATA-TF command fragments (never the last) of
  16,000 bytes, as fast as the client reads;
* ``slow_flood``: the same, 8,000 bytes every 50 ms;
* ``truncated_ac``: an A-ASSOCIATE-AC with its fixed fields only (no variable items);
* ``no_items_ac``: one with the application context but no presentation context or user
  information items;
* ``garbled_command``: a valid A-ASSOCIATE-AC, then a complete command set of garbage;
* ``silent_after_ac``: a valid A-ASSOCIATE-AC, then silence (no answer, no release reply).
"""

_HOSTILE_CONNECTIONS = 64  # per port; more are closed at once, so a test cannot pile them up
_FLOOD_FRAGMENT = 16_000
_SLOW_FRAGMENT = 8_000


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return bytes(data)


def _read_pdu(conn: socket.socket) -> bytes:
    header = _read_exactly(conn, 6)
    length = int.from_bytes(header[2:6], "big")
    if length > 1 << 20:
        raise ConnectionError("not a PDU this peer reads")
    return header + _read_exactly(conn, length)


def associate_ac(rq_bytes: bytes) -> bytes:
    """A valid A-ASSOCIATE-AC accepting every context of ``rq_bytes`` with its first syntax."""
    from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
    from pynetdicom.presentation import PresentationContext

    rq = A_ASSOCIATE_RQ()
    rq.decode(rq_bytes)
    request = rq.to_primitive()
    contexts = []
    for proposed in request.presentation_context_definition_list:
        context = PresentationContext()
        context.context_id = proposed.context_id
        context.abstract_syntax = proposed.abstract_syntax
        context.transfer_syntax = [proposed.transfer_syntax[0]]
        context.result = 0
        contexts.append(context)
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16382
    primitive = A_ASSOCIATE()
    primitive.application_context_name = request.application_context_name
    primitive.calling_ae_title = request.calling_ae_title
    primitive.called_ae_title = request.called_ae_title
    primitive.result = 0
    primitive.presentation_context_definition_results_list = contexts
    primitive.user_information = [max_length]
    ac = A_ASSOCIATE_AC()
    ac.from_primitive(primitive)
    return bytes(ac.encode())


def _fixed_ac(rq_bytes: bytes, items: bytes = b"") -> bytes:
    # Protocol version, reserved, called and calling AE titles and reserved bytes as sent.
    fixed = b"\x00\x01\x00\x00" + rq_bytes[10:42] + b"\x00" * 32
    body = fixed + items
    return b"\x02\x00" + len(body).to_bytes(4, "big") + body


def command_fragment(
    size: int, context_id: int = 1, *, last: bool = False, fill: bytes = b"\x00"
) -> bytes:
    """A P-DATA-TF with one command PDV of ``size`` bytes, not the last fragment unless
    ``last``."""
    pdv = bytes([context_id, 0x03 if last else 0x01]) + fill * size
    item = len(pdv).to_bytes(4, "big") + pdv
    return b"\x04\x00" + len(item).to_bytes(4, "big") + item


def _hostile_session(conn: socket.socket, mode: str, stop: threading.Event) -> None:
    rq = _read_pdu(conn)
    if mode in ("dribble", "huge_pdu"):
        length = 16_000 if mode == "dribble" else 0xFFFFFF00
        conn.sendall(b"\x02\x00" + length.to_bytes(4, "big"))
        while not stop.wait(0.1):
            conn.sendall(b"\x00")
    elif mode in ("garbled_command", "silent_after_ac"):
        conn.sendall(associate_ac(rq))
        if mode == "garbled_command":
            conn.sendall(command_fragment(20, last=True, fill=b"\xff"))
        while not stop.is_set() and conn.recv(65536):  # until the client hangs up
            pass
    elif mode in ("flood", "slow_flood"):
        conn.sendall(associate_ac(rq))
        fragment = command_fragment(_FLOOD_FRAGMENT if mode == "flood" else _SLOW_FRAGMENT)
        pause = 0.0 if mode == "flood" else 0.05
        while not stop.is_set():
            conn.sendall(fragment)
            if pause:
                stop.wait(pause)
    else:
        if mode == "truncated_ac":
            conn.sendall(_fixed_ac(rq))
        else:
            context = b"1.2.840.10008.3.1.1.1"
            conn.sendall(_fixed_ac(rq, b"\x10\x00" + len(context).to_bytes(2, "big") + context))
        while not stop.is_set() and conn.recv(65536):  # until the client hangs up
            pass


def _hostile_connection(
    conn: socket.socket, mode: str, tls: ssl.SSLContext | None, stop: threading.Event
) -> None:
    try:
        conn.settimeout(5.0)  # nothing here waits on a client for longer
        if tls is not None:
            conn = tls.wrap_socket(conn, server_side=True)
        _hostile_session(conn, mode, stop)
    except (OSError, ValueError):
        pass  # the client hung up or timed out: that ends the session
    finally:
        conn.close()


def _hostile_listener(
    listener: socket.socket, mode: str, tls: ssl.SSLContext | None, stop: threading.Event
) -> None:
    sessions: list[threading.Thread] = []
    listener.settimeout(0.05)  # lets the loop notice stop
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            break
        sessions = [t for t in sessions if t.is_alive()]
        if len(sessions) >= _HOSTILE_CONNECTIONS:
            conn.close()
            continue
        thread = threading.Thread(
            target=_hostile_connection, args=(conn, mode, tls, stop), daemon=True
        )
        thread.start()
        sessions.append(thread)
    listener.close()
    for thread in sessions:
        thread.join(6.0)


def _serve_hostile(pipe: Any, cert: str | None, key: str | None) -> None:
    """Child process: one port per (mode, tls); reports them, serves until told to stop."""
    stop = threading.Event()
    tls: ssl.SSLContext | None = None
    if cert is not None:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(cert, key)
    ports: dict[str, int] = {}
    threads = []
    for secure in (False, True) if tls is not None else (False,):
        for mode in HOSTILE_MODES:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((LOOPBACK, 0))
            listener.listen(_HOSTILE_CONNECTIONS)
            ports[f"{mode}+tls" if secure else mode] = int(listener.getsockname()[1])
            thread = threading.Thread(
                target=_hostile_listener,
                args=(listener, mode, tls if secure else None, stop),
                daemon=True,
            )
            thread.start()
            threads.append(thread)
    pipe.send(ports)
    with contextlib.suppress(EOFError):  # EOFError: the parent is gone
        pipe.recv()  # "stop"
    stop.set()
    for thread in threads:
        thread.join(10.0)


class HostileDicomPeers:
    """Hostile DICOM peers (see :data:`HOSTILE_MODES`) in a child process on 127.0.0.1.

    ``port(mode)`` or ``port(mode, tls=True)`` (with ``cert``/``key``: the same over TLS).
    In a child process so that their threads, buffers and CPU are not the client's, which
    the tests measure.
    """

    host = LOOPBACK

    def __init__(self, cert: Path | None = None, key: Path | None = None) -> None:
        self.cert, self.key = cert, key
        self.ports: dict[str, int] = {}
        self._process: Any = None
        self._pipe: Any = None

    def port(self, mode: str, *, tls: bool = False) -> int:
        return self.ports[f"{mode}+tls" if tls else mode]

    def start(self) -> Self:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        cert = str(self.cert) if self.cert else None
        key = str(self.key) if self.key else None
        self._process = context.Process(target=_serve_hostile, args=(child, cert, key), daemon=True)
        self._process.start()
        child.close()
        self._pipe = parent
        if not parent.poll(30.0):
            self.stop()
            raise RuntimeError("hostile peers did not start within 30s")
        self.ports = parent.recv()
        return self

    def stop(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.send("stop")
            self._pipe.close()
            self._pipe = None
        if self._process is not None:
            self._process.join(10.0)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5.0)
            self._process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
