"""The pynetdicom association path every DICOM kind can run on: :func:`run_service`.

A kind differs only in the presentation contexts it proposes and in what it does once
associated (a :class:`DicomExchange`). Everything else runs here, the same for all of
them: TCP connect, optional TLS, association, release or abort, thread and socket
cleanup, and decoding what went wrong.

Every network wait (name lookup, TCP connect and TLS handshake, association response,
DIMSE response, release) is bounded by the smaller of its own timeout and what is left of
the deadline. What the peer did is read from pynetdicom's state machine (the actions it
took), so a rejection, an abort, a dropped connection and a silent peer each get their own
reason, worded by :mod:`monai_slo.checks.dicom.outcomes`.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import socket
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ, P_DATA_TF
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.transport import AddressInformation, AssociationSocket

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.dicom import outcomes
from monai_slo.checks.dicom.common import DEFAULT_READ_LIMIT, DicomConfig, bounded, lookup
from monai_slo.checks.net import (
    CERT_EXPIRY,
    ProbeFailure,
    cert_expiry,
    handshake_failure,
    quick_ack,
    require_validity,
    tls_setup_failure,
)

log = logging.getLogger(__name__)


def _pin_mmap_threshold() -> None:
    """Keep glibc serving buffers of 128 KiB and more with mmap, so freeing one returns it.

    glibc raises that threshold to the size of the largest buffer freed so far; after one
    peer's flood, later floods' buffers then come from per-thread heaps that keep freed
    pages, and pynetdicom reads on a new thread per association. Measured with hostile
    C-FIND floods: the daemon grew to 240 MiB in 100 s without this, stayed at ~75 MiB
    with it. Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 128 * 1024)  # glibc's own initial value, now fixed


_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
_pin_mmap_threshold()

# How far past the check's deadline cleanup may wait for pynetdicom's threads: they exit
# within a reactor tick (milliseconds) once the association is over, and every read they
# make fails at once after the deadline; closing the socket ends any read still waiting.
_GRACE_SECONDS = 0.2
_FORCED_JOIN_SECONDS = 0.1

# --- What a kind does once associated ---------------------------------------------------------


class DicomExchange(ABC):
    """One DICOM kind's part: the contexts it proposes and its exchange once associated."""

    operation: ClassVar[str]
    """Names the exchange in messages: ``C-ECHO``, ``C-FIND``."""

    read_limit: ClassVar[int] = DEFAULT_READ_LIMIT
    """Bytes one association may read from the peer; more fails the run with ``protocol``."""

    @abstractmethod
    def contexts(self) -> Sequence[tuple[str, Sequence[str]]]:
        """(abstract syntax, transfer syntaxes) to propose; no syntaxes: pynetdicom's default."""

    @abstractmethod
    def exchange(self, assoc: Association, deadline: Deadline) -> CheckOutcome | None:
        """Do the work on an established association.

        Return the verdict once the peer has answered (success or a DIMSE status), or None
        when no usable answer came; the shared code then says why (abort, dropped
        connection, timeout, garbage). The association's DIMSE timeout is already bounded.
        """

    def unaccepted(self, assoc: Association, config: DicomConfig) -> CheckOutcome:
        """The peer accepted the association but none of the proposed contexts."""
        rejected = assoc.rejected_contexts
        if not rejected:
            return outcomes.context_rejected(None, None, config)
        context = rejected[0]
        return outcomes.context_rejected(str(context.abstract_syntax), context.result, config)


# --- The socket under pynetdicom ------------------------------------------------------------
# pynetdicom's AssociationSocket.connect() catches the OSError from connect(), logs it and
# only reports "association failed", so refused, unreachable, timed out and a failed TLS
# handshake would all look alike. These small subclasses keep the raw socket and the error
# it raised, without a second probing connection, and keep its reads bounded. They
# override pynetdicom's _create_socket hooks (private, unchanged since pynetdicom 2.0) and
# do what those do. TLS is set up here too rather than through pynetdicom's tls_args, so
# that the TLS socket is one of ours.


