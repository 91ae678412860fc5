"""The benchmark's peers: the test suite's DICOM peers, an HTTP(S) target, blackbox_exporter.

All listen on loopback (Orthanc and storescp on every interface: neither can bind loopback
only) on free ports, and stop with the context manager that started them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trustme
from tests.fixtures_dicom import (
    OrthancPeer,
    StorescpPeer,
    _ProcessPeer,
    free_port,
    require_binary,
    wait_for_port,
)

__all__ = ["BlackboxPeer", "HttpTarget", "OrthancPeer", "StorescpPeer"]

_REPO = Path(__file__).resolve().parent.parent


class _Pid(_ProcessPeer):
    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self._process.pid


class HttpTarget(_Pid):
    """``bench.httpd``: 200 ``ok`` to every request, over HTTPS too when ``tls`` is set."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path | None = None, *, tls: bool = False) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.ca_file: Path | None = None
        self._cert: tuple[Path, Path] | None = None
        if tls:
            ca = trustme.CA()
            leaf = ca.issue_cert("127.0.0.1", "localhost")
            self.ca_file = self.workdir / "ca.pem"
            ca.cert_pem.write_to_path(str(self.ca_file))
            cert, key = self.workdir / "cert.pem", self.workdir / "key.pem"
            leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
            leaf.private_key_pem.write_to_path(str(key))
            self._cert = (cert, key)

    @property
    def url(self) -> str:
        scheme = "https" if self._cert else "http"
        return f"{scheme}://127.0.0.1:{self.port}/"

    def _command(self) -> list[str]:
        # The script by path: the peer runs in its own working directory.
        command = [sys.executable, str(_REPO / "bench" / "httpd.py"), str(self.port)]
        if self._cert is not None:
            command += [str(path) for path in self._cert]
        return command

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        wait_for_port(self.port, timeout=timeout, process=process, log=self.log_path)


class BlackboxPeer(_Pid):
    """prometheus-blackbox-exporter with http_2xx, https_2xx (trusting ``ca_file``) and
    tcp_connect modules, IPv4, on a free loopback port."""

    def __init__(self, workdir: Path | None = None, *, ca_file: Path | None = None) -> None:
        super().__init__(workdir)
        self.binary = require_binary("prometheus-blackbox-exporter")
        self.port = free_port()
        self.ca_file = ca_file

    def probe_path(self, module: str, target: str) -> str:
        return f"/probe?module={module}&target={target}"

    def _command(self) -> list[str]:
        tls = f"\n      tls_config: {{ca_file: {self.ca_file}}}" if self.ca_file else ""
        config = self.workdir / "blackbox.yml"
        config.write_text(
            "modules:\n"
            "  http_2xx:\n    prober: http\n    timeout: 5s\n"
            "    http: {preferred_ip_protocol: ip4}\n"
            "  https_2xx:\n    prober: http\n    timeout: 5s\n"
            f"    http:\n      preferred_ip_protocol: ip4{tls}\n"
            "  tcp_connect:\n    prober: tcp\n    timeout: 5s\n"
            "    tcp: {preferred_ip_protocol: ip4}\n"
        )
        return [
            self.binary,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        wait_for_port(self.port, timeout=timeout, process=process, log=self.log_path)
