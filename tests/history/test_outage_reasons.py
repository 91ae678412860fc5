"""Every outage keeps its why: reasons per down segment and reason changes within one, through
the buffer, a flush and a restart, in the report, and in a schema-2 file migrated in place."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import load_config
from monai_slo.history.evaluation import evaluate
from monai_slo.history.store import SCHEMA_VERSION, HistoryStore
from monai_slo.outputs.report import build_report, parse_period
from monai_slo.outputs.report_html import render_report

KEY = ("radiology", "pacs", "echo")
STALENESS = 125.0

CONFIG = """\
storage: {storage}
environments:
  - name: radiology
    tier: production
    objective: 99.9
    services:
      - name: pacs
        checks:
          - {{name: echo, kind: tcp, host: 127.0.0.1, port: 104, interval: 60s, timeout: 5s}}
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _minutes(start: str, end: str) -> list[float]:
    t, stop, found = at(start), at(end), []
    while t < stop:
        found.append(t)
        t += 60.0
    return found


def _record(
    store: HistoryStore, times: list[float], reason: FailureReason | None, detail: str = ""
) -> None:
    for t in times:
        ok = reason is None
        store.record(KEY, "tcp", CheckResult(ok, 0.01, reason, "" if ok else detail, t), STALENESS)


def _november(path: Path) -> None:
    """Two outages with different reasons; the second changes reason half way."""
    store = HistoryStore(path)
    try:
        _record(store, _minutes("2026-11-01T00:00", "2026-11-05T10:00"), None)
        _record(
            store,
            _minutes("2026-11-05T10:00", "2026-11-05T10:20"),
            FailureReason.TIMEOUT,
            "no answer in 5s",
        )
        _record(store, _minutes("2026-11-05T10:20", "2026-11-12T08:00"), None)
        _record(
            store,
            _minutes("2026-11-12T08:00", "2026-11-12T08:10"),
            FailureReason.REFUSED,
            "port 104 closed",
        )
        store.flush()  # half of the second outage on disk, the rest buffered until close
        _record(
            store,
            _minutes("2026-11-12T08:10", "2026-11-12T08:30"),
            FailureReason.TLS,
            "bad <cert>\x1b[31m",
        )
        _record(store, _minutes("2026-11-12T08:30", "2026-11-30T00:00"), None)
    finally:
        store.close()


def _config(tmp_path: Path, storage: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(storage=storage))
    return load_config(path)


