"""Real Prometheus and Alertmanager on loopback, on free ports, with state in a temp dir.

* ``PrometheusServer``: scrapes the given targets every second, evaluates the given rule
  files every second, and sends alerts to an Alertmanager with a 1 s resend delay (Prometheus
  drops alerts fired before it has discovered its Alertmanager and resends only after it).
* ``AlertmanagerServer``: the given config (default: everything to a "null" receiver),
  clustering off so it binds nothing but its web port.

Both are ``_ProcessPeer``s (see fixtures_dicom): ready when ``start()`` returns (polled),
stopped on ``stop()``/``close()`` and at exit, context managers. Debian's packages may also
have started system services on 9090/9093; these never use those ports.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures_dicom import LOOPBACK, _log_tail, _ProcessPeer, free_port, require_binary

__all__ = [
    "AlertmanagerServer",
    "PrometheusServer",
    "alertmanager",
    "http_json",
]

NULL_ALERTMANAGER_CONFIG: dict[str, Any] = {
    "route": {"receiver": "null"},
    "receivers": [{"name": "null"}],
}


def http_json(
    port: int, method: str, path: str, body: Any = None, timeout: float = 5.0
) -> tuple[int, Any]:
    """One request to 127.0.0.1:port; (status, decoded JSON or None)."""
    # http.client, not urllib.request: no proxy from the environment may get in the way.
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, None
    finally:
        conn.close()


def wait_http_ready(
    peer: _ProcessPeer,
    port: int,
    process: subprocess.Popen[bytes],
    timeout: float,
    path: str = "/-/ready",
) -> None:
    """Poll ``path`` until it answers 200; fail with the log's tail if the process exits or
    ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"{type(peer).__name__} exited with {process.returncode}\n{_log_tail(peer.log_path)}"
            )
        try:
            if http_json(port, "GET", path, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"{type(peer).__name__} not ready after {timeout}s\n{_log_tail(peer.log_path)}"
            )
        time.sleep(0.05)  # poll interval, not synchronisation: the loop re-checks


class PrometheusQueryApi:
    """The Prometheus HTTP query API, which Prometheus and VictoriaMetrics both answer."""

    port: int

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, data = http_json(
            self.port, "GET", f"/api/v1/{path}" + (f"?{query}" if query else "")
        )
        assert status == 200 and data["status"] == "success", (status, data)
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: [{'metric': {...}, 'value': [ts, 'v']}, ...]."""
        result = self.api("query", query=expr)
        assert result["resultType"] == "vector", result
        return list(result["result"])


class AlertmanagerServer(_ProcessPeer):
    """Alertmanager with ``config`` (a mapping written as alertmanager.yml)."""

    def __init__(self, workdir: Path | None = None, config: dict[str, Any] | None = None) -> None:
        super().__init__(workdir)
        self.binary = require_binary("prometheus-alertmanager", "/usr/bin/alertmanager")
        self.config = config or NULL_ALERTMANAGER_CONFIG
        self.port = free_port()
        self.config_path = self.workdir / "alertmanager.yml"

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _command(self) -> list[str]:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        storage = self.workdir / "data"
        storage.mkdir(exist_ok=True)
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={storage}",
            f"--web.listen-address={self.address}",
            "--cluster.listen-address=",  # no gossip port: a single instance
            "--log.level=warn",
        ]

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        wait_http_ready(self, self.port, process, timeout)

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (active, silenced and inhibited alerts; resolved ones drop out)."""
        query = urllib.parse.urlencode(filters)
        status, data = http_json(
            self.port, "GET", "/api/v2/alerts" + (f"?{query}" if query else "")
        )
        assert status == 200, (status, data)
        return list(data)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        status, data = http_json(self.port, "POST", "/api/v2/alerts", alerts)
        assert status == 200, (status, data)


class PrometheusServer(PrometheusQueryApi, _ProcessPeer):
    """Prometheus scraping ``targets`` (job ``job``) with ``rule_files``, 1 s everything;
    ``scrape_configs``, when given, replaces the one job (labelled targets, federation)."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        targets: Sequence[str] = (),
        rule_files: Sequence[Path] = (),
        scrape_configs: list[dict[str, Any]] | None = None,
        alertmanager: str | None = None,
        job: str = "monai-slo",
        interval: str = "1s",
    ) -> None:
        super().__init__(workdir)
        self.binary = require_binary("prometheus")
        self.port = free_port()
        self.config: dict[str, Any] = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": scrape_configs
            or [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
        }
        if alertmanager is not None:
            self.config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]
            }
        self.config_path = self.workdir / "prometheus.yml"

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _command(self) -> list[str]:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--rules.alert.resend-delay=1s",
            "--log.level=warn",
        ]

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        wait_http_ready(self, self.port, process, timeout)

    def alertmanagers(self) -> list[str]:
        """URLs of the Alertmanagers Prometheus has discovered and will send to."""
        return [am["url"] for am in self.api("alertmanagers")["activeAlertmanagers"]]


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[AlertmanagerServer]:
    """A running Alertmanager routing everything to a "null" receiver."""
    with AlertmanagerServer(tmp_path / "alertmanager") as running:
        yield running
