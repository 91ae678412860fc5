"""Real VictoriaMetrics on loopback, on free ports, with state in a temp dir.

* ``VictoriaMetricsServer``: single-node storage and query API (Prometheus-compatible
  ``/api/v1/query``), answering queries up to 1 s old (its default hides the last 30 s).
* ``VmAgent``: scrapes the given ``scrape_configs`` every second and remote-writes them to
  a VictoriaMetrics.
* ``VmAlert``: evaluates rule files every second against a VictoriaMetrics, writes recorded
  series and alert state back to it and notifies an Alertmanager.

All are ``_ProcessPeer``s (see fixtures_dicom): ready when ``start()`` returns (``/health``
polled), stopped on ``stop()``/``close()`` and at exit, context managers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures_dicom import LOOPBACK, _ProcessPeer, free_port, require_binary
from tests.fixtures_prometheus import PrometheusQueryApi, http_json, wait_http_ready

__all__ = ["VictoriaMetricsServer", "VmAgent", "VmAlert"]


class _VmPeer(_ProcessPeer):
    port: int

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        wait_http_ready(self, self.port, process, timeout, "/health")


class VictoriaMetricsServer(PrometheusQueryApi, _VmPeer):
    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.binary = require_binary("victoria-metrics")
        self.port = free_port()

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"-storageDataPath={self.workdir / 'data'}",
            f"-httpListenAddr={self.address}",
            "-retentionPeriod=1d",
            # Answer from data up to 1 s old (default 30 s): the tests read what was just written.
            "-search.latencyOffset=1s",
            "-search.disableCache",
            "-loggerLevel=WARN",
        ]


class VmAgent(_VmPeer):
    def __init__(
        self,
        workdir: Path | None = None,
        *,
        scrape_configs: list[dict[str, Any]],
        remote_write: str,
        interval: str = "1s",
    ) -> None:
        super().__init__(workdir)
        self.binary = require_binary("vmagent")
        self.port = free_port()
        self.remote_write = remote_write
        self.config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval},
            "scrape_configs": scrape_configs,
        }
        self.config_path = self.workdir / "scrape.yml"

    def _command(self) -> list[str]:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return [
            self.binary,
            f"-promscrape.config={self.config_path}",
            f"-remoteWrite.url={self.remote_write}/api/v1/write",
            f"-remoteWrite.tmpDataPath={self.workdir / 'queue'}",
            "-remoteWrite.flushInterval=1s",
            f"-httpListenAddr={self.address}",
            "-loggerLevel=WARN",
        ]


class VmAlert(_VmPeer):
    def __init__(
        self,
        workdir: Path | None = None,
        *,
        rule_files: Sequence[Path],
        victoria_metrics: str,
        alertmanager: str,
        interval: str = "1s",
        query_step: str = "5s",
    ) -> None:
        super().__init__(workdir)
        self.binary = require_binary("vmalert")
        self.query_step = query_step
        self.port = free_port()
        self.rule_files = list(rule_files)
        self.victoria_metrics = victoria_metrics
        self.alertmanager = alertmanager
        self.interval = interval

    def _command(self) -> list[str]:
        return [
            self.binary,
            *(f"-rule={path}" for path in self.rule_files),
            f"-datasource.url={self.victoria_metrics}",
            f"-remoteWrite.url={self.victoria_metrics}",
            f"-remoteRead.url={self.victoria_metrics}",
            "-remoteWrite.flushInterval=1s",
            f"-notifier.url=http://{self.alertmanager}",
            f"-evaluationInterval={self.interval}",
            # How far back an instant query looks for a series' latest sample: longer than
            # the few seconds a recorded sample takes to be written back and become
            # searchable, or each chained rule would miss the one before it.
            f"-datasource.queryStep={self.query_step}",
            f"-httpListenAddr={self.address}",
            "-loggerLevel=WARN",
        ]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) vmalert holds: /api/v1/alerts."""
        status, data = http_json(self.port, "GET", "/api/v1/alerts")
        assert status == 200, (status, data)
        return list(data["data"]["alerts"])