def test_two_outages_with_different_reasons_both_named(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    _november(storage)
    config = _config(tmp_path, storage)
    store = HistoryStore(storage, read_only=True)  # a restart: everything from the file
    try:
        report = build_report(config, store, parse_period("2026-11"), at("2026-12-01T00:00"))
    finally:
        store.close()
    (pacs,) = report.environments[0].services
    first, second = pacs.outages
    assert [m.reason for m in first.checks[0].reasons] == ["timeout"]
    # The reason change within the second outage is kept, with when it changed.
    assert [(m.reason, m.at) for m in second.checks[0].reasons] == [
        ("refused", at("2026-11-12T08:00")),
        ("tls", at("2026-11-12T08:10")),
    ]
    html = render_report(report)
    assert "timeout: no answer in 5s" in html
    assert "refused: port 104 closed" in html
    assert "from 2026-11-12 08:10:00 tls" in html
    # The detail is bounded, its control characters escaped, then HTML-escaped.
    assert "bad &lt;cert&gt;\\x1b[31m" in html
    assert "\x1b" not in html


def test_reasons_survive_buffer_and_restart(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    store = HistoryStore(storage)
    t0 = at("2026-11-05T10:00")
    _record(store, [t0, t0 + 60], FailureReason.TIMEOUT, "slow")
    # Unflushed: read from memory.
    marks = store.reasons([store.check_id(KEY)], t0 - 1, t0 + 200)[store.check_id(KEY)]
    assert [m.reason for m in marks] == ["timeout"]
    store.close()
    # A restart in the middle of the outage: the next change is still noticed as one.
    store = HistoryStore(storage)
    try:
        _record(store, [t0 + 120], FailureReason.TIMEOUT, "slow")
        _record(store, [t0 + 180], FailureReason.REFUSED, "closed")
        store.flush()
        cid = store.check_id(KEY)
        assert [(m.at, m.reason) for m in store.reasons([cid], t0, t0 + 300)[cid]] == [
            (t0, "timeout"),
            (t0 + 180, "refused"),
        ]
    finally:
        store.close()


def test_status_names_every_reason_of_the_current_outage(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    store = HistoryStore(storage)
    now = at("2026-11-05T11:00")
    _record(store, [now - 180, now - 120], FailureReason.TIMEOUT, "slow")
    _record(store, [now - 60], FailureReason.REFUSED, "closed")
    store.close()
    config = _config(tmp_path, storage)
    store = HistoryStore(storage, read_only=True)
    try:
        (report,) = evaluate(config, store, now)
    finally:
        store.close()
    (check,) = report.checks
    assert [m.reason for m in check.outage_reasons] == ["timeout", "refused"]


def _schema_2_file(path: Path) -> None:
    """A file as the schema-2 code wrote it (its DDL verbatim), with rows in every table."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE checks (id INTEGER PRIMARY KEY, environment TEXT NOT NULL,
            service TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
            UNIQUE (environment, service, name));
        CREATE TABLE segments (check_id INTEGER NOT NULL REFERENCES checks(id),
            start REAL NOT NULL, last REAL NOT NULL, end REAL NOT NULL, up INTEGER NOT NULL,
            PRIMARY KEY (check_id, start)) WITHOUT ROWID;
        CREATE INDEX segments_end ON segments (end);
        CREATE TABLE runs (check_id INTEGER NOT NULL REFERENCES checks(id), hour INTEGER NOT NULL,
            runs INTEGER NOT NULL, failures INTEGER NOT NULL,
            timed INTEGER NOT NULL DEFAULT 0, fast INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (check_id, hour)) WITHOUT ROWID;
        CREATE TABLE maintenance (id INTEGER PRIMARY KEY, environment TEXT NOT NULL, service TEXT,
            start REAL NOT NULL, end REAL NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL);
        CREATE TABLE last_results (check_id INTEGER PRIMARY KEY REFERENCES checks(id),
            timestamp REAL NOT NULL, success INTEGER NOT NULL, duration REAL NOT NULL,
            reason TEXT, detail TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '2');
        INSERT INTO checks VALUES (1, 'radiology', 'pacs', 'echo', 'tcp');
        INSERT INTO segments VALUES (1, 1000.0, 1900.0, 2000.0, 1);
        INSERT INTO segments VALUES (1, 2000.0, 2900.0, 3000.0, 0);
        INSERT INTO runs VALUES (1, 0, 30, 15, 0, 0);
        INSERT INTO maintenance VALUES (1, 'radiology', 'pacs', 500.0, 900.0, 'upgrade', 400.0);
        INSERT INTO last_results VALUES (1, 2900.0, 0, 0.5, 'refused', 'closed');
        """
    )
    db.commit()
    db.close()


def test_schema_2_database_migrates_in_place(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    _schema_2_file(storage)
    # A reader before any daemon migrated it: works, without reasons or incidents.
    reader = HistoryStore(storage, read_only=True)
    try:
        assert reader.incidents(0) == []
        assert [m.reason for m in reader.maintenance(0)] == ["upgrade"]
        assert reader.reasons([1], 0, 5000) == {1: []}
    finally:
        reader.close()
    store = HistoryStore(storage)
    try:
        segments = store.segments([1], 0, 5000)[1]
        assert [(s.start, s.end, s.up) for s in segments] == [
            (1000, 2000, True),
            (2000, 3000, False),
        ]
        assert store.run_counts(1, 0) == (30, 15)
        (window,) = store.maintenance(0)
        assert (window.reason, window.created, window.created_by) == ("upgrade", 400.0, "")
        last = store.last_result(1)
        assert last is not None and last.detail == "closed"
    finally:
        store.close()
    db = sqlite3.connect(storage)
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(segments)")}
        assert {"reason", "detail"} <= columns
        assert {row[1] for row in db.execute("PRAGMA table_info(maintenance)")} >= {
            "created_by",
            "ended_by",
            "ended_at",
            "planned_end",
        }
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
        assert {"segment_reasons", "incidents", "incident_updates"} <= tables
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
        assert SCHEMA_VERSION == 4
        assert db.execute("SELECT COUNT(*) FROM segments").fetchone() == (2,)
    finally:
        db.close()
    # Migrated once: opening again changes nothing and keeps the rows.
    HistoryStore(storage).close()