class _RecordingSocket(socket.socket):
    """A TCP socket that remembers why connect() failed and never blocks unbounded.

    Every read gives up at the check's deadline (not per read: pynetdicom loops on recv()
    until a PDU is complete, so a peer dribbling bytes would otherwise hold it for as long
    as it likes) and the bytes read in all are capped at ``read_limit``. Either failure
    is kept in ``overrun`` and raised as an OSError, which pynetdicom takes for a closed
    connection.

    It also sends without Nagle's delay and acknowledges at once: pynetdicom writes a PDU
    in pieces, and each exchange otherwise stalls ~40 ms on a delayed ACK.
    """

    connect_error: OSError | None = None
    io_timeout: float | None = None
    deadline: Deadline | None = None
    read_limit: int | None = None
    read_total: int = 0
    overrun: ProbeFailure | None = None

    def connect(self, address: Any) -> None:
        try:
            super().connect(address)
        except OSError as exc:
            self.connect_error = exc
            raise
        with contextlib.suppress(OSError):
            self.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        self._before_read()
        quick_ack(self)
        try:
            data = super().recv(buflen, flags)
        except TimeoutError:
            if self.deadline is not None and self.deadline.expired:
                self.overrun = self._deadline_reached()
            raise
        self.read_total += len(data)
        if self.read_limit is not None and self.read_total > self.read_limit:
            self.overrun = outcomes.read_limit_failure(self.read_limit)
            raise ConnectionAbortedError(errno.ECONNABORTED, self.overrun.detail)
        return data

    def expect(self, size: int) -> None:
        """Fail now if reading ``size`` more bytes would pass the limit (an announced length)."""
        if self.read_limit is not None and self.read_total + size > self.read_limit:
            self.overrun = self.overrun or outcomes.read_limit_failure(self.read_limit)
            raise ConnectionAbortedError(errno.ECONNABORTED, self.overrun.detail)

    def _before_read(self) -> None:
        if self.overrun is not None:
            raise ConnectionAbortedError(errno.ECONNABORTED, self.overrun.detail)
        if self.deadline is None:
            return
        remaining = self.deadline.remaining()
        if remaining <= 0:
            self.overrun = self._deadline_reached()
            raise TimeoutError(errno.ETIMEDOUT, self.overrun.detail)
        wait = remaining if self.io_timeout is None else min(self.io_timeout, remaining)
        socket.socket.settimeout(self, wait)

    @staticmethod
    def _deadline_reached() -> ProbeFailure:
        # Worded by _transport_failure, which knows the phase.
        return ProbeFailure(FailureReason.TIMEOUT, "check deadline reached while reading")

    def settimeout(self, value: float | None) -> None:
        # pynetdicom clears the timeout once connected, so its reader would block for good
        # on a peer that stops in the middle of a PDU (it loops until the PDU is complete).
        # Keep a bound instead: a stalled read then counts as a closed connection.
        super().settimeout(self.io_timeout if value is None else value)


class _RecordingTLSSocket(_RecordingSocket, ssl.SSLSocket):
    """The same over TLS: also keeps what the handshake showed and any TLS alert.

    Made by ``SSLContext.wrap_socket`` (through ``sslsocket_class``); connect() does the
    TCP connect and then the handshake.
    """

    tls_failure: ProbeFailure | None = None
    expiry: float | None = None
    min_days_valid: float | None = None

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except OSError as exc:
            self.tls_failure = handshake_failure(exc)
            raise
        self.expiry = cert_expiry(self)
        try:
            require_validity(self.expiry, self.min_days_valid)
        except ProbeFailure as failure:
            self.tls_failure = failure
            # An OSError from connect() is what makes pynetdicom drop the connection
            # before sending anything.
            raise ConnectionAbortedError(errno.ECONNABORTED, failure.detail) from None

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        try:
            return super().recv(buflen, flags)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            raise  # the peer closed the connection: not a TLS problem
        except ssl.SSLError as exc:
            # A TLS alert after the handshake. Under TLS 1.3 a server that refuses our
            # client certificate (or its absence) says so only here, on the first read.
            if self.tls_failure is None:
                self.tls_failure = handshake_failure(exc)
            raise


@dataclass(frozen=True, slots=True)
class _Tls:
    context: ssl.SSLContext
    server_name: str
    min_days_valid: float | None


