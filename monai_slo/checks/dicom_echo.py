"""The ``dicom_echo`` kind: associate with a DICOM peer, send C-ECHO, release.

Every network wait (name lookup, TCP connect, association response, C-ECHO response,
release) is bounded by the smaller of its own timeout and what is left of the deadline.
What the peer did is read from pynetdicom's state machine (the actions it took), so a
rejection, an abort, a dropped connection and a silent peer each get their own reason.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import queue
import socket
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, model_validator
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event, EventHandlerType
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ, P_DATA_TF
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.status import VERIFICATION_SERVICE_CLASS_STATUS
from pynetdicom.transport import AddressInformation, AssociationSocket

from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, FailureReason
from monai_slo.durations import Duration

# pynetdicom logs every PDU at INFO/DEBUG; a check every 30 s must not flood the daemon's log.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

# How long cleanup waits for pynetdicom's threads once the association is over: they exit
# within a reactor tick (milliseconds) unless stuck reading from a peer, which closing the
# socket then ends.
_GRACE_SECONDS = 0.2
_JOIN_SECONDS = 2.0


def _check_ae_title(value: str) -> str:
    # Leading and trailing spaces are not significant in an AE title (PS3.5 6.2).
    title = value.strip(" ")
    if not title:
        raise ValueError("AE title must not be empty or only spaces")
    if len(title) > 16:
        raise ValueError(f"AE title {title!r} is longer than 16 characters")
    if not title.isascii() or not title.isprintable() or "\\" in title:
        raise ValueError(
            f"AE title {title!r} may only contain printable ASCII characters, no backslash"
        )
    return title


def _check_host(value: str) -> str:
    host = value.strip()
    if not host or any(c.isspace() for c in host):
        raise ValueError("host must be a non-empty name or address without spaces")
    return host


AETitle = Annotated[str, AfterValidator(_check_ae_title)]
Host = Annotated[str, AfterValidator(_check_host)]

_PHASE_TIMEOUTS = ("connect_timeout", "acse_timeout", "dimse_timeout")


class Config(CheckConfig):
    """A C-ECHO against ``host:port`` from ``calling_aet`` to ``called_aet``."""

    kind: Literal["dicom_echo"]
    host: Host
    port: int = Field(ge=1, le=65535)
    called_aet: AETitle = "ANY-SCP"
    calling_aet: AETitle = "MONAI_SLO"
    connect_timeout: Duration | None = Field(
        default=None, description="TCP connect limit (default: the check's timeout)."
    )
    acse_timeout: Duration | None = Field(
        default=None,
        description="Limit on the association and release replies (default: timeout).",
    )
    dimse_timeout: Duration | None = Field(
        default=None, description="Limit on the C-ECHO response (default: timeout)."
    )

    @model_validator(mode="after")
    def _phase_timeouts_within_timeout(self) -> Self:
        for name in _PHASE_TIMEOUTS:
            value: float | None = getattr(self, name)
            if value is not None and value > self.timeout:
                raise ValueError(
                    f"{name} ({value:g}s) must not exceed the check's timeout ({self.timeout:g}s)"
                )
        return self

    @property
    def effective_connect_timeout(self) -> float:
        return self.timeout if self.connect_timeout is None else self.connect_timeout

    @property
    def effective_acse_timeout(self) -> float:
        return self.timeout if self.acse_timeout is None else self.acse_timeout

    @property
    def effective_dimse_timeout(self) -> float:
        return self.timeout if self.dimse_timeout is None else self.dimse_timeout


class _Failure(Exception):
    """Ends a run early with an outcome (the deadline ran out, or the name did not resolve)."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.outcome = CheckOutcome.fail(reason, detail)


def _bounded(limit: float, deadline: Deadline, what: str) -> float:
    wait = min(limit, deadline.remaining())
    if wait <= 0:
        raise _Failure(FailureReason.TIMEOUT, f"check deadline reached before {what}")
    return wait


# --- The socket under pynetdicom ------------------------------------------------------------
# pynetdicom's AssociationSocket.connect() catches the OSError from connect(), logs it and
# only reports "association failed", so refused, unreachable and timed out would all look
# alike. These small subclasses keep the raw socket and the error it raised, without a
# second probing connection, and keep its reads bounded. They override pynetdicom's
# _create_socket hooks (private, unchanged since pynetdicom 2.0) and do what those do.


