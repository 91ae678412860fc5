"""The latency alert end to end: canaries through a real Orthanc router and an AI application
into a real Orthanc PACS, followed by the daemon; real Prometheus with the generated rules;
real Alertmanager with the shipped routing; a webhook as the pager.

The flow first runs within its threshold; then the AI application answers later than the
threshold (the result still arrives, well within the timeout). The latency SLI falls, its burn
rate rises past the page factor, MonaiSloLatencyBudgetBurn pages, and availability stays whole
(no availability alert). A 30-day SLO window keeps the page factor at 14.4, so the page needs
about a seventh of the short history to be slow. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.rules import RULES_FILE, render_rules
from tests.e2e.test_alerting_e2e import alertmanager_config, wait_until
from tests.fixtures_dicom import LOOPBACK, OrthancPeer, free_port
from tests.fixtures_http import HttpPeer
from tests.fixtures_prometheus import AlertmanagerServer, PrometheusServer
from tests.fixtures_study_flow import AiApplication, OrthancRouter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

THRESHOLD = 1.0
SLOW_DELAY = 1.5  # the AI application's answer: past the threshold, within the timeout
WHERE = '{environment="radiology", service="flow", check="roundtrip"}'


def write_config(path: Path, port: int, router: OrthancRouter, pacs: OrthancPeer) -> Path:
    check = {
        "name": "roundtrip",
        "kind": "study_flow",
        "interval": "500ms",
        "timeout": "4s",
        "poll": "100ms",
        "send": {"host": LOOPBACK, "port": router.dicom_port, "called_aet": router.aet},
        "arrive": [
            {
                "name": "ai-result",
                "host": LOOPBACK,
                "port": pacs.dicom_port,
                "called_aet": pacs.aet,
                "series_modality": "SR",
            }
        ],
        "latency": {"threshold": f"{THRESHOLD}s", "objective": 99},
    }
    config = {
        "listen": f"127.0.0.1:{port}",
        "storage": str(path.parent / "history.sqlite"),
        "flush_interval": "1s",
        "environments": [
            {
                "name": "radiology",
                "tier": "production",
                "objective": 99,
                "window": "30d",
                "services": [{"name": "flow", "checks": [check]}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def paged(webhook: HttpPeer) -> bool:
    """The pager receiver got a firing latency page for the flow service."""
    for request in list(webhook.requests):
        payload = json.loads(request.body) if request.path == "/pager" else {}
        labels = payload.get("commonLabels", {})
        if payload.get("status") == "firing" and labels.get("service") == "flow":
            return bool(labels.get("alertname") == "MonaiSloLatencyBudgetBurn")
    return False


def value(prometheus: PrometheusServer, expr: str) -> float | None:
    vector = prometheus.query(expr)
    return float(vector[0]["value"][1]) if vector else None


def test_slow_flow_pages_through_prometheus_and_alertmanager(tmp_path: Path) -> None:
    """Canaries slowed past the threshold: monai_slo_latency_ratio falls, the latency burn
    rate rises, availability stays 1, and MonaiSloLatencyBudgetBurn (page) reaches
    Alertmanager and the pager webhook; the availability alert stays silent."""
    with (
        HttpPeer() as webhook,
        OrthancPeer(tmp_path / "pacs", aet="PACS") as pacs,
        AiApplication(result_to=("PACS", LOOPBACK, pacs.dicom_port), delay=0.0) as ai,
        OrthancRouter(
            tmp_path / "router", targets={"ai": (ai.aet, LOOPBACK, ai.dicom_port)}
        ) as router,
        AlertmanagerServer(tmp_path / "alertmanager", alertmanager_config(webhook)) as am,
    ):
        port = free_port()
        config = load_config(write_config(tmp_path / "config.yaml", port, router, pacs))
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
                wait_until(prometheus.alertmanagers, 15, "Prometheus to discover Alertmanager")
                fast = f'{m.LATENCY_RATIO}{{window="5m", service="flow"}} == 1'
                wait_until(lambda: prometheus.query(fast), 20, "fast canaries scraped")
                assert value(prometheus, f"max({m.LATENCY_BURN_RATE}{WHERE})") == 0

                ai.delay = SLOW_DELAY
                slowed = time.monotonic()
                pages = wait_until(
                    lambda: [
                        a
                        for a in am.alerts()
                        if a["labels"].get("alertname") == "MonaiSloLatencyBudgetBurn"
                        and a["labels"].get("severity") == "page"
                    ],
                    45,
                    "a latency page in Alertmanager",
                )
                fired_after = time.monotonic() - slowed
                print(f"MonaiSloLatencyBudgetBurn page {fired_after:.1f}s after the slowdown")
                page = pages[0]
                assert page["labels"]["check"] == "roundtrip"
                assert page["labels"]["service"] == "flow"
                assert page["labels"]["long_window"] in {"1h", "6h"}  # the two page rows
                assert page["annotations"]["budget_left"].endswith("%")
                wait_until(lambda: paged(webhook), 15, "the pager webhook")

                ratio = value(prometheus, f'{m.LATENCY_RATIO}{{window="5m", service="flow"}}')
                assert ratio is not None and ratio < 1 - 6 * 0.01  # below the 6x page row
                long_window = page["labels"]["long_window"]
                factor = {"1h": 14.4, "6h": 6.0}[long_window]
                burning = f'{m.LATENCY_BURN_RATE}{{window="{long_window}", service="flow"}}'
                burn = value(prometheus, burning)
                assert burn is not None and burn > factor
                availability = f'{m.AVAILABILITY_RATIO}{{service="flow", window="1h"}}'
                assert value(prometheus, availability) == 1.0
                assert value(prometheus, f"min_over_time({m.CHECK_UP}{WHERE}[1m])") == 1.0
                alerts = {a["labels"]["alertname"] for a in am.alerts()}
                assert "MonaiSloErrorBudgetBurn" not in alerts
                assert "MonaiSloCheckDown" not in alerts
                assert ai.results_sent >= 1
        finally:
            daemon.stop()


def http_config(path: Path, port: int, url: str) -> Path:
    """One prober's config: the same check, pointed at this prober's own way to the peer."""
    check = {
        "name": "web",
        "kind": "http",
        "url": url,
        "interval": "500ms",
        "timeout": "400ms",
        "latency": {"threshold": "50ms", "objective": 99},
    }
    config = {
        "listen": f"127.0.0.1:{port}",
        "storage": str(path.parent / f"history-{port}.sqlite"),
        "flush_interval": "1s",
        "environments": [
            {
                "name": "radiology",
                "tier": "production",
                "window": "30d",
                "services": [{"name": "viewer", "checks": [check]}],
            }
        ],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_one_prober_slow_on_its_own_link_does_not_page(tmp_path: Path) -> None:
    """Two probers of one service (two daemons, one Prometheus job): the first reaches the
    peer over a slow link. Its own latency burn rate passes the page factor, but the fleet's
    (alerting.quorum: all) stays 0 and MonaiSloLatencyBudgetBurn stays silent; once the
    second prober's way is slow too, the fleet burns and the page fires."""
    with HttpPeer() as slow_link, HttpPeer() as good_link:
        slow_link.delay = 0.15
        ports = [free_port(), free_port()]
        configs = [
            load_config(http_config(tmp_path / f"p{i}.yaml", port, peer.url + "health"))
            for i, (port, peer) in enumerate(zip(ports, (slow_link, good_link), strict=True))
        ]
        rules = tmp_path / RULES_FILE
        rules.write_text(render_rules(configs[0]))
        daemons = [Daemon(config) for config in configs]
        for daemon in daemons:
            daemon.start()
        try:
            with PrometheusServer(
                tmp_path / "prometheus",
                targets=[f"127.0.0.1:{port}" for port in ports],
                rule_files=[rules],
            ) as prometheus:
                own = f'{m.LATENCY_BURN_RATE}{{instance="127.0.0.1:{ports[0]}", window="5m"}}'
                wait_until(lambda: (value(prometheus, own) or 0) > 14.4, 30, "prober 1 burning")
                fleet = f'{m.RECORDED_FLEET_LATENCY_BURN_RATE}{{service="viewer", window="5m"}}'
                other = f'{m.LATENCY_BURN_RATE}{{instance="127.0.0.1:{ports[1]}", window="5m"}}'
                wait_until(lambda: value(prometheus, other) == 0, 30, "prober 2 fast")
                wait_until(lambda: value(prometheus, fleet) == 0, 30, "the fleet burn rate")
                assert prometheus.query('ALERTS{alertname="MonaiSloLatencyBudgetBurn"}') == []

                good_link.delay = 0.15  # now every prober's way is slow
                firing = 'ALERTS{alertname="MonaiSloLatencyBudgetBurn", alertstate="firing"}'
                [alert] = wait_until(
                    lambda: [
                        a
                        for a in prometheus.query(firing)
                        if a["metric"].get("long_window") == "1h"
                    ],
                    30,
                    "the fleet's latency page",
                )
                assert alert["metric"]["severity"] == "page"
                assert (value(prometheus, fleet) or 0) > 14.4
        finally:
            for daemon in daemons:
                daemon.stop()
