"""Real ``monai-slo run`` processes on free loopback ports, and an HTTP client for their API.

    with DaemonProcess(tmp_path, checks=[...], web=None) as daemon:
        status, document = daemon.api("GET", "/api/v1/status")
        daemon.cli("maintenance", "list", "-o", "json")   # the CLI on the same config

``checks`` are check mappings of one service ``radiology/pacs`` (staging); ``extra`` adds
top-level config keys; ``tls`` (a trustme CA) serves HTTPS with a leaf for 127.0.0.1 (then
``ca_file`` is the CA's PEM). The daemon flushes its history every second.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import trustme
import yaml

from tests.fixtures_dicom import free_port

__all__ = ["DaemonProcess", "basic_auth", "until"]

ROOT = Path(__file__).resolve().parents[1]


def until(condition: Any, timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy (returned), within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)  # poll interval; the loop re-checks the condition


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class DaemonProcess:
    def __init__(
        self,
        tmp_path: Path,
        *,
        checks: list[dict[str, Any]],
        web: str | None = None,
        extra: dict[str, Any] | None = None,
        auth: str | None = None,
        tls: trustme.CA | None = None,
    ) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.auth = auth
        self._context: ssl.SSLContext | None = None
        self.ca_file: Path | None = None
        if tls is not None:
            leaf = tls.issue_cert("127.0.0.1")
            leaf.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "tls.pem"))
            self.ca_file = tmp_path / "ca.pem"
            tls.cert_pem.write_to_path(str(self.ca_file))
            self._context = ssl.create_default_context(cafile=str(self.ca_file))
            pem = tmp_path / "tls.pem"
            web = (web or "") + f"tls_server_config:\n  cert_file: {pem}\n  key_file: {pem}\n"
        self.config = tmp_path / "config.yaml"
        document: dict[str, Any] = {
            "listen": f"127.0.0.1:{self.port}",
            "storage": str(tmp_path / "history.sqlite"),
            "flush_interval": "1s",
            "environments": [
                {
                    "name": "radiology",
                    "tier": "staging",
                    "services": [{"name": "pacs", "checks": checks}],
                }
            ],
            **(extra or {}),
        }
        if web is not None:
            (tmp_path / "web.yml").write_text(web)
            document["web_config_file"] = "web.yml"
        self.config.write_text(yaml.safe_dump(document))
        self.log_path = tmp_path / "daemon.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monai_slo", "run", "-c", str(self.config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @property
    def url(self) -> str:
        return f"{'https' if self._context else 'http'}://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        auth: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        conn = (
            http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=timeout, context=self._context
            )
            if self._context is not None
            else http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        )
        try:
            headers = {"Authorization": auth or self.auth} if (auth or self.auth) else {}
            if body is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def api(
        self, method: str, path: str, document: Any = None, *, auth: str | None = None
    ) -> tuple[int, Any]:
        body = None if document is None else json.dumps(document).encode()
        status, data = self.request(method, path, body, auth=auth)
        return status, json.loads(data)

    def metrics(self) -> str:
        status, data = self.request("GET", "/metrics")
        assert status == 200, (status, data[:200])
        return data.decode()

    def cli(
        self, *args: str, env: dict[str, str] | None = None, config: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``monai-slo ARGS -c CONFIG`` (the daemon's own config unless another is given)."""
        return subprocess.run(
            [sys.executable, "-m", "monai_slo", *args, "-c", str(config or self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the daemon exited ({self.process.returncode}):\n{self.log}")
        try:
            return self.request("GET", "/-/ready", timeout=2.0)[0] == 200
        except OSError:
            return False

    def __enter__(self) -> Self:
        try:
            until(self.ready, 30, "the daemon ready")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
