"""Values a real daemon serves on /metrics, read back over HTTP from its own listener: the TLS
certificate expiry of an HTTPS peer (for the http and tcp kinds) and check durations that are
what the peer made them, not merely present."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from tests.fixtures_http import HttpPeer

pytestmark = pytest.mark.slow

EXPIRY = "monai_slo_tls_cert_expiry_timestamp_seconds"
DURATION = "monai_slo_check_duration_seconds"
PEER_DELAY = 0.3
TIMEOUT = 1.5


def _scrape(port: int) -> dict[str, dict[str, tuple[str, float]]]:
    """{family: {check: (family type, value)}} from the daemon's /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        conn.close()
    found: dict[str, dict[str, tuple[str, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "check" in sample.labels and sample.name == family.name:
                found.setdefault(family.name, {})[sample.labels["check"]] = (
                    family.type,
                    sample.value,
                )
    return found


@pytest.fixture
def daemon(tmp_path: Path, https_peer: HttpPeer, http_peer: HttpPeer) -> Iterator[Daemon]:
    """A daemon probing the HTTPS peer with http (`web`) and with a TLS handshake (`tls`),
    and a plain HTTP peer that answers after PEER_DELAY (`slow`)."""
    http_peer.delay = PEER_DELAY
    config = tmp_path / "config.yaml"
    config.write_text(
        f"listen: 127.0.0.1:0\nstorage: {tmp_path / 'history.sqlite'}\n"
        f"defaults: {{interval: 2s, timeout: {TIMEOUT}s}}\n"
        "environments:\n  - name: prod\n    tier: production\n    services:\n"
        "      - name: portal\n        checks:\n"
        f"          - {{name: web, kind: http, url: '{https_peer.url}/', "
        f"ca_file: '{https_peer.ca_file}'}}\n"
        f"          - {{name: tls, kind: tcp, host: 127.0.0.1, port: {https_peer.port}, "
        f"tls: true, ca_file: '{https_peer.ca_file}'}}\n"
        f"          - {{name: slow, kind: http, url: '{http_peer.url}/'}}\n"
    )
    running = Daemon(load_config(config))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _wait_for_all(port: int) -> dict[str, dict[str, tuple[str, float]]]:
    deadline = time.monotonic() + 20
    while True:
        found = _scrape(port)
        if set(found.get(DURATION, {})) >= {"web", "tls", "slow"}:
            return found
        assert time.monotonic() < deadline, f"no result for every check: {found.get(DURATION)}"
        time.sleep(0.05)  # poll interval


def test_tls_expiry_on_metrics_is_the_peer_certificates_not_after(
    daemon: Daemon, https_peer: HttpPeer
) -> None:
    """/metrics carries monai_slo_tls_cert_expiry_timestamp_seconds, a gauge, for the http and
    the tcp+TLS check of an HTTPS peer, equal to its certificate's notAfter (epoch seconds);
    the plain-HTTP check has none."""
    found = _wait_for_all(daemon.server.port)
    assert https_peer.cert_not_after is not None
    assert found[EXPIRY] == {
        "web": ("gauge", https_peer.cert_not_after),
        "tls": ("gauge", https_peer.cert_not_after),
    }


def test_durations_on_metrics_are_what_the_peer_took(daemon: Daemon) -> None:
    """The slow peer's check lasted at least its PEER_DELAY and less than its timeout; the
    prompt peers' checks took more than nothing and well under the slow one."""
    durations = {
        check: value for check, (_, value) in _wait_for_all(daemon.server.port)[DURATION].items()
    }
    assert PEER_DELAY <= durations["slow"] < TIMEOUT, durations
    for check in ("web", "tls"):
        assert 0 < durations[check] < PEER_DELAY, durations
