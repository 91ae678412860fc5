"""History at scale: 30 days x 1,000 checks of synthetic history; size, `status`, /metrics.

The failure pattern (seeded, so every run of the bench writes the same history):

* every check runs every 30 s for 30 days;
* service-wide outages (the PACS is down, so are all its checks): Poisson, 2 per service per
  30 days, each lasting an exponentially distributed time with mean 5 minutes;
* check-own outages: Poisson, 2 per check per 30 days, mean 8 minutes;
* blips: any single run fails with probability 0.03 % (a dropped packet, a busy peer);
* one daemon restart: no data for any check for 2 minutes, 10 days ago.

That is about 99.9 % availability per check (~40 minutes of failed runs per 30 days) and
roughly 60 state changes per check. Services have five checks each (200 services).

The history is written through :class:`monai_slo.history.store.HistoryStore` (its schema, its check
ids), with the rows ``HistoryStore.record`` would produce computed per state change instead
of recorded run by run (86 million ``record`` calls would take the bench an hour). That the
two agree exactly is a unit test (tests/test_perf_history.py).
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import load_config
from monai_slo.history.evaluation import evaluate
from monai_slo.history.store import HistoryStore
from tests.fixtures_dicom import free_port

from bench.measure import median, process_cpu
from bench.report import Baseline, Row
from bench.scale import daemon, scrape
from bench.startup import process_env, wall

SIZE_TARGET = 100e6
STATUS_TARGET = 0.2
SCRAPE_TARGET = 0.1
DAY = 86400.0


@dataclass(frozen=True)
class Pattern:
    """The synthetic history's shape; the defaults are the documented pattern."""

    checks: int = 1000
    checks_per_service: int = 5
    days: float = 30.0
    interval: float = 30.0
    timeout: float = 5.0
    service_outages: float = 2.0  # per service per 30 days
    service_outage_mean: float = 300.0
    check_outages: float = 2.0  # per check per 30 days
    check_outage_mean: float = 480.0
    blip_probability: float = 3e-4
    gap_days_ago: float = 10.0
    gap_seconds: float = 120.0
    seed: int = 20240601

    @property
    def staleness(self) -> float:
        return 2 * self.interval + self.timeout

    def key(self, index: int) -> tuple[str, str, str]:
        return (
            "bench",
            f"svc{index // self.checks_per_service:05d}",
            f"c{index % self.checks_per_service}",
        )


@dataclass(frozen=True)
class CheckHistory:
    """One check's runs: t(k) = base + k * interval for k in [0, count), minus the gap;
    ``down`` holds the failed run indices as sorted, disjoint [a, b) ranges."""

    base: float
    interval: float
    count: int
    gap: tuple[int, int]
    down: tuple[tuple[int, int], ...]

    def time(self, k: int) -> float:
        return self.base + k * self.interval

    def indices(self) -> Iterator[int]:
        yield from range(self.gap[0])
        yield from range(self.gap[1], self.count)

    def is_up(self, k: int) -> bool:
        position = bisect.bisect_right(self.down, (k, math.inf)) - 1
        return not (position >= 0 and self.down[position][0] <= k < self.down[position][1])

    def runs(self) -> Iterator[tuple[float, bool]]:
        """Every run, in order (for the equivalence test; the writer never calls this)."""
        for k in self.indices():
            yield self.time(k), self.is_up(k)

    def blocks(self) -> Iterator[tuple[int, int, bool, bool]]:
        """(first, last, up, next follows without a gap) per run of equal results."""
        pieces = [(0, self.gap[0]), (self.gap[1], self.count)]
        for piece_start, piece_end in pieces:
            if piece_start >= piece_end:
                continue
            cuts = {piece_start, piece_end}
            for a, b in self.down:
                cuts.update(c for c in (a, b) if piece_start < c < piece_end)
            edges = sorted(cuts)
            for first, end in itertools.pairwise(edges):
                yield first, end - 1, self.is_up(first), end < piece_end


