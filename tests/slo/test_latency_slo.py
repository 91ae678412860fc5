"""Latency objectives: the share of a check's runs that succeeded within its threshold, per
window, with its own error budget and burn rate; kept as hourly counts in the history (a
version 1 file migrated in place); exposed on a real daemon's /metrics; alerted by
MonaiSloLatencyBudgetBurn."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError

from monai_slo.checks.base import CheckConfig, CheckResult
from monai_slo.config.model import Config, load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.history.store import SCHEMA_VERSION, HistoryStore
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.rules import generate_rules
from monai_slo.slo.latency import (
    LatencyStats,
    latency_budget_remaining,
    latency_burn_rate,
    latency_stats,
)
from tests.daemon.test_daemon import sample, scrape, wait_until
from tests.fixtures_dicom import free_port
from tests.fixtures_http import HttpPeer

H = 3600.0
NOW = 1000 * H + 1800.0  # half past an hour


def test_latency_stats_count_whole_hours_and_cut_ones_pro_rata() -> None:
    """A window counts the hours it covers fully and the share of a cut hour's elapsed time
    it keeps; the current hour has run only until now."""
    hours = {998: (100, 100), 999: (10, 0), 1000: (30, 15)}
    whole = latency_stats(hours, NOW, 3 * H)  # back to 997:30: 998, 999 and 1000 whole
    assert (whole.timed, whole.fast) == (140, 115)
    # 1h back to 999:30: half of hour 999, all of the current half hour
    one = latency_stats(hours, NOW, H)
    assert one.timed == pytest.approx(5 + 30) and one.fast == pytest.approx(0 + 15)
    # 5m: a sixth of the current (half-elapsed) hour: that hour's ratio
    five = latency_stats(hours, NOW, 300)
    assert five.timed == pytest.approx(5) and five.ratio == pytest.approx(0.5)
    assert latency_stats({}, NOW, 300).ratio is None


def test_excluded_time_leaves_the_runs_it_held_out() -> None:
    """Planned maintenance removes its share of a cut hour's runs from both counts."""
    hours = {999: (60, 0), 1000: (30, 30)}
    stats = latency_stats(hours, NOW, 2 * H, excluded=[(999 * H, 999 * H + 2700)])
    assert stats.timed == pytest.approx(15 + 30) and stats.fast == pytest.approx(30)


def test_budget_and_burn_rate_of_slow_runs() -> None:
    """With a 99 % objective, 1 slow run in 100 spends the budget exactly (burn 1, nothing
    left); 2 in 100 burn twice as fast and overspend it; no timed runs: unknown."""
    on_budget = LatencyStats(86_400, 100, 99)
    assert latency_burn_rate(on_budget, 0.99) == pytest.approx(1.0)
    assert latency_budget_remaining(on_budget, 0.99) == pytest.approx(0.0)
    twice = LatencyStats(86_400, 100, 98)
    assert latency_burn_rate(twice, 0.99) == pytest.approx(2.0)
    assert latency_budget_remaining(twice, 0.99) == pytest.approx(-1.0)
    none = LatencyStats(300, 0, 0)
    assert latency_burn_rate(none, 0.99) is None and latency_budget_remaining(none, 0.99) is None


def test_threshold_beyond_the_timeout_is_refused() -> None:
    """A threshold above the timeout could never be missed by a successful run: refused."""
    with pytest.raises(ValidationError, match="must not exceed the timeout"):
        CheckConfig(name="w", kind="http", timeout=1, latency={"threshold": "2s", "objective": 99})
    ok = CheckConfig(name="w", kind="http", latency={"threshold": "500ms", "objective": 99.5})
    assert ok.latency is not None and ok.latency.threshold == 0.5


