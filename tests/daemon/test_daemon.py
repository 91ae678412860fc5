"""The daemon end to end against real peers: Orthanc, DCMTK storescp, a local HTTP server.

Outages are made by stopping a real peer; every wait is a poll with a deadline.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monai_slo.config.model import Config, load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.history.evaluation import evaluate_service
from monai_slo.slo.availability import State
from tests.fixtures_dicom import OrthancPeer, SilentListener, StorescpPeer, free_port
from tests.fixtures_http import HttpPeer

INTERVAL = 0.5
TIMEOUT = 0.4

pytestmark = pytest.mark.slow


def wait_until(condition: Callable[[], object], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)  # poll interval; the loop re-checks the condition


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        conn.close()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    for (sample_name, sample_labels), value in samples.items():
        if sample_name == name and set(labels.items()) <= sample_labels:
            return value
    return None


def write_config(
    path: Path,
    listen_port: int,
    checks: str,
    tier: str = "production",
    storage: str = "history.sqlite",
) -> Path:
    path.write_text(
        f"listen: 127.0.0.1:{listen_port}\n"
        f"storage: {storage}\n"
        "flush_interval: 1s\n"
        f"defaults: {{interval: {INTERVAL}s, timeout: {TIMEOUT}s}}\n"
        "environments:\n"
        f"  - name: radiology\n    tier: {tier}\n    window: 1d\n    services:\n"
        f"{checks}"
    )
    return path


@pytest.fixture
def dicom_peers(tmp_path: Path) -> Iterator[tuple[OrthancPeer, StorescpPeer]]:
    with OrthancPeer(tmp_path / "orthanc") as orthanc, StorescpPeer(tmp_path / "storescp") as scp:
        yield orthanc, scp


def test_metrics_for_orthanc_storescp_and_http(
    tmp_path: Path, dicom_peers: tuple[OrthancPeer, StorescpPeer]
) -> None:
    """`run` against real Orthanc, storescp and HTTP exposes the PRODUCT metric names, all up."""
    orthanc, scp = dicom_peers
    with HttpPeer() as web:
        port = free_port()
        config = load_config(
            write_config(
                tmp_path / "c.yaml",
                port,
                (
                    "      - name: pacs\n        checks:\n"
                    f"          - {{name: echo, kind: dicom_echo, host: 127.0.0.1, port: {orthanc.dicom_port}, called_aet: ORTHANC}}\n"
                    f"          - {{name: web, kind: http, url: '{orthanc.url}/system', expect_status: [200]}}\n"
                    "      - name: router\n        checks:\n"
                    f"          - {{name: echo, kind: dicom_echo, host: 127.0.0.1, port: {scp.port}, called_aet: STORESCP}}\n"
                    f"          - {{name: hl7, kind: tcp, host: 127.0.0.1, port: {web.port}}}\n"
                ),
            )
        )
        daemon = Daemon(config)
        daemon.start()
        try:

            def all_up() -> bool:
                s = scrape(port)
                return all(
                    sample(s, "monai_slo_service_up", service=name) == 1
                    for name in ("pacs", "router")
                )

            wait_until(all_up, what="both services up")
            s = scrape(port)
            for check in ("echo", "web"):
                assert (
                    sample(s, "monai_slo_check_up", service="pacs", check=check, tier="production")
                    == 1
                )
                assert (
                    sample(s, "monai_slo_check_runs_total", service="pacs", check=check) or 0
                ) >= 1
            duration = sample(
                s, "monai_slo_check_duration_seconds", service="router", check="echo",
                kind="dicom_echo",
            )  # fmt: skip
            # A loopback C-ECHO: measured, and well inside its timeout.
            assert duration is not None and 0 < duration < 1.0
            assert sample(s, "monai_slo_objective_ratio", service="pacs") == pytest.approx(0.999)
            assert sample(s, "monai_slo_availability_ratio", service="pacs", window="5m") == 1.0
            assert sample(s, "monai_slo_availability_ratio", service="pacs", window="1d") == 1.0
            assert sample(s, "monai_slo_error_budget_remaining_ratio", service="pacs") == 1.0
            assert sample(s, "monai_slo_burn_rate", service="pacs", window="1h") == 0.0
            coverage = sample(s, "monai_slo_data_coverage_ratio", service="pacs", window="5m")
            assert coverage is not None and 0 < coverage < 1
            assert sample(s, "monai_slo_maintenance_active", service="pacs") == 0
            assert sample(s, "monai_slo_build_info") == 1
            assert sample(s, "monai_slo_config_last_reload_successful") == 1
            assert (sample(s, "monai_slo_scheduler_start_lateness_seconds_count") or 0) >= 4
            assert sample(s, "monai_slo_scheduler_missed_runs_total") == 0
            for path, status in (("/-/healthy", 200), ("/-/ready", 200), ("/nope", 404)):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", path)
                assert conn.getresponse().status == status
                conn.close()
        finally:
            daemon.stop()


def test_outage_of_known_length_and_restart(tmp_path: Path) -> None:
    """Stopping storescp for a measured time shows that downtime (within one interval), a
    refused reason, and a restarted daemon keeps the history instead of resetting to 100 %."""
    with StorescpPeer(tmp_path / "scp") as scp:
        _outage_and_restart(tmp_path, scp)


def _outage_and_restart(tmp_path: Path, scp: StorescpPeer) -> None:
    port = free_port()
    path = write_config(
        tmp_path / "c.yaml",
        port,
        (
            "      - name: router\n        checks:\n"
            f"          - {{name: echo, kind: dicom_echo, host: 127.0.0.1, port: {scp.port}, called_aet: STORESCP}}\n"
        ),
    )
    config = load_config(path)
    service = next(config.services())
    daemon = Daemon(config)
    daemon.start()
    key = ("radiology", "router", "echo")
    try:
        wait_until(lambda: daemon.counters.runs.get(key, 0) >= 3, what="three good runs")
        stopped = time.monotonic()
        scp.stop()
        wait_until(
            lambda: daemon.counters.failures.get(key, {}).get("refused", 0) >= 4,
            what="four refused runs",
        )
        scp.start()
        outage = time.monotonic() - stopped
        wait_until(lambda: daemon.counters.last[key].success, what="recovery")
        recovered_runs = daemon.counters.runs[key]
        wait_until(
            lambda: daemon.counters.runs[key] >= recovered_runs + 2, what="runs after recovery"
        )
        report = evaluate_service(service, daemon.store, time.time())
        down = report.slo_window.stats.down
        assert outage - 2 * INTERVAL <= down <= outage + INTERVAL, (down, outage)
        assert report.state is State.UP
        s = scrape(port)
        assert (
            sample(s, "monai_slo_check_failures_total", check="echo", reason="refused") or 0
        ) >= 4
        availability = sample(s, "monai_slo_availability_ratio", service="router", window="5m")
        assert availability is not None and availability < 1
    finally:
        daemon.stop()
    before = report.slo_window.stats
    restarted = Daemon(load_config(path))
    try:
        after = evaluate_service(service, restarted.store, time.time()).slo_window.stats
        assert after.down == pytest.approx(before.down, abs=INTERVAL)
        assert after.up >= before.up - INTERVAL
    finally:
        restarted.stop()


def test_silent_peer_times_out_while_others_keep_schedule(tmp_path: Path) -> None:
    """A peer that accepts and never answers costs its check one deadline per run; the
    other checks keep running on schedule."""
    with SilentListener() as silent, HttpPeer() as web:
        port = free_port()
        config = load_config(
            write_config(
                tmp_path / "c.yaml",
                port,
                (
                    "      - name: hung\n        checks:\n"
                    f"          - {{name: echo, kind: dicom_echo, host: 127.0.0.1, port: {silent.port}}}\n"
                    f"          - {{name: web, kind: http, url: 'http://127.0.0.1:{silent.port}/'}}\n"
                    "      - name: healthy\n        checks:\n"
                    f"          - {{name: web, kind: http, url: '{web.url}/'}}\n"
                ),
            )
        )
        daemon = Daemon(config)
        daemon.start()
        started = time.monotonic()
        try:
            hung = ("radiology", "hung", "echo")
            wait_until(
                lambda: daemon.counters.failures.get(hung, {}).get("timeout", 0) >= 3,
                what="3 timeouts",
            )
            elapsed = time.monotonic() - started
            last = daemon.counters.last[hung]
            assert last.reason == "timeout"
            assert last.duration <= TIMEOUT + 0.5
            healthy_runs = daemon.counters.runs[("radiology", "healthy", "web")]
            # runs start at a phase within the first interval, then every INTERVAL
            assert healthy_runs >= int((elapsed - INTERVAL) / INTERVAL) - 1
            assert daemon.runner.skipped.get(("radiology", "healthy", "web"), 0) == 0
        finally:
            daemon.stop()


def test_run_reload_and_terminate(tmp_path: Path) -> None:
    """`monai-slo run`: SIGHUP picks up a new check; a bad new config keeps the old one running
    and sets config_last_reload_successful to 0; SIGTERM exits 0."""
    with HttpPeer() as web:
        port = free_port()
        one = f"      - name: web\n        checks:\n          - {{name: a, kind: http, url: '{web.url}/'}}\n"
        two = one + f"          - {{name: b, kind: tcp, host: 127.0.0.1, port: {web.port}}}\n"
        path = write_config(tmp_path / "c.yaml", port, one)
        process = subprocess.Popen(
            [sys.executable, "-m", "monai_slo.cli", "run", "-c", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:

            def up(check: str) -> bool:
                try:
                    return sample(scrape(port), "monai_slo_check_up", check=check) == 1
                except OSError:
                    return False

            wait_until(lambda: up("a"), what="check a up")
            write_config(path, port, two)
            process.send_signal(signal.SIGHUP)
            wait_until(lambda: up("b"), what="check b after reload")
            path.write_text(path.read_text().replace("tier: production", "tier: nonsense"))
            process.send_signal(signal.SIGHUP)
            wait_until(
                lambda: sample(scrape(port), "monai_slo_config_last_reload_successful") == 0,
                what="failed reload reported",
            )
            runs = sample(scrape(port), "monai_slo_check_runs_total", check="b") or 0
            wait_until(
                lambda: (sample(scrape(port), "monai_slo_check_runs_total", check="b") or 0) > runs,
                what="old config still running",
            )
            process.send_signal(signal.SIGTERM)
            assert process.wait(15) == 0
            output = process.stdout.read().decode() if process.stdout else ""
            assert "config reload failed" in output and "environments[0].tier" in output
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_reload_keeps_history_of_unchanged_checks(tmp_path: Path) -> None:
    """A good reload adds and removes jobs without a restart; an unchanged check keeps its
    history (same segment, no reset) and a removed check stops running and leaves /metrics."""
    with HttpPeer() as web:
        port = free_port()
        a = f"          - {{name: a, kind: http, url: '{web.url}/'}}\n"
        b = f"          - {{name: b, kind: tcp, host: 127.0.0.1, port: {web.port}}}\n"
        c = f"          - {{name: c, kind: tcp, host: 127.0.0.1, port: {web.port}}}\n"
        path = write_config(
            tmp_path / "c.yaml", port, "      - name: web\n        checks:\n" + a + b
        )
        daemon = Daemon(load_config(path), reload_config=lambda: load_config(path))
        daemon.start()
        try:
            key_a, key_b = ("radiology", "web", "a"), ("radiology", "web", "b")
            wait_until(
                lambda: (
                    daemon.counters.runs.get(key_a, 0) >= 2
                    and daemon.counters.runs.get(key_b, 0) >= 1
                )
            )
            check_id = daemon.store.check_id(key_a)
            first_start = daemon.store.segments([check_id], 0, time.time())[check_id][0].start
            write_config(path, port, "      - name: web\n        checks:\n" + a + c)
            assert daemon.reload()
            runs_b = daemon.counters.runs[key_b]
            runs_a = daemon.counters.runs[key_a]
            wait_until(
                lambda: daemon.counters.runs.get(("radiology", "web", "c"), 0) >= 2,
                what="new check c",
            )
            wait_until(lambda: daemon.counters.runs[key_a] >= runs_a + 2, what="a keeps running")
            assert daemon.counters.runs[key_b] <= runs_b + 1  # at most one run already in flight
            segments = daemon.store.segments([check_id], 0, time.time())[check_id]
            assert len(segments) == 1 and segments[0].start == first_start
            s = scrape(port)
            assert sample(s, "monai_slo_check_up", check="b") is None
            assert sample(s, "monai_slo_check_up", check="c") == 1
        finally:
            daemon.stop()


def test_reload_keeps_the_running_config_on_any_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not only a bad file: any exception while reloading keeps the running config, sets
    monai_slo_config_last_reload_successful to 0 and logs one line without a traceback."""
    with HttpPeer() as web:
        path = write_config(
            tmp_path / "c.yaml",
            0,
            "      - name: web\n        checks:\n"
            f"          - {{name: a, kind: tcp, host: 127.0.0.1, port: {web.port}}}\n",
        )
        config = load_config(path)

        def broken() -> Config:
            raise RecursionError("maximum recursion depth exceeded\nand more")

        daemon = Daemon(config, reload_config=broken)
        daemon.start()
        try:
            with caplog.at_level("ERROR", logger="monai_slo.daemon.daemon"):
                assert daemon.reload() is False
            assert daemon.config is config
            assert daemon.registry.get_sample_value("monai_slo_config_last_reload_successful") == 0
            (record,) = [r for r in caplog.records if "reload failed" in r.getMessage()]
            assert record.getMessage() == (
                "config reload failed, keeping the running config: "
                "RecursionError: maximum recursion depth exceeded"
            )
            assert record.exc_info is None
            runs = daemon.counters.runs.get(("radiology", "web", "a"), 0)
            wait_until(
                lambda: daemon.counters.runs.get(("radiology", "web", "a"), 0) > runs,
                what="checks after the failed reload",
            )
        finally:
            daemon.stop()
