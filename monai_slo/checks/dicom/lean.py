"""A lean Verification SCU: A-ASSOCIATE, C-ECHO, A-RELEASE over one blocking socket.

pynetdicom's association machinery runs two threads and a state machine per association;
for a C-ECHO every few seconds that costs ~5 ms of CPU, and its sockets let delayed ACKs
stall each exchange by ~40 ms. This path speaks the same PDUs (built and decoded by
pynetdicom's own PDU and DIMSE codecs, the requests once per AE-title pair) on the check's
own thread, with TCP_NODELAY and, on Linux, TCP_QUICKACK before every read: the measured
duration is then the peer's. It reports every failure in the same reason and words as
:func:`monai_slo.checks.dicom.association.run_service` (both word them from
:mod:`monai_slo.checks.dicom.outcomes`), which stays in use for TLS and the other DICOM
kinds.
"""

from __future__ import annotations

import functools
import socket
import struct
import time
from dataclasses import dataclass

from pynetdicom import (
    DEFAULT_TRANSFER_SYNTAXES,
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
)
from pynetdicom.dimse_messages import C_ECHO_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO
from pynetdicom.pdu import (
    A_ABORT_RQ,
    A_ASSOCIATE_AC,
    A_ASSOCIATE_RJ,
    A_ASSOCIATE_RQ,
    A_RELEASE_RP,
    A_RELEASE_RQ,
    P_DATA_TF,
)
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    ImplementationClassUIDNotification,
    ImplementationVersionNameNotification,
    MaximumLengthNotification,
)
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.status import VERIFICATION_SERVICE_CLASS_STATUS

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.dicom import outcomes
from monai_slo.checks.dicom.common import DEFAULT_READ_LIMIT, DicomConfig, bounded, lookup
from monai_slo.checks.net import ProbeFailure, quick_ack

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
# What we announce we accept, as pynetdicom does; nothing legitimate we read is bigger than
# this (plus the association answer's few items), so a peer claiming more is not DICOM.
MAX_PDU = 16382
_MAX_READ = 1 << 20
# All one association may read: the answer, the C-ECHO response and the release reply are
# under 1 KiB together, so a peer sending more (endless command fragments, say) is not
# answering a C-ECHO. The same bound as the pynetdicom path's.
READ_LIMIT = DEFAULT_READ_LIMIT
_ECHO = "C-ECHO"  # the operation, as messages name it
_CONTEXT_ID = 1
_MESSAGE_ID = 1
_C_ECHO_RSP = 0x8030

_ASSOCIATE_AC, _ASSOCIATE_RJ, _P_DATA, _RELEASE_RQ, _RELEASE_RP, _ABORT = 2, 3, 4, 5, 6, 7
_PDU_TYPES = frozenset(range(1, 8))


@dataclass(frozen=True, slots=True)
class Requests:
    """The PDUs this path sends, encoded once per (calling, called) AE title pair."""

    associate: bytes
    echo: bytes
    release: bytes
    release_reply: bytes
    abort: bytes


@functools.lru_cache(maxsize=512)
def requests(calling_aet: str, called_aet: str) -> Requests:
    """Encode the A-ASSOCIATE-RQ (Verification with pynetdicom's default transfer syntaxes,
    its implementation UID and version), the C-ECHO-RQ P-DATA-TF, A-RELEASE-RQ/RP, A-ABORT."""
    context = PresentationContext()
    context.context_id = _CONTEXT_ID
    context.abstract_syntax = Verification
    context.transfer_syntax = list(DEFAULT_TRANSFER_SYNTAXES)
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = MAX_PDU
    class_uid = ImplementationClassUIDNotification()
    class_uid.implementation_class_uid = PYNETDICOM_IMPLEMENTATION_UID
    version = ImplementationVersionNameNotification()
    version.implementation_version_name = PYNETDICOM_IMPLEMENTATION_VERSION
    primitive = A_ASSOCIATE()
    primitive.application_context_name = APPLICATION_CONTEXT
    primitive.calling_ae_title = calling_aet
    primitive.called_ae_title = called_aet
    primitive.presentation_context_definition_list = [context]
    primitive.user_information = [max_length, class_uid, version]
    associate = A_ASSOCIATE_RQ()
    associate.from_primitive(primitive)

    echo = C_ECHO()
    echo.MessageID = _MESSAGE_ID
    echo.AffectedSOPClassUID = Verification
    message = C_ECHO_RQ()
    message.primitive_to_message(echo)
    data = b""
    for p_data in message.encode_msg(_CONTEXT_ID, MAX_PDU):
        pdu = P_DATA_TF()
        pdu.from_primitive(p_data)
        data += pdu.encode()

    abort = A_ABORT_RQ()
    abort.source = 0  # service user
    abort.reason_diagnostic = 0
    return Requests(
        associate.encode(), data, A_RELEASE_RQ().encode(), A_RELEASE_RP().encode(), abort.encode()
    )


