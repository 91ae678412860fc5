"""Rule-evaluation cost of the generated rules with the fleet SLI, on a real Prometheus.

``python -m bench.fleet_rules [--services 1000] [--probers 3] [--evaluations 10] [--interval 5s]``

A config with N production services (one tcp check each) generates the rule file; P small
HTTP servers on loopback stand for P probers, each exposing ``monai_slo_service_up``,
``monai_slo_check_up`` and ``monai_slo_maintenance_active`` for every service (one of them
sees a tenth of the services down). Prometheus scrapes them and evaluates the rules every
``--interval``; the figure is ``prometheus_rule_group_last_duration_seconds`` of the environment's
group, the largest of the last evaluations once the group has run ``--evaluations`` times.
The history Prometheus holds is that short run, so the windows' offset lookups mostly find
no sample: an evaluation over a full 30 days reads one sample per lookup more.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

from monai_slo.config.model import load_config
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.rules import RULES_FILE, render_rules
from tests.fixtures_dicom import LOOPBACK
from tests.fixtures_prometheus import PrometheusServer

ENVIRONMENT = "fleet"
GROUP = f"monai-slo:{ENVIRONMENT}"


@dataclass(frozen=True)
class Cost:
    services: int
    probers: int
    rules: int
    seconds: float
    """The largest last-evaluation duration of the environment's group seen over the run."""
    by_rule: dict[str, float]
    """Seconds per rule name (all rules of one name summed) in the last evaluation."""
    best: float = 0.0
    """The smallest last-evaluation duration seen: on a shared, loaded host the figure least
    inflated by other processes."""
    cpu: float = 0.0
    """Prometheus' own CPU seconds (``process_cpu_seconds_total``) per evaluation of the group
    over the run, the scrapes included: the work, whatever else runs on the host."""

    @property
    def fleet_seconds(self) -> float:
        """The fleet SLI's recording rules' share of the last evaluation."""
        return sum(v for name, v in self.by_rule.items() if name.endswith(":fleet"))


