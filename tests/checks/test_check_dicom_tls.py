"""DICOM over TLS for every DICOM kind: pynetdicom SCPs with trustme certificates and
Orthanc's own DICOM TLS (which asks for a client certificate)."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.dicom import echo as dicom_echo
from monai_slo.checks.dicom import find as dicom_find
from monai_slo.checks.dicom import store_context as dicom_store_context
from tests.fixtures_dicom import (
    OrthancPeer,
    PynetdicomPeer,
    SilentListener,
    free_port,
    open_fd_count,
)

EXPIRY = "tls_cert_expiry_timestamp_seconds"


@dataclass(frozen=True)
class Leaf:
    cert: Path
    key: Path
    not_after: float
    issued: trustme.LeafCert


@dataclass(frozen=True)
class Pki:
    ca: trustme.CA
    ca_file: Path
    other_ca_file: Path
    server: Leaf  # 127.0.0.1 / localhost, 90 days
    short_lived: Leaf  # the same names, 3 days
    client: Leaf


def _leaf(ca: trustme.CA, directory: Path, name: str, days: int, *identities: str) -> Leaf:
    # Whole seconds, so the expiry a check reports can be compared exactly.
    not_after = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)
    issued = ca.issue_cert(*identities, not_after=not_after)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return Leaf(cert, key, not_after.timestamp(), issued)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA with server, short-lived server and client certificates as PEM files."""
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    trustme.CA().cert_pem.write_to_path(str(directory / "other-ca.pem"))
    return Pki(
        ca=ca,
        ca_file=directory / "ca.pem",
        other_ca_file=directory / "other-ca.pem",
        server=_leaf(ca, directory, "server", 90, "127.0.0.1", "localhost"),
        short_lived=_leaf(ca, directory, "short", 3, "127.0.0.1", "localhost"),
        client=_leaf(ca, directory, "client", 90, "monai-slo@example.org"),
    )


