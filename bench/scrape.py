"""One /metrics scrape at 5,000 and 20,000 checks, steady state, in process.

The collector over N `tcp` checks in services of ten, a history store holding the last ten
minutes of results at 10 s (some failing), the live counters fed with the same results, then
scrapes 10 s of results apart, each one after the checks' next results: CPU of collecting
the families and of writing them as OpenMetrics (what Prometheus asks for), without the
checks' own load (the scale section measures the scrape inside the running daemon). History
kept further back does not enter: a scrape reads only what settled since the last one. The
cyclic garbage collector runs at the daemon's threshold.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import GC_THRESHOLD
from monai_slo.history.store import HistoryStore
from monai_slo.outputs.exposition import _openmetrics
from monai_slo.outputs.metrics import DaemonView, LiveCounters, SloCollector
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from bench.measure import median
from bench.report import Baseline, Row

TARGETS = {5000: 0.1, 20000: 0.3}
INTERVAL = 10.0


class _Frozen(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self._metrics)


def _config(path: Path, checks: int) -> Path:
    lines = [
        f"storage: {path / 'history.sqlite'}",
        "defaults: {interval: 10s, timeout: 5s}",
        "environments:\n  - name: bench\n    tier: production\n    services:",
    ]
    for i in range(checks):
        if i % 10 == 0:
            lines.append(f"      - name: svc{i // 10:05d}\n        checks:")
        lines.append(f"          - {{name: c{i % 10}, kind: tcp, host: 127.0.0.1, port: 9}}")
    config = path / "config.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def measure(checks: int, scrapes: int) -> tuple[float, float, int]:
    """Median CPU seconds of collecting and of encoding one scrape, and its size in bytes."""
    before = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)  # as the daemon runs
    try:
        return _measure(checks, scrapes)
    finally:
        gc.set_threshold(*before)


def _measure(checks: int, scrapes: int) -> tuple[float, float, int]:
    with tempfile.TemporaryDirectory(prefix="monai-slo-scrape-") as tmp:
        config = load_config(_config(Path(tmp), checks))
        clock = [time.time() - 600]
        store = HistoryStore(config.storage, clock=lambda: clock[0])
        counters = LiveCounters()
        refs = list(config.checks())

        def results() -> None:
            for k, ref in enumerate(refs):
                ok = (k * 7 + int(clock[0])) % 97 != 0  # about 1 % of runs fail
                at = clock[0] + k * INTERVAL / checks
                result = CheckResult(
                    ok, 0.001, None if ok else FailureReason.REFUSED, "" if ok else "refused", at
                )
                store.record(ref.key, "tcp", result, ref.config.staleness)
                counters.record(ref, result)
            clock[0] += INTERVAL

        try:
            for _ in range(60):
                results()
            store.flush()
            collector = SloCollector(DaemonView(config, store, counters, clock=lambda: clock[0]))
            # The simulated wall clock runs ahead of the real one: keep them in step, as
            # they are in the daemon (a step discards the kept timelines).
            collector._timelines._monotonic = lambda: clock[0]
            _openmetrics(_Frozen(list(collector.collect())))  # the first builds the timelines
            collect, encode, size = [], [], 0
            for _ in range(scrapes):
                results()
                started = time.process_time()
                metrics = list(collector.collect())
                collected = time.process_time()
                size = len(_openmetrics(_Frozen(metrics)))
                encode.append(time.process_time() - collected)
                collect.append(collected - started)
        finally:
            store.close()
    return median(collect), median(encode), size


def run(quick: bool) -> list[Row]:
    rows = []
    for checks, target in TARGETS.items():
        collect, encode, size = measure(checks, 3 if quick else 7)
        total = collect + encode
        rows.append(
            Row("scrape", f"/metrics CPU, {checks:,} checks (in process, steady state)",
                total * 1e3, "ms", [Baseline("collect (evaluation, families)", collect * 1e3),
                                    Baseline("write OpenMetrics", encode * 1e3)],
                f"≤ {target * 1e3:.0f} ms", total <= target, f"{size / 1e6:.1f} MB")
        )  # fmt: skip
    return rows