def write_config(path: Path, services: int) -> Path:
    lines = [
        "storage: history.sqlite",
        "environments:",
        f"  - name: {ENVIRONMENT}",
        "    tier: production",
        "    services:",
    ]
    for index in range(services):
        lines += [
            f"      - name: s{index:04d}",
            "        checks:",
            f"          - {{name: tcp, kind: tcp, host: 127.0.0.1, port: {1000 + index}}}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def exposition(services: int, prober: int) -> bytes:
    """One prober's metrics: every service up, except every tenth one for prober 0."""
    out = []
    for index in range(services):
        labels = f'environment="{ENVIRONMENT}",tier="production",service="s{index:04d}"'
        up = 0 if prober == 0 and index % 10 == 0 else 1
        out.append(f"{m.SERVICE_UP}{{{labels}}} {up}")
        out.append(f'{m.CHECK_UP}{{{labels},check="tcp",kind="tcp"}} {up}')
        out.append(f"{m.MAINTENANCE_ACTIVE}{{{labels}}} 0")
    return ("\n".join(out) + "\n").encode()


@contextmanager
def serving(body: bytes) -> Iterator[str]:
    """A loopback HTTP server answering every GET with ``body``; yields host:port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _own_metric(prometheus: PrometheusServer, name: str, group: str | None = GROUP) -> float | None:
    """``name`` for the environment's group (or, with ``group=None``, the unlabelled process
    metric ``name``), read from Prometheus' own /metrics."""
    connection = http.client.HTTPConnection(LOOPBACK, prometheus.port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    for line in text.splitlines():
        if group is None and line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
        if group is not None and line.startswith(name + "{") and f';{group}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def _reporting(prometheus: PrometheusServer) -> int:
    found = prometheus.query(f"count({m.RECORDED_FLEET_SERVICE_REPORTING})")
    return int(float(found[0]["value"][1])) if found else 0


def measure(
    workdir: Path,
    services: int = 1000,
    probers: int = 3,
    evaluations: int = 10,
    interval: str = "5s",
    *,
    rules_file: Path | None = None,
) -> Cost:
    """Start the probers' stand-ins and Prometheus; once the fleet SLI covers every service,
    watch ``evaluations`` evaluations of the environment's group (polled) and return the
    largest duration seen."""
    config = load_config(write_config(workdir / "config.yaml", services))
    rules = workdir / RULES_FILE
    rules.write_text(rules_file.read_text() if rules_file else render_rules(config))
    with serving(exposition(services, 0)) as first:
        targets = [first]
        with (
            _more(services, probers, targets),
            PrometheusServer(
                workdir / "prometheus", targets=targets, rule_files=[rules], interval=interval
            ) as prometheus,
        ):
            deadline = time.monotonic() + 120
            while _reporting(prometheus) < services:
                if time.monotonic() > deadline:
                    raise AssertionError("the fleet SLI never covered every service")
                time.sleep(0.5)  # poll interval; the loop re-queries Prometheus
            iterations = "prometheus_rule_group_iterations_total"
            start = _own_metric(prometheus, iterations) or 0.0
            cpu = "process_cpu_seconds_total"
            cpu_start = _own_metric(prometheus, cpu, None) or 0.0
            worst, best, done = 0.0, float("inf"), 0.0
            deadline = time.monotonic() + evaluations * 10 + 60
            while done < evaluations:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{GROUP} ran {done:g} of {evaluations} times")
                last = _own_metric(prometheus, "prometheus_rule_group_last_duration_seconds")
                worst = max(worst, last or 0.0)
                if last:
                    best = min(best, last)
                done = (_own_metric(prometheus, iterations) or 0.0) - start
                time.sleep(0.5)  # poll interval; the loop re-reads Prometheus' metrics
            cpu_seconds = (_own_metric(prometheus, cpu, None) or 0.0) - cpu_start
            rule_count = int(_own_metric(prometheus, "prometheus_rule_group_rules") or 0)
            group = next(g for g in prometheus.api("rules")["groups"] if g["name"] == GROUP)
            by_rule: dict[str, float] = {}
            for rule in group["rules"]:
                by_rule[rule["name"]] = by_rule.get(rule["name"], 0.0) + rule["evaluationTime"]
            return Cost(
                services, probers, rule_count, worst, by_rule, best, cpu_seconds / max(done, 1)
            )


@contextmanager
def _more(services: int, probers: int, targets: list[str]) -> Iterator[None]:
    """The probers after the first, each serving its exposition, appended to ``targets``."""
    if len(targets) >= probers:
        yield
        return
    with serving(exposition(services, len(targets))) as address:
        targets.append(address)
        with _more(services, probers, targets):
            yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_rules", description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--probers", type=int, default=3)
    parser.add_argument("--evaluations", type=int, default=10)
    parser.add_argument(
        "--interval",
        default="5s",
        help="scrape and evaluation interval (a 1000-service scrape "
        "every second competes with the evaluation on a small host)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        help="evaluate this rule file (generated from --write-config's config by another "
        "version, to compare) instead of generating one",
    )
    parser.add_argument("--write-config", type=Path, help="only write the bench's config here")
    args = parser.parse_args(argv)
    if args.write_config:
        write_config(args.write_config, args.services)
        return 0
    with TemporaryDirectory() as directory:
        cost = measure(
            Path(directory),
            args.services,
            args.probers,
            args.evaluations,
            args.interval,
            rules_file=args.rules,
        )
    print(
        f"{cost.services} services, {cost.probers} probers, {cost.rules} rules in {GROUP}: "
        f"rule group evaluation at most {cost.seconds * 1000:.1f} ms, at least "
        f"{cost.best * 1000:.1f} ms "
        f"(prometheus_rule_group_last_duration_seconds); Prometheus CPU "
        f"{cost.cpu * 1000:.1f} ms per evaluation (scrapes included); the fleet SLI's rules "
        f"{cost.fleet_seconds * 1000:.1f} ms of the last one"
    )
    for name, seconds in sorted(cost.by_rule.items(), key=lambda item: -item[1]):
        print(f"  {seconds * 1000:8.1f} ms  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