def _tls(config: DicomConfig) -> _Tls | None:
    if not config.tls:
        return None
    context = config.tls_context(shared=False)  # it gets our socket class
    context.sslsocket_class = _RecordingTLSSocket
    return _Tls(context, config.server_name or config.host, config.min_days_valid)


class _RecordingAssociationSocket(AssociationSocket):
    raw: _RecordingSocket | None = None
    thread_failed = False

    def __init__(
        self,
        assoc: Association,
        address: AddressInformation,
        tls: _Tls | None,
        deadline: Deadline,
        read_limit: int,
    ) -> None:
        self.tls = tls
        self.deadline = deadline
        self.read_limit = read_limit
        super().__init__(assoc, address=address)
        # Made before either thread starts (associate() starts them once it has a socket).
        for thread in (assoc, assoc.dul):
            thread.run = self._quietly(thread.run)  # type: ignore[method-assign]

    def _quietly(self, run: Callable[[], None]) -> Callable[[], None]:
        """A pynetdicom thread's run() whose exception ends it without a traceback on stderr.

        pynetdicom lets an exception from its state machine (a garbled command set from
        the peer, say) escape its reactor thread, having stopped the reactor first; Python
        then prints it. Here it is remembered (``thread_failed``: the peer's data broke
        pynetdicom) and its traceback goes to this module's log at DEBUG.
        """

        def quiet() -> None:
            try:
                run()
            except Exception:
                self.thread_failed = True
                log.debug("pynetdicom thread ended by an exception", exc_info=True)

        return quiet

    def recv(self, nr_bytes: int) -> bytearray:
        # pynetdicom asks for a whole PDU's announced length at once: a length past the
        # limit fails before a byte of it is read or buffered.
        if self.raw is not None:
            self.raw.expect(nr_bytes)
        return super().recv(nr_bytes)

    def _create_socket(self, address: AddressInformation) -> socket.socket:
        sock = _RecordingSocket(address.address_family, socket.SOCK_STREAM)
        sock.io_timeout = self.assoc.network_timeout
        sock.deadline = self.deadline
        sock.read_limit = self.read_limit
        self.raw = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.assoc.network_timeout is not None:
                sock.settimeout(self.assoc.network_timeout)
            sock.bind(address.as_tuple)
            if self.tls is not None:
                self.raw = self._wrap(sock, self.tls)
        except BaseException:
            sock.close()
            raise
        self._is_connected = False
        return self.raw

    @staticmethod
    def _wrap(sock: _RecordingSocket, tls: _Tls) -> _RecordingTLSSocket:
        try:
            wrapped = cast(
                _RecordingTLSSocket,
                tls.context.wrap_socket(sock, server_hostname=tls.server_name),
            )
        except (ssl.SSLError, ValueError) as exc:
            raise tls_setup_failure(exc) from None
        wrapped.io_timeout = sock.io_timeout
        wrapped.deadline = sock.deadline
        wrapped.read_limit = sock.read_limit
        wrapped.min_days_valid = tls.min_days_valid
        return wrapped


class _RecordingAE(AE):
    """An AE whose association sockets record connect and TLS errors; one per run."""

    last_socket: _RecordingAssociationSocket | None = None

    def __init__(
        self, ae_title: str, tls: _Tls | None, deadline: Deadline, read_limit: int
    ) -> None:
        super().__init__(ae_title=ae_title)
        self.tls = tls
        self.deadline = deadline
        self.read_limit = read_limit

    def _create_socket(
        self, assoc: Association, address: AddressInformation, tls_args: Any
    ) -> AssociationSocket:
        sock = _RecordingAssociationSocket(assoc, address, self.tls, self.deadline, self.read_limit)
        self.last_socket = sock
        return sock


# --- Watching the association ---------------------------------------------------------------


