"""Each check's /metrics lines are written as its result is recorded (LiveCounters.lines) and
copied by a scrape; these tests hold that output to the lines written at the scrape from the
raw counters (the reference) and to prometheus_client's own encoders, through results,
failures by reason, skipped runs, kind-specific gauges and labelled series, and reloads
that relabel, add and remove checks."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from monai_slo.checks.base import CheckResult, FailureReason, Series
from monai_slo.config.model import Config, load_config
from monai_slo.history.store import HistoryStore
from monai_slo.outputs import exposition, metrics
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.exposition import Counter, Gauge
from monai_slo.outputs.metrics import DaemonView, LiveCounters, SloCollector

from .test_exposition_matches_client_python import Frozen

NOW = 1_750_000_000.0
CONFIGS = (
    # the first config, then a reload that changes the tier (new labels for the same checks),
    # removes c and adds d
    ("production", ("a", "b", "c")),
    ("staging", ("a", "b", "d")),
)


def _config(root: Path, variant: int) -> Config:
    tier, names = CONFIGS[variant]
    lines = [
        f"storage: {root / 'h.sqlite'}",
        f"environments:\n  - name: radiology\n    tier: {tier}\n    services:",
        "      - name: pacs\n        checks:",
        *(f"          - {{name: {name}, kind: tcp, host: 127.0.0.1, port: 9}}" for name in names),
    ]
    path = root / f"config{variant}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(path)


class World:
    """Two configs over one store; the daemon's counters and skipped counts."""

    def __init__(self, root: Path) -> None:
        self.configs = [_config(root, 0), _config(root, 1)]
        self.store = HistoryStore(self.configs[0].storage)
        self.counters = LiveCounters()
        self.skipped: dict[tuple[str, str, str], int] = {}
        self.view = DaemonView(
            self.configs[0],
            self.store,
            self.counters,
            skipped=lambda: self.skipped,
            reload_timestamp=NOW,
            clock=lambda: NOW,
        )
        self.collector = SloCollector(self.view)

    def record(self, name: str, result: CheckResult) -> None:
        for ref in self.view.config.checks():
            if ref.config.name == name:
                self.counters.record(ref, result)

    def reference(self) -> SloCollector:
        """The same counters written by the reference collector."""
        counters = self.counters
        bare = LiveCounters(counters.runs, counters.failures, counters.last)
        view = DaemonView(
            self.view.config,
            self.store,
            bare,
            skipped=lambda: self.skipped,
            reload_timestamp=NOW,
            clock=lambda: NOW,
        )
        return ReferenceCollector(view)


class ReferenceCollector(SloCollector):
    """The check families as they were written before lines were kept: from the raw
    counters at every scrape, through prometheus_client-style rows."""

    def _checks(self, config: Config) -> Iterator[Metric]:
        up = Gauge(m.CHECK_UP, "1 if the last run succeeded", labels=metrics.CHECK_LABELS)
        duration = Gauge(
            m.CHECK_DURATION_SECONDS, "Duration of the last run", labels=metrics.CHECK_LABELS
        )
        last_ts = Gauge(
            m.CHECK_LAST_RUN_TIMESTAMP_SECONDS,
            "Start of the last run",
            labels=metrics.CHECK_LABELS,
        )
        runs = Counter(m.CHECK_RUNS, "Runs since start", labels=metrics.CHECK_LABELS)
        failures = Counter(
            m.CHECK_FAILURES,
            "Failed runs since start by reason",
            labels=[*metrics.CHECK_LABELS, m.REASON],
        )
        skipped = Counter(
            m.CHECK_SKIPPED_RUNS,
            "Runs not started because the previous run was still going",
            labels=metrics.CHECK_LABELS,
        )
        extra: dict[str, Gauge] = {}
        counters = self.view.counters
        skipped_counts = self.view.skipped()
        with counters.lock:
            for ref in config.checks():
                labels = metrics._check_labels(ref)
                runs.add_metric(labels, counters.runs.get(ref.key, 0))
                skipped.add_metric(labels, skipped_counts.get(ref.key, 0))
                for reason, count in sorted(counters.failures.get(ref.key, {}).items()):
                    failures.add_metric([*labels, reason], count)
                last = counters.last.get(ref.key)
                if last is None:
                    continue
                up.add_metric(labels, 1 if last.success else 0)
                duration.add_metric(labels, last.duration)
                last_ts.add_metric(labels, last.timestamp)
                for suffix, value in last.values.items():
                    metrics._extra_family(extra, suffix, ()).add_metric(labels, value)
                for series in last.series:
                    names = tuple(series.labels)
                    family = metrics._extra_family(extra, series.name, names)
                    family.add_metric([*labels, *series.labels.values()], series.value)
        families: tuple[Metric, ...] = (up, duration, last_ts, runs, failures, skipped)
        yield from (*families, *extra.values())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    world = World(tmp_path)
    yield world
    world.store.close()


