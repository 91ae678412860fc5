"""Alerting end to end: real Orthanc -> the daemon -> real Prometheus with the generated rules
-> real Alertmanager with the shipped routing -> a webhook standing in for the pager.

The test config uses objective 99 % over a 180-day window: the burn-rate factors scale with
the window (x6 here), so a page needs most of the short history measured so far to be down,
and recovery clears it within seconds. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.outputs.rules import RULES_FILE, render_rules
from tests.fixtures_dicom import OrthancPeer, free_port
from tests.fixtures_http import HttpPeer
from tests.fixtures_prometheus import AlertmanagerServer, PrometheusServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHIPPED_ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
SERVICE = {"environment": "radiology", "service": "pacs"}


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)  # poll interval; the loop re-checks the condition


def alertmanager_config(webhook: HttpPeer) -> dict[str, Any]:
    """The shipped routing, with its receivers pointed at ``webhook`` and no batching delay."""
    config: dict[str, Any] = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook.url + receiver["name"]

    def fast(route: dict[str, Any]) -> None:
        route.update(group_wait="0s", group_interval="1s")
        for child in route.get("routes", []):
            fast(child)

    fast(config["route"])
    return config


def service_alerts(am: AlertmanagerServer, **labels: str) -> list[dict[str, Any]]:
    """Alerts Alertmanager holds for the pacs service (active, inhibited or silenced)."""
    wanted = {**SERVICE, **labels}
    return [a for a in am.alerts() if all(a["labels"].get(k) == v for k, v in wanted.items())]


def notifications(webhook: HttpPeer, receiver: str, status: str) -> list[dict[str, Any]]:
    """Webhook payloads ``receiver`` got with ``status`` (firing/resolved) for pacs pages."""
    found = []
    for request in list(webhook.requests):
        if request.path != f"/{receiver}":
            continue
        payload = json.loads(request.body)
        if payload["status"] == status and payload["commonLabels"].get("service") == "pacs":
            found.append(payload)
    return found


def write_config(path: Path, port: int, orthanc: OrthancPeer) -> Path:
    path.write_text(
        f"listen: 127.0.0.1:{port}\n"
        "storage: history.sqlite\n"
        "flush_interval: 1s\n"
        "retention: 180d\n"
        "defaults: {interval: 500ms, timeout: 400ms}\n"
        "environments:\n"
        "  - name: radiology\n"
        "    tier: production\n"
        "    objective: 99\n"
        "    window: 180d\n"
        "    services:\n"
        "      - name: pacs\n"
        "        checks:\n"
        f"          - {{name: echo, kind: dicom_echo, host: 127.0.0.1, "
        f"port: {orthanc.dicom_port}, called_aet: ORTHANC}}\n"
    )
    return path


def test_outage_pages_recovery_resolves_and_maintenance_keeps_it_silent(tmp_path: Path) -> None:
    """Stopping Orthanc makes a page for the production service arrive in Alertmanager (and
    at the pager webhook, routed by the shipped config) within seconds; restarting Orthanc
    resolves it; with a maintenance window started from the CLI, the same outage stays
    silent for longer than the page took to arrive."""
    with (
        HttpPeer() as webhook,
        OrthancPeer(tmp_path / "orthanc") as orthanc,
        AlertmanagerServer(tmp_path / "alertmanager", alertmanager_config(webhook)) as am,
    ):
        port = free_port()
        config_path = write_config(tmp_path / "config.yaml", port, orthanc)
        config = load_config(config_path)
        rules = tmp_path / RULES_FILE
        rules.write_text(render_rules(config))
        daemon = Daemon(config)
        daemon.start()
        try:
            with PrometheusServer(
                tmp_path / "prometheus",
                targets=[f"127.0.0.1:{port}"],
                rule_files=[rules],
                alertmanager=am.address,
            ) as prometheus:
                # Alerts fired before Prometheus knows its Alertmanager would be dropped.
                wait_until(prometheus.alertmanagers, 15, "Prometheus to discover Alertmanager")
                wait_until(
                    lambda: prometheus.query('monai_slo_service_up{service="pacs"} == 1'),
                    15,
                    "Prometheus to scrape pacs up",
                )

                # 1. An outage pages.
                orthanc.stop(kill=True)
                stopped = time.monotonic()
                pages = wait_until(
                    lambda: service_alerts(am, severity="page"), 30, "a page in Alertmanager"
                )
                page_after = time.monotonic() - stopped
                page = pages[0]
                assert page["labels"]["alertname"] == "MonaiSloErrorBudgetBurn"
                assert page["labels"]["tier"] == "production"
                assert page["status"]["state"] == "active"
                assert page["annotations"]["budget_left"].endswith("%")
                wait_until(
                    lambda: notifications(webhook, "pager", "firing"), 15, "the pager webhook"
                )

                # 2. Recovery resolves it.
                orthanc.start()
                wait_until(
                    lambda: not service_alerts(am, severity="page"), 40, "the page to resolve"
                )
                wait_until(
                    lambda: notifications(webhook, "pager", "resolved"),
                    15,
                    "the resolved notification",
                )

                # 3. The same outage inside a maintenance window started from the CLI.
                command = ["maintenance", "-c", str(config_path), "start", "--service", "pacs"]
                command += ["--for", "1h", "--reason", "e2e test"]
                result = subprocess.run(
                    [sys.executable, "-m", "monai_slo.cli", *command],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    check=False,
                )
                assert result.returncode == 0, result.stdout + result.stderr
                wait_until(
                    lambda: service_alerts(am, alertname="MonaiSloMaintenance"),
                    15,
                    "MonaiSloMaintenance in Alertmanager",
                )
                pager_firing = len(notifications(webhook, "pager", "firing"))
                orthanc.stop(kill=True)
                # Wait until Prometheus has seen the check down for longer than the page took.
                down_for = math.ceil(page_after) + 2
                wait_until(
                    lambda: prometheus.query(
                        f'max_over_time(monai_slo_check_up{{service="pacs"}}[{down_for}s]) == 0'
                    ),
                    down_for + 15,
                    f"Prometheus to see pacs down for {down_for}s",
                )
                held_back = prometheus.query(
                    'ALERTS{service="pacs", alertname!="MonaiSloMaintenance"}'
                )
                assert held_back == [], held_back
                assert service_alerts(am, severity="page") == []
                assert len(notifications(webhook, "pager", "firing")) == pager_firing
        finally:
            daemon.stop()


def test_alertmanager_inhibits_check_alerts_during_maintenance(tmp_path: Path) -> None:
    """With the shipped config, MonaiSloMaintenance inhibits the service's check and burn
    alerts (not another service's), and a page inhibits its service's burn tickets."""
    with (
        HttpPeer() as webhook,
        AlertmanagerServer(tmp_path / "am", alertmanager_config(webhook)) as am,
    ):

        def alert(name: str, service: str, **labels: str) -> dict[str, Any]:
            return {
                "labels": {
                    "alertname": name,
                    "environment": "radiology",
                    "tier": "production",
                    "service": service,
                    **labels,
                }
            }

        am.post_alerts(
            [
                alert("MonaiSloMaintenance", "pacs", severity="info"),
                alert("MonaiSloCheckDown", "pacs", severity="ticket", check="echo"),
                alert("MonaiSloGpuFatal", "pacs", severity="page", check="gpus"),
                alert("MonaiSloCheckDown", "router", severity="ticket", check="echo"),
                alert("MonaiSloErrorBudgetBurn", "router", severity="page", long_window="1h"),
                alert("MonaiSloErrorBudgetBurn", "router", severity="ticket", long_window="1d"),
            ]
        )

        def states() -> dict[tuple[str, str, str], str]:
            return {
                (a["labels"]["alertname"], a["labels"]["service"], a["labels"]["severity"]): a[
                    "status"
                ]["state"]
                for a in am.alerts()
            }

        expected = {
            ("MonaiSloMaintenance", "pacs", "info"): "active",
            ("MonaiSloCheckDown", "pacs", "ticket"): "suppressed",
            ("MonaiSloGpuFatal", "pacs", "page"): "suppressed",
            ("MonaiSloCheckDown", "router", "ticket"): "active",
            ("MonaiSloErrorBudgetBurn", "router", "page"): "active",
            ("MonaiSloErrorBudgetBurn", "router", "ticket"): "suppressed",
        }
        # Inhibition is evaluated as alerts arrive; poll until all six are processed.
        wait_until(lambda: states() == expected, 10, f"inhibition states {expected}")
