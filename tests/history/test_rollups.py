"""Years of history in bounded space: days aging out of ``retention`` are rolled up per check and
per service before their segments are pruned; a report over them reads the rollups (and says
so) with the figures the segments gave; a schema-3 file is migrated in place; five years of
rollups answer a 2022 report from the rollup tables' primary keys."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import Config, load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.history import store as store_module
from monai_slo.history.rollup import archive_and_prune, roll_up
from monai_slo.history.store import DAY, SCHEMA_VERSION, DayRollup, HistoryStore
from monai_slo.outputs.report import build_report, parse_period
from monai_slo.outputs.report_csv import render_csv
from monai_slo.outputs.report_data import render_json
from monai_slo.outputs.report_html import render_report

ECHO = ("radiology", "pacs", "echo")
WEB = ("radiology", "pacs", "web")
STALENESS = 125.0
RETENTION = 30 * 86400.0

CONFIG = """\
storage: {storage}
retention: 30d
environments:
  - name: radiology
    tier: production
    objective: 99.9
    services:
      - name: pacs
        checks:
          - {{name: echo, kind: tcp, host: 127.0.0.1, port: 104, interval: 60s, timeout: 5s}}
          - {{name: web, kind: tcp, host: 127.0.0.1, port: 443, interval: 60s, timeout: 5s}}
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _config(tmp_path: Path, storage: Path) -> Config:
    return load_config(tmp_path / "config.yaml", CONFIG.format(storage=storage))


def _record(
    store: HistoryStore,
    key: tuple[str, str, str],
    start: str,
    end: str,
    reason: FailureReason | None = None,
) -> None:
    t, stop = at(start), at(end)
    while t < stop:
        ok = reason is None
        result = CheckResult(ok, 0.01, reason, "" if ok else "detail", t)
        store.record(key, "tcp", result, STALENESS)
        t += 60.0


def _january(path: Path) -> None:
    """Both checks up 1-4 January 2022 but for two outages with different reasons (one of
    them overlapping the other check's) and a maintenance window with an outage inside."""
    store = HistoryStore(path, retention=RETENTION)
    try:
        _record(store, ECHO, "2022-01-01T00:00", "2022-01-02T10:00")
        _record(store, ECHO, "2022-01-02T10:00", "2022-01-02T10:20", FailureReason.TIMEOUT)
        _record(store, ECHO, "2022-01-02T10:20", "2022-01-03T23:50")
        _record(store, ECHO, "2022-01-03T23:50", "2022-01-04T00:10", FailureReason.REFUSED)
        _record(store, ECHO, "2022-01-04T00:10", "2022-01-05T00:00")
        _record(store, WEB, "2022-01-01T00:00", "2022-01-02T10:10")
        _record(store, WEB, "2022-01-02T10:10", "2022-01-02T10:30", FailureReason.HTTP_STATUS)
        _record(store, WEB, "2022-01-02T10:30", "2022-01-04T03:00")
        _record(store, WEB, "2022-01-04T03:00", "2022-01-04T03:30", FailureReason.REFUSED)
        _record(store, WEB, "2022-01-04T03:30", "2022-01-05T00:00")
        store.add_maintenance(
            "radiology",
            "pacs",
            at("2022-01-04T02:00"),
            at("2022-01-04T04:00"),
            reason="patching",
            now=at("2022-01-01T00:00"),
            author="alice",
        )
    finally:
        store.close()


def _report(config: Config, storage: Path, now: float):  # type: ignore[no-untyped-def]
    store = HistoryStore(storage, retention=RETENTION, read_only=True)
    try:
        return build_report(config, store, parse_period("2022-01-01..2022-01-04"), now)
    finally:
        store.close()