def server_context(pki: Pki, leaf: Leaf, *, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.issued.configure_cert(context)
    if require_client_cert:
        pki.ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture
def tls_scp(pki: Pki) -> Iterator[PynetdicomPeer]:
    """A pynetdicom Verification + C-FIND SCP over TLS with the 90-day certificate."""
    with PynetdicomPeer(
        find_statuses=[0x0000], ssl_context=server_context(pki, pki.server)
    ) as peer:
        yield peer


@pytest.fixture(scope="module")
def tls_orthanc(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    """Orthanc with DICOM TLS; it requires a client certificate signed by the test CA."""
    config = {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(pki.server.cert),
        "DicomTlsPrivateKey": str(pki.server.key),
        "DicomTlsTrustedCertificates": str(pki.ca_file),
        "DicomTlsRemoteCertificateRequired": True,
    }
    with OrthancPeer(tmp_path_factory.mktemp("orthanc-tls"), extra_config=config) as peer:
        yield peer


def echo_config(port: int, **overrides: Any) -> dicom_echo.Config:
    values: dict[str, Any] = {
        "name": "echo",
        "kind": "dicom_echo",
        "host": "127.0.0.1",
        "port": port,
        "timeout": "2s",
        "called_aet": "PYNETDICOM",
        "tls": True,
    }
    values.update(overrides)
    return dicom_echo.Config.model_validate(values)


def run_echo(config: dicom_echo.Config) -> CheckOutcome:
    return dicom_echo.run(config, Deadline(config.timeout))


def assert_failed(outcome: CheckOutcome, reason: FailureReason) -> None:
    assert not outcome.success, outcome
    assert outcome.reason is reason, outcome


# --- pynetdicom over TLS ---------------------------------------------------------------------


def test_echo_over_tls_reports_the_certificate_expiry(tls_scp: PynetdicomPeer, pki: Pki) -> None:
    """A verified TLS association succeeds; the served certificate's notAfter is a value."""
    outcome = run_echo(echo_config(tls_scp.port, ca_file=str(pki.ca_file)))

    assert outcome.success, outcome
    assert outcome.values[EXPIRY] == pki.server.not_after
    assert tls_scp.echoes == 1


def test_server_name_is_what_gets_verified(tls_scp: PynetdicomPeer, pki: Pki) -> None:
    """server_name overrides the host for verification: localhost matches, another
    name fails with TLS."""
    ok = run_echo(echo_config(tls_scp.port, ca_file=str(pki.ca_file), server_name="localhost"))
    wrong = run_echo(
        echo_config(tls_scp.port, ca_file=str(pki.ca_file), server_name="pacs.example.org")
    )

    assert ok.success, ok
    assert_failed(wrong, FailureReason.TLS)
    assert "certificate verify failed" in wrong.detail
    assert tls_scp.echoes == 1


def test_wrong_ca_is_tls_and_nothing_is_sent(tls_scp: PynetdicomPeer, pki: Pki) -> None:
    """A server certificate from another CA fails the handshake: TLS, no C-ECHO sent."""
    outcome = run_echo(echo_config(tls_scp.port, ca_file=str(pki.other_ca_file)))

    assert_failed(outcome, FailureReason.TLS)
    assert outcome.detail.startswith("certificate verify failed")
    assert tls_scp.echoes == 0


def test_without_verification_untrusted_certificate_is_accepted(
    tls_scp: PynetdicomPeer, pki: Pki
) -> None:
    """tls_verify: false accepts the untrusted certificate and still reports its expiry."""
    outcome = run_echo(echo_config(tls_scp.port, tls_verify=False))

    assert outcome.success, outcome
    assert outcome.values[EXPIRY] == pki.server.not_after


def test_certificate_expiring_before_min_days_valid_is_tls(pki: Pki) -> None:
    """A certificate valid for 3 more days fails min_days_valid 14 with TLS before any
    association is requested; its expiry is still reported. 2 days passes."""
    context = server_context(pki, pki.short_lived)
    with PynetdicomPeer(ssl_context=context) as peer:
        short = run_echo(echo_config(peer.port, ca_file=str(pki.ca_file), min_days_valid=14))
        enough = run_echo(echo_config(peer.port, ca_file=str(pki.ca_file), min_days_valid=2))

    assert_failed(short, FailureReason.TLS)
    assert short.detail.startswith("certificate expires in 3.0 days (")
    assert short.detail.endswith("sooner than min_days_valid 14")
    assert short.values[EXPIRY] == pki.short_lived.not_after
    assert enough.success, enough
    assert peer.echoes == 1


def test_client_certificate_required_by_the_peer(pki: Pki) -> None:
    """A peer that requires a client certificate fails the check with TLS without one,
    and accepts it with client_cert/client_key."""
    context = server_context(pki, pki.server, require_client_cert=True)
    with PynetdicomPeer(ssl_context=context) as peer:
        without = run_echo(echo_config(peer.port, ca_file=str(pki.ca_file)))
        with_cert = run_echo(
            echo_config(
                peer.port,
                ca_file=str(pki.ca_file),
                client_cert=str(pki.client.cert),
                client_key=str(pki.client.key),
            )
        )

    assert_failed(without, FailureReason.TLS)
    assert "CERTIFICATE_REQUIRED" in without.detail.upper()
    assert with_cert.success, with_cert
    assert peer.echoes == 1


def test_tls_to_a_plain_dicom_peer_is_tls() -> None:
    """TLS against a peer that speaks plain DICOM fails the handshake: TLS."""
    with PynetdicomPeer() as peer:
        outcome = run_echo(echo_config(peer.port, tls_verify=False))

    assert_failed(outcome, FailureReason.TLS)
    assert outcome.detail.startswith("TLS handshake failed")


def test_closed_port_is_refused_not_tls() -> None:
    """With tls on, a port nobody listens on is still REFUSED: the TCP connect failed
    before any TLS was spoken."""
    port = free_port()
    outcome = run_echo(echo_config(port, tls_verify=False))

    assert_failed(outcome, FailureReason.REFUSED)
    assert outcome.detail == f"connection refused by 127.0.0.1:{port}"


def test_silent_peer_times_out_in_the_handshake(silent_listener: SilentListener) -> None:
    """A peer that accepts TCP and never answers the ClientHello is TIMEOUT within the
    connect limit, not a hang."""
    config = echo_config(silent_listener.port, timeout="2s", connect_timeout="500ms")
    start = time.monotonic()
    outcome = run_echo(config)

    assert_failed(outcome, FailureReason.TIMEOUT)
    assert outcome.detail == "TLS handshake timed out"
    assert time.monotonic() - start < 0.5 + 0.5


def test_unreadable_ca_file_is_tls(tls_scp: PynetdicomPeer, tmp_path: Path) -> None:
    """A ca_file that is not PEM fails with TLS, saying the files could not be loaded."""
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    outcome = run_echo(echo_config(tls_scp.port, ca_file=str(garbage)))

    assert_failed(outcome, FailureReason.TLS)
    assert outcome.detail.startswith("cannot load TLS files")


def test_find_over_tls(tls_scp: PynetdicomPeer, pki: Pki) -> None:
    """dicom_find shares the TLS path: success, with the expiry value beside the matches."""
    config = dicom_find.Config.model_validate(
        {
            "name": "find",
            "kind": "dicom_find",
            "host": "127.0.0.1",
            "port": tls_scp.port,
            "called_aet": tls_scp.aet,
            "tls": True,
            "ca_file": str(pki.ca_file),
        }
    )
    outcome = dicom_find.run(config, Deadline(config.timeout))

    assert outcome.success, outcome
    assert outcome.values == {"dicom_find_matches": 0.0, EXPIRY: pki.server.not_after}


# --- Orthanc's DICOM TLS ----------------------------------------------------------------------


def orthanc_keys(peer: OrthancPeer, pki: Pki, *, client: bool = True) -> dict[str, Any]:
    keys: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": peer.dicom_port,
        "called_aet": peer.aet,
        "tls": True,
        "ca_file": str(pki.ca_file),
        "timeout": "2s",
    }
    if client:
        keys |= {"client_cert": str(pki.client.cert), "client_key": str(pki.client.key)}
    return keys


def test_echo_find_and_store_context_over_orthanc_tls(tls_orthanc: OrthancPeer, pki: Pki) -> None:
    """All three DICOM kinds succeed against Orthanc's DICOM TLS with a client
    certificate, each reporting the server certificate's expiry."""
    keys = orthanc_keys(tls_orthanc, pki)
    outcomes = [
        dicom_echo.run(
            dicom_echo.Config.model_validate({"name": "e", "kind": "dicom_echo", **keys}),
            Deadline(2),
        ),
        dicom_find.run(
            dicom_find.Config.model_validate({"name": "f", "kind": "dicom_find", **keys}),
            Deadline(2),
        ),
        dicom_store_context.run(
            dicom_store_context.Config.model_validate(
                {"name": "s", "kind": "dicom_store_context", **keys}
            ),
            Deadline(2),
        ),
    ]

    for outcome in outcomes:
        assert outcome.success, outcome
        assert outcome.values[EXPIRY] == pki.server.not_after


def test_orthanc_tls_without_client_certificate_is_tls(tls_orthanc: OrthancPeer, pki: Pki) -> None:
    """Orthanc requires a client certificate by default: without one the check fails
    with TLS, not as a generic dropped connection."""
    keys = orthanc_keys(tls_orthanc, pki, client=False)
    outcome = dicom_echo.run(
        dicom_echo.Config.model_validate({"name": "e", "kind": "dicom_echo", **keys}), Deadline(2)
    )

    assert_failed(outcome, FailureReason.TLS)
    assert outcome.detail.startswith("TLS handshake failed: ")


def test_plain_dicom_to_orthanc_tls_port_fails(tls_orthanc: OrthancPeer, pki: Pki) -> None:
    """Forgetting tls: true against a TLS-only port fails (the peer drops the plain
    association request) within the deadline."""
    keys = orthanc_keys(tls_orthanc, pki, client=False) | {"tls": False}
    start = time.monotonic()
    outcome = dicom_echo.run(
        dicom_echo.Config.model_validate({"name": "e", "kind": "dicom_echo", **keys}), Deadline(2)
    )

    assert_failed(outcome, FailureReason.CONNECTION)
    assert outcome.detail == "connection closed by peer before it answered the association request"
    assert time.monotonic() - start < 2.5


def test_no_thread_or_socket_leak_over_tls(tls_orthanc: OrthancPeer, pki: Pki) -> None:
    """Successful and failed TLS runs (wrong CA, no client certificate) leave no thread
    or descriptor behind, checked after every run (Orthanc runs in its own process)."""
    keys = {"name": "e", "kind": "dicom_echo", **orthanc_keys(tls_orthanc, pki)}
    cases = [
        dicom_echo.Config.model_validate(keys),
        dicom_echo.Config.model_validate(keys | {"ca_file": str(pki.other_ca_file)}),
        dicom_echo.Config.model_validate(keys | {"client_cert": None, "client_key": None}),
    ]
    assert dicom_echo.run(cases[0], Deadline(2)).success  # warm-up
    threads, fds = threading.active_count(), open_fd_count()
    for run in range(6):
        outcome = dicom_echo.run(cases[run % 3], Deadline(2))
        assert outcome.success is (run % 3 == 0), outcome
        assert threading.active_count() == threads, [t.name for t in threading.enumerate()]
        assert open_fd_count() == fds


# --- Configuration ---------------------------------------------------------------------------


def test_tls_config_errors_name_the_field(pki: Pki) -> None:
    """client_key without client_cert, a missing ca_file and a negative min_days_valid
    are validation errors naming the key."""
    for keys, field in [
        ({"client_key": str(pki.client.key)}, "client_key needs client_cert"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
        ({"min_days_valid": -1}, "min_days_valid"),
        ({"server_name": "two words"}, "server_name"),
    ]:
        with pytest.raises(ValidationError) as info:
            echo_config(104, **keys)
        assert field in str(info.value)
