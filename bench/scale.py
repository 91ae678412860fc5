"""Sustained scale: the real daemon (``monai-slo run``) with N checks at 10 s intervals.

Mix: 40 % dicom_echo (half against storescp, half against Orthanc), 50 % http, 10 % tcp
against local peers. After one interval of warm-up the daemon is watched for ``duration``
seconds: its CPU and RSS from /proc, /metrics scraped every ``SCRAPE_EVERY`` seconds (as a
Prometheus would; those scrapes are part of the load). Figures:

* CPU (cores) and peak RSS of the daemon with its child processes (its check worker
  processes and multiprocessing's resource tracker; RSS summed, so shared pages count twice);
* start lateness p50/p99, two ways: the scheduler's own histogram
  (``monai_slo_scheduler_start_lateness_seconds``: when APScheduler fired the run) and from
  ``monai_slo_check_last_run_timestamp_seconds`` (when a worker actually started it) against
  each check's schedule (its fixed phase, ``scheduler.start_offset``, plus the daemon's start,
  estimated from the earliest 0.1 % of runs);
* missed runs, exactly: for each check, due runs between its last-run timestamps at the first
  and last scrape minus the runs it counted; plus the scheduler's missed-run and the runner's
  skipped-run counters;
* failed runs (a check that times out because the monitor is overloaded is a false alarm).
"""

from __future__ import annotations

import contextlib
import http.client
import math
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monai_slo.config.model import load_config
from monai_slo.daemon.scheduler import start_offset
from tests.fixtures_dicom import free_port

from bench.measure import median, process_cpu, process_rss, quantile
from bench.peers import HttpTarget, OrthancPeer, StorescpPeer
from bench.report import Baseline, Row

INTERVAL = 10.0
SCRAPE_EVERY = 15.0
CPU_TARGET = 1.5
RSS_TARGET = 300 * 2**20
LATENESS_TARGET = 1.0
N_TARGET = 20_000
CHECKS_PER_SERVICE = 10


@dataclass(frozen=True)
class Targets:
    """Where the generated checks point."""

    storescp: Sequence[tuple[int, str]]
    orthanc: Sequence[tuple[int, str]]
    http_url: str
    tcp_port: int


def write_config(
    path: Path,
    n: int,
    targets: Targets,
    listen: str,
    storage: Path,
    *,
    processes: int | None = None,
) -> None:
    """N checks in services of ten: 4 dicom_echo, 5 http, 1 tcp each (the same 40/50/10 mix
    for any N that is a multiple of ten); ``processes``: ``worker_processes`` (None: the
    daemon's default)."""
    lines = [
        f"listen: {listen}",
        f"storage: {storage}",
        *([] if processes is None else [f"worker_processes: {processes}"]),
        f"defaults: {{interval: {INTERVAL:g}s, timeout: 5s, calling_aet: MONAI_SLO}}",
        "environments:",
        "  - name: bench",
        "    tier: production",
        "    objective: 99.9",
        "    services:",
    ]
    for service in range(math.ceil(n / CHECKS_PER_SERVICE)):
        lines.append(f"      - name: svc{service:05d}\n        checks:")
        for slot in range(min(CHECKS_PER_SERVICE, n - service * CHECKS_PER_SERVICE)):
            name = f"c{slot}"
            if slot < 4:
                pool = targets.storescp if slot % 2 == 0 else targets.orthanc
                port, aet = pool[service % len(pool)]
                check = f"kind: dicom_echo, host: 127.0.0.1, port: {port}, called_aet: {aet}"
            elif slot < 9:
                check = f'kind: http, url: "{targets.http_url}"'
            else:
                check = f"kind: tcp, host: 127.0.0.1, port: {targets.tcp_port}"
            lines.append(f"          - {{name: {name}, {check}}}")
    path.write_text("\n".join(lines) + "\n")


# --- /metrics ---------------------------------------------------------------------------------


