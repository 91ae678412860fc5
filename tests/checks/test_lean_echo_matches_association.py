"""The lean C-ECHO path (monai_slo.checks.dicom.lean) against real peers.

It must say what pynetdicom's association path says about every peer (same reason, same
words), set TCP_NODELAY and TCP_QUICKACK before every read, let a slow peer show in the
measured duration, read PDUs however the peer splits them, and fall back to the
association path when pynetdicom's codecs cannot build its requests.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.dimse_messages import C_ECHO_RSP
from pynetdicom.dimse_primitives import C_ECHO
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ, A_RELEASE_RP, P_DATA_TF
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import CTImageStorage, Verification  # type: ignore[attr-defined]

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.dicom import association as dicom_association
from monai_slo.checks.dicom import echo as dicom_echo
from monai_slo.checks.dicom import lean as dicom_lean
from monai_slo.config.model import CheckRef
from monai_slo.daemon.runner import execute
from monai_slo.tiers import TierName
from tests.fixtures_dicom import (
    OrthancPeer,
    PynetdicomPeer,
    SilentListener,
    StorescpPeer,
    free_port,
)

LOOPBACK = "127.0.0.1"
QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def config(port: int, **overrides: Any) -> dicom_echo.Config:
    values: dict[str, Any] = {
        "name": "echo",
        "kind": "dicom_echo",
        "host": LOOPBACK,
        "port": port,
        "timeout": "2s",
    }
    values.update(overrides)
    return dicom_echo.Config.model_validate(values)


def both(cfg: dicom_echo.Config) -> tuple[CheckOutcome, CheckOutcome]:
    """(lean, pynetdicom) outcomes against the same peer, one after the other."""
    lean = dicom_lean.echo(cfg, Deadline(cfg.timeout))
    full = dicom_echo.run_pynetdicom(cfg, Deadline(cfg.timeout))
    return lean, full


def assert_same(lean: CheckOutcome, full: CheckOutcome, reason: FailureReason | None) -> None:
    assert lean.reason is reason, lean
    assert (lean.success, lean.reason, lean.detail) == (full.success, full.reason, full.detail)


# --- Same outcomes as the association path --------------------------------------------------


def test_success_against_orthanc_and_storescp(orthanc: OrthancPeer, storescp: StorescpPeer) -> None:
    """Both real PACS peers accept the lean C-ECHO, worded as the pynetdicom path words it."""
    for port, aet in ((orthanc.dicom_port, orthanc.aet), (storescp.port, storescp.aet)):
        lean, full = both(config(port, called_aet=aet))
        assert lean.success, lean
        assert_same(lean, full, None)


def test_run_takes_the_lean_path_without_tls(
    storescp: StorescpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dicom_echo.run uses the lean path for plain DICOM (never pynetdicom's association)."""

    def no_association(*args: object) -> CheckOutcome:
        raise AssertionError("the association path was used")

    monkeypatch.setattr(dicom_echo, "run_pynetdicom", no_association)
    outcome = dicom_echo.run(config(storescp.port, called_aet=storescp.aet), Deadline(2))
    assert outcome.success, outcome


def test_rejections_are_decoded_alike(orthanc: OrthancPeer, tmp_path: Path) -> None:
    """Called AE (Orthanc), calling AE, a refusing storescp, transient congestion, local
    limit and an unsupported protocol version: the same reason and words on both paths."""
    lean, full = both(config(orthanc.dicom_port, called_aet="WRONG"))
    assert_same(lean, full, FailureReason.REJECTED_CALLED_AE)
    with StorescpPeer(tmp_path, refuse=True) as refusing:
        assert_same(*both(config(refusing.port, called_aet=refusing.aet)), FailureReason.REJECTED)
    with PynetdicomPeer(require_calling_aet=["ALLOWED"]) as picky:
        assert_same(
            *both(config(picky.port, called_aet=picky.aet)), FailureReason.REJECTED_CALLING_AE
        )
    for rejection, reason in (
        ((2, 3, 1), FailureReason.REJECTED_TRANSIENT),
        ((1, 3, 2), FailureReason.REJECTED_TRANSIENT),
        ((1, 2, 2), FailureReason.REJECTED),
    ):
        with PynetdicomPeer(reject=rejection) as peer:
            assert_same(*both(config(peer.port, called_aet=peer.aet)), reason)


def test_status_and_abort_after_association() -> None:
    """A C-ECHO answered 0x0122 is DIMSE_STATUS; a peer aborting instead of answering is
    ABORTED; both paths agree."""
    with PynetdicomPeer(echo_status=0x0122) as peer:
        lean, full = both(config(peer.port, called_aet=peer.aet))
        assert_same(lean, full, FailureReason.DIMSE_STATUS)
        assert "0x0122" in lean.detail
        assert peer.echoes == 2
    with PynetdicomPeer(abort_on_echo=True) as peer:
        assert_same(*both(config(peer.port, called_aet=peer.aet)), FailureReason.ABORTED)


