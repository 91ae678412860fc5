"""Listener access control in the exporter-toolkit web config format: TLS, client certs, basic
auth with bcrypt hashes; bad files are rejected with file, line and field."""

from __future__ import annotations

import base64
import http.client
import ssl
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import trustme

from monai_slo.cli import main
from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from tests.fixtures_dicom import free_port

PASSWORD = "correct horse battery staple"


def _write_config(tmp_path: Path, port: int, web: str) -> Path:
    (tmp_path / "web.yml").write_text(web)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{port}\nweb_config_file: web.yml\nstorage: h.sqlite\n"
        "environments:\n  - name: e\n    tier: staging\n    services:\n      - name: s\n"
        "        checks: [{name: c, kind: tcp, host: 127.0.0.1, port: 9, interval: 1h}]\n"
    )
    return path


@pytest.fixture
def server_cert(tmp_path: Path, tls_ca: trustme.CA) -> tuple[Path, Path]:
    cert = tls_ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


def _daemon(path: Path) -> Iterator[Daemon]:
    daemon = Daemon(load_config(path))
    daemon.server.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def _get(
    port: int,
    path: str = "/metrics",
    *,
    context: ssl.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
) -> int:
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def test_basic_auth(tmp_path: Path) -> None:
    """Without credentials or with a wrong password: 401 with a challenge; right password: 200.
    Only the health endpoints answer without credentials."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    port = free_port()
    path = _write_config(tmp_path, port, f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    for _ in _daemon(path):
        assert _get(port) == 401
        assert _get(port, auth=("prometheus", "wrong")) == 401
        assert _get(port, auth=("nobody", PASSWORD)) == 401
        for endpoint in ("/metrics", "/-/healthy", "/"):
            assert _get(port, endpoint, auth=("prometheus", PASSWORD)) == 200
        assert _get(port, "/") == 401
        # Probes carry no credentials: health endpoints stay open (they reveal nothing).
        assert _get(port, "/-/healthy") == 200
        assert _get(port, "/-/ready") == 503  # answered (not started yet), not challenged
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        assert conn.getresponse().getheader("WWW-Authenticate") == 'Basic realm="monai-slo"'
        conn.close()


def test_tls(tmp_path: Path, tls_ca: trustme.CA, server_cert: tuple[Path, Path]) -> None:
    """With tls_server_config the listener speaks only TLS, verifiable with the hospital CA."""
    cert, key = server_cert
    port = free_port()
    path = _write_config(
        tmp_path, port, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
    )
    client = ssl.create_default_context()
    tls_ca.configure_trust(client)
    for _ in _daemon(path):
        assert _get(port, context=client) == 200
        with pytest.raises((http.client.HTTPException, OSError)):
            _get(port)  # plain HTTP to a TLS listener gets no answer
        assert _get(port, context=client) == 200  # and did not break the listener


def test_client_certificates_required(
    tmp_path: Path, tls_ca: trustme.CA, server_cert: tuple[Path, Path]
) -> None:
    """RequireAndVerifyClientCert: a client without a certificate from the CA is refused."""
    cert, key = server_cert
    ca_file = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    port = free_port()
    path = _write_config(
        tmp_path,
        port,
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca_file}\n",
    )
    anonymous = ssl.create_default_context()
    tls_ca.configure_trust(anonymous)
    with_cert = ssl.create_default_context()
    tls_ca.configure_trust(with_cert)
    tls_ca.issue_cert("prometheus.example.org").configure_cert(with_cert)
    for _ in _daemon(path):
        with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
            _get(port, context=anonymous)
        assert _get(port, context=with_cert) == 200


@pytest.mark.parametrize(
    ("web", "expected"),
    [
        (
            "basic_auth_users:\n  alice: hunter2\n",
            "web.yml:2: basic_auth_users.alice: expected a bcrypt hash ($2y$...)",
        ),
        (
            "tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /etc/hostname\n",
            "web.yml:2: tls_server_config.cert_file: Path does not point to a file",
        ),
        (
            "tls_server_config: {cert_file: /etc/hostname, key_file: /etc/hostname, client_auth_type: Maybe}\n",
            "web.yml:1: tls_server_config.client_auth_type: Input should be 'NoClientCert', "
            "'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven' or "
            "'RequireAndVerifyClientCert'",
        ),
        (
            "tls_server_config: {cert_file: /etc/hostname, key_file: /etc/hostname}\n",
            "web.yml: tls_server_config: cannot load certificate: [SSL] PEM lib",
        ),
        ("colour: blue\n", "web.yml:1: colour: Extra inputs are not permitted"),
    ],
)
def test_bad_web_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], web: str, expected: str
) -> None:
    """A broken web config file is named with line and field; exit 2; no password echoed."""
    path = _write_config(tmp_path, 0, web)
    assert main(["validate", "-c", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[1].startswith(f"{tmp_path}/{expected}"), lines
    assert "hunter2" not in "\n".join(lines)