# What Prometheus 2.x/3.x asks for: OpenMetrics first.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def scrape(port: int) -> tuple[str, float]:
    """The exposition text and how long the scrape took (seconds), asked as Prometheus asks."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    return body, time.perf_counter() - started


def _labels(text: str) -> dict[str, str]:
    out = {}
    for part in text.split('",'):
        key, _, value = part.partition('="')
        out[key.strip(",")] = value.rstrip('"')
    return out


@dataclass
class Sample:
    """What one scrape said, reduced to what the figures need."""

    at: float
    scrape_seconds: float
    size: int
    last_run: dict[str, float] = field(default_factory=dict)
    runs: dict[str, float] = field(default_factory=dict)
    failures: dict[str, float] = field(default_factory=dict)
    skipped: float = 0.0
    missed: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


def parse(text: str, at: float, seconds: float) -> Sample:
    """Only the lines the figures need; plain string work keeps the bench's own CPU low."""
    sample = Sample(at, seconds, len(text))
    for line in text.splitlines():
        if not line.startswith("monai_slo_"):
            continue
        head, _, value_text = line.rpartition(" ")
        value = float(value_text)
        name, _, label_text = head.partition("{")
        labels = _labels(label_text.rstrip("}")) if label_text else {}
        if name in ("monai_slo_check_last_run_timestamp_seconds", "monai_slo_check_runs_total"):
            key = f"{labels['service']}/{labels['check']}"
            target = sample.last_run if name.endswith("seconds") else sample.runs
            target[key] = value
        elif name == "monai_slo_check_failures_total":
            reason = labels["reason"]
            sample.failures[reason] = sample.failures.get(reason, 0.0) + value
        elif name == "monai_slo_check_skipped_runs_total":
            sample.skipped += value
        elif name == "monai_slo_scheduler_missed_runs_total":
            sample.missed += value
        elif name == "monai_slo_scheduler_start_lateness_seconds_bucket":
            sample.buckets[float(labels["le"])] = value
    return sample


def histogram_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over the increase between two scrapes."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            share = (rank - previous_count) / (count - previous_count or 1)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return bounds[-2] if len(bounds) > 1 else math.nan


# --- Lateness and missed runs from last-run timestamps ----------------------------------------


def start_lateness(samples: Sequence[Sample], offsets: dict[str, float]) -> list[float]:
    """Lateness of every observed run against its check's schedule.

    A check runs at T0 + offset + k * interval, T0 being when the daemon scheduled it (the
    same for every check, not exported). Each observed start gives (start - offset) mod
    interval = T0 mod interval + lateness; T0 mod interval is taken from the earliest 0.1 %
    (runs are never early; the few earliest are on time).
    """
    seen: set[tuple[str, float]] = set()
    phases: list[float] = []
    for sample in samples:
        for key, started in sample.last_run.items():
            if (key, started) not in seen and key in offsets:
                seen.add((key, started))
                phases.append((started - offsets[key]) % INTERVAL)
    if not phases:
        return []
    centre = median(phases)
    # Signed distance from the median phase, so a T0 near the wrap-around stays one cluster.
    signed = [((p - centre + INTERVAL / 2) % INTERVAL) - INTERVAL / 2 for p in phases]
    origin = quantile(signed, 0.001)
    return [max(0.0, s - origin) for s in signed]


def missed_runs(first: Sample, last: Sample) -> tuple[int, int]:
    """(due runs, missed runs) between two scrapes, per check from its own timestamps."""
    due = missed = 0
    for key, end in last.last_run.items():
        start = first.last_run.get(key)
        if start is None:
            continue
        expected = round((end - start) / INTERVAL)
        counted = int(last.runs.get(key, 0) - first.runs.get(key, 0))
        due += expected
        missed += max(0, expected - counted)
    return due, missed


# --- One run of the daemon --------------------------------------------------------------------


@dataclass
class Outcome:
    n: int
    seconds: float
    cpu_cores: float
    rss_peak: int
    lateness_sched_p50: float
    lateness_sched_p99: float
    lateness_p50: float
    lateness_p99: float
    due: int
    missed: int
    scheduler_missed: float
    skipped: float
    runs: float
    failures: dict[str, float]
    scrape_median: float
    scrape_bytes: int
    daemon_log: str

    @property
    def failed_share(self) -> float:
        return sum(self.failures.values()) / self.runs if self.runs else math.nan

    @property
    def holds(self) -> bool:
        return (
            self.cpu_cores <= CPU_TARGET
            and self.rss_peak <= RSS_TARGET
            and self.lateness_p99 <= LATENESS_TARGET
            and self.lateness_sched_p99 <= LATENESS_TARGET
            and self.missed == 0
            and self.scheduler_missed == 0
            and self.skipped == 0
            and self.failed_share <= 0.001
        )


@contextlib.contextmanager
def daemon(config: Path, log: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    command = [str(Path(sys.executable).with_name("monai-slo")), "run", "-c", str(config)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_ready(port, process, log)
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"daemon exited with {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/-/ready")
            if conn.getresponse().status == 200:
                return
        time.sleep(0.1)  # polling for readiness
    raise RuntimeError("daemon not ready within 120 s")


def tree(pid: int) -> list[int]:
    """The process and its children (the daemon's worker processes)."""
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(c) for c in (task / "children").read_text().split()]
    return [pid, *children]


