"""/metrics keeps each service's settled timeline between scrapes (monai_slo.history.timeline); these
tests hold the cached figures to those computed from scratch, and show that nothing stale is
served: a result recorded between two scrapes shows in the second.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import Config, load_config
from monai_slo.history.evaluation import ServiceReport, evaluate
from monai_slo.history.store import HistoryStore
from monai_slo.history.timeline import Timeline, TimelineCache
from monai_slo.outputs.metrics import DaemonView, LiveCounters, SloCollector
from monai_slo.slo.availability import Span, State, window_stats

START = 1_750_000_000.0
CONFIG = """
storage: history.sqlite
environments:
  - name: radiology
    tier: production
    objective: 99.9
    window: 1d
    services:
      - name: pacs
        checks:
          - {name: a, kind: tcp, host: 127.0.0.1, port: 1, interval: 30s, timeout: 5s}
          - {name: b, kind: tcp, host: 127.0.0.1, port: 2, interval: 30s, timeout: 5s}
          - {name: c, kind: tcp, host: 127.0.0.1, port: 3, interval: 30s, timeout: 5s}
"""


def _config(tmp_path: Path) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return load_config(path)


def _result(at: float, up: bool) -> CheckResult:
    if up:
        return CheckResult(True, 0.01, None, "", at)
    return CheckResult(False, 0.01, FailureReason.REFUSED, "refused", at)


def assert_same(cached: list[ServiceReport], fresh: list[ServiceReport]) -> None:
    assert len(cached) == len(fresh)
    for got, want in zip(cached, fresh, strict=True):
        assert got.state is want.state
        assert got.maintenance_active == want.maintenance_active
        for got_window, want_window in zip(got.windows, want.windows, strict=True):
            g, w = got_window.stats, want_window.stats
            assert g.window == w.window
            for field in ("up", "down", "no_data"):
                assert math.isclose(getattr(g, field), getattr(w, field), abs_tol=1e-6), (
                    got_window.label,
                    field,
                )
            assert (got_window.burn_rate is None) == (want_window.burn_rate is None)
            if want_window.burn_rate is not None and got_window.burn_rate is not None:
                assert math.isclose(got_window.burn_rate, want_window.burn_rate, abs_tol=1e-6)
        if want.budget_remaining is not None and got.budget_remaining is not None:
            assert math.isclose(got.budget_remaining, want.budget_remaining, abs_tol=1e-6)


# One step: (check index, seconds since the previous result, up?, scrape after it and when).
steps = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.floats(0.5, 200.0),
        st.booleans(),
        st.one_of(st.none(), st.floats(0.0, 30.0)),
    ),
    min_size=1,
    max_size=80,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, maintenance=st.booleans())
def test_cached_figures_equal_fresh_ones(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[int, float, bool, float | None]],
    maintenance: bool,
) -> None:
    """Results in any order of checks, states and gaps (past staleness too), scraped at any
    point: every cached scrape equals an evaluation from scratch at the same instant."""
    tmp = tmp_path_factory.mktemp("cache")
    config = _config(tmp)
    store = HistoryStore(config.storage)
    refs = list(config.checks())
    if maintenance:
        store.add_maintenance(
            "radiology", "pacs", START + 300, START + 900, reason="upgrade", now=START
        )
    clock = [START]
    cache = TimelineCache(monotonic=lambda: clock[0])
    at = START
    try:
        for index, gap, up, scrape_after in steps:
            at += gap
            ref = refs[index]
            store.record(ref.key, ref.config.kind, _result(at, up), ref.config.staleness)
            if scrape_after is not None:
                now = at + scrape_after
                clock[0] = now
                cached = evaluate(config, store, now, cache=cache, checks=False)
                assert_same(cached, evaluate(config, store, now))
    finally:
        store.close()


def test_result_between_scrapes_shows_in_the_next(tmp_path: Path) -> None:
    """The cache serves nothing stale: a check going down right after a scrape makes the
    next scrape DOWN with that downtime, and recovery makes it UP again."""
    config = _config(tmp_path)
    store = HistoryStore(config.storage)
    clock = [START]
    cache = TimelineCache(monotonic=lambda: clock[0])
    refs = list(config.checks())

    def scrape(now: float) -> ServiceReport:
        clock[0] = now
        return evaluate(config, store, now, cache=cache, checks=False)[0]

    try:
        for step in range(200):  # 100 minutes of all-good results every 30 s
            for ref in refs:
                store.record(ref.key, "tcp", _result(START + step * 30, True), 65.0)
        now = START + 199 * 30 + 1
        assert scrape(now).state is State.UP
        store.record(refs[1].key, "tcp", _result(now + 29, False), 65.0)
        down = scrape(now + 40)
        assert down.state is State.DOWN
        assert math.isclose(down.windows[0].stats.down, 11.0, abs_tol=1e-6)  # 5m window
        for ref in refs:
            store.record(ref.key, "tcp", _result(now + 59, True), 65.0)
        up = scrape(now + 70)
        assert up.state is State.UP
        assert math.isclose(up.windows[0].stats.down, 30.0, abs_tol=1e-6)
    finally:
        store.close()


def test_run_in_flight_at_a_scrape_counts_from_its_start(tmp_path: Path) -> None:
    """A run that started before a scrape and failed after it is down from its start: the
    time just before that scrape was not settled as up."""
    config = _config(tmp_path)
    store = HistoryStore(config.storage)
    clock = [START]
    cache = TimelineCache(monotonic=lambda: clock[0])
    ref = next(config.checks())
    try:
        for step in range(100):
            store.record(ref.key, "tcp", _result(START + step * 30, True), 65.0)
        now = START + 99 * 30 + 20
        clock[0] = now
        evaluate(config, store, now, cache=cache, checks=False)
        store.record(ref.key, "tcp", _result(now - 3, False), 65.0)  # started 3 s before
        clock[0] = now + 10
        cached = evaluate(config, store, now + 10, cache=cache, checks=False)
        assert math.isclose(cached[0].windows[0].stats.down, 13.0, abs_tol=1e-6)
        assert_same(cached, evaluate(config, store, now + 10))
    finally:
        store.close()


def test_clock_step_back_starts_afresh(tmp_path: Path) -> None:
    """A wall clock that steps back (unlike the monotonic clock) drops what was kept, so
    the figures still equal a fresh evaluation."""
    config = _config(tmp_path)
    store = HistoryStore(config.storage)
    mono = [0.0]
    cache = TimelineCache(monotonic=lambda: mono[0])
    ref = next(config.checks())
    try:
        for step in range(100):
            store.record(ref.key, "tcp", _result(START + step * 30, step % 7 != 0), 65.0)
        now = START + 100 * 30
        evaluate(config, store, now, cache=cache, checks=False)
        mono[0] += 10  # ten seconds pass, but the wall clock went back by an hour
        earlier = now - 3600
        assert_same(
            evaluate(config, store, earlier, cache=cache, checks=False),
            evaluate(config, store, earlier),
        )
    finally:
        store.close()


def test_timeline_stats_equal_window_stats() -> None:
    """Running totals over settled spans plus a tail give what window_stats gives over the
    same spans, with maintenance left out, for windows reaching before the first span."""
    spans = [
        Span(0, 100, State.UP),
        Span(100, 130, State.DOWN),
        Span(130, 400, State.NO_DATA),
        Span(400, 1000, State.UP),
    ]
    timeline = Timeline(0)
    timeline.settle(spans[:3], 400)
    timeline.tail = spans[3:]
    excluded = [(90, 120), (500, 600)]
    for now, window in [(1000, 300), (1000, 1000), (1000, 5000), (700, 650), (120, 50)]:
        expected = window_stats([s for s in spans if s.start < now], now, window, excluded)
        got = timeline.stats(now, window, excluded)
        for field in ("up", "down", "no_data"):
            assert math.isclose(getattr(got, field), getattr(expected, field)), (now, window)
    assert timeline.state_at(110) is State.DOWN
    assert timeline.state_at(999) is State.UP


def test_collector_figures_follow_new_results(tmp_path: Path) -> None:
    """Through the real collector: availability over 5m drops after a failure is recorded
    between two scrapes."""
    config = _config(tmp_path)
    store = HistoryStore(config.storage)
    clock = [START + 3000.0]
    view = DaemonView(config, store, LiveCounters(), clock=lambda: clock[0])
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SloCollector(view))
    refs = list(config.checks())
    labels = {"environment": "radiology", "tier": "production", "service": "pacs", "window": "5m"}
    try:
        for step in range(100):
            for ref in refs:
                store.record(ref.key, "tcp", _result(START + step * 30, True), 65.0)
        assert registry.get_sample_value("monai_slo_availability_ratio", labels) == 1.0
        store.record(refs[0].key, "tcp", _result(START + 3000.0, False), 65.0)
        clock[0] += 30
        ratio = registry.get_sample_value("monai_slo_availability_ratio", labels)
        assert ratio is not None and math.isclose(ratio, 1 - 30 / 300)
    finally:
        store.close()


def test_known_ids_are_remembered_after_one_query(tmp_path: Path) -> None:
    """A check found in the database is looked up once; later calls (every scrape) return
    the same id without a query, and unknown checks stay unknown."""
    path = tmp_path / "h.sqlite"
    writer = HistoryStore(path)
    check_id = writer.check_id(("radiology", "pacs", "a"), "tcp")
    writer.close()
    store = HistoryStore(path, read_only=True)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        assert store.known_id(("radiology", "pacs", "a")) == check_id
        assert len(statements) == 1
        assert store.known_id(("radiology", "pacs", "a")) == check_id
        assert store.known_id(("radiology", "pacs", "nope")) is None
        assert len(statements) == 2
    finally:
        store.close()