def assert_matches(world: World) -> None:
    fast = Frozen(world.collector.collect())
    reference = Frozen(world.reference().collect())
    assert exposition._openmetrics(fast) == exposition._openmetrics(reference)
    assert exposition._text(fast) == exposition._text(reference)
    # prometheus_client writes the same families from their rows (no kept lines read)
    assert exposition._openmetrics(fast) == openmetrics_latest(Frozen(world.collector.collect()))
    assert exposition._text(fast) == generate_latest(Frozen(world.collector.collect()))


def _result(step: int, ok: bool, reason: FailureReason, extras: bool) -> CheckResult:
    return CheckResult(
        ok,
        0.0123 * (step + 1),
        None if ok else reason,
        "",
        NOW - 600 + step * 10,
        {"http_status_code": 200.0 + step} if extras else {},
        (Series("study_flow_last_latency_seconds", 1.5, {m.STAGE: "pacs"}),) if extras else (),
    )


def test_kept_lines_match_lines_written_at_the_scrape(world: World) -> None:
    """Failures by reason, skipped runs, extras, then a reload: the kept lines are what the
    scrape copies, and they equal the reference's bytes at every step."""
    reasons = (FailureReason.TIMEOUT, FailureReason.REFUSED)
    for step in range(6):
        for index, name in enumerate(("a", "b")):
            world.record(
                name, _result(step, (step + index) % 3 != 0, reasons[step % 2], index == 1)
            )
        world.skipped[("radiology", "pacs", "a")] = step // 2
        assert_matches(world)
    families = {family.name: family for family in world.collector.collect()}
    up = families[m.CHECK_UP]
    assert isinstance(up, exposition.Gauge)
    assert len(up.kept) == 2 and not up.rows  # copied, not written at the scrape
    failures = families[m.CHECK_FAILURES]
    assert isinstance(failures, exposition.Counter)
    assert len(failures.lines) == len(failures.rows) == 4  # two reasons for a and for b
    world.view.config = world.configs[1]  # c removed, d added, every check relabelled
    assert_matches(world)
    relabelled = {family.name: family for family in world.collector.collect()}[m.CHECK_UP]
    assert 'tier="staging"' in exposition._text(Frozen([relabelled])).decode()
    world.record("a", _result(7, True, FailureReason.TIMEOUT, False))
    world.record("d", _result(7, False, FailureReason.TIMEOUT, True))
    assert_matches(world)


_STEP = st.one_of(
    st.tuples(
        st.just("result"),
        st.sampled_from("abcd"),
        st.booleans(),
        st.sampled_from(list(FailureReason)),
        st.booleans(),
    ),
    st.tuples(st.just("skip"), st.sampled_from("abcd"), st.integers(0, 3)),
    st.tuples(st.just("reload"), st.integers(0, 1)),
    st.tuples(st.just("poke"), st.sampled_from("abcd")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEP, max_size=25))
def test_kept_lines_match_any_sequence(steps: list[tuple[object, ...]]) -> None:
    """Any interleaving of results, skipped counts, counters changed behind record()
    and reloads: the same bytes as the
    reference after every step."""
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp))
        try:
            for at, step in enumerate(steps):
                if step[0] == "result":
                    _, name, ok, reason, extras = step
                    assert isinstance(name, str) and isinstance(reason, FailureReason)
                    world.record(name, _result(at, bool(ok), reason, bool(extras)))
                elif step[0] == "skip":
                    _, name, count = step
                    assert isinstance(name, str) and isinstance(count, int)
                    world.skipped[("radiology", "pacs", name)] = count
                elif step[0] == "poke":  # counters changed without record(): rewritten
                    key = ("radiology", "pacs", str(step[1]))
                    world.counters.runs[key] = world.counters.runs.get(key, 0) + 5
                else:
                    variant = step[1]
                    assert isinstance(variant, int)
                    world.view.config = world.configs[variant]
                assert_matches(world)
        finally:
            world.store.close()