class _RecordingSocket(socket.socket):
    """A TCP socket that remembers why connect() failed and never blocks unbounded."""

    connect_error: OSError | None = None
    io_timeout: float | None = None

    def connect(self, address: Any) -> None:
        try:
            super().connect(address)
        except OSError as exc:
            self.connect_error = exc
            raise

    def settimeout(self, value: float | None) -> None:
        # pynetdicom clears the timeout once connected, so its reader would block for good
        # on a peer that stops in the middle of a PDU (it loops until the PDU is complete).
        # Keep a bound instead: a stalled read then counts as a closed connection.
        super().settimeout(self.io_timeout if value is None else value)


class _RecordingAssociationSocket(AssociationSocket):
    raw: _RecordingSocket | None = None

    def _create_socket(self, address: AddressInformation) -> socket.socket:
        sock = _RecordingSocket(address.address_family, socket.SOCK_STREAM)
        sock.io_timeout = self.assoc.network_timeout
        self.raw = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.assoc.network_timeout is not None:
                sock.settimeout(self.assoc.network_timeout)
            sock.bind(address.as_tuple)
        except BaseException:
            sock.close()
            raise
        self._is_connected = False
        return sock


class _EchoAE(AE):
    """An AE whose association sockets record connect errors; one per run."""

    last_socket: _RecordingAssociationSocket | None = None

    def _create_socket(
        self, assoc: Association, address: AddressInformation, tls_args: Any
    ) -> AssociationSocket:
        sock = _RecordingAssociationSocket(assoc, address=address)
        sock.tls_args = tls_args
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
    connect_wait: float = 0.0
    acse_wait: float = 0.0
    dimse_wait: float = 0.0
    connected: bool = False
    actions: list[str] = field(default_factory=list)
    abort_pdu: tuple[int | None, int | None] | None = None
    reject_pdu: tuple[int | None, int | None, int | None] | None = None
    data_received: bool = False
    status: int | None = None
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


# --- Words for the numbers --------------------------------------------------------------------

_REJECT_SOURCES: dict[int | None, str] = {
    1: "service user",
    2: "service provider (ACSE)",
    3: "service provider",
}
_REJECT_REASONS: dict[tuple[int | None, int | None], str] = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}
_ABORT_REASONS: dict[int | None, str] = {
    0: "reason not specified",
    1: "unrecognised PDU",
    2: "unexpected PDU",
    4: "unrecognised PDU parameter",
    5: "unexpected PDU parameter",
    6: "invalid PDU parameter value",
}


def _rejection(
    rejection: tuple[int | None, int | None, int | None], config: Config
) -> CheckOutcome:
    result, source, diagnostic = rejection
    reason_words = _REJECT_REASONS.get((source, diagnostic), f"diagnostic {diagnostic}")
    if (source, diagnostic) == (1, 3):
        return CheckOutcome.fail(
            FailureReason.REJECTED_CALLING_AE,
            f"association rejected: calling AE title not recognised ({config.calling_aet})",
        )
    if (source, diagnostic) == (1, 7):
        return CheckOutcome.fail(
            FailureReason.REJECTED_CALLED_AE,
            f"association rejected: called AE title not recognised ({config.called_aet})",
        )
    source_words = _REJECT_SOURCES.get(source, f"source {source}")
    permanence = "transient" if result == 2 else "permanent"
    detail = f"association rejected ({permanence}) by {source_words}: {reason_words}"
    if result == 2 or (source, diagnostic) in {(3, 1), (3, 2)}:
        return CheckOutcome.fail(FailureReason.REJECTED_TRANSIENT, detail)
    return CheckOutcome.fail(FailureReason.REJECTED, detail)


def _aborted(trace: _Trace, during: str) -> CheckOutcome:
    source, reason = trace.abort_pdu or (None, None)
    if source == 2:
        who = f"service provider: {_ABORT_REASONS.get(reason, f'reason {reason}')}"
    else:
        who = "service user"
    return CheckOutcome.fail(FailureReason.ABORTED, f"association aborted by peer ({who}) {during}")


def _dimse_status(status: int) -> CheckOutcome:
    category, description = VERIFICATION_SERVICE_CLASS_STATUS.get(status, ("", ""))
    words = description or category or "unknown status"
    return CheckOutcome.fail(
        FailureReason.DIMSE_STATUS, f"C-ECHO failed: status 0x{status:04X} ({words.lower()})"
    )


