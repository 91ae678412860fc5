"""TLS contexts are built once and shared (loading CAs costs more than a whole HTTPS check),
yet a rotated CA is picked up at the next run; and the http kind formats requests as
HTTPSConnection does without building the context HTTPSConnection would."""

from __future__ import annotations

import http.client
import os
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from monai_slo.checks import http as http_check
from monai_slo.checks import http_client, net
from monai_slo.checks.base import Deadline, FailureReason
from tests.fixtures_http import HttpPeer


def test_unchanged_files_share_one_context(tls_ca_file: Path) -> None:
    """The same files (or the same system store) give the very same context object."""
    first = net.shared_tls_context(ca_file=tls_ca_file)
    assert net.shared_tls_context(ca_file=tls_ca_file) is first
    assert net.shared_tls_context() is net.shared_tls_context()
    assert net.shared_tls_context(ca_file=tls_ca_file, verify=False) is not first


def test_rotated_ca_file_is_picked_up(https_peer: HttpPeer, tmp_path: Path) -> None:
    """Replacing the CA file with another CA makes the next run fail verification, and
    putting the right one back makes it pass: no run uses a context built from old files."""
    assert https_peer.ca_file is not None
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(https_peer.ca_file.read_bytes())
    config = http_check.Config.model_validate(
        {"name": "web", "kind": "http", "url": https_peer.url, "ca_file": str(ca_file)}
    )
    assert http_check.run(config, Deadline(5)).success

    other = trustme.CA()
    other.cert_pem.write_to_path(str(ca_file))
    os.utime(ca_file, ns=(1, 1))  # a different mtime even on a coarse-grained filesystem
    outcome = http_check.run(config, Deadline(5))
    assert outcome.reason is FailureReason.TLS, outcome
    assert "certificate verify failed" in outcome.detail

    ca_file.write_bytes(https_peer.ca_file.read_bytes())
    assert http_check.run(config, Deadline(5)).success


def test_https_run_builds_no_context_once_warm(
    https_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first run, an HTTPS check creates no SSLContext at all (neither its own
    nor the one HTTPSConnection would make)."""
    config = http_check.Config.model_validate(
        {"name": "web", "kind": "http", "url": https_peer.url, "ca_file": str(https_peer.ca_file)}
    )
    assert http_check.run(config, Deadline(5)).success
    made: list[Any] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    monkeypatch.setattr(http.client.ssl, "create_default_context", counting)
    for _ in range(3):
        assert http_check.run(config, Deadline(5)).success
    assert made == []


class _Capture:
    def __init__(self) -> None:
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data


@pytest.mark.parametrize(("host", "port"), [("pacs.example.org", 443), ("10.0.0.5", 8443)])
def test_request_head_is_what_https_connection_writes(host: str, port: int) -> None:
    """Host header and request line: byte for byte what HTTPSConnection would send."""
    ours, theirs = _Capture(), _Capture()
    for conn, capture in (
        (http_client._TlsConnection(host, port), ours),
        (http.client.HTTPSConnection(host, port), theirs),
    ):
        conn.sock = capture  # type: ignore[assignment]
        conn.putrequest("GET", "/system")
        conn.endheaders()
    assert ours.sent == theirs.sent
    assert (
        f"Host: {host}\r\n" if port == 443 else f"Host: {host}:{port}\r\n"
    ).encode() in ours.sent