def test_store_counts_timed_and_fast_runs_and_migrates_a_version_1_file(tmp_path: Path) -> None:
    """A version 1 history keeps its run counts and gains the latency columns in place;
    runs recorded with a threshold are timed, fast when they succeeded within it; runs
    without one are not timed. Counts survive a reopen."""
    path = tmp_path / "h.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE checks (id INTEGER PRIMARY KEY, environment TEXT NOT NULL, service TEXT"
        " NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, UNIQUE (environment, service, name));"
        "CREATE TABLE segments (check_id INTEGER NOT NULL, start REAL NOT NULL, last REAL NOT"
        " NULL, end REAL NOT NULL, up INTEGER NOT NULL, PRIMARY KEY (check_id, start))"
        " WITHOUT ROWID;"
        "CREATE TABLE runs (check_id INTEGER NOT NULL, hour INTEGER NOT NULL, runs INTEGER NOT"
        " NULL, failures INTEGER NOT NULL, PRIMARY KEY (check_id, hour)) WITHOUT ROWID;"
        "CREATE TABLE maintenance (id INTEGER PRIMARY KEY, environment TEXT NOT NULL, service"
        " TEXT, start REAL NOT NULL, end REAL NOT NULL, reason TEXT NOT NULL, created REAL NOT"
        " NULL);"
        "CREATE TABLE last_results (check_id INTEGER PRIMARY KEY, timestamp REAL NOT NULL,"
        " success INTEGER NOT NULL, duration REAL NOT NULL, reason TEXT, detail TEXT NOT NULL);"
        "INSERT INTO checks VALUES (1, 'e', 's', 'web', 'http');"
        "INSERT INTO runs VALUES (1, 1000, 7, 2);"
    )
    db.commit()
    db.close()
    reader = HistoryStore(path, read_only=True)
    assert reader.latency_counts(1, NOW - H) == {}  # nothing timed yet, file untouched
    reader.close()

    store = HistoryStore(path, clock=lambda: NOW)
    key = ("e", "s", "web")
    for duration, success in ((0.1, True), (0.9, True), (0.1, False)):
        store.record(key, "http", CheckResult(success, duration, None, "", NOW - 60), 30, 0.5)
    store.record(key, "http", CheckResult(True, 0.1, None, "", NOW - 30), 30)  # no objective
    assert store.flush()
    store.close()

    again = HistoryStore(path, read_only=True)
    assert again.latency_counts(1, NOW - H) == {1000: (3, 1)}
    assert again.run_counts(1, NOW - H) == (11, 3)
    again.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    db.close()


def _config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path)


def test_alerts_page_and_ticket_per_burn_row_only_where_a_check_has_an_objective(
    tmp_path: Path,
) -> None:
    """MonaiSloLatencyBudgetBurn: the availability rows (page 14.4x 1h/5m, 6x 6h/30m;
    ticket 3x 1d/2h, 1x 3d/6h for 30 days) over the recorded latency burn rate, outside
    maintenance; only in environments with a latency objective; never for best effort."""
    config = _config(
        tmp_path,
        "storage: h.sqlite\nenvironments:\n"
        "  - name: prod\n    tier: production\n    window: 30d\n    services:\n"
        "      - name: pacs\n        checks:\n"
        "          - {name: web, kind: http, url: 'http://127.0.0.1:1/',"
        " latency: {threshold: 1s, objective: 99}}\n"
        "  - name: other\n    tier: production\n    services:\n"
        "      - name: pacs\n        checks:\n"
        "          - {name: web, kind: http, url: 'http://127.0.0.1:1/'}\n"
        "  - name: ws\n    tier: workstation\n    services:\n"
        "      - name: label\n        checks:\n"
        "          - {name: web, kind: http, url: 'http://127.0.0.1:1/',"
        " latency: {threshold: 1s, objective: 99}}\n",
    )
    groups = {g["name"]: g["rules"] for g in generate_rules(config)["groups"]}

    def latency_alerts(env: str) -> list[dict[str, object]]:
        return [
            r for r in groups[f"monai-slo:{env}"] if r.get("alert") == "MonaiSloLatencyBudgetBurn"
        ]

    prod = latency_alerts("prod")
    rows = [
        (r["labels"]["severity"], r["labels"]["long_window"], r["labels"]["short_window"])  # type: ignore[index]
        for r in prod
    ]
    assert rows == [
        ("page", "1h", "5m"),
        ("page", "6h", "30m"),
        ("ticket", "1d", "2h"),
        ("ticket", "3d", "6h"),
    ]
    assert all(m.RECORDED_FLEET_LATENCY_BURN_RATE in str(r["expr"]) for r in prod)
    assert "> 14.4" in str(prod[0]["expr"]) and "maintenance_active" in str(prod[0]["expr"])
    records = {r.get("record") for r in groups["monai-slo:prod"]}
    assert m.RECORDED_LATENCY_BURN_RATE in records
    assert latency_alerts("other") == [] and latency_alerts("ws") == []
    assert m.RECORDED_LATENCY_BURN_RATE not in {r.get("record") for r in groups["monai-slo:other"]}