def test_verification_not_accepted_is_rejected() -> None:
    """A peer that accepts the association but not Verification: REJECTED, as before."""
    ae = AE(ae_title="CTONLY")
    ae.add_supported_context(CTImageStorage)
    server = ae.start_server((LOOPBACK, 0), block=False)
    try:
        port = int(server.server_address[1])
        assert_same(*both(config(port, called_aet="CTONLY")), FailureReason.REJECTED)
    finally:
        server.shutdown()
        ae.shutdown()


def test_transport_failures_alike(silent_listener: SilentListener) -> None:
    """Refused port, a silent peer (timeout) and an HTTP server answering garbage."""
    assert_same(*both(config(free_port())), FailureReason.REFUSED)
    lean, full = both(config(silent_listener.port, timeout="300ms"))
    assert lean.reason is full.reason is FailureReason.TIMEOUT
    assert lean.detail.startswith("no answer to the association request within")
    with SilentListener(reply=b"HTTP/1.1 400 Bad Request\r\n\r\n") as http:
        assert_same(*both(config(http.port)), FailureReason.PROTOCOL)


def test_slow_echo_response_is_a_timeout_at_dimse_timeout() -> None:
    """No C-ECHO response within dimse_timeout: TIMEOUT naming that limit."""
    with PynetdicomPeer(echo_delay=5.0) as peer:
        outcome = dicom_lean.echo(
            config(peer.port, called_aet=peer.aet, dimse_timeout="300ms"), Deadline(2)
        )
    assert outcome.reason is FailureReason.TIMEOUT
    assert outcome.detail == "no C-ECHO response within 0.3s"


def test_absurd_pdu_length_is_protocol_not_a_huge_read() -> None:
    """A peer announcing a 4 GiB association answer is PROTOCOL at once, nothing allocated."""
    with SilentListener(reply=b"\x02\x00\xff\xff\xff\xff") as peer:
        outcome = dicom_lean.echo(config(peer.port), Deadline(2))
    assert outcome.reason is FailureReason.PROTOCOL


# --- Socket options and honest durations -----------------------------------------------------


class _SpySocket(socket.socket):
    """Records TCP_NODELAY and TCP_QUICKACK as they stand when each read starts."""

    seen: list[tuple[int, int]]

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        nodelay = self.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        quickack = self.getsockopt(socket.IPPROTO_TCP, QUICKACK) if QUICKACK else 1
        _SpySocket.seen.append((nodelay, quickack))
        return super().recv(buflen, flags)


