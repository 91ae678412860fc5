"""The fleet SLI end to end on real engines: three real `monai-slo run` probers -> real
Prometheus federation (two site servers, one central evaluating the generated rules) and
real VictoriaMetrics (vmagent -> victoria-metrics, vmalert with the same rules) -> a real
Alertmanager per engine.

The probers check one real HTTP server, each through its own loopback proxy, so cutting a
proxy breaks that prober's path only. The ground truth is the script's schedule:

1. prober p1's path cut: only it sees the service down;
2. p2's path cut, then p3's, at different times;
3. the service itself answers 503 to everyone (the real outage);
4. p3 killed: no data from it, never downtime;
5. a maintenance window started once (on every prober), and a second outage inside it.

Both engines watch the same run (one scenario, about 90 s). Every wait is a poll with a
deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from monai_slo.config.model import load_config
from monai_slo.history.store import HistoryStore
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.fleet_view import fleet_report
from monai_slo.outputs.prometheus_source import PrometheusSource
from monai_slo.outputs.report import build_report, parse_period
from monai_slo.outputs.rules import RULES_FILE, render_rules
from tests.fixtures_dicom import LOOPBACK, free_port
from tests.fixtures_http import HttpPeer
from tests.fixtures_net import CuttableProxy
from tests.fixtures_prometheus import AlertmanagerServer, PrometheusServer, http_json
from tests.fixtures_victoriametrics import VictoriaMetricsServer, VmAgent, VmAlert

pytestmark = pytest.mark.slow

JOB = "monai-slo"
PROBERS = ("p1", "p2", "p3")
SERVICE = 'environment="radiology", service="pacs"'
CHECK_INTERVAL = 0.5
EVALUATION = 1.0  # every engine evaluates and scrapes every second


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)  # poll interval; the loop re-checks the condition


def write_config(path: Path, port: int, target: int) -> Path:
    """One prober's config: the same environment, service and check for every prober, its
    own listen port, history file and path (proxy) to the peer."""
    path.write_text(
        f"listen: {LOOPBACK}:{port}\n"
        "storage: history.sqlite\n"
        "flush_interval: 1s\n"
        f"defaults: {{interval: {CHECK_INTERVAL}s, timeout: 400ms}}\n"
        "environments:\n"
        "  - name: radiology\n"
        "    tier: production\n"
        "    objective: 99\n"
        "    window: 30d\n"
        "    services:\n"
        "      - name: pacs\n"
        "        checks:\n"
        f"          - {{name: web, kind: http, url: 'http://{LOOPBACK}:{target}/'}}\n"
    )
    return path


@dataclass
class Prober:
    name: str
    config: Path
    port: int
    proxy: CuttableProxy
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return monai_slo(*args, cwd=self.config.parent)

    def start(self) -> None:
        log = (self.config.parent / "daemon.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monai_slo.cli", "run", "-c", str(self.config)],
            cwd=self.config.parent,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
        log.close()

    def ready(self) -> bool:
        try:
            return http_json(self.port, "GET", "/-/ready", timeout=1.0)[0] == 200
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def monai_slo(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monai_slo.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        cwd=cwd,
        check=False,
    )


@dataclass
class Engine:
    """One engine's query API and Alertmanager, named for messages."""

    name: str
    url: str
    query: Callable[[str], list[dict[str, Any]]]
    alertmanager: AlertmanagerServer
    ruler: int
    """Port of the rule evaluator's API (/api/v1/rules on Prometheus, vmalert)."""
    pages_seen: list[float] = field(default_factory=list)

    def value(self, expr: str) -> float | None:
        found = self.query(expr)
        return float(found[0]["value"][1]) if found else None

    def fleet(self, name: str, window: str | None = None) -> float | None:
        extra = f', window="{window}"' if window else ""
        return self.value(f"{name}{{{SERVICE}{extra}}}")

    def rule_errors(self) -> list[str]:
        """Rules whose last evaluation failed, with the error."""
        status, data = http_json(self.ruler, "GET", "/api/v1/rules")
        assert status == 200, (status, data)
        return [
            f"{rule['name']}: {rule.get('lastError')}"
            for group in data["data"]["groups"]
            for rule in group["rules"]
            if rule.get("lastError")
        ]

    def raw(self, expr: str) -> list[dict[str, Any]]:
        """A range selector's raw samples: [{'metric': {...}, 'values': [[ts, 'v'], ...]}]."""
        port = int(self.url.rsplit(":", 1)[1])
        status, data = http_json(
            port, "GET", "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        )
        assert status == 200 and data["data"]["resultType"] == "matrix", (status, data)
        return list(data["data"]["result"])

    def pages(self) -> list[dict[str, Any]]:
        return [
            a
            for a in self.alertmanager.alerts()
            if a["labels"].get("service") == "pacs"
            and a["labels"].get("severity") == "page"
            and a["status"]["state"] == "active"
        ]


def scrape_job(targets: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    """The probers' job, each target with its ``prober`` label (as in deploy/)."""
    return {
        "job_name": JOB,
        "static_configs": [
            {"targets": [address], "labels": {"prober": name}} for name, address in targets
        ],
        **extra,
    }


@contextmanager
def fleet(tmp_path: Path, peer: HttpPeer) -> Iterator[tuple[list[Prober], list[Engine]]]:
    """Three probers and both engines running, every engine seeing all three probers."""
    with ExitStack() as stack:
        probers = []
        for name in PROBERS:
            proxy = stack.enter_context(CuttableProxy(peer.port))
            home = tmp_path / name
            home.mkdir()
            port = free_port()
            probers.append(
                Prober(name, write_config(home / "config.yaml", port, proxy.port), port, proxy)
            )
        rules = tmp_path / RULES_FILE
        rules.write_text(render_rules(load_config(probers[0].config)))
        for prober in probers:
            prober.start()
            stack.callback(prober.stop)
        # Prometheus federation: site a scrapes p1, site b p2 and p3; the centre federates.
        sites = [
            stack.enter_context(
                PrometheusServer(
                    tmp_path / f"site-{site}",
                    scrape_configs=[scrape_job([(p.name, p.address) for p in members])],
                )
            )
            for site, members in (("a", probers[:1]), ("b", probers[1:]))
        ]
        prom_am = stack.enter_context(AlertmanagerServer(tmp_path / "am-prometheus"))
        central = stack.enter_context(
            PrometheusServer(
                tmp_path / "central",
                rule_files=[rules],
                alertmanager=prom_am.address,
                scrape_configs=[
                    {
                        "job_name": "federate",
                        "honor_labels": True,
                        "metrics_path": "/federate",
                        "params": {"match[]": [f'{{job="{JOB}"}}']},
                        "static_configs": [{"targets": [s.address for s in sites]}],
                    }
                ],
            )
        )
        # VictoriaMetrics: one vmagent per site remote-writing to the central storage.
        vm = stack.enter_context(VictoriaMetricsServer(tmp_path / "vm"))
        for site, members in (("a", probers[:1]), ("b", probers[1:])):
            stack.enter_context(
                VmAgent(
                    tmp_path / f"vmagent-{site}",
                    scrape_configs=[scrape_job([(p.name, p.address) for p in members])],
                    remote_write=vm.url,
                )
            )
        vm_am = stack.enter_context(AlertmanagerServer(tmp_path / "am-vm"))
        vmalert = stack.enter_context(
            VmAlert(
                tmp_path / "vmalert",
                rule_files=[rules],
                victoria_metrics=vm.url,
                alertmanager=vm_am.address,
            )
        )
        engines = [
            Engine("prometheus", f"http://{central.address}", central.query, prom_am, central.port),
            Engine("victoriametrics", vm.url, vm.query, vm_am, vmalert.port),
        ]
        wait_until(lambda: all(p.ready() for p in probers), 30, "the probers to be ready")
        for engine in engines:
            wait_until(
                lambda engine=engine: engine.fleet(m.RECORDED_FLEET_SERVICE_REPORTING) == 3,
                60,
                f"{engine.name} to fold three probers",
            )
        yield probers, engines


def hold(seconds: float) -> None:
    """Keep a scripted fault in place for its planned duration (the ground truth)."""
    time.sleep(seconds)


def down_samples(engine: Engine, since: float) -> tuple[int, int]:
    """(down, total) fleet SLI samples the engine recorded since ``since`` (epoch s)."""
    span = max(1, round(time.time() - since))
    found = engine.raw(f"{m.RECORDED_FLEET_SERVICE_SLI}{{{SERVICE}}}[{span}s]")
    values = [float(v) for series in found for _, v in series["values"]]
    return sum(1 for v in values if v == 0), len(values)


OUTAGE = 20.0


@pytest.mark.timeout(360)
def test_fleet_sli_on_federation_and_victoriametrics(tmp_path: Path) -> None:
    """Single-prober faults never page and add no fleet downtime; the real outage pages on
    both engines and reads as its scheduled length; a killed prober leaves the fold; a
    maintenance window silences the page everywhere and its outage is not counted."""
    with HttpPeer() as peer, fleet(tmp_path, peer) as (probers, engines):
        p1, p2, p3 = probers
        for engine in engines:
            wait_until(
                lambda engine=engine: engine.fleet(m.RECORDED_FLEET_SERVICE_SLI) == 1,
                90,
                f"{engine.name} to record the fleet SLI",
            )
        begin = time.time()

        # 1-2. One prober's own path broken, then two others' at different times.
        for prober in probers:
            seconds = CUTS[prober.name]
            prober.proxy.cut()
            hold(seconds)
            prober.proxy.restore()
        own = json.loads(p1.cli("status", "-c", str(p1.config), "-o", "json").stdout)
        (pacs,) = own["services"]
        assert pacs["windows"]["5m"]["availability_ratio"] < 1, "p1 never saw its cut"
        # Every stage of the chain up to the page's burn rates exists before the outage.
        for engine in engines:
            wait_until(
                lambda engine=engine: engine.fleet(m.RECORDED_FLEET_BURN_RATE, "1h") is not None,
                120,
                f"{engine.name} to record the 1h fleet burn rate",
            )
        for engine in engines:
            assert engine.pages() == [], (engine.name, engine.pages())
            assert engine.rule_errors() == [], (engine.name, engine.rule_errors())
            assert down_samples(engine, begin)[0] == 0, (engine.name, "fleet downtime")

        # 3. The real outage, seen by all three.
        peer.status = 503
        hold(OUTAGE)
        peer.status = 200
        for engine in engines:
            wait_until(engine.pages, 60, f"a page from {engine.name}")

        # 4. p3 killed: it leaves the fold, nothing counts down.
        p3.kill()
        for engine in engines:
            wait_until(
                lambda engine=engine: engine.fleet(m.RECORDED_FLEET_SERVICE_REPORTING) == 2,
                30,
                f"{engine.name} to fold the two probers left",
            )

        # 5. Maintenance started once, then an outage inside it.
        probers_api = [arg for p in (p1, p2) for arg in ("--prober", f"http://{p.address}")]
        result = monai_slo(
            "maintenance", "start", "-c", str(p1.config), "--service", "pacs",
            *probers_api, "--for", "1h", "--reason", "fleet e2e",
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        for prober in (p1, p2):
            listed = prober.cli("maintenance", "list", "-c", str(prober.config), "-o", "json")
            assert "fleet e2e" in listed.stdout, (prober.name, listed.stdout)
        for engine in engines:
            wait_until(lambda engine=engine: not engine.pages(), 60, f"{engine.name}: page ends")
        peer.status = 503
        hold(8.0)
        peer.status = 200
        hold(2.0)
        for engine in engines:
            assert engine.pages() == [], (engine.name, engine.pages())

        # The fleet downtime: the scheduled outage, within an evaluation interval (plus a
        # check interval: when the probers first see it down and up again).
        figures = {}
        for engine in engines:
            wait_until(
                lambda engine=engine: engine.fleet(m.RECORDED_FLEET_SERVICE_SLI) is None,
                30,
                f"{engine.name}: the SLI left out in maintenance",
            )
            down, _ = down_samples(engine, begin)
            figures[engine.name] = down * EVALUATION
        print("fleet downtime, s:", figures, "truth:", OUTAGE)
        for name, downtime in figures.items():
            assert abs(downtime - OUTAGE) <= TOLERANCE, (name, downtime, OUTAGE)
        check_fleet_views(tmp_path, engines, probers[:2], figures)


TOLERANCE = EVALUATION + CHECK_INTERVAL
CUTS = {"p1": 8.0, "p2": 6.0, "p3": 6.0}


def prober_downtime(prober: Prober, month: str) -> float:
    """Unplanned downtime in the prober's own history this month."""
    config = load_config(prober.config)
    store = HistoryStore(config.storage, retention=config.retention, read_only=True)
    try:
        report = build_report(config, store, parse_period(month), time.time())
    finally:
        store.close()
    return report.environments[0].services[0].unplanned_down


def check_fleet_views(
    tmp_path: Path, engines: list[Engine], live: list[Prober], figures: dict[str, float]
) -> None:
    """status/report --prometheus on each engine: the two probers left, maintenance on, the
    engine's own downtime, and availability no worse than any single prober saw."""
    config = live[0].config
    month = time.strftime("%Y-%m", time.gmtime())
    own = {p.name: prober_downtime(p, month) for p in live}
    for engine in engines:
        result = monai_slo("status", "-c", str(config), "--prometheus", engine.url, "-o", "json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert data["source"] == "prometheus"
        assert data["probers"] == ["p1", "p2"], data["probers"]
        (pacs,) = data["services"]
        assert pacs["probers_reporting"] == 2
        assert pacs["maintenance"] is True
        assert pacs["state"] == "no_data"  # the SLI is left out in maintenance
        window = pacs["windows"]["5m"]
        downtime = (1 - window["availability_ratio"]) * window["data_coverage_ratio"] * 300
        assert abs(downtime - figures[engine.name]) <= EVALUATION, (engine.name, downtime)
        # Each prober's own downtime is the outage plus its own cut: less the cut, the fleet's.
        for name, seconds in own.items():
            alone = CUTS[name] + figures[engine.name]
            assert abs(seconds - alone) <= TOLERANCE, (engine.name, name, seconds, alone)
        table = monai_slo("status", "-c", str(config), "--prometheus", engine.url)
        assert table.returncode == 0 and "2 probers reporting (p1, p2)" in table.stdout, table

        target = tmp_path / f"report-{engine.name}.html"
        result = monai_slo(
            "report", "-c", str(config), "--prometheus", engine.url, "--period", month,
            "-o", str(target),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "2 probers reporting" in result.stdout
        report, _ = fleet_report(
            load_config(config), PrometheusSource(engine.url), parse_period(month), time.time()
        )
        (service,) = report.environments[0].services
        # Down instants inside maintenance are listed apart, as the report does for one prober.
        unplanned = [o for o in service.outages if o.unplanned > 0]
        assert len(unplanned) == 1, (engine.name, service.outages)
        (outage,) = unplanned
        assert abs(outage.duration - OUTAGE) <= TOLERANCE, (engine.name, outage)
        assert abs(service.unplanned_down - figures[engine.name]) <= EVALUATION
        html = target.read_text()
        assert "Outages (" in html and engine.url in html, engine.name
        assert service.maintenance > 0