@dataclass
class _Trace:
    """What happened on one run.

    The event handlers run on pynetdicom's DUL thread; the fields are read only after
    that thread has been joined, so no lock is needed.
    """

    deadline: Deadline
    acse_limit: float
    operation: str
    connect_wait: float = 0.0
    acse_wait: float = 0.0
    dimse_wait: float = 0.0
    connected: bool = False
    actions: list[str] = field(default_factory=list)
    abort_pdu: tuple[int | None, int | None] | None = None
    reject_pdu: tuple[int | None, int | None, int | None] | None = None
    data_received: bool = False
    released: bool = False

    def handlers(self) -> list[EventHandlerType]:
        return [
            (evt.EVT_CONN_OPEN, self._on_conn_open),
            (evt.EVT_FSM_TRANSITION, self._on_transition),
            (evt.EVT_PDU_RECV, self._on_pdu),
        ]

    def _on_conn_open(self, event: Event) -> None:
        self.connected = True
        # The connect took part of the deadline: the association reply gets what is left.
        self.acse_wait = max(0.001, min(self.acse_limit, self.deadline.remaining()))
        event.assoc.acse_timeout = self.acse_wait

    def _on_transition(self, event: Event) -> None:
        self.actions.append(str(getattr(event, "action", "")))

    def _on_pdu(self, event: Event) -> None:
        pdu = getattr(event, "pdu", None)
        if isinstance(pdu, A_ABORT_RQ):
            self.abort_pdu = (pdu.source, pdu.reason_diagnostic)
        elif isinstance(pdu, A_ASSOCIATE_RJ):
            # Kept here rather than read from the association: when the rejection arrives
            # within microseconds pynetdicom mistakes it for a failed connect and never
            # hands the A-ASSOCIATE-RJ primitive over.
            self.reject_pdu = (pdu.result, pdu.source, pdu.reason_diagnostic)
        elif isinstance(pdu, P_DATA_TF):
            self.data_received = True

    @property
    def peer_aborted(self) -> bool:
        # AA-3: A-ABORT PDU received while associating or associated (not while closing).
        return "AA-3" in self.actions

    @property
    def invalid_pdu(self) -> bool:
        # AA-8: unrecognised or unexpected PDU outside the closing state.
        return "AA-8" in self.actions

    @property
    def connection_dropped(self) -> bool:
        # AA-4: transport closed by the peer (or reset) while associating or associated.
        return "AA-4" in self.actions


# --- The run --------------------------------------------------------------------------------


def run_service(config: DicomConfig, deadline: Deadline, service: DicomExchange) -> CheckOutcome:
    """Associate (over TLS when asked), let ``service`` do its exchange, release.

    Say what went wrong in the terms of FailureReason; over TLS, the served certificate's
    expiry is in the values whatever the outcome.
    """
    trace = _Trace(deadline, config.effective_acse_timeout, service.operation)
    try:
        address = lookup(config, deadline)
        trace.connect_wait = bounded(config.effective_connect_timeout, deadline, "connecting")
        tls = _tls(config)
    except ProbeFailure as failure:
        return failure.outcome()

    ae = _RecordingAE(config.calling_aet, tls, deadline, service.read_limit)
    for abstract_syntax, transfer_syntaxes in service.contexts():
        ae.add_requested_context(abstract_syntax, list(transfer_syntaxes) or None)
    ae.connection_timeout = trace.connect_wait
    # The ACSE and DIMSE waits are narrowed when their phase starts (_Trace._on_conn_open,
    # _exchange_and_release); these first values only make sure no wait is ever unbounded.
    initial = min(config.timeout, max(deadline.remaining(), 0.001))
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = initial
    verdict: CheckOutcome | None = None
    try:
        assoc = ae.associate(
            address, config.port, ae_title=config.called_aet, evt_handlers=trace.handlers()
        )
        if assoc.is_established:
            verdict = _exchange_and_release(assoc, config, service, trace)
    except ProbeFailure as failure:
        verdict = failure.outcome()  # the finally below still ends the association
    finally:
        _shutdown(ae, deadline)
    try:
        return _with_tls_values(_classify(config, service, ae, trace, verdict), ae)
    finally:
        _forget(ae)