class _Closed(Exception):
    """The peer closed (or reset) the connection."""


class _Garbage(Exception):
    """Bytes that are no PDU, or a PDU that does not decode."""


class _Malformed(Exception):
    """An A-ASSOCIATE-AC without a mandatory item (the message names it)."""


class _TooMuch(Exception):
    """The peer sent (or announced) more than the association may read."""


class _Connection:
    """PDUs in and out of one connected socket; every read bounded by an absolute time."""

    def __init__(self, sock: socket.socket, limit: int = READ_LIMIT) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self.limit = limit
        self._received = 0
        self.mid_pdu = False  # a PDU's header is read, not yet all of it

    def send(self, data: bytes, until: float) -> None:
        self.sock.settimeout(max(1e-6, until - time.monotonic()))
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise
        except OSError as exc:
            raise _Closed from exc

    def read(self, until: float) -> tuple[int, bytes]:
        """The next PDU as (type, bytes); raises TimeoutError, _Closed, _Garbage or _TooMuch."""
        header = self._exactly(6, until)
        pdu_type, _, length = struct.unpack(">BBL", header)
        if pdu_type not in _PDU_TYPES:
            raise _Garbage
        if self._received - len(self._buffer) + length > self.limit:
            raise _TooMuch  # announced: fail before reading (and keeping) any of it
        if length > _MAX_READ:
            raise _Garbage
        self.mid_pdu = True
        body = self._exactly(length, until)
        self.mid_pdu = False
        return pdu_type, header + body

    def _exactly(self, size: int, until: float) -> bytes:
        buffer = self._buffer
        while len(buffer) < size:
            remaining = until - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            # Without it a peer that writes its answer in two pieces waits ~40 ms for our
            # delayed ACK before sending the second.
            quick_ack(self.sock)
            try:
                chunk = self.sock.recv(max(size - len(buffer), 4096))
            except TimeoutError:
                raise
            except OSError as exc:
                raise _Closed from exc
            if not chunk:
                raise _Closed
            self._received += len(chunk)
            if self._received > self.limit:
                raise _TooMuch
            buffer += chunk
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def abort(self, requests: Requests) -> None:
        """Best effort: tell the peer the association is over (never blocks long)."""
        try:
            self.sock.settimeout(0.05)
            self.sock.sendall(requests.abort)
        except OSError:
            pass


def echo(config: DicomConfig, deadline: Deadline) -> CheckOutcome:
    """Associate, C-ECHO, release; the same outcomes as the pynetdicom path."""
    try:
        address = lookup(config, deadline)
        connect_wait = bounded(config.effective_connect_timeout, deadline, "connecting")
    except ProbeFailure as failure:
        return failure.outcome()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(connect_wait)
        try:
            sock.connect((address, config.port))
        except OSError as exc:
            return outcomes.connect_failure(exc, config, connect_wait)
        return _associated(
            _Connection(sock), config, deadline, requests(config.calling_aet, config.called_aet)
        )
    finally:
        sock.close()


def _associated(
    conn: _Connection, config: DicomConfig, deadline: Deadline, sent: Requests
) -> CheckOutcome:
    try:
        refusal = _negotiate(conn, config, deadline, sent)
        if refusal is not None:
            return refusal
        try:
            verdict = _echo(conn, config, deadline, sent)
        except ProbeFailure as failure:  # the deadline ran out before the C-ECHO
            verdict = failure.outcome()
        if verdict.reason in (
            FailureReason.ABORTED,
            FailureReason.PROTOCOL,
            FailureReason.TIMEOUT,
        ):
            conn.abort(sent)  # the association is in no state to be released
            return verdict
        if not _release(conn, config, deadline, sent) and verdict.success:
            return outcomes.release_not_confirmed(verdict)
        return verdict
    except _TooMuch:
        conn.abort(sent)
        return outcomes.read_limit_failure(conn.limit).outcome()


def _negotiate(
    conn: _Connection, config: DicomConfig, deadline: Deadline, sent: Requests
) -> CheckOutcome | None:
    """Send the association request; None once Verification is accepted, else why not."""
    # The connect took part of the deadline: the association reply gets what is left.
    acse_wait = max(0.001, min(config.effective_acse_timeout, deadline.remaining()))
    try:
        until = time.monotonic() + acse_wait
        conn.send(sent.associate, until)
        return _association_answer(*conn.read(until), config)
    except TimeoutError:
        if conn.mid_pdu:
            return outcomes.still_sending(outcomes.IN_ASSOCIATION_ANSWER, config)
        return outcomes.no_association_answer(acse_wait)
    except _Closed:
        return outcomes.closed_before_answer()
    except _TooMuch:
        raise
    except _Malformed as exc:
        conn.abort(sent)
        return outcomes.malformed_accept(str(exc))
    except Exception:  # _Garbage, or whatever the decoders make of it
        conn.abort(sent)
        return outcomes.malformed_pdu(outcomes.DURING_ASSOCIATION)


