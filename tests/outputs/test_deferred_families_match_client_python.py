"""The collector's gauges and counters keep rows and become lines without prometheus_client's
sample objects; written by the fast encoders (text and OpenMetrics) they are byte for byte
what prometheus_client writes for the same families built its own way, and reading
``samples`` gives the very samples its families hold: escapes, no labels, ``value=``, special
floats, counters with a created time, rows added after the samples were read."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from monai_slo.outputs import exposition
from monai_slo.outputs.exposition import Counter, Gauge

_VALUES = [0, 1, 0.5, 1e-9, 123456789.125, 1.7646e9, -2.5, math.inf, -math.inf, math.nan, 10**20]
_LABELS = ["plain", 'quo"te', "back\\slash", "new\nline", "ünï ✓", ""]


def _families(gauge: Callable[..., Metric], counter: Callable[..., Metric]) -> list[Metric]:
    labelled = gauge("demo_gauge", "a gauge\nwith \\ help", labels=["zeta", "alpha", "mid"])
    for i, label in enumerate(_LABELS):
        labelled.add_metric([label, f"a{i}", "m"], _VALUES[i % len(_VALUES)])
    counted = counter("demo_runs", "runs", labels=["check"])
    for i, value in enumerate(_VALUES):
        if not math.isnan(value) and value >= 0:
            counted.add_metric([f"c{i}"], value)
    created = counter("demo_created", "with a created time", labels=["check"])
    created.add_metric(["x"], 3, created=1.5)
    return [
        labelled,
        counted,
        gauge("demo_single", "one value", value=42.0),
        counter("demo_single_counter", "one count", value=7),
        gauge("demo_empty", "no samples", labels=["a"]),
        created,
    ]


class _Frozen(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


@pytest.mark.parametrize(
    ("fast", "reference"),
    [(exposition._text, generate_latest), (exposition._openmetrics, openmetrics_latest)],
    ids=["text", "openmetrics"],
)
def test_deferred_families_write_what_prometheus_client_writes(
    fast: Callable[[Collector], bytes], reference: Callable[[Collector], bytes]
) -> None:
    plain = _Frozen(_families(GaugeMetricFamily, CounterMetricFamily))
    deferred = _Frozen(_families(Gauge, Counter))
    assert fast(deferred) == reference(plain)
    # and prometheus_client itself, reading their samples, writes the same
    assert reference(_Frozen(_families(Gauge, Counter))) == reference(plain)


def test_samples_equal_and_rows_after_a_read_keep_their_order() -> None:
    for ours, theirs in zip(
        _families(Gauge, Counter), _families(GaugeMetricFamily, CounterMetricFamily), strict=True
    ):
        assert ours.samples == theirs.samples
        assert ours == theirs
    gauge, reference = Gauge("g", "g", labels=["a"]), GaugeMetricFamily("g", "g", labels=["a"])
    for family in (gauge, reference):
        family.add_metric(["1"], 1)
    assert gauge.samples == reference.samples  # read once: samples made
    for family in (gauge, reference):
        family.add_metric(["2"], 2)
    registry_ours, registry_theirs = _Frozen([gauge]), _Frozen([reference])
    assert exposition._text(registry_ours) == generate_latest(registry_theirs)


def test_a_wrong_label_count_is_left_to_prometheus_client() -> None:
    """A row with too few label values is written as prometheus_client writes it."""
    ours, theirs = (
        Gauge("g", "g", labels=["a", "b"]),
        GaugeMetricFamily("g", "g", labels=["a", "b"]),
    )
    for family in (ours, theirs):
        family.add_metric(["only one"], 1)
    assert exposition._text(_Frozen([ours])) == generate_latest(_Frozen([theirs]))


@settings(max_examples=2000, deadline=None)
@given(
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**20), 10**20),
        st.integers(-2_000_000, 2_000_000),
        st.floats(-2e6, 2e6),
        st.sampled_from([0.0, -0.0, 1e6, 999_999.999, 1e-300, -1e300, -1e301, 5e-324, True]),
    )
)
def test_go_float_matches_prometheus_client(value: float) -> None:
    assert exposition.go_float(value) == floatToGoString(value)