def _exchange_and_release(
    assoc: Association, config: DicomConfig, service: DicomExchange, trace: _Trace
) -> CheckOutcome | None:
    trace.dimse_wait = bounded(
        config.effective_dimse_timeout, trace.deadline, f"the {service.operation}"
    )
    assoc.dimse_timeout = trace.dimse_wait
    assoc.network_timeout = trace.dimse_wait
    try:
        verdict = service.exchange(assoc, trace.deadline)
    except RuntimeError:
        return None  # the association ended between establishment and the request
    if verdict is None:
        return None
    remaining = trace.deadline.remaining()
    if remaining > 0:  # otherwise _shutdown aborts instead of releasing
        assoc.acse_timeout = min(config.effective_acse_timeout, remaining)
        assoc.release()
        trace.released = bool(assoc.is_released)
    return verdict


def _with_tls_values(outcome: CheckOutcome, ae: _RecordingAE) -> CheckOutcome:
    sock = ae.last_socket
    raw = sock.raw if sock is not None else None
    if not isinstance(raw, _RecordingTLSSocket) or raw.expiry is None:
        return outcome
    values = {**outcome.values, CERT_EXPIRY: raw.expiry}
    return CheckOutcome(outcome.success, outcome.reason, outcome.detail, values, outcome.series)


def _shutdown(ae: _RecordingAE, deadline: Deadline) -> None:
    """End the association, its threads and its socket, whatever state it is in.

    Never waits past the deadline plus a short grace: the A-ABORT is queued rather than
    waited for, and threads still running then have their socket shut under them.
    """
    sock = ae.last_socket
    if sock is None:
        return  # associate() failed before creating anything
    assoc: Association = sock.assoc
    until = deadline.at + _GRACE_SECONDS
    try:
        if assoc.is_established:
            # After the A-ABORT pynetdicom waits (ARTIM, the ACSE timeout) for the peer to
            # close; that wait must end within the grace too.
            assoc.acse_timeout = max(0.001, min(_GRACE_SECONDS, until - time.monotonic()))
            assoc.abort(block=False)
    finally:
        # is_alive() is False for a thread never started (the association thread only
        # starts once established).
        for thread in (assoc.dul, assoc):
            _join(thread, until)
        if assoc.dul.is_alive() or assoc.is_alive():
            # Still reading what a misbehaving peer sent, or waiting on it: stop both
            # reactors and shut the socket, which wakes any read at once.
            assoc.dul.kill_dul()
            assoc._kill = True
            assoc._reactor_checkpoint.set()
            if sock.raw is not None:
                with contextlib.suppress(OSError):
                    sock.raw.shutdown(socket.SHUT_RDWR)
            for thread in (assoc.dul, assoc):
                _join(thread, max(until, time.monotonic() + _FORCED_JOIN_SECONDS))
        # pynetdicom skips close() when shutdown() fails on a never-connected socket.
        if sock.raw is not None:
            sock.raw.close()


def _join(thread: threading.Thread, until: float) -> None:
    if thread.is_alive():
        thread.join(max(0.0, until - time.monotonic()))


def _forget(ae: _RecordingAE) -> None:
    """Drop what the association read, so garbage of a failed run is small at once.

    pynetdicom's association, DUL, DIMSE provider and socket refer to each other, so
    they are freed only by a full garbage collection; what they hold must not wait for it.
    """
    sock = ae.last_socket
    ae.last_socket = None
    if sock is None:
        return
    assoc: Association = sock.assoc
    if assoc.dul.is_alive():
        return  # its reactor may still use them: they go with it once it ends
    assoc.dimse.message = None  # a partly received DIMSE message
    for pending in (
        assoc.dimse.msg_queue,
        assoc.dul.to_user_queue,
        assoc.dul._recv_pdu,
        assoc.dul.event_queue,
        assoc.dul.to_provider_queue,
    ):
        with pending.mutex:
            pending.queue.clear()
    assoc.dul.socket = None


def _classify(
    config: DicomConfig,
    service: DicomExchange,
    ae: _RecordingAE,
    trace: _Trace,
    verdict: CheckOutcome | None,
) -> CheckOutcome:
    """Turn what was observed (threads already joined) into an outcome."""
    sock = ae.last_socket
    assert sock is not None  # associate() returned, so it made its socket
    overrun = sock.raw.overrun if sock.raw is not None else None
    if overrun is not None and overrun.reason is FailureReason.PROTOCOL:
        return overrun.outcome()  # whatever else was said, the peer sent too much
    if verdict is not None:
        if verdict.success and not trace.released:
            return outcomes.release_not_confirmed(verdict)
        return verdict
    return (
        _transport_failure(config, sock, trace)
        or _peer_failure(sock.assoc, trace)
        or _negotiation_failure(config, service, sock.assoc, trace)
        or _no_response(config, sock, trace)
    )


