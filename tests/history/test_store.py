"""History store: results fold into segments, survive restarts, and reads see unflushed results."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.history.store import HistoryStore
from monai_slo.slo.availability import Segment

KEY = ("prod", "pacs", "echo")


def _result(at: float, ok: bool = True) -> CheckResult:
    return CheckResult(ok, 0.01, None if ok else FailureReason.REFUSED, "" if ok else "refused", at)


def _segments(store: HistoryStore, now: float) -> list[Segment]:
    check_id = store.check_id(KEY)
    return store.segments([check_id], 0, now)[check_id]


def test_same_state_results_extend_one_segment(tmp_path: Path) -> None:
    """A stable check costs one row however many results it records."""
    store = HistoryStore(tmp_path / "h.sqlite")
    for at in range(100, 200, 10):
        store.record(KEY, "dicom_echo", _result(at), staleness=25)
    store.flush()
    rows = (
        sqlite3.connect(tmp_path / "h.sqlite").execute("SELECT COUNT(*) FROM segments").fetchone()
    )
    assert rows == (1,)
    assert _segments(store, 200) == [Segment(100, 200, True)]


def test_state_change_closes_the_segment_at_the_new_result(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    for at, ok in [(100, True), (110, True), (120, False), (130, False), (140, True)]:
        store.record(KEY, "dicom_echo", _result(at, ok), staleness=25)
    assert _segments(store, 150) == [
        Segment(100, 120, True),
        Segment(120, 140, False),
        Segment(140, 150, True),
    ]


def test_results_past_staleness_leave_a_gap(tmp_path: Path) -> None:
    """A result stands for at most its staleness limit; beyond that there is no data."""
    store = HistoryStore(tmp_path / "h.sqlite")
    store.record(KEY, "tcp", _result(100), staleness=25)
    store.record(KEY, "tcp", _result(200), staleness=25)
    assert _segments(store, 300) == [Segment(100, 125, True), Segment(200, 225, True)]


def test_restart_continues_the_same_segment(tmp_path: Path) -> None:
    """After a restart within the staleness limit the open segment goes on; history is kept."""
    path = tmp_path / "h.sqlite"
    store = HistoryStore(path)
    store.record(KEY, "tcp", _result(100, False), staleness=25)
    store.record(KEY, "tcp", _result(110, True), staleness=25)
    store.close()
    reopened = HistoryStore(path)
    reopened.record(KEY, "tcp", _result(130, True), staleness=25)
    assert _segments(reopened, 140) == [Segment(100, 110, False), Segment(110, 140, True)]
    last = reopened.last_result(reopened.check_id(KEY))
    assert last is not None and last.timestamp == 130


def test_unflushed_results_are_visible_and_lost_only_if_not_flushed(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    store = HistoryStore(path)
    store.record(KEY, "tcp", _result(100), staleness=25)
    store.flush()
    store.record(KEY, "tcp", _result(110, False), staleness=25)
    assert _segments(store, 120)[-1] == Segment(110, 120, False)
    # A second reader (like `monai-slo status`) sees only what was flushed.
    other = HistoryStore(path)
    assert _segments(other, 120) == [Segment(100, 120, True)]


def test_run_counts(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite")
    for at, ok in [(3600, True), (3610, False), (7200, True)]:
        store.record(KEY, "tcp", _result(at, ok), staleness=25)
    check_id = store.check_id(KEY)
    assert store.run_counts(check_id, 0) == (3, 1)
    store.flush()
    assert store.run_counts(check_id, 7200) == (1, 0)


def test_prune_drops_history_past_retention(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite", retention=1000)
    store.record(KEY, "tcp", _result(100), staleness=25)
    store.record(KEY, "tcp", _result(5000, False), staleness=25)
    store.flush()
    store.prune(now=5100)
    assert _segments(store, 5100) == [Segment(5000, 5025, False)]


def test_clock_stepping_back_never_rewrites_history(tmp_path: Path) -> None:
    """A result stamped before the latest one is placed at the latest time, not in the past."""
    store = HistoryStore(tmp_path / "h.sqlite")
    store.record(KEY, "tcp", _result(100), staleness=25)
    store.record(KEY, "tcp", _result(110), staleness=25)
    store.record(KEY, "tcp", _result(50, False), staleness=25)
    segments = _segments(store, 120)
    assert segments[0] == Segment(100, 110, True)
    assert segments[1].start >= 110 and not segments[1].up


def test_failed_flush_keeps_results_for_the_next_try(tmp_path: Path) -> None:
    """A write error keeps results in memory; they are written once writing works again."""
    path = tmp_path / "h.sqlite"
    store = HistoryStore(path, write_wait=0)
    store.record(KEY, "tcp", _result(100), staleness=25)
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    blocker.execute("PRAGMA busy_timeout=0")
    blocker.execute("BEGIN EXCLUSIVE")
    assert store.flush() is False
    assert store.errors == {"write": 1}
    blocker.execute("ROLLBACK")
    assert store.flush() is True
    assert _segments(HistoryStore(path), 110) == [Segment(100, 110, True)]


def test_read_only_readers_never_write(tmp_path: Path) -> None:
    """`status` and `report` open the history read-only: they see flushed results and leave the
    database file untouched."""
    path = tmp_path / "h.sqlite"
    writer = HistoryStore(path)
    writer.record(KEY, "tcp", _result(100), staleness=25)
    writer.close()
    before = path.stat().st_mtime_ns, path.stat().st_size
    reader = HistoryStore(path, read_only=True)
    check_id = reader.known_id(KEY)
    assert check_id is not None
    assert reader.segments([check_id], 0, 110)[check_id] == [Segment(100, 110, True)]
    reader.close()
    reader.flush()  # a no-op for readers
    assert (path.stat().st_mtime_ns, path.stat().st_size) == before


def test_recording_never_waits_for_a_locked_database(tmp_path: Path) -> None:
    """While another connection holds the write lock, a flush gives up within its wait and
    record() (new checks included) returns at once; everything is written afterwards."""
    import threading
    import time

    path = tmp_path / "h.sqlite"
    store = HistoryStore(path, write_wait=0.1)
    store.record(KEY, "tcp", _result(100), staleness=25)
    assert store.flush()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    flushing = threading.Thread(target=store.flush)
    started = time.monotonic()
    flushing.start()
    new_key = ("prod", "pacs", "new")
    slowest = 0.0
    for at in range(110, 200, 10):
        before = time.monotonic()
        store.record(KEY, "tcp", _result(at, at < 150), staleness=25)
        store.record(new_key, "tcp", _result(at), staleness=25)
        slowest = max(slowest, time.monotonic() - before)
    flushing.join()
    assert time.monotonic() - started < 1.0
    assert slowest < 0.05
    assert store.flush() is False
    assert sum(store.errors.values()) >= 2
    assert store.healthy()  # a held lock is not a failure until LOCK_GRACE
    blocker.execute("ROLLBACK")
    assert store.flush() is True
    store.close()
    reopened = HistoryStore(path)
    assert _segments(reopened, 200) == [Segment(100, 150, True), Segment(150, 200, False)]
    new_id = reopened.known_id(new_key)
    assert new_id is not None and new_id > 0
    assert reopened.run_counts(new_id, 0) == (9, 0)


def test_recent_history_is_read_from_memory_and_equals_the_file(tmp_path: Path) -> None:
    """Reads within the recent span touch no database; older reads match what memory says."""
    import time

    path = tmp_path / "h.sqlite"
    now = time.time()
    store = HistoryStore(path)
    for offset in range(-3000, 0, 10):
        store.record(KEY, "tcp", _result(now + offset, offset % 300 != 0), staleness=25)
    store.flush()
    check_id = store.check_id(KEY)
    statements: list[str] = []
    store._reader.set_trace_callback(statements.append)
    recent = store.segments([check_id], now - 600, now)[check_id]
    assert statements == []
    fresh = HistoryStore(path, read_only=True)
    assert recent == fresh.segments([check_id], now - 600, now)[check_id]
    assert store.segments([check_id], now - 3600, now) == fresh.segments(
        [check_id], now - 3600, now
    )


def test_the_buffer_is_bounded_and_drops_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_BUFFERED records waiting for a write the oldest are dropped and counted;
    reads still see every result; the newest are written once writing works."""
    from monai_slo.history import store as store_module

    monkeypatch.setattr(store_module, "MAX_BUFFERED", 50)
    path = tmp_path / "h.sqlite"
    store = HistoryStore(path, write_wait=0)
    store.record(KEY, "tcp", _result(0), staleness=25)
    assert store.flush()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    for at in range(10, 1010, 10):  # flapping: every result opens a segment
        store.record(KEY, "tcp", _result(at, (at // 10) % 2 == 0), staleness=25)
        assert store.buffered() <= 50
    assert store.flush() is False
    assert store.dropped > 0
    assert len(_segments(store, 1010)) == 101  # memory keeps what the file will not get
    blocker.execute("ROLLBACK")
    assert store.flush() is True
    assert store.buffered() == 0
    store.close()
    written = _segments(HistoryStore(path), 1010)
    assert written[-1] == Segment(1000, 1010, True)