@pytest.mark.slow
def test_a_slow_but_answering_peer_burns_latency_budget_while_availability_stays_whole(
    tmp_path: Path,
) -> None:
    """A real HTTP peer that answers 200 after 150 ms, checked with a 50 ms threshold: on the
    daemon's /metrics its latency ratio is 0 and its burn rate 100 (99 % objective) with the
    budget overspent, while its availability is 1.0; a fast peer's latency ratio is 1."""
    with HttpPeer() as slow, HttpPeer() as fast:
        slow.delay = 0.15
        port = free_port()
        config = _config(
            tmp_path,
            f"listen: 127.0.0.1:{port}\nstorage: history.sqlite\nflush_interval: 1s\n"
            "defaults: {interval: 0.5s, timeout: 0.4s}\n"
            "environments:\n  - name: radiology\n    tier: production\n    window: 1d\n"
            "    services:\n"
            "      - name: slow\n        checks:\n"
            f"          - {{name: web, kind: http, url: '{slow.url}/',"
            " latency: {threshold: 50ms, objective: 99}}\n"
            "      - name: quick\n        checks:\n"
            f"          - {{name: web, kind: http, url: '{fast.url}/',"
            " latency: {threshold: 300ms, objective: 99}}\n",
        )
        daemon = Daemon(config)
        daemon.start()
        try:
            wait_until(
                lambda: (
                    min(
                        daemon.counters.runs.get(("radiology", s, "web"), 0)
                        for s in ("slow", "quick")
                    )
                    >= 4
                ),
                what="4 runs of each check",
            )
            samples = scrape(port)
            slow_labels = {"service": "slow", "check": "web", "kind": "http"}
            assert sample(samples, m.LATENCY_RATIO, window="5m", **slow_labels) == 0.0
            assert sample(
                samples, m.LATENCY_BURN_RATE, window="5m", **slow_labels
            ) == pytest.approx(100)
            assert sample(
                samples, m.LATENCY_BURN_RATE, window="1h", **slow_labels
            ) == pytest.approx(100)
            budget = sample(samples, m.LATENCY_ERROR_BUDGET_REMAINING_RATIO, **slow_labels)
            assert budget is not None and budget < 0
            assert sample(samples, m.LATENCY_THRESHOLD_SECONDS, **slow_labels) == pytest.approx(
                0.05
            )
            assert sample(samples, m.LATENCY_OBJECTIVE_RATIO, **slow_labels) == pytest.approx(0.99)
            assert sample(samples, m.AVAILABILITY_RATIO, service="slow", window="5m") == 1.0
            assert sample(samples, m.CHECK_UP, **slow_labels) == 1.0
            quick = {"service": "quick", "check": "web"}
            assert sample(samples, m.LATENCY_RATIO, window="5m", **quick) == 1.0
            assert sample(samples, m.LATENCY_BURN_RATE, window="5m", **quick) == 0.0
        finally:
            daemon.stop()


def test_status_status_page_and_report_show_the_latency_objective(tmp_path: Path) -> None:
    """A check with 3 of 4 runs within its 50 ms threshold (objective 99 %) shows 75 % with
    its threshold and objective in `status`'s checks table, on the status page and in the
    report for the period; its latency budget is overspent (25 slow in 100 against 1)."""
    from monai_slo.commands.status_tables import service_checks_table
    from monai_slo.history.evaluation import evaluate
    from monai_slo.outputs.report import build_report, parse_period
    from monai_slo.outputs.report_html import render_report
    from monai_slo.outputs.status_data import status_data
    from monai_slo.outputs.status_page import StatusPage

    config = _config(
        tmp_path,
        "storage: h.sqlite\nenvironments:\n  - name: prod\n    tier: production\n"
        "    window: 1d\n    services:\n      - name: pacs\n        checks:\n"
        "          - {name: web, kind: http, url: 'http://127.0.0.1:1/',"
        " latency: {threshold: 50ms, objective: 99}}\n",
    )
    ref = next(iter(config.checks()))
    now = parse_period("2026-11").start + 10 * 86_400 + 1800
    store = HistoryStore(config.storage, clock=lambda: now)
    try:
        for i, duration in enumerate((0.01, 0.02, 0.2, 0.03)):
            result = CheckResult(True, duration, None, "", now - 600 + 30 * i)
            store.record(ref.key, "http", result, ref.config.staleness, 0.05)
        assert store.flush()
        reports = evaluate(config, store, now)
        table = service_checks_table(status_data(reports)["checks"], width=250)
        assert (
            "75.00% ≤ 50ms /1d of 99%" in table and "overspent 25.0x" in table
        )  # -2400 % left, in words

        page = StatusPage(lambda: config, store, clock=lambda: now).html()
        assert 'data-latency="web"' in page and '<b data-figure="latency">75.000%</b>' in page
        assert "none (overspent" in page.split('data-latency="web"')[1]

        report = build_report(config, store, parse_period("2026-11"), now)
        (latency,) = report.environments[0].services[0].latency
        assert latency.stats.ratio == pytest.approx(0.75) and latency.met is False
        assert latency.budget_consumed == pytest.approx(25.0)
        text = render_report(report)
        assert "web: runs within 50ms" in text and "75.000% (objective 99%)" in text
    finally:
        store.close()
