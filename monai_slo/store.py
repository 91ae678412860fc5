"""Durable history in SQLite (WAL): state segments per check, hourly run counters, last results.

Consecutive results in the same state extend one segment, so a stable service costs one row
per check however long it runs; 30 days of 1,000 checks stay small. Results are buffered in
memory and written every flush interval in one transaction: a crash loses at most that much,
and reads always see the buffered state too.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.slo import Segment

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CheckKey = tuple[str, str, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY,
    environment TEXT NOT NULL, service TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    UNIQUE (environment, service, name)
);
-- start: first result of the run; last: latest result; end: how far the run covers
-- (min(next start, last + staleness)).
CREATE TABLE IF NOT EXISTS segments (
    check_id INTEGER NOT NULL REFERENCES checks(id),
    start REAL NOT NULL, last REAL NOT NULL, end REAL NOT NULL, up INTEGER NOT NULL,
    PRIMARY KEY (check_id, start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segments_end ON segments (end);
CREATE TABLE IF NOT EXISTS runs (
    check_id INTEGER NOT NULL REFERENCES checks(id), hour INTEGER NOT NULL,
    runs INTEGER NOT NULL, failures INTEGER NOT NULL,
    PRIMARY KEY (check_id, hour)
) WITHOUT ROWID;
-- Maintenance started from the CLI; service NULL covers every service of the environment.
CREATE TABLE IF NOT EXISTS maintenance (
    id INTEGER PRIMARY KEY,
    environment TEXT NOT NULL, service TEXT,
    start REAL NOT NULL, end REAL NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS last_results (
    check_id INTEGER PRIMARY KEY REFERENCES checks(id),
    timestamp REAL NOT NULL, success INTEGER NOT NULL, duration REAL NOT NULL,
    reason TEXT, detail TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class StoredSegment:
    start: float
    last: float
    end: float
    up: bool

    def as_segment(self, now: float) -> Segment:
        return Segment(self.start, min(self.end, now), self.up)


@dataclass(frozen=True, slots=True)
class LastResult:
    timestamp: float
    success: bool
    duration: float
    reason: FailureReason | None
    detail: str


@dataclass(frozen=True, slots=True)
class MaintenanceRow:
    id: int
    environment: str
    service: str | None
    start: float
    end: float
    reason: str

    def covers(self, environment: str, service: str) -> bool:
        return self.environment == environment and self.service in (None, service)


class HistoryStore:
    """Thread-safe: the scheduler records, the collector and CLI read."""

    def __init__(
        self, path: Path, *, retention: float = 90 * 86400.0, read_only: bool = False
    ) -> None:
        """Open (and create) the history; ``read_only`` is for readers such as `status` and
        `report`: they never write, so they cannot leave files owned by another user behind."""
        self.path = path
        self.retention = retention
        self.read_only = read_only
        if read_only:
            self._db = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL with WAL is durable across process crashes; only power loss drops a flush.
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        if not read_only:
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        self._lock = threading.RLock()
        self._ids: dict[CheckKey, int] = {}
        self._open: dict[int, StoredSegment] = {}
        self._dirty_segments: dict[tuple[int, float], StoredSegment] = {}
        self._pending_runs: dict[tuple[int, int], list[int]] = {}
        self._last: dict[int, LastResult] = {}
        self._dirty_last: set[int] = set()
        self.errors: dict[str, int] = {}
        """Failed operations by kind since start (exposed as monai_slo_store_errors_total)."""
        self._logged_errors: set[str] = set()
        self._provisional: dict[CheckKey, tuple[int, str]] = {}
        self._load_open_segments()

    # -- identity -------------------------------------------------------------------------

    def check_id(self, key: CheckKey, kind: str = "") -> int:
        """The check's row id; a provisional negative id while the database cannot be written.

        Recording never fails on a full or read-only disk: provisional ids are swapped for real
        ones at the first flush that succeeds.
        """
        with self._lock:
            found = self._ids.get(key)
            if found is not None:
                return found
            try:
                check_id = self._insert_check(key, kind)
            except sqlite3.Error as exc:
                self._write_failed("register", exc)
                check_id = -(len(self._provisional) + 1)
                self._provisional[key] = (check_id, kind)
            self._ids[key] = check_id
            return check_id

    def _insert_check(self, key: CheckKey, kind: str) -> int:
        row = self._db.execute(
            "SELECT id FROM checks WHERE environment=? AND service=? AND name=?", key
        ).fetchone()
        if row is not None:
            return int(row[0])
        cursor = self._db.execute(
            "INSERT INTO checks (environment, service, name, kind) VALUES (?, ?, ?, ?)",
            (*key, kind),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def _resolve_provisional(self) -> None:
        """Give provisional checks real ids (own transaction: a failure changes nothing)."""
        if not self._provisional:
            return
        self._db.execute("BEGIN")
        try:
            real_ids = {
                key: self._insert_check(key, kind) for key, (_, kind) in self._provisional.items()
            }
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            raise
        for key, real in real_ids.items():
            temporary = self._provisional[key][0]
            self._ids[key] = real
            if temporary in self._open:
                self._open[real] = self._open.pop(temporary)
            if temporary in self._last:
                self._last[real] = self._last.pop(temporary)
            if temporary in self._dirty_last:
                self._dirty_last.discard(temporary)
                self._dirty_last.add(real)
            for cid, start in [k for k in self._dirty_segments if k[0] == temporary]:
                self._dirty_segments[(real, start)] = self._dirty_segments.pop((cid, start))
            for cid, hour in [k for k in self._pending_runs if k[0] == temporary]:
                self._pending_runs[(real, hour)] = self._pending_runs.pop((cid, hour))
        self._provisional.clear()

    def known_id(self, key: CheckKey) -> int | None:
        """Id of a check that has history, without creating one (for read-only callers)."""
        with self._lock:
            if key in self._ids:
                return self._ids[key]
            row = self._db.execute(
                "SELECT id FROM checks WHERE environment=? AND service=? AND name=?", key
            ).fetchone()
            if row is None:
                return None
            # Row ids never change: later calls (every /metrics scrape) skip the query.
            self._ids[key] = int(row[0])
            return self._ids[key]

    def _load_open_segments(self) -> None:
        rows = self._db.execute(
            "SELECT check_id, start, last, end, up FROM segments s WHERE start = "
            "(SELECT MAX(start) FROM segments WHERE check_id = s.check_id)"
        ).fetchall()
        for check_id, start, last, end, up in rows:
            self._open[check_id] = StoredSegment(start, last, end, bool(up))
        for check_id, timestamp, success, duration, reason, detail in self._db.execute(
            "SELECT check_id, timestamp, success, duration, reason, detail FROM last_results"
        ):
            self._last[check_id] = LastResult(
                timestamp,
                bool(success),
                duration,
                FailureReason(reason) if reason else None,
                detail,
            )

    # -- writing --------------------------------------------------------------------------

    def record(self, key: CheckKey, kind: str, result: CheckResult, staleness: float) -> None:
        """Fold one result into the check's segments; written at the next flush."""
        check_id = self.check_id(key, kind)
        at = result.timestamp
        with self._lock:
            current = self._open.get(check_id)
            if current is not None and at < current.last:
                # A wall clock stepped back: never rewrite history, start from here.
                at = current.last
            if current is not None and current.up == result.success and at <= current.end:
                updated = replace(current, last=at, end=at + staleness)
                self._open[check_id] = updated
                self._dirty_segments[(check_id, updated.start)] = updated
            else:
                if current is not None and at < current.end:
                    closed = replace(current, end=at)
                    self._dirty_segments[(check_id, closed.start)] = closed
                opened = StoredSegment(at, at, at + staleness, result.success)
                if current is not None and opened.start == current.start:
                    opened = replace(opened, start=at + 1e-6, last=at + 1e-6)
                self._open[check_id] = opened
                self._dirty_segments[(check_id, opened.start)] = opened
            counter = self._pending_runs.setdefault((check_id, int(at // 3600)), [0, 0])
            counter[0] += 1
            counter[1] += 0 if result.success else 1
            self._last[check_id] = LastResult(
                result.timestamp, result.success, result.duration, result.reason, result.detail
            )
            self._dirty_last.add(check_id)

    def flush(self) -> bool:
        """Write buffered results in one transaction; on failure keep them for the next try."""
        if self.read_only:
            return True
        with self._lock:
            if not (self._dirty_segments or self._pending_runs or self._dirty_last):
                return True
            try:
                self._resolve_provisional()
                self._db.execute("BEGIN")
                segments = list(self._dirty_segments.items())
                runs = list(self._pending_runs.items())
                last = [(cid, self._last[cid]) for cid in self._dirty_last]
                self._db.executemany(
                    "INSERT OR REPLACE INTO segments VALUES (?, ?, ?, ?, ?)",
                    [(cid, s.start, s.last, s.end, int(s.up)) for (cid, _), s in segments],
                )
                self._db.executemany(
                    "INSERT INTO runs VALUES (?, ?, ?, ?) ON CONFLICT (check_id, hour) DO UPDATE "
                    "SET runs = runs + excluded.runs, failures = failures + excluded.failures",
                    [(cid, hour, n[0], n[1]) for (cid, hour), n in runs],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO last_results VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (cid, r.timestamp, int(r.success), r.duration, r.reason, r.detail)
                        for cid, r in last
                    ],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                self._write_failed("write", exc)
                return False
            self._dirty_segments.clear()
            self._pending_runs.clear()
            self._dirty_last.clear()
            if self._logged_errors:
                log.warning("history writes to %s work again; buffered results written", self.path)
                self._logged_errors.clear()
            return True

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolls back by itself when it cannot; nothing was committed

    def _write_failed(self, operation: str, exc: sqlite3.Error) -> None:
        """Count every failure; log each distinct error once until writing works again."""
        self.errors[operation] = self.errors.get(operation, 0) + 1
        message = str(exc)
        if message not in self._logged_errors:
            self._logged_errors.add(message)
            log.error(
                "history database %s (%s) failed, keeping results in memory: %s",
                operation,
                self.path,
                message,
            )

    def prune(self, now: float) -> None:
        """Drop history older than the retention."""
        cutoff = now - self.retention
        with self._lock:
            try:
                self._db.execute("DELETE FROM segments WHERE end < ?", (cutoff,))
                self._db.execute("DELETE FROM runs WHERE hour < ?", (int(cutoff // 3600),))
                self._db.execute("DELETE FROM maintenance WHERE end < ?", (cutoff,))
            except sqlite3.Error as exc:
                self._write_failed("prune", exc)

    # -- reading --------------------------------------------------------------------------

    def segments(
        self, check_ids: Iterable[int], since: float, now: float
    ) -> dict[int, list[Segment]]:
        """Segments of each check overlapping [since, now], buffered ones included."""
        ids = list(check_ids)
        found: dict[int, dict[float, StoredSegment]] = {cid: {} for cid in ids}
        with self._lock:
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for check_id, start, last, end, up in self._db.execute(
                    f"SELECT check_id, start, last, end, up FROM segments "  # noqa: S608 -- only placeholders
                    f"WHERE check_id IN ({marks}) AND end > ? AND start < ? ORDER BY start",
                    (*chunk, since, now),
                ):
                    found[check_id][start] = StoredSegment(start, last, end, bool(up))
            for (check_id, start), seg in self._dirty_segments.items():
                if check_id in found and seg.end > since and seg.start < now:
                    found[check_id][start] = seg
        return {
            cid: [seg.as_segment(now) for _, seg in sorted(by_start.items())]
            for cid, by_start in found.items()
        }

    def last_result(self, check_id: int) -> LastResult | None:
        with self._lock:
            return self._last.get(check_id)

    def run_counts(self, check_id: int, since: float) -> tuple[int, int]:
        """(runs, failures) since an hour boundary at or before ``since``."""
        hour = int(since // 3600)
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(SUM(runs), 0), COALESCE(SUM(failures), 0) FROM runs "
                "WHERE check_id = ? AND hour >= ?",
                (check_id, hour),
            ).fetchone()
            runs, failures = int(row[0]), int(row[1])
            for (cid, h), (r, f) in self._pending_runs.items():
                if cid == check_id and h >= hour:
                    runs += r
                    failures += f
        return runs, failures

    # -- maintenance started from the CLI ---------------------------------------------------

    def add_maintenance(
        self,
        environment: str,
        service: str | None,
        start: float,
        end: float,
        *,
        reason: str,
        now: float,
    ) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO maintenance (environment, service, start, end, reason, created) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (environment, service, start, end, reason, now),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def end_maintenance(
        self,
        now: float,
        *,
        window_id: int | None = None,
        environment: str | None = None,
        service: str | None = None,
    ) -> int:
        """End active (and cancel future) windows matching; returns how many changed."""
        where: list[str] = ["end > ?"]
        params: list[float | int | str | None] = [now]
        if window_id is not None:
            where.append("id = ?")
            params.append(window_id)
        if environment is not None:
            where.append("environment = ?")
            params.append(environment)
        if service is not None:
            where.append("service IS ?")
            params.append(service)
        with self._lock:
            cursor = self._db.execute(
                f"UPDATE maintenance SET end = MAX(start, ?) WHERE {' AND '.join(where)}",  # noqa: S608 -- fixed clauses
                (now, *params),
            )
            return cursor.rowcount

    def maintenance(self, since: float) -> list[MaintenanceRow]:
        """Windows ending after ``since``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, environment, service, start, end, reason FROM maintenance "
                "WHERE end > ? ORDER BY start, id",
                (since,),
            ).fetchall()
        return [MaintenanceRow(*row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self.flush()
            self._db.close()


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]