def _association_answer(pdu_type: int, pdu: bytes, config: DicomConfig) -> CheckOutcome | None:
    if pdu_type == _ASSOCIATE_RJ:
        rj = A_ASSOCIATE_RJ()
        rj.decode(pdu)
        return outcomes.rejection((rj.result, rj.source, rj.reason_diagnostic), config)
    if pdu_type == _ABORT:
        return _peer_abort(pdu, outcomes.DURING_ASSOCIATION)
    if pdu_type != _ASSOCIATE_AC:
        raise _Garbage
    ac = A_ASSOCIATE_AC()
    ac.decode(pdu)
    # Each of these items is mandatory in an A-ASSOCIATE-AC (PS3.8 9.3.3): without them it
    # is no acceptance, and no rejection either.
    if not ac.application_context_name:
        raise _Malformed("application context")
    if not ac.presentation_context:
        raise _Malformed("presentation context")
    if ac.user_information is None:
        raise _Malformed("user information")
    if any(item.context_id == _CONTEXT_ID and item.result == 0 for item in ac.presentation_context):
        return None
    return outcomes.verification_not_accepted()


def _echo(
    conn: _Connection, config: DicomConfig, deadline: Deadline, sent: Requests
) -> CheckOutcome:
    dimse_wait = bounded(config.effective_dimse_timeout, deadline, f"the {_ECHO}")
    try:
        response = _echo_response(conn, time.monotonic() + dimse_wait, sent)
    except TimeoutError:
        return outcomes.no_response(_ECHO, dimse_wait)
    except _Closed:
        return outcomes.closed_after_request(_ECHO)
    except _TooMuch:
        raise
    except Exception:  # the DIMSE decoder's view of garbage
        return outcomes.invalid_response(_ECHO)
    return response if isinstance(response, CheckOutcome) else _judge(response, config)


def _judge(response: DIMSEMessage, config: DicomConfig) -> CheckOutcome:
    command = response.command_set
    if (
        getattr(command, "CommandField", None) != _C_ECHO_RSP
        or getattr(command, "MessageIDBeingRespondedTo", None) != _MESSAGE_ID
        or "Status" not in command
    ):
        return outcomes.invalid_response(_ECHO)
    status = int(command.Status)
    if status != 0x0000:
        return outcomes.dimse_failure(_ECHO, status, VERIFICATION_SERVICE_CLASS_STATUS)
    return outcomes.echo_accepted(config)


def _echo_response(conn: _Connection, until: float, sent: Requests) -> DIMSEMessage | CheckOutcome:
    """Send the C-ECHO-RQ; the decoded response, or why there is none."""
    conn.send(sent.echo, until)
    message = DIMSEMessage()
    while True:
        pdu_type, pdu = conn.read(until)
        if pdu_type == _P_DATA:
            if _decoded(message, pdu):
                return message
        elif pdu_type == _ABORT:
            return _peer_abort(pdu, outcomes.after_request(_ECHO))
        elif pdu_type == _RELEASE_RQ:
            conn.send(sent.release_reply, until)
            return CheckOutcome.fail(
                FailureReason.ABORTED, "association released by peer before the C-ECHO response"
            )
        else:
            return outcomes.malformed_pdu(outcomes.after_request(_ECHO))


def _decoded(message: DIMSEMessage, pdu: bytes) -> bool:
    """Feed one P-DATA-TF to the message; True once its command set is complete."""
    p_data = P_DATA_TF()
    p_data.decode(pdu)
    return bool(message.decode_msg(p_data.to_primitive()))


def _release(conn: _Connection, config: DicomConfig, deadline: Deadline, sent: Requests) -> bool:
    """Release and wait for the reply; False (and an abort) when it does not come."""
    remaining = deadline.remaining()
    if remaining <= 0:
        conn.abort(sent)
        return False
    until = time.monotonic() + min(config.effective_acse_timeout, remaining)
    try:
        conn.send(sent.release, until)
        while True:
            pdu_type, _ = conn.read(until)
            if pdu_type == _RELEASE_RP:
                return True
            if pdu_type == _RELEASE_RQ:
                # Both sides asked at once (a release collision): answer, and it is over.
                conn.send(sent.release_reply, until)
                return True
            if pdu_type != _P_DATA:  # late data is read past; anything else ends it
                break
    except (TimeoutError, _Closed, _Garbage):
        pass
    conn.abort(sent)
    return False


def _peer_abort(pdu: bytes, during: str) -> CheckOutcome:
    abort = A_ABORT_RQ()
    try:
        abort.decode(pdu)
        details: tuple[int | None, int | None] | None = (abort.source, abort.reason_diagnostic)
    except Exception:  # an A-ABORT too mangled to read is still an abort
        details = None
    return outcomes.abort_outcome(details, during)
