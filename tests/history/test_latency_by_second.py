"""Latency windows up to an hour are exact: the store keeps the last hour's verdicts per
second (latency_seconds) beside the hourly counts, durable across a reopen, readable by
another process, pruned as they age out; longer windows still read the hours."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monai_slo.checks.base import CheckResult
from monai_slo.config.model import CheckRef, load_config
from monai_slo.history import latency_seconds
from monai_slo.history.evaluation import latency_report
from monai_slo.history.store import HistoryStore

H = 3600.0
START = 1000 * H  # an hour boundary
KEY = ("radiology", "flow", "roundtrip")
WINDOWS = (300.0, 1800.0, 3600.0, 21600.0)


def _ref(tmp_path: Path) -> CheckRef:
    path = tmp_path / "config.yaml"
    path.write_text(
        "environments:\n  - name: radiology\n    tier: production\n    services:\n"
        "      - name: flow\n        checks:\n"
        "          - {name: roundtrip, kind: http, url: 'http://127.0.0.1:9/',"
        " latency: {threshold: 1s, objective: 99}}\n"
    )
    [ref] = load_config(path).checks()
    return ref


def _slow_then_fast(store: HistoryStore, minutes: int = 60) -> None:
    """Slow runs in the hour's first half (one a minute), fast ones in its second."""
    for minute in range(minutes):
        duration = 2.0 if minute < 30 else 0.1
        result = CheckResult(True, duration, None, "", START + 60 * minute)
        store.record(KEY, "http", result, 90, latency_threshold=1.0)


def _ratios(
    store: HistoryStore, ref: CheckRef, now: float, **kw: object
) -> dict[str, tuple[float, float]]:
    report = latency_report(
        ref, store, store.known_id(KEY), now, windows=WINDOWS, slo_window=3600.0, **kw
    )  # type: ignore[arg-type]
    return {w.label: (w.stats.timed, w.stats.fast) for w in report.windows}


def test_windows_up_to_an_hour_count_their_runs_exactly(tmp_path: Path) -> None:
    """At the end of an hour slow in its first half and fast in its second, the 30m window
    holds exactly the 30 fast runs (pro rata from the hour read 15 of 30: half slow) and 5m
    exactly 5; 1h all 60; maintenance leaves out exactly the runs in it. The same after a
    flush, from a read-only reader (the CLI)."""
    now = [START - 10.0]
    store = HistoryStore(tmp_path / "h.sqlite", clock=lambda: now[0])
    ref = _ref(tmp_path)
    _slow_then_fast(store)
    now[0] = START + 3599.5
    expected = {"5m": (5, 5), "30m": (30, 30), "1h": (60, 30)}
    got = _ratios(store, ref, now[0])
    assert {k: got[k] for k in expected} == expected  # buffered, not yet written
    held_out = [(START + 3300.0, START + 3420.0)]  # the runs at 55 and 56 minutes
    assert _ratios(store, ref, now[0], excluded=held_out)["5m"] == (3, 3)
    overlapping = [*held_out, (START + 3360.0, START + 3480.0)]  # 56 and 57: 56 once
    assert _ratios(store, ref, now[0], excluded=overlapping)["5m"] == (2, 2)
    # Longer windows read the hours (the 6h window holds the whole hour).
    assert got["6h"] == pytest.approx((60, 30))
    assert store.flush()
    store.close()

    reader = HistoryStore(tmp_path / "h.sqlite", read_only=True, clock=lambda: now[0])
    got = _ratios(reader, ref, now[0])
    assert {k: got[k] for k in expected} == expected
    reader.close()


def test_the_daemon_reads_the_last_hour_from_memory_loaded_at_open(tmp_path: Path) -> None:
    """A daemon's store loads the file's last hour at open and then reads it from memory
    only (no query per scrape): rows deleted behind its back still count, and a reopened
    store counts what the file kept."""
    path = tmp_path / "h.sqlite"
    now = [START - 10.0]
    store = HistoryStore(path, clock=lambda: now[0])
    ref = _ref(tmp_path)
    _slow_then_fast(store)
    assert store.flush()
    store.close()
    now[0] = START + 3599.5
    expected = {"5m": (5, 5), "30m": (30, 30), "1h": (60, 30)}
    daemon = HistoryStore(path, clock=lambda: now[0])
    db = sqlite3.connect(path)
    db.execute("DELETE FROM latency_seconds")
    db.commit()
    db.close()
    got = _ratios(daemon, ref, now[0])
    assert {k: got[k] for k in expected} == expected
    daemon.close()


def test_a_file_from_before_reads_its_hours_until_it_has_a_window_of_seconds(
    tmp_path: Path,
) -> None:
    """A history that had no per-second table gains it at open, complete from then: a window
    reaching back before that reads the hours pro rata, one within it counts exactly."""
    path = tmp_path / "h.sqlite"
    now = [START - 10.0]
    store = HistoryStore(path, clock=lambda: now[0])
    _slow_then_fast(store, minutes=50)
    assert store.flush()
    store.close()
    db = sqlite3.connect(path)  # as written before the table existed
    db.execute("DROP TABLE latency_seconds")
    db.execute("DELETE FROM meta WHERE key = ?", (latency_seconds.SINCE_KEY,))
    db.commit()
    db.close()
    now[0] = START + 3000.0
    store = HistoryStore(path, clock=lambda: now[0])
    ref = _ref(tmp_path)
    for minute in range(50, 60):
        store.record(KEY, "http", CheckResult(True, 0.1, None, "", START + 60 * minute), 90, 1.0)
    # 50 runs before the reopen (30 slow); 10 fast at minutes 50-59, now at the hour's end.
    now[0] = START + 3599.5
    got = _ratios(store, ref, now[0])
    assert got["5m"] == (5, 5)  # 300 s back is after the reopen: exact
    timed, fast = got["30m"]  # before the reopen: the hour's 60 runs pro rata
    assert timed == pytest.approx(60 * 1800 / 3599.5)
    assert fast == pytest.approx(30 * 1800 / 3599.5)
    store.close()


def test_rows_older_than_the_hour_are_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-second table holds the last hour only: the store cost stays bounded."""
    monkeypatch.setattr(latency_seconds, "PRUNE_EVERY", 0.0)
    path = tmp_path / "h.sqlite"
    now = [START - 10.0]
    store = HistoryStore(path, clock=lambda: now[0])
    _slow_then_fast(store)
    assert store.flush()
    now[0] = START + 2 * H + 1800.0
    store.record(KEY, "http", CheckResult(True, 0.1, None, "", now[0]), 90, 1.0)
    assert store.flush()
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM latency_seconds").fetchone() == (1,)
    assert db.execute("SELECT SUM(timed) FROM runs").fetchone() == (61,)
    db.close()