def tree_cpu(pid: int) -> float:
    """CPU seconds of the process and its live children."""
    total = 0.0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            total += process_cpu(member)
    return total


def tree_rss(pid: int) -> int:
    total = 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            total += process_rss(member)
    return total


def run_daemon(
    n: int, targets: Targets, duration: float, workdir: Path, processes: int | None = None
) -> Outcome:
    port = free_port()
    config = workdir / f"scale-{n}.yaml"
    storage = workdir / f"scale-{n}-{processes}.sqlite"
    write_config(config, n, targets, f"127.0.0.1:{port}", storage, processes=processes)
    offsets = {
        ref.label.split("/", 1)[1]: start_offset(ref) for ref in load_config(config).checks()
    }
    log = workdir / f"scale-{n}.log"
    with daemon(config, log, port) as process:
        pid = process.pid
        time.sleep(INTERVAL + 5)  # warm-up: every check has started once
        samples = [parse(*_scrape_at(port))]
        cpu_start, started = tree_cpu(pid), time.monotonic()
        rss_peak = tree_rss(pid)
        next_scrape = started + SCRAPE_EVERY
        while (now := time.monotonic()) < started + duration:
            time.sleep(min(1.0, max(0.0, started + duration - now)))  # sampling period
            rss_peak = max(rss_peak, tree_rss(pid))
            if time.monotonic() >= next_scrape:
                samples.append(parse(*_scrape_at(port)))
                next_scrape += SCRAPE_EVERY
        elapsed = time.monotonic() - started
        cpu = tree_cpu(pid) - cpu_start
        samples.append(parse(*_scrape_at(port)))
    first, last = samples[0], samples[-1]
    lateness = start_lateness(samples, offsets)
    due, missed = missed_runs(first, last)
    failures = {
        reason: count - first.failures.get(reason, 0.0)
        for reason, count in last.failures.items()
        if count - first.failures.get(reason, 0.0) > 0
    }
    return Outcome(
        n=n,
        seconds=elapsed,
        cpu_cores=cpu / elapsed,
        rss_peak=rss_peak,
        lateness_sched_p50=histogram_quantile(0.5, first.buckets, last.buckets),
        lateness_sched_p99=histogram_quantile(0.99, first.buckets, last.buckets),
        lateness_p50=quantile(lateness, 0.5),
        lateness_p99=quantile(lateness, 0.99),
        due=due,
        missed=missed,
        scheduler_missed=last.missed - first.missed,
        skipped=last.skipped - first.skipped,
        runs=sum(last.runs.values()) - sum(first.runs.values()),
        failures=failures,
        scrape_median=median([s.scrape_seconds for s in samples]),
        scrape_bytes=last.size,
        daemon_log=str(log),
    )


def _scrape_at(port: int) -> tuple[str, float, float]:
    text, seconds = scrape(port)
    return text, time.time(), seconds


# --- The section ------------------------------------------------------------------------------


@contextlib.contextmanager
def peers(workdir: Path, storescps: int) -> Iterator[Targets]:
    with contextlib.ExitStack() as stack:
        scps = [stack.enter_context(StorescpPeer(workdir / f"scp{i}")) for i in range(storescps)]
        orthanc = stack.enter_context(OrthancPeer(workdir / "orthanc"))
        target = stack.enter_context(HttpTarget(workdir / "httpd"))
        yield Targets(
            [(p.port, p.aet) for p in scps],
            [(orthanc.dicom_port, orthanc.aet)],
            target.url,
            target.port,
        )