def _target(config: Config) -> str:
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"{host}:{config.port}"


def _connect_failure(exc: OSError, config: Config, wait: float) -> CheckOutcome:
    target = _target(config)
    if isinstance(exc, TimeoutError):
        return CheckOutcome.fail(
            FailureReason.TIMEOUT, f"TCP connect to {target} timed out after {wait:g}s"
        )
    words = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ECONNREFUSED:
        return CheckOutcome.fail(FailureReason.REFUSED, f"connection refused by {target}")
    if exc.errno in {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}:
        return CheckOutcome.fail(FailureReason.UNREACHABLE, f"{target} unreachable: {words}")
    return CheckOutcome.fail(FailureReason.CONNECTION, f"cannot connect to {target}: {words}")


# --- The run --------------------------------------------------------------------------------


def _resolve(host: str, port: int, timeout: float) -> str:
    """Return an address for ``host``, IPv4 first like pynetdicom; raise _Failure (DNS).

    getaddrinfo() has no timeout of its own, so a name is looked up on a short-lived
    thread that is waited for at most ``timeout``; a lookup still stuck after that ends
    when the resolver gives up (it holds no socket of ours).
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return host

    answers: queue.Queue[list[tuple[Any, ...]] | Exception] = queue.Queue(maxsize=1)

    def lookup() -> None:
        try:
            answers.put(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            answers.put(exc)

    thread = threading.Thread(target=lookup, name=f"dicom-echo-dns:{host}", daemon=True)
    thread.start()
    try:
        answer = answers.get(timeout=timeout)
    except queue.Empty:
        raise _Failure(
            FailureReason.DNS, f"name lookup for {host!r} did not finish within {timeout:g}s"
        ) from None
    thread.join()  # it has answered, so it is returning
    if isinstance(answer, Exception):
        words = getattr(answer, "strerror", None) or str(answer)
        raise _Failure(FailureReason.DNS, f"cannot resolve {host!r}: {words}")
    for family in (socket.AF_INET, socket.AF_INET6):
        for entry in answer:
            if entry[0] == family:
                return str(entry[4][0])
    raise _Failure(FailureReason.DNS, f"no IPv4 or IPv6 address for {host!r}")


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Associate, C-ECHO, release; say what went wrong in the terms of FailureReason."""
    trace = _Trace(deadline, config.effective_acse_timeout)
    try:
        address = _resolve(
            config.host,
            config.port,
            _bounded(config.effective_connect_timeout, deadline, "the name lookup"),
        )
        trace.connect_wait = _bounded(config.effective_connect_timeout, deadline, "connecting")
    except _Failure as failure:
        return failure.outcome

    ae = _EchoAE(ae_title=config.calling_aet)
    ae.add_requested_context(Verification)
    ae.connection_timeout = trace.connect_wait
    # The ACSE and DIMSE waits are narrowed when their phase starts (_Trace._on_conn_open,
    # _echo_and_release); these first values only make sure no wait is ever unbounded.
    initial = min(config.timeout, max(deadline.remaining(), 0.001))
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = initial
    try:
        assoc = ae.associate(
            address, config.port, ae_title=config.called_aet, evt_handlers=trace.handlers()
        )
        if assoc.is_established:
            _echo_and_release(assoc, config, trace)
    except _Failure as failure:
        return failure.outcome  # the finally below still ends the association
    finally:
        _shutdown(ae)
    return _classify(config, ae, trace)


def _echo_and_release(assoc: Association, config: Config, trace: _Trace) -> None:
    trace.dimse_wait = _bounded(config.effective_dimse_timeout, trace.deadline, "the C-ECHO")
    assoc.dimse_timeout = trace.dimse_wait
    assoc.network_timeout = trace.dimse_wait
    try:
        response = assoc.send_c_echo()
    except RuntimeError:
        return  # the association ended between establishment and the request
    if "Status" not in response:
        return
    trace.status = int(response.Status)
    remaining = trace.deadline.remaining()
    if remaining > 0:  # otherwise _shutdown aborts instead of releasing
        assoc.acse_timeout = min(config.effective_acse_timeout, remaining)
        assoc.release()
        trace.released = bool(assoc.is_released)


