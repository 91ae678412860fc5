"""The dicom_echo check against real peers: Orthanc, storescp, pynetdicom SCPs, bare TCP."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.dicom import echo as dicom_echo
from tests.fixtures_dicom import (
    OrthancPeer,
    PynetdicomPeer,
    SilentListener,
    StorescpPeer,
    free_port,
    open_fd_count,
)


def make_config(port: int, **overrides: Any) -> dicom_echo.Config:
    values: dict[str, Any] = {
        "name": "pacs-echo",
        "kind": "dicom_echo",
        "host": "127.0.0.1",
        "port": port,
        "timeout": "2s",
    }
    values.update(overrides)
    return dicom_echo.Config.model_validate(values)


def echo(config: dicom_echo.Config, seconds: float | None = None) -> CheckOutcome:
    return dicom_echo.run(config, Deadline(config.timeout if seconds is None else seconds))


def assert_failed(outcome: CheckOutcome, reason: FailureReason) -> None:
    assert not outcome.success, outcome
    assert outcome.reason is reason, outcome


# --- Success -------------------------------------------------------------------------------


def test_echo_succeeds_against_orthanc(orthanc: OrthancPeer) -> None:
    """A C-ECHO to Orthanc with its AE title succeeds and says who answered where."""
    outcome = echo(make_config(orthanc.dicom_port, called_aet=orthanc.aet))

    assert outcome.success, outcome
    assert outcome.reason is None
    assert outcome.detail == (f"C-ECHO accepted by ORTHANC at 127.0.0.1:{orthanc.dicom_port}")


def test_echo_succeeds_against_storescp_by_name(storescp: StorescpPeer) -> None:
    """storescp answers C-ECHO too; a host name (localhost) is resolved first."""
    outcome = echo(make_config(storescp.port, host="localhost", called_aet="STORESCP"))

    assert outcome.success, outcome
    assert outcome.detail == f"C-ECHO accepted by STORESCP at localhost:{storescp.port}"


# --- Rejections ----------------------------------------------------------------------------


def test_wrong_called_ae_is_rejected_by_orthanc(orthanc: OrthancPeer) -> None:
    """Orthanc checks the called AE title: a wrong one is REJECTED_CALLED_AE, named."""
    outcome = echo(make_config(orthanc.dicom_port, called_aet="PACS"))

    assert_failed(outcome, FailureReason.REJECTED_CALLED_AE)
    assert outcome.detail == "association rejected: called AE title not recognised (PACS)"


def test_refusing_storescp_is_a_permanent_rejection(tmp_path: Path) -> None:
    """storescp --refuse rejects every association (DCMTK cannot check the called AE):
    a permanent rejection with no reason is plain REJECTED, spelled out in words."""
    with StorescpPeer(tmp_path, refuse=True) as peer:
        outcome = echo(make_config(peer.port, called_aet=peer.aet))

    assert_failed(outcome, FailureReason.REJECTED)
    assert outcome.detail == "association rejected (permanent) by service user: no reason given"


def test_unknown_calling_ae_is_rejected() -> None:
    """A peer that only admits listed calling AEs rejects ours: REJECTED_CALLING_AE."""
    with PynetdicomPeer(require_calling_aet=["ALLOWED"]) as peer:
        outcome = echo(make_config(peer.port, called_aet=peer.aet, calling_aet="MONAI_SLO"))

    assert_failed(outcome, FailureReason.REJECTED_CALLING_AE)
    assert outcome.detail == "association rejected: calling AE title not recognised (MONAI_SLO)"


@pytest.mark.parametrize(
    ("rejection", "reason", "detail"),
    [
        (
            (2, 3, 1),
            FailureReason.REJECTED_TRANSIENT,
            "association rejected (transient) by service provider: temporary congestion",
        ),
        (
            (1, 3, 2),
            FailureReason.REJECTED_TRANSIENT,
            "association rejected (permanent) by service provider: local limit exceeded",
        ),
        (
            (1, 2, 2),
            FailureReason.REJECTED,
            "association rejected (permanent) by service provider (ACSE): "
            "protocol version not supported",
        ),
    ],
)
def test_other_rejections_are_decoded(
    rejection: tuple[int, int, int], reason: FailureReason, detail: str
) -> None:
    """Result 2 (transient) or congestion / local limit is REJECTED_TRANSIENT, the rest
    REJECTED; result, source and diagnostic are put in words."""
    with PynetdicomPeer(reject=rejection) as peer:
        outcome = echo(make_config(peer.port, called_aet=peer.aet))

    assert_failed(outcome, reason)
    assert outcome.detail == detail


# --- Failures after association --------------------------------------------------------------


def test_non_success_echo_status_is_dimse_status() -> None:
    """An association that works but a C-ECHO answered 0x0122 is DIMSE_STATUS, hex shown."""
    with PynetdicomPeer(echo_status=0x0122) as peer:
        outcome = echo(make_config(peer.port, called_aet=peer.aet))

    assert_failed(outcome, FailureReason.DIMSE_STATUS)
    assert "0x0122" in outcome.detail
    assert peer.echoes == 1


def test_peer_aborting_on_echo_is_aborted() -> None:
    """A peer that aborts the association instead of answering C-ECHO gives ABORTED."""
    with PynetdicomPeer(abort_on_echo=True) as peer:
        outcome = echo(make_config(peer.port, called_aet=peer.aet))

    assert_failed(outcome, FailureReason.ABORTED)
    assert "aborted by peer" in outcome.detail


def test_slow_echo_response_times_out_at_dimse_timeout() -> None:
    """No C-ECHO response within dimse_timeout is TIMEOUT, ended at that limit."""
    with PynetdicomPeer(echo_delay=5.0) as peer:
        config = make_config(peer.port, called_aet=peer.aet, dimse_timeout="500ms")
        start = time.monotonic()
        outcome = echo(config)
        elapsed = time.monotonic() - start

    assert_failed(outcome, FailureReason.TIMEOUT)
    assert outcome.detail == "no C-ECHO response within 0.5s"
    assert elapsed < 0.5 + 0.5


def test_wrong_protocol_reply_is_protocol_error() -> None:
    """A peer answering the association request with HTTP is a PROTOCOL failure."""
    with SilentListener(reply=b"HTTP/1.1 400 Bad Request\r\n\r\n") as peer:
        outcome = echo(make_config(peer.port))

    assert_failed(outcome, FailureReason.PROTOCOL)


# --- Transport failures ----------------------------------------------------------------------


def test_stopped_peer_is_refused_quickly_and_restart_recovers(tmp_path: Path) -> None:
    """With Orthanc stopped its port is closed: REFUSED well before the timeout; started
    again on the same ports, the echo succeeds again."""
    with OrthancPeer(tmp_path) as peer:
        config = make_config(peer.dicom_port, called_aet=peer.aet, timeout="3s")
        assert echo(config).success

        peer.stop(kill=True)
        start = time.monotonic()
        outcome = echo(config)
        elapsed = time.monotonic() - start
        assert_failed(outcome, FailureReason.REFUSED)
        assert outcome.detail == f"connection refused by 127.0.0.1:{peer.dicom_port}"
        assert elapsed < 1.0

        peer.start()
        assert echo(config).success


def test_silent_peer_times_out_within_the_timeout(silent_listener: SilentListener) -> None:
    """A peer that accepts TCP but never answers the association request is TIMEOUT,
    returned within timeout + 0.5 s, over exactly one connection."""
    config = make_config(silent_listener.port, timeout="1s")
    start = time.monotonic()
    outcome = echo(config)
    elapsed = time.monotonic() - start

    assert_failed(outcome, FailureReason.TIMEOUT)
    assert outcome.detail.startswith("no answer to the association request within")
    assert 0.9 <= elapsed < 1.0 + 0.5
    assert silent_listener.accepted == 1


def test_deadline_shorter_than_timeout_bounds_the_wait(silent_listener: SilentListener) -> None:
    """Every wait is bounded by what is left of the deadline, not just by its own timeout."""
    config = make_config(silent_listener.port, timeout="5s")
    start = time.monotonic()
    outcome = echo(config, seconds=0.5)
    elapsed = time.monotonic() - start

    assert_failed(outcome, FailureReason.TIMEOUT)
    assert elapsed < 0.5 + 0.5


def test_expired_deadline_fails_without_connecting(silent_listener: SilentListener) -> None:
    """A deadline already spent yields TIMEOUT and no connection at all."""
    outcome = echo(make_config(silent_listener.port), seconds=0.0)

    assert_failed(outcome, FailureReason.TIMEOUT)
    assert silent_listener.accepted == 0


def test_name_resolution_failure_is_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name that does not resolve is DNS (resolver stubbed: no traffic leaves)."""

    def no_such_host(*args: object, **kwargs: object) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    outcome = echo(make_config(104, host="pacs.example.invalid"))

    assert_failed(outcome, FailureReason.DNS)
    assert outcome.detail == "cannot resolve 'pacs.example.invalid': Name or service not known"