@pytest.mark.skipif(QUICKACK is None, reason="TCP_QUICKACK is Linux-only")
def test_lean_socket_has_nodelay_and_quickack_before_every_read(
    storescp: StorescpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read on the lean path's socket starts with TCP_NODELAY and TCP_QUICKACK on."""
    _SpySocket.seen = []
    monkeypatch.setattr(dicom_lean.socket, "socket", _SpySocket)
    outcome = dicom_lean.echo(config(storescp.port, called_aet=storescp.aet), Deadline(2))
    assert outcome.success, outcome
    assert len(_SpySocket.seen) >= 3  # association answer, C-ECHO response, release reply
    assert all(nodelay and quickack for nodelay, quickack in _SpySocket.seen), _SpySocket.seen


@pytest.mark.skipif(QUICKACK is None, reason="TCP_QUICKACK is Linux-only")
def test_pynetdicom_path_sets_quickack_before_reads(
    storescp: StorescpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The association path (TLS, other kinds) also acknowledges at once: quick ACK is on
    when each of pynetdicom's reads starts, and Nagle is off."""
    assert QUICKACK is not None
    option = QUICKACK
    seen: list[tuple[int, int]] = []
    real = dicom_association.quick_ack

    def spy(sock: socket.socket) -> None:
        real(sock)
        seen.append(
            (
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                sock.getsockopt(socket.IPPROTO_TCP, option),
            )
        )

    monkeypatch.setattr(dicom_association, "quick_ack", spy)
    outcome = dicom_echo.run_pynetdicom(config(storescp.port, called_aet=storescp.aet), Deadline(2))
    assert outcome.success, outcome
    assert len(seen) >= 3
    assert all(nodelay and quickack for nodelay, quickack in seen), seen


def test_peer_delay_shows_in_the_measured_duration() -> None:
    """What the peer takes is what the check reports: a 300 ms answer is >= 300 ms."""
    with PynetdicomPeer(echo_delay=0.3) as peer:
        ref = CheckRef("e", TierName.PRODUCTION, "s", config(peer.port, called_aet=peer.aet))
        result = execute(ref)
    assert result.success, result
    assert result.duration >= 0.3


# --- PDUs split however the peer likes --------------------------------------------------------


def _accept_pdu() -> bytes:
    context = PresentationContext()
    context.context_id = 1
    context.abstract_syntax = Verification
    context.transfer_syntax = ["1.2.840.10008.1.2"]
    context.result = 0
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16382
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "MONAI_SLO"
    primitive.called_ae_title = "SCRIPTED"
    primitive.result = 0
    primitive.presentation_context_definition_results_list = [context]
    primitive.user_information = [max_length]
    pdu = A_ASSOCIATE_AC()
    pdu.from_primitive(primitive)
    return bytes(pdu.encode())


def _echo_response_pdus(fragment: int) -> list[bytes]:
    """The C-ECHO-RSP's command set in P-DATA-TF PDUs of at most ``fragment`` bytes each."""
    rsp = C_ECHO()
    rsp.MessageIDBeingRespondedTo = 1
    rsp.AffectedSOPClassUID = Verification
    rsp.Status = 0x0000
    message = C_ECHO_RSP()
    message.primitive_to_message(rsp)
    pdus = []
    for p_data in message.encode_msg(1, fragment):
        pdu = P_DATA_TF()
        pdu.from_primitive(p_data)
        pdus.append(bytes(pdu.encode()))
    return pdus


def _read_pdu(conn: socket.socket) -> bytes:
    header = b""
    while len(header) < 6:
        header += conn.recv(6 - len(header))
    length = int.from_bytes(header[2:6], "big")
    body = b""
    while len(body) < length:
        body += conn.recv(length - len(body))
    return header + body


@pytest.fixture
def scripted_peer() -> Iterator[Callable[[Callable[[socket.socket], None]], int]]:
    """A one-connection peer running a script; yields a starter returning its port."""
    threads: list[threading.Thread] = []
    listeners: list[socket.socket] = []

    def start(script: Callable[[socket.socket], None]) -> int:
        listener = socket.create_server((LOOPBACK, 0))
        listeners.append(listener)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                script(conn)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return int(listener.getsockname()[1])

    yield start
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()
    for listener in listeners:
        listener.close()


def test_pdus_dribbled_and_fragmented_are_read_whole(
    scripted_peer: Callable[[Callable[[socket.socket], None]], int],
) -> None:
    """An association answer sent a few bytes per write, and a C-ECHO response spread over
    several P-DATA-TF PDUs, still make a successful, released C-ECHO."""

    def script(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = A_ASSOCIATE_RQ()
        request.decode(_read_pdu(conn))
        assert request.called_ae_title == "SCRIPTED"
        accept = _accept_pdu()
        for start in range(0, len(accept), 7):
            conn.sendall(accept[start : start + 7])
        _read_pdu(conn)  # the C-ECHO-RQ
        pieces = _echo_response_pdus(fragment=40)
        assert len(pieces) > 1
        conn.sendall(b"".join(pieces))
        _read_pdu(conn)  # A-RELEASE-RQ
        conn.sendall(bytes(A_RELEASE_RP().encode()))

    port = scripted_peer(script)
    outcome = dicom_lean.echo(config(port, called_aet="SCRIPTED"), Deadline(2))
    assert outcome.success, outcome
    assert outcome.detail == f"C-ECHO accepted by SCRIPTED at 127.0.0.1:{port}"


def test_missing_release_reply_still_succeeds_unconfirmed(
    scripted_peer: Callable[[Callable[[socket.socket], None]], int],
) -> None:
    """A peer that answers the C-ECHO then hangs up instead of replying to the release:
    success, marked '(release not confirmed)' as the association path marks it."""

    def script(conn: socket.socket) -> None:
        _read_pdu(conn)
        conn.sendall(_accept_pdu())
        _read_pdu(conn)
        conn.sendall(b"".join(_echo_response_pdus(fragment=16382)))
        _read_pdu(conn)  # A-RELEASE-RQ, then close without A-RELEASE-RP

    port = scripted_peer(script)
    outcome = dicom_lean.echo(config(port, called_aet="SCRIPTED"), Deadline(2))
    assert outcome.success, outcome
    assert outcome.detail.endswith("(release not confirmed)")


# --- Falling back ----------------------------------------------------------------------------


def test_falls_back_to_pynetdicom_when_codecs_fail(
    storescp: StorescpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should pynetdicom's codecs not build the requests, checks still run (association path)."""

    def broken(calling: str, called: str) -> dicom_lean.Requests:
        raise AttributeError("pynetdicom changed")

    dicom_echo._lean_path_works.cache_clear()
    monkeypatch.setattr(dicom_lean, "requests", broken)
    try:
        outcome = dicom_echo.run(config(storescp.port, called_aet=storescp.aet), Deadline(2))
    finally:
        dicom_echo._lean_path_works.cache_clear()
    assert outcome.success, outcome