def _shutdown(ae: _EchoAE) -> None:
    """End the association, its threads and its socket, whatever state it is in."""
    sock = ae.last_socket
    if sock is None:
        return  # associate() failed before creating anything
    assoc: Association = sock.assoc
    try:
        if assoc.is_established:
            assoc.abort()  # blocks until the state machine is idle again
    finally:
        # Every other path has already told pynetdicom's threads to stop; they leave within
        # a reactor tick. is_alive() is False for a thread never started (the association
        # thread only starts once established).
        for thread in (assoc.dul, assoc):
            if thread.is_alive():
                thread.join(_GRACE_SECONDS)
        if assoc.dul.is_alive():
            # Still reading what a misbehaving peer sent: closing our end wakes the read.
            assoc.dul.kill_dul()
            if sock.raw is not None:
                with contextlib.suppress(OSError):
                    sock.raw.shutdown(socket.SHUT_RDWR)
            assoc.dul.join(_JOIN_SECONDS)
        if assoc.is_alive():
            assoc.join(_JOIN_SECONDS)  # its reactor exits once the DUL is gone
        # pynetdicom skips close() when shutdown() fails on a never-connected socket.
        if sock.raw is not None:
            sock.raw.close()


def _classify(config: Config, ae: _EchoAE, trace: _Trace) -> CheckOutcome:
    """Turn what was observed (threads already joined) into an outcome."""
    if trace.status == 0x0000:
        detail = f"C-ECHO accepted by {config.called_aet} at {_target(config)}"
        return CheckOutcome.ok(detail if trace.released else f"{detail} (release not confirmed)")
    if trace.status is not None:
        return _dimse_status(trace.status)
    sock = ae.last_socket
    assert sock is not None  # associate() returned, so it made its socket
    return (
        _transport_failure(config, sock, trace)
        or _peer_failure(sock.assoc, trace)
        or _negotiation_failure(config, sock.assoc, trace)
        or _echo_failure(trace)
    )


def _transport_failure(
    config: Config, sock: _RecordingAssociationSocket, trace: _Trace
) -> CheckOutcome | None:
    error = sock.raw.connect_error if sock.raw is not None else None
    if error is not None:
        return _connect_failure(error, config, trace.connect_wait)
    if not trace.connected:
        return CheckOutcome.fail(
            FailureReason.CONNECTION, f"could not open a connection to {_target(config)}"
        )
    return None


def _established(assoc: Association) -> bool:
    rsp = assoc.acceptor.primitive
    return isinstance(rsp, A_ASSOCIATE) and rsp.result == 0x00


def _peer_failure(assoc: Association, trace: _Trace) -> CheckOutcome | None:
    during = "after the C-ECHO request" if _established(assoc) else "during association"
    if trace.peer_aborted:
        return _aborted(trace, during)
    if trace.invalid_pdu:
        return CheckOutcome.fail(
            FailureReason.PROTOCOL, f"unexpected or malformed PDU from peer {during}"
        )
    return None


def _negotiation_failure(config: Config, assoc: Association, trace: _Trace) -> CheckOutcome | None:
    if trace.reject_pdu is not None:
        return _rejection(trace.reject_pdu, config)
    rsp = assoc.acceptor.primitive
    if not isinstance(rsp, A_ASSOCIATE):
        if trace.connection_dropped:
            return CheckOutcome.fail(
                FailureReason.CONNECTION,
                "connection closed by peer before it answered the association request",
            )
        return CheckOutcome.fail(
            FailureReason.TIMEOUT,
            f"no answer to the association request within {trace.acse_wait:.3g}s",
        )
    if rsp.result != 0x00:
        return CheckOutcome.fail(
            FailureReason.PROTOCOL, f"invalid association response (result {rsp.result})"
        )
    if not assoc.accepted_contexts:
        return CheckOutcome.fail(
            FailureReason.REJECTED, "association accepted but not the Verification SOP class"
        )
    return None


def _echo_failure(trace: _Trace) -> CheckOutcome:
    """Established, but no usable C-ECHO response."""
    if trace.connection_dropped:
        return CheckOutcome.fail(
            FailureReason.ABORTED, "connection closed by peer after the C-ECHO request (A-P-ABORT)"
        )
    if trace.data_received:
        return CheckOutcome.fail(FailureReason.PROTOCOL, "invalid C-ECHO response from peer")
    return CheckOutcome.fail(
        FailureReason.TIMEOUT, f"no C-ECHO response within {trace.dimse_wait:.3g}s"
    )