def search(
    sizes: Sequence[int],
    duration: float,
    *,
    grow: bool,
    limit: int,
    log: list[str],
    processes: int | None = None,
) -> list[Outcome]:
    """Run each size; with ``grow``, double past the largest holding size (up to ``limit``),
    then bisect between the largest that held and the smallest that did not (to 25 %)."""
    outcomes: dict[int, Outcome] = {}
    with (
        tempfile.TemporaryDirectory(prefix="monai-slo-bench-") as tmp,
        peers(Path(tmp), 2) as targets,
    ):

        def attempt(n: int) -> bool:
            outcome = run_daemon(n, targets, duration, Path(tmp), processes)
            outcomes[n] = outcome
            log.append(_summary(outcome))
            print(log[-1], file=sys.stderr, flush=True)
            if not outcome.holds:
                # Keep the failing daemon's log for a look at what went wrong.
                kept = Path(tempfile.gettempdir()) / f"monai-slo-bench-scale-{n}.log"
                kept.write_bytes(Path(outcome.daemon_log).read_bytes())
                outcome.daemon_log = str(kept)
            return outcome.holds

        for n in sizes:
            attempt(n)
        if grow:
            held = [n for n, o in outcomes.items() if o.holds]
            failed = [n for n, o in outcomes.items() if not o.holds]
            lo = max(held, default=0)
            hi = min((n for n in failed if n > lo), default=None)
            while hi is None and lo and lo * 2 <= limit:
                if attempt(lo * 2):
                    lo *= 2
                else:
                    hi = lo * 2
            while hi is not None and lo and hi / lo > 1.25:
                mid = int(round((lo + hi) / 2 / CHECKS_PER_SERVICE) * CHECKS_PER_SERVICE)
                if attempt(mid):
                    lo = mid
                else:
                    hi = mid
    return [outcomes[n] for n in sorted(outcomes)]


def _summary(o: Outcome) -> str:
    failures = ", ".join(f"{k} {v:g}" for k, v in sorted(o.failures.items())) or "none"
    return (
        f"scale N={o.n}: {o.cpu_cores:.2f} cores, RSS {o.rss_peak / 2**20:.0f} MiB, lateness "
        f"p50/p99 {o.lateness_p50:.3f}/{o.lateness_p99:.3f} s (scheduler "
        f"{o.lateness_sched_p50:.3f}/{o.lateness_sched_p99:.3f} s), missed {o.missed} of "
        f"{o.due} due (scheduler {o.scheduler_missed:g}, skipped {o.skipped:g}), failures "
        f"{failures}, scrape {o.scrape_median * 1e3:.0f} ms / {o.scrape_bytes / 1e6:.1f} MB: "
        f"{'holds' if o.holds else 'does NOT hold'}"
    )


def rows(outcomes: Sequence[Outcome]) -> list[Row]:
    out: list[Row] = []
    for o in outcomes:
        section = f"scale N={o.n}"
        out += [
            Row(section, "daemon CPU", o.cpu_cores, "cores", [Baseline("target", CPU_TARGET)],
                f"≤ {CPU_TARGET:g} cores", o.cpu_cores <= CPU_TARGET),
            Row(section, "daemon peak RSS", o.rss_peak / 2**20, "MiB",
                [Baseline("target", RSS_TARGET / 2**20)], f"≤ {RSS_TARGET / 2**20:g} MiB",
                o.rss_peak <= RSS_TARGET),
            Row(section, "start lateness p50 (worker start)", o.lateness_p50 * 1e3, "ms"),
            Row(section, "start lateness p99 (worker start)", o.lateness_p99 * 1e3, "ms",
                [Baseline("target", LATENESS_TARGET * 1e3)], "≤ 1 s",
                o.lateness_p99 <= LATENESS_TARGET),
            Row(section, "start lateness p99 (scheduler histogram)", o.lateness_sched_p99 * 1e3,
                "ms", [Baseline("target", LATENESS_TARGET * 1e3)], "≤ 1 s",
                o.lateness_sched_p99 <= LATENESS_TARGET),
            Row(section, f"missed runs (of {o.due:,} due)", float(o.missed + o.skipped), "",
                [], "0", o.missed == 0 and o.skipped == 0 and o.scheduler_missed == 0),
            Row(section, "failed runs", o.failed_share * 100, "%", [], "≤ 0.1 %",
                o.failed_share <= 0.001,
                ", ".join(f"{k} {v:g}" for k, v in sorted(o.failures.items()))),
            Row(section, "/metrics scrape (while running)", o.scrape_median * 1e3, "ms"),
        ]  # fmt: skip
    return out


def largest_holding(outcomes: Sequence[Outcome]) -> Row:
    held = [o.n for o in outcomes if o.holds]
    best = max(held, default=0)
    return Row(
        "scale",
        "largest N holding every target (10 s interval)",
        float(best),
        "checks",
        [Baseline("target", float(N_TARGET))],
        f"≥ {N_TARGET:,}",
        best >= N_TARGET,
    )


def run(
    quick: bool, duration: float, sizes: Sequence[int], limit: int, processes: int | None = None
) -> tuple[list[Row], list[str]]:
    log: list[str] = []
    outcomes = search(sizes, duration, grow=not quick, limit=limit, log=log, processes=processes)
    return [*rows(outcomes), largest_holding(outcomes)], log