@pytest.mark.usefixtures("hung_resolver")
def test_hung_name_lookup_is_dns() -> None:
    """A name lookup that never finishes is dns, as for every kind, within connect_timeout."""
    started = time.monotonic()
    outcome = echo(make_config(104, host="pacs.example.invalid", connect_timeout=0.3))
    assert_failed(outcome, FailureReason.DNS)
    assert outcome.detail == "name lookup for 'pacs.example.invalid' did not finish within 0.3s"
    assert time.monotonic() - started < 0.3 + 0.2


# --- Resource hygiene ------------------------------------------------------------------------


def test_no_thread_or_socket_leak_over_many_runs(orthanc: OrthancPeer) -> None:
    """20 runs (success, rejection, refused, timeout) leave no thread or descriptor behind,
    checked after every single run, not only at the end."""
    closed_port = free_port()
    cases = [
        (make_config(orthanc.dicom_port, called_aet=orthanc.aet), None),
        (make_config(orthanc.dicom_port, called_aet="WRONG"), FailureReason.REJECTED_CALLED_AE),
        (make_config(closed_port), FailureReason.REFUSED),
    ]
    assert echo(cases[0][0]).success  # warm-up: first use of pynetdicom
    threads_before, fds_before = threading.active_count(), open_fd_count()

    with SilentListener() as silent:
        cases.append((make_config(silent.port, timeout="300ms"), FailureReason.TIMEOUT))
        threads = threading.active_count()  # the listener's own thread included
        for run in range(20):
            config, reason = cases[run % len(cases)]
            outcome = echo(config)
            assert outcome.reason is reason, outcome
            assert threading.active_count() == threads, [t.name for t in threading.enumerate()]
            # The listener still holds its side of each silent connection; nothing else.
            assert open_fd_count() == fds_before + 1 + silent.accepted

    assert threading.active_count() == threads_before
    assert open_fd_count() == fds_before


