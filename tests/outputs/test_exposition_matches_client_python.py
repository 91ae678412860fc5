"""monai_slo.outputs.exposition writes /metrics faster than prometheus_client; these tests hold it to
the very same bytes, in the text format and in OpenMetrics, for the daemon's own families
and for awkward ones (escapes, special floats, every type), and check the fallback."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from monai_slo.checks.base import CheckResult, FailureReason, Series
from monai_slo.config.model import load_config
from monai_slo.history.store import HistoryStore
from monai_slo.outputs import exposition
from monai_slo.outputs.lateness import Lateness
from monai_slo.outputs.metrics import DaemonView, LiveCounters, SloCollector

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


class Frozen(Collector):
    """The same families for every encoder."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


def assert_identical(registry: Collector) -> None:
    frozen = Frozen(registry.collect())
    assert exposition._text(frozen) == generate_latest(frozen)
    assert exposition._openmetrics(frozen) == openmetrics_latest(frozen)


@pytest.fixture
def daemon_registry(tmp_path: Path) -> Iterator[CollectorRegistry]:
    """The collector over a config with two kinds, history with failures, kind-specific
    gauges and a labelled series with an awkward value, and the lateness histogram."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "storage: h.sqlite\nenvironments:\n  - name: radiology\n    tier: production\n"
        "    services:\n      - name: pacs\n        checks:\n"
        "          - {name: web, kind: http, url: 'http://127.0.0.1:1/'}\n"
        "          - {name: echo, kind: dicom_echo, host: 127.0.0.1, port: 104}\n"
    )
    config = load_config(path)
    store = HistoryStore(config.storage)
    counters = LiveCounters()
    now = 1_750_000_000.0
    refs = list(config.checks())
    for step in range(50):
        for ref in refs:
            ok = step % 9 != 0
            result = CheckResult(
                ok,
                0.0123,
                None if ok else FailureReason.TIMEOUT,
                "",
                now - 1500 + step * 30,
                {"http_status_code": 200.0, "tls_cert_expiry_timestamp_seconds": 1.9e9},
                (Series("gpu_info", 1.0, {"gpu": "0", "name": 'NVIDIA "A100"\\80GB\n'}),),
            )
            store.record(ref.key, ref.config.kind, result, ref.config.staleness)
            counters.record(ref, result)
    lateness = Lateness()
    for seconds in (0.001, 0.02, 0.3, 7.0, 30.0):
        lateness.observe(seconds)
    view = DaemonView(config, store, counters, lateness=lateness, clock=lambda: now)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SloCollector(view))
    yield registry
    store.close()


def test_daemon_families_are_byte_identical(daemon_registry: CollectorRegistry) -> None:
    """The collector's output (checks with failures by reason, kind-specific gauges and
    labelled series, the lateness histogram, services over history) is written exactly as
    prometheus_client writes it, in both formats."""
    assert_identical(daemon_registry)
    text = exposition._text(Frozen(daemon_registry.collect())).decode()
    assert "monai_slo_check_failures_total{" in text and 'reason="timeout"' in text
    assert r'name="NVIDIA \"A100\"\\80GB\n"' in text


def test_daemon_families_take_the_fast_path(
    daemon_registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's families never fall back to prometheus_client (which would quietly
    cost the time back): the fallback is not reached in either format."""
    fallbacks: list[int] = []

    class Spy(exposition._Collected):
        def __init__(self, metrics: list[Metric]) -> None:
            fallbacks.append(len(metrics))
            super().__init__(metrics)

    monkeypatch.setattr(exposition, "_Collected", Spy)
    frozen = Frozen(daemon_registry.collect())
    exposition._text(frozen)
    exposition._openmetrics(frozen)
    assert fallbacks == []


class Awkward(Collector):
    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "awkward_gauge", 'help with \\ backslash,\n newline and "quotes"', labels=["b", "a"]
        )
        for index, value in enumerate(
            [0.0, -0.0, 1.0, -2.5, 1e21, 1234567.0, 12345678.9, 1e-7, math.inf, -math.inf, math.nan]
        ):
            gauge.add_metric([f"v{index}", 'q"\\\nü✓'], value)
        yield gauge
        counter = CounterMetricFamily("awkward_requests", "counted", labels=["code"])
        counter.add_metric(["200"], 7)
        yield counter
        yield CounterMetricFamily("awkward_plain_total", "no labels", value=3)
        histogram = HistogramMetricFamily("awkward_seconds", "h", labels=["x"])
        histogram.add_metric(["1"], [("0.1", 1.0), ("1", 2.0), ("+Inf", 3.0)], 4.5)
        yield histogram
        summary = SummaryMetricFamily("awkward_summary", "s", count_value=2, sum_value=0.5)
        yield summary
        info = InfoMetricFamily("awkward_build", "i", value={"version": "1.2.3"})
        yield info
        yield GaugeMetricFamily("awkward_empty", "no samples at all")


def test_awkward_families_are_byte_identical() -> None:
    """Escaped help and label values, unicode, label order, every special float, counters,
    histograms, summaries, info and empty families: the same bytes as prometheus_client."""
    assert_identical(Awkward())


class Exotic(Collector):
    """Families only prometheus_client writes: a timestamp, a unit, a created sample."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("plain_gauge", "fine", value=1)
        if self.kind == "timestamp":
            family = GaugeMetricFamily("stamped", "ts", labels=["a"])
            family.add_metric(["x"], 1.0, timestamp=1_700_000_000.5)
            yield family
        elif self.kind == "unit":
            yield GaugeMetricFamily("sized_bytes", "u", value=2, unit="bytes")
        else:
            yield CounterMetricFamily("made", "c", value=1, created=1_700_000_000.0)


@pytest.mark.parametrize("kind", ["timestamp", "unit", "created"])
def test_exotic_families_fall_back_to_prometheus_client(kind: str) -> None:
    """What the fast path does not write goes to prometheus_client whole: the same bytes."""
    assert_identical(Exotic(kind))


@pytest.mark.parametrize(
    ("accept", "fast"),
    [
        (PROMETHEUS_ACCEPT, exposition._openmetrics),
        ("application/openmetrics-text; version=1.0.0", exposition._openmetrics),
        ("text/plain; version=0.0.4", exposition._text),
        ("", exposition._text),
    ],
)
def test_negotiation_picks_the_fast_encoders(accept: str, fast: object) -> None:
    """What Prometheus asks for gets the fast encoder, with prometheus_client's content type."""
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = exposition.choose_encoder(accept)
    assert encoder is fast
    assert content_type == choose_encoder(accept)[1]


def test_other_escaping_is_left_to_prometheus_client() -> None:
    """UTF-8 escaping (text format 1.0.0) is not ours to write: prometheus_client's encoder."""
    encoder, _ = exposition.choose_encoder("text/plain; version=1.0.0; escaping=allow-utf-8")
    assert encoder not in (exposition._text, exposition._openmetrics)