def _ranges(
    starts_and_lengths: Sequence[tuple[float, float]], base: float, interval: float, count: int
) -> list[tuple[int, int]]:
    out = []
    for start, length in starts_and_lengths:
        a = max(0, math.ceil((start - base) / interval))
        b = min(count, math.ceil((start + length - base) / interval))
        if a < b:
            out.append((a, b))
    return out


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return tuple(merged)


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: fine for the small means used here.
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def generate(pattern: Pattern, now: float) -> list[CheckHistory]:
    """Every check's history ending at ``now``, from the pattern's seed."""
    start = now - pattern.days * DAY
    span = pattern.days * DAY
    months = pattern.days / 30.0
    services = math.ceil(pattern.checks / pattern.checks_per_service)
    service_rng = random.Random(pattern.seed)
    service_outages = [
        [
            (
                start + service_rng.random() * span,
                service_rng.expovariate(1 / pattern.service_outage_mean),
            )
            for _ in range(_poisson(service_rng, pattern.service_outages * months))
        ]
        for _ in range(services)
    ]
    gap_start = now - pattern.gap_days_ago * DAY
    histories = []
    for index in range(pattern.checks):
        rng = random.Random(pattern.seed * 7919 + index)
        # Each check keeps its own phase within the interval, as the scheduler spreads them.
        base = start + rng.random() * pattern.interval
        count = int((now - base) // pattern.interval) + 1
        if base + (count - 1) * pattern.interval >= now:
            count -= 1
        gap = (
            max(0, math.ceil((gap_start - base) / pattern.interval)),
            max(0, math.ceil((gap_start + pattern.gap_seconds - base) / pattern.interval)),
        )
        own = [
            (start + rng.random() * span, rng.expovariate(1 / pattern.check_outage_mean))
            for _ in range(_poisson(rng, pattern.check_outages * months))
        ]
        ranges = _ranges(
            [*service_outages[index // pattern.checks_per_service], *own],
            base,
            pattern.interval,
            count,
        )
        blips = _poisson(rng, count * pattern.blip_probability)
        ranges += [(k, k + 1) for k in (rng.randrange(count) for _ in range(blips))]
        histories.append(CheckHistory(base, pattern.interval, count, gap, _merge(ranges)))
    return histories


def _failed(timestamp: float) -> CheckResult:
    return CheckResult(False, 5.0, FailureReason.TIMEOUT, "synthetic failure", timestamp)


def _succeeded(timestamp: float) -> CheckResult:
    return CheckResult(True, 0.002, None, "synthetic", timestamp)


def result(timestamp: float, up: bool) -> CheckResult:
    return _succeeded(timestamp) if up else _failed(timestamp)


def segment_rows(history: CheckHistory, staleness: float) -> list[tuple[float, float, float, int]]:
    """(start, last, end, up) per segment, as HistoryStore.record would leave them."""
    rows = []
    for first, last, up, followed in history.blocks():
        t_last = history.time(last)
        end = history.time(last + 1) if followed else t_last + staleness
        rows.append((history.time(first), t_last, end, int(up)))
    return rows


def run_rows(history: CheckHistory) -> list[tuple[int, int, int]]:
    """(hour, runs, failures) per hour, as HistoryStore.record would count them."""
    counts: dict[int, list[int]] = {}
    for first, last, up, _ in history.blocks():
        k = first
        while k <= last:
            hour = int(history.time(k) // 3600)
            # The last index still in this hour (t(k) = base + k * interval is increasing).
            end = min(last, int(((hour + 1) * 3600 - history.base) // history.interval) + 1)
            while end > k and int(history.time(end) // 3600) != hour:
                end -= 1
            bucket = counts.setdefault(hour, [0, 0])
            bucket[0] += end - k + 1
            bucket[1] += 0 if up else end - k + 1
            k = end + 1
    return [(hour, runs, failures) for hour, (runs, failures) in sorted(counts.items())]


def write(path: Path, pattern: Pattern, histories: Sequence[CheckHistory]) -> None:
    """Write the histories through a HistoryStore: its schema, its ids, its row format."""
    store = HistoryStore(path)
    try:
        ids = [store.check_id(pattern.key(i), "tcp") for i in range(len(histories))]
        db: sqlite3.Connection = store._db  # the store's own connection and schema
        failed = _failed(0.0)
        db.execute("BEGIN")
        for check_id, history in zip(ids, histories, strict=True):
            # A down segment keeps its failure reason and detail (schema 3), as record() does.
            db.executemany(
                "INSERT INTO segments (check_id, start, last, end, up, reason, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (check_id, *row, *((None, "") if row[3] else (failed.reason, failed.detail)))
                    for row in segment_rows(history, pattern.staleness)
                ],
            )
            db.executemany(
                "INSERT INTO runs (check_id, hour, runs, failures) VALUES (?, ?, ?, ?)",
                [(check_id, *row) for row in run_rows(history)],
            )
            last = history.count - 1
            if last < history.gap[1] and history.gap[0] < history.gap[1]:
                last = history.gap[0] - 1
            final = result(history.time(last), history.is_up(last))
            db.execute(
                "INSERT INTO last_results VALUES (?, ?, ?, ?, ?, ?)",
                (check_id, final.timestamp, int(final.success), final.duration, final.reason,
                 final.detail),
            )  # fmt: skip
        db.execute("COMMIT")
    finally:
        store.close()


def write_config(path: Path, pattern: Pattern, storage: Path, listen: str, tcp_port: int) -> None:
    lines = [
        f"listen: {listen}",
        f"storage: {storage}",
        f"defaults: {{interval: {pattern.interval:g}s, timeout: {pattern.timeout:g}s}}",
        "environments:",
        "  - name: bench\n    tier: production\n    objective: 99.9\n    services:",
    ]
    for index in range(pattern.checks):
        _, service, check = pattern.key(index)
        if index % pattern.checks_per_service == 0:
            lines.append(f"      - name: {service}\n        checks:")
        lines.append(f"          - {{name: {check}, kind: tcp, host: 127.0.0.1, port: {tcp_port}}}")
    path.write_text("\n".join(lines) + "\n")


# --- The section ------------------------------------------------------------------------------


def _status_wall(config: Path, runs: int, env: Mapping[str, str]) -> float:
    command = [str(Path(sys.executable).with_name("monai-slo")), "status", "-c", str(config)]
    return wall(command, runs, env)


@dataclass(frozen=True)
class StatusParts:
    """Where `monai-slo status` spends its time, measured piece by piece."""

    imports: float
    bare_python: float
    config: float
    evaluation: float
    evaluation_cached: float
    rendering: float
    client_start: float


def _median_of(runs: int, work: Callable[[], object]) -> float:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        walls.append(time.perf_counter() - started)
    return median(walls)


def _python(code: str, runs: int, env: Mapping[str, str]) -> float:
    return wall([sys.executable, "-c", code], runs, env)


# What `monai-slo status` imports for this config (tcp checks only; kinds load on first use).
_STATUS_IMPORTS = (
    "import monai_slo.cli, monai_slo.commands.status, monai_slo.config.model, "
    "monai_slo.history.evaluation, monai_slo.commands.status_tables, monai_slo.checks.tcp"
)


def _status_parts(config_path: Path, runs: int, env: Mapping[str, str]) -> StatusParts:
    from monai_slo.commands.status_tables import service_checks_table, status_table
    from monai_slo.history.timeline import TimelineCache
    from monai_slo.outputs.status_data import status_data

    loaded = load_config(config_path)
    store = HistoryStore(loaded.storage, retention=loaded.retention, read_only=True)
    try:
        reports = evaluate(loaded, store, time.time())
        cache = TimelineCache()
        evaluate(loaded, store, time.time(), cache=cache, checks=False)
        evaluation = _median_of(runs, lambda: evaluate(loaded, store, time.time()))
        # What the daemon's /metrics keeps between scrapes, read back: what status would
        # cost if it read the daemon's figures instead of recomputing 30 days.
        cached = _median_of(
            runs, lambda: evaluate(loaded, store, time.time(), cache=cache, checks=False)
        )
    finally:
        store.close()

    def render() -> None:
        document = status_data(reports, source="history")  # what the tables are drawn from
        status_table(document["services"], width=200)
        service_checks_table(document["checks"], width=200)

    return StatusParts(
        imports=_python(_STATUS_IMPORTS, runs, env),
        bare_python=_python("pass", runs, env),
        config=_median_of(runs, lambda: load_config(config_path)),
        evaluation=evaluation,
        evaluation_cached=cached,
        rendering=_median_of(runs, render),
        client_start=_python("import http.client, json", runs, env),
    )


def run(quick: bool) -> tuple[list[Row], list[str]]:
    from bench.peers import HttpTarget

    pattern = Pattern()
    notes: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="monai-slo-history-") as tmp,
        HttpTarget(Path(tmp) / "httpd") as target,
    ):
        workdir = Path(tmp)
        storage = workdir / "history.sqlite"
        config = workdir / "history.yaml"
        port = free_port()
        write_config(config, pattern, storage, f"127.0.0.1:{port}", target.port)
        started = time.perf_counter()
        histories = generate(pattern, time.time())
        write(storage, pattern, histories)
        segments = sum(len(segment_rows(h, pattern.staleness)) for h in histories)
        notes.append(
            f"history: {pattern.checks} checks x {pattern.days:g} days, {segments:,} segments, "
            f"written in {time.perf_counter() - started:.0f} s"
        )
        size = sum(p.stat().st_size for p in workdir.glob("history.sqlite*"))
        runs = 3 if quick else 7
        env = process_env(workdir / "pycache")
        status_wall = _status_wall(config, runs, env)
        parts = _status_parts(config, runs, env)
        # A fresh process reading history cannot go under its imports and config validation.
        floor = parts.imports + parts.config
        asking = parts.client_start + parts.evaluation_cached + parts.rendering
        scrape_walls, scrape_size, scrape_cpu = _scrapes(
            config, workdir, port, 5 if quick else 15, pattern.interval
        )
    return [
        Row("history", "database size on disk", size / 1e6, "MB", [Baseline("target", 100.0)],
            "≤ 100 MB", size <= SIZE_TARGET),
        Row("history", "`monai-slo status` wall", status_wall * 1e3, "ms",
            [Baseline("target", STATUS_TARGET * 1e3)], "≤ 200 ms", status_wall <= STATUS_TARGET),
        Row("history", "status part: Python + imports", parts.imports * 1e3, "ms",
            [Baseline("python -c pass", parts.bare_python * 1e3)]),
        Row("history", "status part: config load (1,000 checks)", parts.config * 1e3, "ms"),
        Row("history", "status part: evaluation (30 d, 1,000 checks)", parts.evaluation * 1e3,
            "ms", [Baseline("timelines kept by the daemon", parts.evaluation_cached * 1e3)]),
        Row("history", "status part: rendering (plain text, both tables)", parts.rendering * 1e3,
            "ms"),
        Row("history", "status floor from history: imports + config load", floor * 1e3, "ms",
            [Baseline("target", STATUS_TARGET * 1e3)]),
        Row("history", "status design B: ask the running daemon", asking * 1e3, "ms",
            [Baseline("target", STATUS_TARGET * 1e3)], "≤ 200 ms", asking <= STATUS_TARGET,
            "small client + the daemon's kept timelines + plain text"),
        Row("history", "/metrics scrape wall (median)", median(scrape_walls) * 1e3, "ms",
            [Baseline("target", SCRAPE_TARGET * 1e3)], "≤ 100 ms",
            median(scrape_walls) <= SCRAPE_TARGET),
        Row("history", "/metrics scrape wall (max)", max(scrape_walls) * 1e3, "ms"),
        Row("history", "/metrics scrape daemon CPU", scrape_cpu * 1e3, "ms"),
        Row("history", "/metrics size", scrape_size / 1e6, "MB"),
    ], notes  # fmt: skip


def _scrapes(
    config: Path, workdir: Path, port: int, count: int, interval: float
) -> tuple[list[float], int, float]:
    """Scrape the daemon, running the 1,000 checks on this history, ``count`` times, once
    it is in its steady state (every check has run once, so every check is known)."""
    walls = []
    size = 0
    cpu = 0.0
    with daemon(config, workdir / "history-daemon.log", port) as process:
        time.sleep(interval + 10)  # one interval: every check has started once
        scrape(port)  # the first scrape warms SQLite's page cache and the timelines
        for _ in range(count):
            before = process_cpu(process.pid)
            text, seconds = scrape(port)
            cpu += process_cpu(process.pid) - before
            walls.append(seconds)
            size = len(text.encode())
            time.sleep(1.0)  # spacing, as Prometheus scrapes periodically
    return walls, size, cpu / count