# --- Configuration ---------------------------------------------------------------------------


def test_config_defaults_and_phase_timeouts() -> None:
    """AE titles default to ANY-SCP / MONAI_SLO; phase timeouts default to the timeout."""
    config = make_config(4242, timeout="3s", acse_timeout="1s")

    assert (config.called_aet, config.calling_aet) == ("ANY-SCP", "MONAI_SLO")
    assert config.effective_connect_timeout == 3.0
    assert config.effective_acse_timeout == 1.0
    assert config.effective_dimse_timeout == 3.0


def test_ae_title_too_long_is_rejected() -> None:
    """An AE title over 16 characters fails validation, naming the field."""
    with pytest.raises(ValidationError, match="called_aet") as info:
        make_config(4242, called_aet="A" * 17)
    assert "longer than 16 characters" in str(info.value)


@pytest.mark.parametrize("title", ["    ", "BAD\\AET", "TAB\tAET", "CAFÉ"])
def test_ae_title_bad_characters_are_rejected(title: str) -> None:
    """Blank titles, backslashes, control and non-ASCII characters are refused."""
    with pytest.raises(ValidationError, match="calling_aet"):
        make_config(4242, calling_aet=title)


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_out_of_range_is_rejected(port: int) -> None:
    """Ports outside 1..65535 fail validation, naming the field."""
    with pytest.raises(ValidationError, match="port"):
        make_config(port)


def test_phase_timeout_above_timeout_is_rejected() -> None:
    """A dimse_timeout longer than the check's timeout fails validation, naming it."""
    with pytest.raises(ValidationError, match="dimse_timeout") as info:
        make_config(4242, timeout="2s", dimse_timeout="3s")
    assert "must not exceed the check's timeout (2s)" in str(info.value)


def test_unknown_key_is_rejected() -> None:
    """Keys the kind does not know are errors, not silently ignored."""
    with pytest.raises(ValidationError, match="called_ae"):
        make_config(4242, called_ae="PACS")