def _transport_failure(
    config: DicomConfig, sock: _RecordingAssociationSocket, trace: _Trace
) -> CheckOutcome | None:
    raw = sock.raw
    if isinstance(raw, _RecordingTLSSocket) and raw.tls_failure is not None:
        return raw.tls_failure.outcome()
    error = raw.connect_error if raw is not None else None
    # A peer that already sent garbage or aborted is judged by that, not by the deadline its
    # silence afterwards ran into (pynetdicom waits for the close that never comes).
    answered = trace.invalid_pdu or trace.peer_aborted
    if raw is not None and raw.overrun is not None and not answered:
        during = (
            outcomes.after_request(trace.operation)
            if _established(sock.assoc)
            else outcomes.IN_ASSOCIATION_ANSWER
        )
        return outcomes.still_sending(during, config)
    if error is not None:
        return outcomes.connect_failure(error, config, trace.connect_wait)
    if not trace.connected:
        return CheckOutcome.fail(
            FailureReason.CONNECTION, f"could not open a connection to {config.target}"
        )
    return None


def _established(assoc: Association) -> bool:
    rsp = assoc.acceptor.primitive
    return isinstance(rsp, A_ASSOCIATE) and rsp.result == 0x00


def _peer_failure(assoc: Association, trace: _Trace) -> CheckOutcome | None:
    during = (
        outcomes.after_request(trace.operation)
        if _established(assoc)
        else outcomes.DURING_ASSOCIATION
    )
    if trace.peer_aborted:
        return outcomes.abort_outcome(trace.abort_pdu, during)
    if trace.invalid_pdu:
        return outcomes.malformed_pdu(during)
    return None


def _negotiation_failure(
    config: DicomConfig, service: DicomExchange, assoc: Association, trace: _Trace
) -> CheckOutcome | None:
    if trace.reject_pdu is not None:
        return outcomes.rejection(trace.reject_pdu, config)
    rsp = assoc.acceptor.primitive
    if not isinstance(rsp, A_ASSOCIATE):
        if trace.connection_dropped:
            return outcomes.closed_before_answer()
        return outcomes.no_association_answer(trace.acse_wait)
    malformed = _malformed_answer(rsp)
    if malformed is not None:
        return malformed
    if not assoc.accepted_contexts:
        return service.unaccepted(assoc, config)
    return None


def _malformed_answer(rsp: A_ASSOCIATE) -> CheckOutcome | None:
    """PROTOCOL for an acceptance that is none: a bad result, or an A-ASSOCIATE-AC
    without one of its mandatory items (PS3.8 9.3.3)."""
    if rsp.result != 0x00:
        return CheckOutcome.fail(
            FailureReason.PROTOCOL, f"invalid association response (result {rsp.result})"
        )
    if not rsp.application_context_name:
        missing = "application context"
    elif not rsp.presentation_context_definition_results_list:
        missing = "presentation context"
    elif not rsp.user_information:
        missing = "user information"
    else:
        return None
    return outcomes.malformed_accept(missing)


def _no_response(
    config: DicomConfig, sock: _RecordingAssociationSocket, trace: _Trace
) -> CheckOutcome:
    """Established, but no usable answer to the exchange."""
    operation = trace.operation
    if trace.connection_dropped:
        return outcomes.closed_after_request(operation)
    if sock.thread_failed:
        return outcomes.invalid_response(operation)
    if sock.assoc.dimse.message is not None and trace.deadline.expired:
        # Fragments kept coming but the message never completed: slow, not garbled.
        return CheckOutcome.fail(
            FailureReason.TIMEOUT,
            f"{operation} response still incomplete when the check's deadline "
            f"({config.timeout:g}s) was reached",
        )
    if trace.data_received:
        return outcomes.invalid_response(operation)
    return outcomes.no_response(operation, trace.dimse_wait)