def test_days_aging_out_are_rolled_up_with_the_figures_of_their_segments(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    _january(storage)
    config = _config(tmp_path, storage)
    before = _report(config, storage, at("2022-01-06T00:00"))
    (full,) = before.environments[0].services
    assert before.archived_until is None and len(full.outages) == 3

    # Forty days on, 1-5 January have aged out of the 30-day retention.
    later = at("2022-02-10T00:00")
    store = HistoryStore(storage, retention=RETENTION)
    try:
        assert archive_and_prune(config, store, later) == 7  # one pass: a week of days
        assert store.rolled_until() == int(at("2022-01-08T00:00") // DAY)
    finally:
        store.close()
    db = sqlite3.connect(storage)
    try:  # pruned once rolled up
        assert db.execute("SELECT COUNT(*) FROM segments").fetchone() == (0,)
    finally:
        db.close()

    after = _report(config, storage, later)
    (rolled,) = after.environments[0].services
    assert after.archived_until == at("2022-01-05T00:00")  # the whole period is rolled up
    assert rolled.outages == ()
    for name in ("up", "down", "no_data"):
        assert getattr(rolled.stats, name) == pytest.approx(getattr(full.stats, name), abs=0.01)
    assert rolled.maintenance == pytest.approx(full.maintenance, abs=0.01)
    assert rolled.maintenance_down == pytest.approx(full.maintenance_down, abs=0.01)
    assert rolled.availability == pytest.approx(full.availability)
    assert [d.stats.down for d in rolled.days] == pytest.approx(
        [d.stats.down for d in full.days], abs=0.01
    )
    # Outages begun per day: 2 January one (echo and web overlap), 3 January one (echo at
    # 23:50, going on past midnight: not counted again on the 4th), 4 January web's (in
    # maintenance, still an outage).
    assert [d.outages for d in rolled.rollups] == [0, 1, 1, 1]
    assert rolled.archived_outages == 3
    assert dict(rolled.check_reasons) == {
        "echo": {"refused": 1, "timeout": 1},
        "web": {"http_status": 1, "refused": 1},
    }
    # Maintenance outlives the segments: still listed with its author, still out of the
    # allowance.
    assert [(w.reason, w.created_by) for w in rolled.audit] == [("patching", "alice")]
    assert rolled.allowed_downtime == pytest.approx(full.allowed_downtime)
    html = render_report(after)
    assert "From daily rollups:" in html
    assert 'data-archived="3"' in html
    assert "echo: refused (1), timeout (1)" in html
    # The exports say so too, with the same counts.
    document = json.loads(render_json(after))
    assert document["rollup_notice"].startswith("The days before 2022-01-05 00:00 UTC")
    assert document["services"][0]["archived"]["outages"] == 3
    assert document["services"][0]["archived"]["reasons"]["echo"] == {"refused": 1, "timeout": 1}
    (row,) = csv.DictReader(io.StringIO(render_csv(after)))
    assert row["outage_count"] == "3" and row["rollup_notice"] == document["rollup_notice"]


def test_the_daemon_rolls_up_at_start(tmp_path: Path) -> None:
    """Where the daemon pruned it now rolls up first: started forty days on, the January
    days are rolled up."""
    storage = tmp_path / "history.sqlite"
    _january(storage)
    config = load_config(
        tmp_path / "c.yaml", "listen: 127.0.0.1:0\n" + CONFIG.format(storage=storage)
    )
    daemon = Daemon(config, clock=lambda: at("2022-02-10T00:00"))
    daemon.start()
    daemon.stop()
    store = HistoryStore(storage, read_only=True)
    try:
        assert len(store.service_days("radiology", "pacs", 0, 10**6)) == 7
    finally:
        store.close()


def test_rollups_are_kept_for_the_archive_retention(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    _january(storage)
    config = _config(tmp_path, storage)
    store = HistoryStore(storage, retention=RETENTION, archive_retention=365 * DAY)
    try:
        archive_and_prune(config, store, at("2022-02-10T00:00"))
        assert len(store.service_days("radiology", "pacs", 0, 10**6)) == 7
        store.prune(at("2023-01-03T00:00"))
        assert [r.day for r in store.service_days("radiology", "pacs", 0, 10**6)] == [
            int(at(f"2022-01-0{d}T00:00") // DAY) for d in range(3, 8)
        ]
    finally:
        store.close()


def test_a_day_not_rolled_up_is_never_pruned(tmp_path: Path) -> None:
    """A long-stopped daemon catches up a pass at a time; meanwhile the prune keeps the
    segments of the days still to roll up, so the figures come out the same."""
    storage = tmp_path / "history.sqlite"
    _january(storage)
    config = _config(tmp_path, storage)
    (full,) = _report(config, storage, at("2022-01-06T00:00")).environments[0].services
    far = at("2022-06-01T00:00")
    store = HistoryStore(storage, retention=RETENTION)
    try:
        assert roll_up(config, store, far, limit=2) == 2
        until = store.rolled_until()
        assert until == int(at("2022-01-03T00:00") // DAY)
        store.prune(far, keep_from=until * DAY)
    finally:
        store.close()
    db = sqlite3.connect(storage)
    try:
        (kept,) = db.execute("SELECT COUNT(*) FROM segments WHERE end > ?", (until * DAY,))
        assert kept[0] > 0
    finally:
        db.close()
    store = HistoryStore(storage, retention=RETENTION)
    try:
        archive_and_prune(config, store, far)
    finally:
        store.close()
    (rolled,) = _report(config, storage, far).environments[0].services
    assert [d.stats.down for d in rolled.days] == pytest.approx(
        [d.stats.down for d in full.days], abs=0.01
    )
    assert rolled.archived_outages == 3


def _schema_3_file(path: Path) -> None:
    """A version 3 file as the previous release wrote it: its DDL is the current schema
    less the rollup tables, which version 4 only adds."""
    db = sqlite3.connect(path)
    db.executescript(store_module._SCHEMA + store_module._V3_TABLES)
    db.executescript(
        """
        INSERT INTO meta VALUES ('schema_version', '3');
        INSERT INTO checks VALUES (1, 'radiology', 'pacs', 'echo', 'tcp');
        INSERT INTO segments VALUES (1, 1000.0, 1900.0, 2000.0, 1, NULL, '');
        INSERT INTO segments VALUES (1, 2000.0, 2900.0, 3000.0, 0, 'refused', 'closed');
        INSERT INTO segment_reasons VALUES (1, 2500.0, 'timeout', 'slow');
        INSERT INTO runs VALUES (1, 0, 30, 15, 0, 0);
        INSERT INTO incidents VALUES (1, 'radiology', 'pacs', 2000.0, 'bob', NULL, NULL);
        INSERT INTO incident_updates VALUES (1, 2000.0, 'bob', 'open', 'PACS down');
        """
    )
    db.commit()
    db.close()


def test_schema_3_database_migrates_in_place(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    _schema_3_file(storage)
    reader = HistoryStore(storage, read_only=True)  # before any daemon migrated it
    try:
        assert reader.rolled_until() is None
        assert reader.service_days("radiology", "pacs", 0, 10) == []
    finally:
        reader.close()
    store = HistoryStore(storage)
    try:
        assert [(s.start, s.up) for s in store.segments([1], 0, 5000)[1]] == [
            (1000, True),
            (2000, False),
        ]
        assert [m.reason for m in store.reasons([1], 0, 5000)[1]] == ["refused", "timeout"]
        assert store.run_counts(1, 0) == (30, 15)
        assert [i.title for i in store.incidents(0)] == ["PACS down"]
        assert store.rolled_until() is None
        # Pruned before without rollups: the first roll-up starts at the first day no prune
        # can have touched (the earliest end stored, 2000 s, rounded up to a day), not at the
        # oldest segment's start.
        assert store.first_complete_day() == 1
    finally:
        store.close()
    db = sqlite3.connect(storage)
    try:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        assert {"check_days", "service_days"} <= tables
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        assert SCHEMA_VERSION == 4
        assert db.execute("SELECT COUNT(*) FROM segments").fetchone() == (2,)
    finally:
        db.close()


def _five_years(store: HistoryStore, checks: int) -> None:
    """2021-12-01 to 2026-11-30: every check up each day but for a 10-minute refusal on the
    5th of each month, and the service likewise."""
    first = int(at("2021-12-01T00:00") // DAY)
    last = int(at("2026-12-01T00:00") // DAY)
    rows = []
    for day in range(first, last):
        bad = datetime.fromtimestamp(day * DAY, UTC).day == 5
        down = 600.0 if bad else 0.0
        reasons = {"refused": 1} if bad else {}
        rows.append(DayRollup(day, DAY - down, down, 0.0, 0.0, 0.0, int(bad), reasons))
    store.save_rollups(
        [(check_id, row) for row in rows for check_id in range(1, checks + 1)],
        [("radiology", "pacs", row) for row in rows],
        last,
    )


def test_five_years_of_rollups_answer_a_2022_report(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    config = _config(tmp_path, storage)
    store = HistoryStore(storage, retention=RETENTION)
    try:
        store.check_id(ECHO, "tcp")
        store.check_id(WEB, "tcp")
        store.flush()
        _five_years(store, 2)
    finally:
        store.close()
    store = HistoryStore(storage, retention=RETENTION, read_only=True)
    try:
        report = build_report(config, store, parse_period("2022-06"), at("2026-12-01T00:00"))
    finally:
        store.close()
    db = sqlite3.connect(storage)
    try:
        assert db.execute("SELECT COUNT(*) FROM check_days").fetchone() == (2 * 1826,)
        queries = (
            "SELECT * FROM service_days WHERE environment = 'radiology' AND service = 'pacs' "
            "AND day >= 0 AND day < 1",
            "SELECT * FROM check_days WHERE check_id IN (1, 2) AND day >= 0 AND day < 1",
        )
        plan = [
            " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {query}"))
            for query in queries
        ]
    finally:
        db.close()
    (pacs,) = report.environments[0].services
    assert report.archived_until == at("2022-07-01T00:00")
    assert len(pacs.days) == 30 and pacs.outages == ()
    assert pacs.unplanned_down == 600.0
    assert pacs.availability == pytest.approx(1 - 600 / (30 * DAY))
    assert pacs.archived_outages == 1
    assert dict(pacs.check_reasons) == {"echo": {"refused": 1}, "web": {"refused": 1}}
    # A range of the key, not a scan of five years.
    assert all("USING PRIMARY KEY" in step for step in plan), plan
