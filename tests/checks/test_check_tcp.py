"""The tcp check against real local listeners."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from monai_slo.checks import tcp
from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from tests.fixtures_http import HttpPeer
from tests.fixtures_net import free_port


def config(port: int, **keys: Any) -> tcp.Config:
    data: dict[str, Any] = {
        "name": "port",
        "kind": "tcp",
        "host": "127.0.0.1",
        "port": port,
        "interval": 10,
        "timeout": 2,
    }
    data.update(keys)
    return tcp.Config.model_validate(data)


def probe(cfg: tcp.Config) -> tuple[CheckOutcome, float]:
    started = time.monotonic()
    outcome = tcp.run(cfg, Deadline(cfg.timeout))
    return outcome, time.monotonic() - started


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A listening socket nobody accepts on: the kernel completes the TCP handshake,
    then nothing is ever said."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_connect_ok(silent_listener: int) -> None:
    """A listening port is a success."""
    outcome, _ = probe(config(silent_listener))
    assert outcome.success, outcome
    assert outcome.values == {}


def test_refused() -> None:
    """A port nobody listens on fails as refused."""
    outcome, _ = probe(config(free_port()))
    assert outcome.reason is FailureReason.REFUSED


@pytest.mark.usefixtures("hung_resolver")
def test_hung_name_lookup_is_dns() -> None:
    """A name lookup that never finishes fails as dns (as for every kind) within the deadline."""
    outcome, elapsed = probe(config(1, host="pacs.example.invalid", timeout=0.3))
    assert outcome.reason is FailureReason.DNS, outcome
    assert outcome.detail.startswith("name lookup for 'pacs.example.invalid' did not finish within")
    assert elapsed < 0.3 + 0.2


def test_tls_handshake_with_ca(https_peer: HttpPeer) -> None:
    """A TLS handshake verified against the test CA succeeds and reports the leaf's expiry."""
    outcome, _ = probe(config(https_peer.port, tls=True, ca_file=str(https_peer.ca_file)))
    assert outcome.success, outcome
    assert https_peer.cert_not_after is not None
    assert abs(outcome.values["tls_cert_expiry_timestamp_seconds"] - https_peer.cert_not_after) < 1


def test_tls_server_name(https_peer: HttpPeer) -> None:
    """server_name is what the certificate is verified against."""
    ok, _ = probe(
        config(https_peer.port, tls=True, ca_file=str(https_peer.ca_file), server_name="localhost")
    )
    assert ok.success, ok
    wrong, _ = probe(
        config(
            https_peer.port, tls=True, ca_file=str(https_peer.ca_file), server_name="pacs.example"
        )
    )
    assert wrong.reason is FailureReason.TLS
    assert "certificate verify failed" in wrong.detail


def test_tls_to_silent_plain_listener_times_out(silent_listener: int) -> None:
    """TLS to a listener that accepts and never answers fails as timeout within the deadline."""
    outcome, elapsed = probe(config(silent_listener, tls=True, timeout=0.5))
    assert outcome.reason is FailureReason.TIMEOUT, outcome
    assert elapsed < 0.5 + 0.2


def test_tls_wrong_ca(https_peer: HttpPeer, tmp_path: Path) -> None:
    """A certificate from a CA other than ca_file fails as tls."""
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    outcome, _ = probe(config(https_peer.port, tls=True, ca_file=str(other)))
    assert outcome.reason is FailureReason.TLS
    assert "certificate verify failed" in outcome.detail


def test_tls_without_verification(https_peer: HttpPeer) -> None:
    """tls_verify: false completes the handshake with an untrusted certificate."""
    outcome, _ = probe(config(https_peer.port, tls=True, tls_verify=False))
    assert outcome.success, outcome


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"host": "two words"}, "host"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
    ],
)
def test_config_errors_name_the_field(keys: dict[str, Any], field: str) -> None:
    """Invalid configs fail validation naming the key."""
    with pytest.raises(ValidationError) as excinfo:
        config(**({"port": 1} | keys))
    assert field in str(excinfo.value)


def test_min_days_valid(https_peer: HttpPeer) -> None:
    """min_days_valid fails the check with tls when the served certificate (90 days
    left) expires sooner, still reporting its expiry; a shorter limit passes."""
    ca_file = str(https_peer.ca_file)
    ok, _ = probe(config(https_peer.port, tls=True, ca_file=ca_file, min_days_valid=30))
    short, _ = probe(config(https_peer.port, tls=True, ca_file=ca_file, min_days_valid=120))

    assert ok.success, ok
    assert short.reason is FailureReason.TLS
    assert short.detail.startswith("certificate expires in 90.0 days (")
    assert short.detail.endswith("sooner than min_days_valid 120")
    assert short.values["tls_cert_expiry_timestamp_seconds"] == https_peer.cert_not_after


def test_unverified_handshake_still_reports_expiry(https_peer: HttpPeer) -> None:
    """With tls_verify: false the served certificate's expiry is still read."""
    outcome, _ = probe(config(https_peer.port, tls=True, tls_verify=False))
    assert outcome.values["tls_cert_expiry_timestamp_seconds"] == https_peer.cert_not_after
