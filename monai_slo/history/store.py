"""Durable history in SQLite (WAL): state segments per check, hourly run counters, last results.

Consecutive results in the same state extend one segment, so a stable service costs one row
per check however long it runs; 30 days of 1,000 checks stay small. Results are buffered in
memory and written every flush interval in one transaction: a crash loses at most that much,
and reads always see the buffered state too.

Storage faults, and what the daemon does about each:

* **At start** a history path that cannot be opened or created (its directory missing and
  not creatable, or not writable; a read-only or immutable file; a directory in its place),
  or a file that is not an intact SQLite database (garbage, truncated, failing
  ``PRAGMA quick_check``), raises :class:`StoreError`: ``run`` prints one line naming the
  path and what to do and exits 2. The file is never written, moved or deleted, so nothing
  recorded is lost: the administrator decides (move it aside, ``sqlite3 FILE .recover``).
  ``validate`` warns about the same faults beforehand (:func:`storage_warnings`).
* **While running**, a write that fails (disk full, a read-only remount, another process
  holding the lock) keeps the results in memory and is retried at the next flush; every
  failure is counted (``monai_slo_store_errors_total{operation}``), each distinct error is
  logged once, /metrics is served from memory and ``/-/ready`` is false while writes fail
  (for a lock held by another process: once it has been held for :data:`LOCK_GRACE`).
* **Corruption found while running** (an SQLITE_CORRUPT answer, or the periodic
  :meth:`HistoryStore.check_integrity`) is logged with what to do and counted
  (``operation="integrity"``); writes stop, since writing into a damaged file can spread
  the damage, and the daemon keeps checking and serving from memory until it is restarted.
* **Another process's lock never stalls checks or scrapes**: recording touches memory only;
  a flush waits at most ``write_wait`` (:data:`DAEMON_WRITE_WAIT` in the daemon) for the
  lock and otherwise retries at the next flush; /metrics reads recent history (the last
  :data:`RECENT_KEEP` seconds) from memory.
* **The buffer is bounded**: at most :data:`MAX_BUFFERED` records (changed segments and
  hourly run counters) wait for a write; beyond that the oldest is dropped and counted
  (``monai_slo_store_dropped_records_total``). Stable checks add one record per check per
  hour, so 1,000 checks can be buffered for days; only flapping checks fill it faster.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.history import latency_seconds
from monai_slo.history.latency_seconds import LatencyBySecond
from monai_slo.safe_text import clean
from monai_slo.slo.availability import Segment
from monai_slo.slo.latency import RunsBySecond

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4
# Version 2 added the runs table's latency counters (timed, fast); version 3 the failure reason
# and detail of each down segment, reason changes within one (segment_reasons), the
# maintenance audit columns and incidents; version 4 the daily rollups (check_days,
# service_days). :meth:`HistoryStore._connect` migrates older files in place, keeping every row.
CheckKey = tuple[str, str, str]

# How long the daemon's writes wait for another process's lock before trying again at the
# next flush: short, so a flush never holds up recording (which only takes the memory lock).
DAEMON_WRITE_WAIT = 0.1
# How long the daemon's reads wait (WAL readers only wait for an exclusive-mode locker).
DAEMON_READ_WAIT = 0.25
# The last flush at stop waits longer: what it cannot write is lost.
CLOSE_WAIT = 10.0
# A lock held by another process this long makes the store count as failing (/-/ready).
LOCK_GRACE = 30.0
# Segments ending within this long are kept in memory: /metrics reads only these.
RECENT_KEEP = 1800.0
# Records (changed segments + hourly run counters) waiting for a write: 100,000 of them took
# 25 MB (measured), and 1,000 stable checks add about 1,000 an hour.
MAX_BUFFERED = 100_000
# How often memory is trimmed of segments older than RECENT_KEEP.
_TRIM_EVERY = 60.0

_HEADER = b"SQLite format 3\x00"
# Operator text kept per incident update, and the longest author name kept.
INCIDENT_TEXT_LIMIT = 1000
AUTHOR_LIMIT = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY,
    environment TEXT NOT NULL, service TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    UNIQUE (environment, service, name)
);
-- start: first result of the run; last: latest result; end: how far the run covers
-- (min(next start, last + staleness)).
-- reason, detail: the first failure of a down segment (detail cleaned, at most 300 chars).
CREATE TABLE IF NOT EXISTS segments (
    check_id INTEGER NOT NULL REFERENCES checks(id),
    start REAL NOT NULL, last REAL NOT NULL, end REAL NOT NULL, up INTEGER NOT NULL,
    reason TEXT, detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (check_id, start)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segments_end ON segments (end);
-- timed: runs judged against a latency threshold; fast: those that succeeded within it.
CREATE TABLE IF NOT EXISTS runs (
    check_id INTEGER NOT NULL REFERENCES checks(id), hour INTEGER NOT NULL,
    runs INTEGER NOT NULL, failures INTEGER NOT NULL,
    timed INTEGER NOT NULL DEFAULT 0, fast INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (check_id, hour)
) WITHOUT ROWID;
-- Maintenance started from the CLI; service NULL covers every service of the environment.
-- created_by: who started it; ended_by/ended_at: who ended (or cancelled) it early and when;
-- planned_end: the end it had before that; via: 'cli' or 'api', the path that started it.
CREATE TABLE IF NOT EXISTS maintenance (
    id INTEGER PRIMARY KEY,
    environment TEXT NOT NULL, service TEXT,
    start REAL NOT NULL, end REAL NOT NULL, reason TEXT NOT NULL, created REAL NOT NULL,
    created_by TEXT NOT NULL DEFAULT '', ended_by TEXT, ended_at REAL, planned_end REAL,
    via TEXT NOT NULL DEFAULT 'cli'
);
CREATE TABLE IF NOT EXISTS last_results (
    check_id INTEGER PRIMARY KEY REFERENCES checks(id),
    timestamp REAL NOT NULL, success INTEGER NOT NULL, duration REAL NOT NULL,
    reason TEXT, detail TEXT NOT NULL
);
"""

# Tables new in version 3 (created in a version 2 file by the migration too).
_V3_TABLES = """
-- A failure reason that changed within a down segment, from ``at`` on.
CREATE TABLE IF NOT EXISTS segment_reasons (
    check_id INTEGER NOT NULL REFERENCES checks(id), at REAL NOT NULL,
    reason TEXT, detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (check_id, at)
) WITHOUT ROWID;
-- Incidents written by operators: one row each, its notes (open, updates, resolve) in order.
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    environment TEXT NOT NULL, service TEXT NOT NULL,
    opened REAL NOT NULL, opened_by TEXT NOT NULL, resolved REAL, resolved_by TEXT
);
CREATE INDEX IF NOT EXISTS incidents_resolved ON incidents (resolved);
CREATE TABLE IF NOT EXISTS incident_updates (
    incident_id INTEGER NOT NULL REFERENCES incidents(id), at REAL NOT NULL,
    author TEXT NOT NULL, state TEXT NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_updates_id ON incident_updates (incident_id, at);
"""

# The latency SLI counts runs, not time, so it needs per-run counts rather than segments. They
# live beside the run counters in the hourly runs table: one row per check per hour either way
# (no extra records to buffer or write), durable across restarts, readable by `status` in
# another process, pruned with the rest. Per-window counters in memory would be exact for the
# short windows but lost at every restart and invisible to the CLI; windows up to an hour are
# exact from the last hour's verdicts per second instead (monai_slo.history.latency_seconds).
_ADD_LATENCY_COUNTS = (
    "ALTER TABLE runs ADD COLUMN timed INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE runs ADD COLUMN fast INTEGER NOT NULL DEFAULT 0",
)

# Version 3, added to a version 2 file (after the tables the schema script creates).
_ADD_REASONS_AND_AUDIT = (
    "ALTER TABLE segments ADD COLUMN reason TEXT",
    "ALTER TABLE segments ADD COLUMN detail TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE maintenance ADD COLUMN created_by TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE maintenance ADD COLUMN ended_by TEXT",
    "ALTER TABLE maintenance ADD COLUMN ended_at REAL",
    "ALTER TABLE maintenance ADD COLUMN planned_end REAL",
)

# Version 4 also records which path started a maintenance window (windows before it: the CLI).
_ADD_MAINTENANCE_VIA = "ALTER TABLE maintenance ADD COLUMN via TEXT NOT NULL DEFAULT 'cli'"

# Tables new in version 4: per UTC day (epoch seconds // 86400) what the segments of that day
# leave behind once they age out of ``retention``, kept for ``archive_retention``. Milliseconds
# up, down and without data (maintenance left out), of maintenance, and down within it; outages:
# down stretches that began that day; reasons: JSON {reason: times a check began failing for
# it}. Whole milliseconds are stored as integers: 4 bytes each instead of an 8-byte REAL.
_V4_TABLES = """
CREATE TABLE IF NOT EXISTS check_days (
    check_id INTEGER NOT NULL REFERENCES checks(id), day INTEGER NOT NULL,
    up INTEGER NOT NULL, down INTEGER NOT NULL, no_data INTEGER NOT NULL,
    maintenance INTEGER NOT NULL, maintenance_down INTEGER NOT NULL,
    outages INTEGER NOT NULL, reasons TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (check_id, day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS check_days_day ON check_days (day);
CREATE TABLE IF NOT EXISTS service_days (
    environment TEXT NOT NULL, service TEXT NOT NULL, day INTEGER NOT NULL,
    up INTEGER NOT NULL, down INTEGER NOT NULL, no_data INTEGER NOT NULL,
    maintenance INTEGER NOT NULL, maintenance_down INTEGER NOT NULL,
    outages INTEGER NOT NULL, reasons TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (environment, service, day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS service_days_day ON service_days (day);
"""
DAY = 86400
# How long daily rollups are kept by default: five years.
DEFAULT_ARCHIVE_RETENTION = 5 * 365 * 86400.0

_SEGMENT_COLUMNS = "start, last, end, up, reason, detail"
_SEGMENT_COLUMNS_V2 = "start, last, end, up, NULL, ''"

_RECOVER = "keep a copy, then recover it (sqlite3 FILE .recover) or move it aside"


class StoreError(Exception):
    """The history database cannot be used; ``str()`` is one line naming the path."""

    def __init__(self, path: Path, problem: str, remedy: str) -> None:
        self.path = path
        super().__init__(f"history database {path}: {problem}; {remedy}")


@dataclass(frozen=True, slots=True)
class StoredSegment:
    start: float
    last: float
    end: float
    up: bool
    reason: str | None = None
    """Down segments: the failure reason of their first result (None before schema 3)."""
    detail: str = ""

    def as_segment(self, now: float) -> Segment:
        return Segment(self.start, min(self.end, now), self.up)


@dataclass(frozen=True, slots=True)
class DayRollup:
    """One UTC day of a check or a service, from the daily rollups; seconds."""

    day: int
    """Epoch seconds // 86400."""
    up: float
    down: float
    no_data: float
    """Up, down and without data, maintenance left out."""
    maintenance: float
    maintenance_down: float
    """Down within maintenance."""
    outages: int
    """Down stretches that began that day."""
    reasons: dict[str, int]
    """Reason -> how often a check began failing for it that day."""

    @property
    def start(self) -> float:
        return float(self.day * DAY)


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    at: float
    author: str
    state: str
    """``open``, ``update`` or ``resolved``."""
    text: str


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: int
    environment: str
    service: str
    opened: float
    opened_by: str
    resolved: float | None
    resolved_by: str | None
    updates: tuple[IncidentUpdate, ...] = ()

    @property
    def title(self) -> str:
        """The text it was opened with."""
        return self.updates[0].text if self.updates else ""

    @property
    def latest(self) -> str:
        """Its newest non-empty note."""
        return next((u.text for u in reversed(self.updates) if u.text), "")

    def overlaps(self, start: float, end: float) -> bool:
        return self.opened < end and (self.resolved is None or self.resolved > start)


@dataclass(frozen=True, slots=True)
class LastResult:
    timestamp: float
    success: bool
    duration: float
    reason: FailureReason | None
    detail: str


@dataclass(frozen=True, slots=True)
class ReasonMark:
    """From ``at`` on (until the next mark or the end of its down segment) a check failed
    for ``reason``; ``detail`` is that first failure's detail, cleaned and bounded."""

    at: float
    reason: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class MaintenanceRow:
    id: int
    environment: str
    service: str | None
    start: float
    end: float
    reason: str
    created: float = 0.0
    created_by: str = ""
    """The OS user who started it ("" for windows recorded before the audit existed)."""
    ended_by: str | None = None
    """Who ended (or cancelled) it early; None when it ran (or is to run) as planned."""
    ended_at: float | None = None
    planned_end: float | None = None
    """Its end before it was ended early."""
    via: str = "cli"
    """The path that started it: ``cli`` or ``api`` (the daemon's /api/v1/maintenance)."""

    def covers(self, environment: str, service: str) -> bool:
        return self.environment == environment and self.service in (None, service)


def _error_name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", ""))


def _is_corrupt(exc: sqlite3.Error) -> bool:
    return _error_name(exc).startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def _is_busy(exc: sqlite3.Error) -> bool:
    return _error_name(exc).startswith(("SQLITE_BUSY", "SQLITE_LOCKED"))


def _header_problem(path: Path) -> str | None:
    """Why an existing file is not a SQLite database, from its first bytes (None: it may be)."""
    with path.open("rb") as file:
        head = file.read(len(_HEADER))
    if head and head != _HEADER:  # an empty file is a new database
        return "is not a SQLite database (it was left untouched)"
    return None


def storage_warnings(path: Path) -> list[str]:
    """What would keep `run` from opening the history at ``path``, found without changing
    anything (for `validate`)."""
    if path.is_dir():
        return [f"history database {path}: is a directory; set storage: to a file path"]
    if path.exists():
        try:
            problem = _header_problem(path)
            with path.open("r+b"):
                pass  # opened for writing, nothing written
        except OSError as exc:
            return [f"history database {path}: cannot be opened for writing: {exc.strerror}"]
        if problem is not None:
            return [f"history database {path}: {problem}; move it aside or set storage:"]
        directory = path.parent
    else:
        directory = path.parent
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        if not directory.is_dir():
            return [f"history database {path}: {directory} is not a directory"]
    if not os.access(directory, os.W_OK | os.X_OK):
        return [
            f"history database {path}: directory {directory} is not writable "
            "(the database needs its -wal and -shm files beside it)"
        ]
    return []


_WRITABLE = "make it writable by the daemon's user or set storage: to another path"


def _check_path(path: Path) -> None:
    """Raise StoreError for a path the daemon cannot create or write; changes nothing but
    creating missing directories."""
    if path.is_dir():
        raise StoreError(path, "is a directory", "set storage: to a file path")
    if path.parent.exists() and not path.parent.is_dir():
        raise StoreError(path, f"{path.parent} is not a directory", _WRITABLE)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            path, f"cannot create its directory {path.parent}: {exc.strerror}", _WRITABLE
        ) from exc
    if path.exists():
        try:
            problem = _header_problem(path)
            with path.open("r+b"):
                pass  # opened for writing, nothing written
        except OSError as exc:
            raise StoreError(
                path, f"cannot be opened for writing: {exc.strerror}", _WRITABLE
            ) from exc
        if problem is not None:
            raise StoreError(path, problem, "move it aside or set storage: to another path")
    elif not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreError(
            path, f"cannot be created: directory {path.parent} is not writable", _WRITABLE
        )


class HistoryStore:
    """Thread-safe: the scheduler records and flushes, the collector and CLI read.

    Three locks, always taken in this order: ``_write_lock`` (the writing connection),
    ``_read_lock`` (the reading connection), ``_lock`` (memory). Recording takes only the
    memory lock, so a flush waiting for the database never holds it up.
    """

    def __init__(
        self,
        path: Path,
        *,
        retention: float = 90 * 86400.0,
        archive_retention: float = DEFAULT_ARCHIVE_RETENTION,
        read_only: bool = False,
        write_wait: float = 5.0,
        read_wait: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (and create) the history; ``read_only`` is for readers such as `status` and
        `report`: they never write, so they cannot leave files owned by another user behind.

        ``write_wait``/``read_wait``: seconds to wait for another process's lock. Raises
        :class:`StoreError` when the file cannot be used (see the module docstring).
        """
        self.path = path
        self.retention, self.archive_retention = retention, archive_retention
        self.read_only = read_only
        self.write_wait = write_wait
        self._clock = clock
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._ids: dict[CheckKey, int] = {}
        self._missing: set[CheckKey] = set()
        self._open: dict[int, StoredSegment] = {}
        self._recent: dict[int, dict[float, StoredSegment]] = {}
        self._dirty_segments: dict[tuple[int, float], StoredSegment] = {}
        self._pending_runs: dict[tuple[int, int], list[int]] = {}
        # Reason changes within down segments: buffered for the next flush, recent ones kept
        # for reads, and each open down segment's latest reason (to notice the next change).
        self._dirty_reasons: dict[tuple[int, float], ReasonMark] = {}
        self._recent_reasons: dict[int, dict[float, ReasonMark]] = {}
        self._reason_now: dict[int, str | None] = {}
        self._v3 = True
        """The file has version 3's columns and tables (a read-only reader may find an older
        one that no daemon has opened since)."""
        self._last: dict[int, LastResult] = {}
        self._dirty_last: set[int] = set()
        self.errors: dict[str, int] = {}
        """Failed operations by kind since start (exposed as monai_slo_store_errors_total)."""
        self.dropped = 0
        """Buffered records dropped because the buffer was full (never written)."""
        self._logged_errors: set[str] = set()
        self._provisional: dict[CheckKey, tuple[int, str]] = {}
        self._next_provisional = -1
        self._failing_since: float | None = None
        self._failing_busy = False
        self._corrupt: str | None = None
        self._memory_since = math.inf
        self._trimmed_at = time.monotonic()
        self._maintenance_cache: tuple[float, list[MaintenanceRow]] | None = None
        if read_only:
            self._db = self._connect_read_only(path, read_wait)
            self._reader = self._db
        else:
            self._db = self._connect(path, write_wait, clock)
            try:
                self._reader = self._connect_reader(path, read_wait)
            except BaseException:
                self._db.close()
                raise
        try:
            self._load()
        except sqlite3.Error as exc:
            self._close_connections()
            raise StoreError(path, f"cannot be read: {exc}", _RECOVER) from exc

    # -- opening --------------------------------------------------------------------------

    @staticmethod
    def _connect_read_only(path: Path, wait: float) -> sqlite3.Connection:
        # A read-only open of a WAL file creates -wal and -shm beside it and leaves them there
        # (owned by whoever ran `status`). With no -wal, no connection has the file open, so
        # all of it is in the main file, and a writer that opens it now changes only the WAL
        # until a checkpoint (after ~1,000 pages): read it immutable, creating nothing. With
        # a -wal (a daemon writing, or one that crashed), read through the WAL as usual.
        wal = path.with_name(path.name + "-wal")
        options = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
        try:
            db = sqlite3.connect(
                f"{path.resolve().as_uri()}?{options}",
                uri=True,
                check_same_thread=False,
                isolation_level=None,
            )
            db.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            db.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(path, f"cannot be opened for reading: {exc}", _RECOVER) from exc
        return db

    @staticmethod
    def _connect(path: Path, wait: float, clock: Callable[[], float]) -> sqlite3.Connection:
        """The writing connection, after checking the file without changing it."""
        remedy = _WRITABLE
        _check_path(path)
        try:
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(path, f"cannot be opened: {exc}", remedy) from exc
        try:
            db.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
            # Checked before the first write: a damaged file is refused as it was found.
            problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise StoreError(path, f"is damaged ({'; '.join(problems)})", _RECOVER)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL with WAL is durable across process crashes; only power loss drops a flush.
            db.execute("PRAGMA synchronous=NORMAL")
            has_schema = db.execute(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'last_results'"
            ).fetchone()
            if has_schema is None:  # a new file: the only case that writes at open
                db.executescript(_SCHEMA + _V3_TABLES + _V4_TABLES)
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif (
                not _has_latency_counts(db)
                or not _has_reasons(db)
                or not _has_rollups(db)
                or not _has_maintenance_via(db)
            ):
                _migrate(db)
            latency_seconds.add_table(db, clock())
        except sqlite3.Error as exc:
            db.close()
            if _is_corrupt(exc):
                raise StoreError(path, f"is damaged ({exc})", _RECOVER) from exc
            raise StoreError(path, f"cannot be opened: {exc}", remedy) from exc
        except StoreError:
            db.close()
            raise
        return db

    @staticmethod
    def _connect_reader(path: Path, wait: float) -> sqlite3.Connection:
        try:
            reader = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            reader.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
        except sqlite3.Error as exc:
            raise StoreError(path, f"cannot be opened: {exc}", _RECOVER) from exc
        return reader

    def _load(self) -> None:
        """Open segments, last results and recent segments into memory."""
        recent_since = self._clock() - RECENT_KEEP
        with self._read_lock:
            db = self._reader
            # The last hour's latency verdicts per second (in memory unless read-only).
            self._fine = LatencyBySecond(db, self._clock(), in_memory=not self.read_only)
            self._v3 = _has_reasons(db)
            self._v4 = _has_rollups(db)  # a read-only reader may find a version 3 file
            self._via = _has_maintenance_via(db)
            columns = _SEGMENT_COLUMNS if self._v3 else _SEGMENT_COLUMNS_V2
            rows = db.execute(
                f"SELECT check_id, {columns} FROM segments s WHERE start = "  # noqa: S608 -- fixed columns
                "(SELECT MAX(start) FROM segments WHERE check_id = s.check_id)"
            ).fetchall()
            recent = db.execute(
                f"SELECT check_id, {columns} FROM segments WHERE end > ?",  # noqa: S608 -- fixed columns
                (recent_since,),
            ).fetchall()
            last_rows = db.execute(
                "SELECT check_id, timestamp, success, duration, reason, detail FROM last_results"
            ).fetchall()
            # The latest reason of each open down segment, so a change after a restart is
            # noticed as one.
            changed = (
                db.execute(
                    "SELECT r.check_id, r.at, r.reason FROM segment_reasons r WHERE r.at = "
                    "(SELECT MAX(at) FROM segment_reasons WHERE check_id = r.check_id)"
                ).fetchall()
                if self._v3
                else []
            )
        latest_change = {int(cid): (float(at), reason) for cid, at, reason in changed}
        for check_id, start, last, end, up, reason_text, detail_text in rows:
            segment = StoredSegment(start, last, end, bool(up), reason_text, detail_text)
            self._open[check_id] = segment
            self._recent.setdefault(check_id, {})[segment.start] = segment
            if not segment.up:
                at, changed_reason = latest_change.get(check_id, (-math.inf, None))
                self._reason_now[check_id] = (
                    changed_reason if at >= segment.start else segment.reason
                )
        for check_id, *fields in recent:
            self._recent.setdefault(check_id, {})[fields[0]] = StoredSegment(
                fields[0], fields[1], fields[2], bool(fields[3]), fields[4], fields[5]
            )
        self._memory_since = recent_since
        for check_id, timestamp, success, duration, reason, detail in last_rows:
            self._last[check_id] = LastResult(
                timestamp,
                bool(success),
                duration,
                FailureReason(reason) if reason else None,
                detail,
            )

    # -- identity -------------------------------------------------------------------------

    def check_id(self, key: CheckKey, kind: str = "") -> int:
        """The check's row id; a provisional negative id while the database cannot be written.

        Recording never waits for the database: when another flush or process holds it, or
        writes are failing, the check gets a provisional id, swapped for a real one at the
        first flush that succeeds.
        """
        with self._lock:
            found = self._ids.get(key)
            if found is not None:
                return found
        check_id: int | None = None
        writable = not self.read_only and self._failing_since is None and self._corrupt is None
        if writable and self._write_lock.acquire(blocking=False):
            try:
                # No waiting for another process's lock here: a worker is recording.
                self._db.execute("PRAGMA busy_timeout=0")
                check_id = self._insert_check(key, kind)
            except sqlite3.Error as exc:
                self._failed("register", exc)
            finally:
                self._db.execute(f"PRAGMA busy_timeout={int(self.write_wait * 1000)}")
                self._write_lock.release()
        with self._lock:
            found = self._ids.get(key)
            if found is not None:
                return found
            if check_id is None:
                check_id = self._next_provisional
                self._next_provisional -= 1
                self._provisional[key] = (check_id, kind)
            self._ids[key] = check_id
            self._missing.discard(key)
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
        with self._lock:
            provisional = dict(self._provisional)
        if not provisional:
            return
        self._db.execute("BEGIN")
        try:
            real_ids = {
                key: self._insert_check(key, kind) for key, (_, kind) in provisional.items()
            }
            self._db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            raise
        with self._lock:
            for key, real in real_ids.items():
                temporary = provisional[key][0]
                self._ids[key] = real
                del self._provisional[key]
                if temporary in self._open:
                    self._open[real] = self._open.pop(temporary)
                if temporary in self._recent:
                    self._recent[real] = self._recent.pop(temporary)
                if temporary in self._last:
                    self._last[real] = self._last.pop(temporary)
                if temporary in self._dirty_last:
                    self._dirty_last.discard(temporary)
                    self._dirty_last.add(real)
                for cid, start in [k for k in self._dirty_segments if k[0] == temporary]:
                    self._dirty_segments[(real, start)] = self._dirty_segments.pop((cid, start))
                for cid, hour in [k for k in self._pending_runs if k[0] == temporary]:
                    self._pending_runs[(real, hour)] = self._pending_runs.pop((cid, hour))
                self._fine.renumber(temporary, real)
                for cid, at in [k for k in self._dirty_reasons if k[0] == temporary]:
                    self._dirty_reasons[(real, at)] = self._dirty_reasons.pop((cid, at))
                if temporary in self._recent_reasons:
                    self._recent_reasons[real] = self._recent_reasons.pop(temporary)
                if temporary in self._reason_now:
                    self._reason_now[real] = self._reason_now.pop(temporary)

    def known_id(self, key: CheckKey) -> int | None:
        """Id of a check that has history, without creating one (for read-only callers)."""
        with self._lock:
            if key in self._ids:
                return self._ids[key]
            if key in self._missing:
                return None
        try:
            with self._read_lock:
                row = self._reader.execute(
                    "SELECT id FROM checks WHERE environment=? AND service=? AND name=?", key
                ).fetchone()
        except sqlite3.Error:
            if self.read_only:
                raise
            with self._lock:  # unknown for this scrape; asked again at the next
                self.errors["read"] = self.errors.get("read", 0) + 1
            return None
        with self._lock:
            if key in self._ids:
                return self._ids[key]
            if row is None:
                # Only this process adds checks, and it does so through check_id: a check
                # not there now stays unknown until then (no query per scrape meanwhile).
                if not self.read_only:
                    self._missing.add(key)
                return None
            # Row ids never change: later calls (every /metrics scrape) skip the query.
            self._ids[key] = int(row[0])
            return self._ids[key]

    # -- writing --------------------------------------------------------------------------

    def record(
        self,
        key: CheckKey,
        kind: str,
        result: CheckResult,
        staleness: float,
        latency_threshold: float | None = None,
    ) -> None:
        """Fold one result into the check's segments and hourly counters; written at the next
        flush. With ``latency_threshold`` the run is also counted as timed, and as fast when it
        succeeded within the threshold."""
        check_id = self.check_id(key, kind)
        at = result.timestamp
        reason = None if result.success or result.reason is None else str(result.reason)
        detail = "" if result.success else clean(result.detail)
        with self._lock:
            current = self._open.get(check_id)
            if current is not None and at < current.last:
                # A wall clock stepped back: never rewrite history, start from here.
                at = current.last
            if current is not None and current.up == result.success and at <= current.end:
                self._keep(check_id, replace(current, last=at, end=at + staleness), True)
                if not result.success and self._reason_now.get(check_id) != reason:
                    # The same outage, a new why: kept from here on.
                    mark = ReasonMark(at, reason, detail)
                    self._dirty_reasons[(check_id, at)] = mark
                    self._recent_reasons.setdefault(check_id, {})[at] = mark
                    self._reason_now[check_id] = reason
            else:
                if current is not None and at < current.end:
                    self._keep(check_id, replace(current, end=at), False)
                opened = StoredSegment(at, at, at + staleness, result.success, reason, detail)
                if current is not None and opened.start == current.start:
                    opened = replace(opened, start=at + 1e-6, last=at + 1e-6)
                self._keep(check_id, opened, True)
                if result.success:
                    self._reason_now.pop(check_id, None)
                else:
                    self._reason_now[check_id] = reason
            counter = self._pending_runs.setdefault((check_id, int(at // 3600)), [0, 0, 0, 0])
            counter[0] += 1
            counter[1] += 0 if result.success else 1
            if latency_threshold is not None:
                fast = result.success and result.duration <= latency_threshold
                counter[2] += 1
                counter[3] += int(fast)
                self._fine.add(check_id, at, fast)
            self._last[check_id] = LastResult(
                result.timestamp, result.success, result.duration, result.reason, result.detail
            )
            self._dirty_last.add(check_id)
            self._bound_buffer()

    def _keep(self, check_id: int, segment: StoredSegment, is_open: bool) -> None:
        """Remember a new or changed segment (memory lock held)."""
        if is_open:
            self._open[check_id] = segment
        self._dirty_segments[(check_id, segment.start)] = segment
        self._recent.setdefault(check_id, {})[segment.start] = segment

    def _bound_buffer(self) -> None:
        """Drop the oldest buffered records past MAX_BUFFERED (memory lock held).

        Dropped records stay in memory for reads until they age out; only the database
        never gets them, so they are counted and logged.
        """
        while self._buffered() > MAX_BUFFERED:
            # Dicts keep insertion order: the first key is the oldest buffered record.
            if self._fine.pending:  # the first to go: the hourly counts hold them too
                self._fine.drop_oldest()
            elif len(self._dirty_reasons) > max(len(self._dirty_segments), len(self._pending_runs)):
                del self._dirty_reasons[next(iter(self._dirty_reasons))]
            elif len(self._dirty_segments) >= len(self._pending_runs):
                del self._dirty_segments[next(iter(self._dirty_segments))]
            else:
                del self._pending_runs[next(iter(self._pending_runs))]
            if self.dropped == 0:
                log.error(
                    "history buffer for %s is full (%d records waiting for a write); "
                    "dropping the oldest (counted in monai_slo_store_dropped_records_total)",
                    self.path,
                    MAX_BUFFERED,
                )
            self.dropped += 1

    def buffered(self) -> int:
        """Records waiting for a write."""
        with self._lock:
            return self._buffered()

    def _buffered(self) -> int:
        return (
            len(self._dirty_segments)
            + len(self._pending_runs)
            + len(self._dirty_reasons)
            + len(self._fine.pending)
        )

    def flush(self) -> bool:
        """Write buffered results in one transaction; on failure keep them for the next try.

        Waits at most ``write_wait`` for another process's lock; recording goes on meanwhile.
        """
        if self.read_only:
            return True
        with self._write_lock:
            return self._flush()

    def _flush(self) -> bool:
        self._trim()
        if self._corrupt is not None:
            return False  # writing into a damaged file can spread the damage
        with self._lock:
            if not (
                self._dirty_segments
                or self._pending_runs
                or self._fine.pending
                or self._dirty_last
                or self._dirty_reasons
            ):
                self._recovered()
                return True
        try:
            self._resolve_provisional()
        except sqlite3.Error as exc:
            self._failed("register", exc)
            return False
        with self._lock:
            # Checks registered since the ids were resolved wait for the next flush.
            segments = {k: s for k, s in self._dirty_segments.items() if k[0] > 0}
            reasons = {k: m for k, m in self._dirty_reasons.items() if k[0] > 0}
            runs = {k: n for k, n in self._pending_runs.items() if k[0] > 0}
            for run_key in runs:
                del self._pending_runs[run_key]
            fine = self._fine.take()
            last = {cid: self._last[cid] for cid in self._dirty_last if cid > 0}
        try:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO segments (check_id, start, last, end, up, reason, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (cid, s.start, s.last, s.end, int(s.up), s.reason, s.detail)
                    for (cid, _), s in segments.items()
                ],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO segment_reasons VALUES (?, ?, ?, ?)",
                [(cid, m.at, m.reason, m.detail) for (cid, _), m in reasons.items()],
            )
            self._db.executemany(
                "INSERT INTO runs (check_id, hour, runs, failures, timed, fast) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (check_id, hour) DO UPDATE "
                "SET runs = runs + excluded.runs, failures = failures + excluded.failures, "
                "timed = timed + excluded.timed, fast = fast + excluded.fast",
                [(cid, hour, *n) for (cid, hour), n in runs.items()],
            )
            pruned = self._fine.write(self._db, fine, self._clock())
            self._db.executemany(
                "INSERT OR REPLACE INTO last_results VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (cid, r.timestamp, int(r.success), r.duration, r.reason, r.detail)
                    for cid, r in last.items()
                ],
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            with self._lock:
                for run_key, n in runs.items():
                    counter = self._pending_runs.setdefault(run_key, [0, 0, 0, 0])
                    for i, count in enumerate(n):
                        counter[i] += count
                self._fine.put_back(fine)
            self._failed("write", exc)
            return False
        if pruned:
            self._fine.pruned()
        self._forget_written(segments, reasons, last)
        self._recovered()
        return True

    def _forget_written(
        self,
        segments: dict[tuple[int, float], StoredSegment],
        reasons: dict[tuple[int, float], ReasonMark],
        last: dict[int, LastResult],
    ) -> None:
        """Drop written records from the buffer; what changed again while writing stays
        buffered for the next flush."""
        with self._lock:
            for seg_key, segment in segments.items():
                if self._dirty_segments.get(seg_key) is segment:
                    del self._dirty_segments[seg_key]
            for reason_key, mark in reasons.items():
                if self._dirty_reasons.get(reason_key) is mark:
                    del self._dirty_reasons[reason_key]
            for cid, result in last.items():
                if self._last.get(cid) is result:
                    self._dirty_last.discard(cid)

    def _trim(self) -> None:
        """Forget settled segments older than RECENT_KEEP; reads before then use the file."""
        if time.monotonic() - self._trimmed_at < _TRIM_EVERY:
            return
        self._trimmed_at = time.monotonic()
        cutoff = self._clock() - RECENT_KEEP
        with self._lock:
            for check_id, by_start in self._recent.items():
                current = self._open.get(check_id)
                for start in [s for s, seg in by_start.items() if seg.end <= cutoff]:
                    if (current is None or current.start != start) and (
                        check_id,
                        start,
                    ) not in self._dirty_segments:
                        del by_start[start]
            for check_id, by_at in self._recent_reasons.items():
                for at in [a for a in by_at if a <= cutoff]:
                    if (check_id, at) not in self._dirty_reasons:
                        del by_at[at]
            self._memory_since = max(self._memory_since, cutoff)

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite rolls back by itself when it cannot; nothing was committed

    def _failed(self, operation: str, exc: sqlite3.Error) -> None:
        """Count every failure; log each distinct error once until writing works again."""
        busy = _is_busy(exc)
        with self._lock:
            self.errors[operation] = self.errors.get(operation, 0) + 1
            if self._failing_since is None or (self._failing_busy and not busy):
                self._failing_since = time.monotonic()
            self._failing_busy = busy
            message = str(exc)
            first = message not in self._logged_errors
            self._logged_errors.add(message)
        if _is_corrupt(exc):
            self._mark_corrupt(message)
        elif first:
            log.error(
                "history database %s (%s) failed, keeping results in memory: %s",
                operation,
                self.path,
                message,
            )

    def _recovered(self) -> None:
        with self._lock:
            was_failing = self._failing_since is not None
            self._failing_since = None
            self._failing_busy = False
            self._logged_errors.clear()
        if was_failing:
            log.warning("history writes to %s work again; buffered results written", self.path)

    def _mark_corrupt(self, problem: str) -> None:
        with self._lock:
            first = self._corrupt is None
            self._corrupt = problem
        if first:
            log.error(
                "history database %s is damaged (%s): writes stopped, results kept in memory; "
                "stop monai-slo, %s",
                self.path,
                problem,
                _RECOVER,
            )

    def healthy(self) -> bool:
        """False while writes fail (a lock held by another process: after LOCK_GRACE) or
        the file was found damaged."""
        with self._lock:
            if self._corrupt is not None:
                return False
            if self._failing_since is None:
                return True
            return self._failing_busy and time.monotonic() - self._failing_since < LOCK_GRACE

    def error_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.errors)

    def check_integrity(self) -> bool:
        """PRAGMA quick_check on the file (reads only); damage is logged, counted and stops
        writes. A busy database is tried again next time."""
        try:
            # A connection of its own: a long-lived one may answer from pages it cached
            # before the file was damaged.
            checker = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=rw", uri=True)
            try:
                checker.execute(f"PRAGMA busy_timeout={int(DAEMON_READ_WAIT * 1000)}")
                checker.execute("PRAGMA query_only=1")
                problems = [row[0] for row in checker.execute("PRAGMA quick_check(3)")]
            finally:
                checker.close()
        except sqlite3.Error as exc:
            if _is_busy(exc):
                return True
            if not _is_corrupt(exc):  # e.g. the file was removed: say so, keep writing
                self._failed("integrity", exc)
                return False
            problems = [str(exc)]
        if problems == ["ok"]:
            return True
        with self._lock:
            self.errors["integrity"] = self.errors.get("integrity", 0) + 1
        self._mark_corrupt("; ".join(problems))
        return False

    def prune(self, now: float, *, keep_from: float | None = None) -> None:
        """Drop history older than the retention (segments, hourly counts and reasons no
        older than ``keep_from``: days not rolled up yet), and rollups, maintenance windows
        and incidents older than the archive retention: a report years back still lists who
        planned what and why, and counts the planned time out of its allowance."""
        cutoff = now - self.retention
        segment_cutoff = cutoff if keep_from is None else min(cutoff, keep_from)
        archive_cutoff = min(segment_cutoff, now - self.archive_retention)
        with self._write_lock:
            if self._corrupt is not None:
                return
            try:
                if self._v4:
                    oldest_day = int((now - self.archive_retention) // DAY)
                    self._db.execute("DELETE FROM check_days WHERE day < ?", (oldest_day,))
                    self._db.execute("DELETE FROM service_days WHERE day < ?", (oldest_day,))
                cutoff = segment_cutoff
                self._db.execute("DELETE FROM segments WHERE end < ?", (cutoff,))
                self._db.execute("DELETE FROM runs WHERE hour < ?", (int(cutoff // 3600),))
                self._db.execute("DELETE FROM segment_reasons WHERE at < ?", (cutoff,))
                self._db.execute("DELETE FROM maintenance WHERE end < ?", (archive_cutoff,))
                self._db.execute(
                    "DELETE FROM incident_updates WHERE incident_id IN "
                    "(SELECT id FROM incidents WHERE resolved < ?)",
                    (archive_cutoff,),
                )
                self._db.execute("DELETE FROM incidents WHERE resolved < ?", (archive_cutoff,))
            except sqlite3.Error as exc:
                self._failed("prune", exc)
        with self._lock:
            for check_id, by_start in self._recent.items():
                current = self._open.get(check_id)
                for start in [s for s, seg in by_start.items() if seg.end < cutoff]:
                    if current is None or current.start != start:
                        del by_start[start]

    # -- reading --------------------------------------------------------------------------

    def segments(
        self, check_ids: Iterable[int], since: float, now: float
    ) -> dict[int, list[Segment]]:
        """Segments of each check overlapping [since, now], buffered ones included.

        Recent history (what /metrics asks for between scrapes) comes from memory alone.
        """
        ids = list(check_ids)
        rows: dict[int, list[tuple[float, float, int]]] = {cid: [] for cid in ids}
        from_memory = not self.read_only and since >= self._memory_since
        if not from_memory:
            positive = [cid for cid in ids if cid > 0]
            try:
                with self._read_lock:
                    for chunk in _chunks(positive, 500):
                        marks = ",".join("?" * len(chunk))
                        for check_id, start, end, up in self._reader.execute(
                            f"SELECT check_id, start, end, up FROM segments "  # noqa: S608 -- only placeholders
                            f"WHERE check_id IN ({marks}) AND end > ? AND start < ? ORDER BY start",
                            (*chunk, since, now),
                        ):
                            rows[check_id].append((start, end, up))
            except sqlite3.Error as exc:
                if self.read_only:
                    raise
                # The daemon answers from memory and says why, rather than fail the scrape.
                self._failed("read", exc)
        with self._lock:
            recent = {
                cid: [
                    (seg.start, seg.end, int(seg.up))
                    for seg in kept.values()
                    if seg.end > since and seg.start < now
                ]
                for cid in ids
                if (kept := self._recent.get(cid))
            }
        found: dict[int, list[Segment]] = {}
        for cid, stored in rows.items():
            merged = stored
            if memory := recent.get(cid):
                # A segment in memory replaces the stored one of the same start (it may have
                # grown since it was written); the rows come in start order either way.
                by_start = {row[0]: row for row in stored}
                by_start.update((row[0], row) for row in memory)
                merged = [by_start[start] for start in sorted(by_start)]
            # The file's rows go straight to segments, clipped to now (no object per row).
            found[cid] = [Segment(a, b if b < now else now, bool(up)) for a, b, up in merged]
        return found

    def reasons(
        self, check_ids: Iterable[int], since: float, now: float
    ) -> dict[int, list[ReasonMark]]:
        """Per check, oldest first, why it failed in its down segments overlapping
        [since, now]: a mark at each such segment's start and at each reason change within
        one (marks in memory may reach a little further; callers match them to segments).
        Segments recorded before schema 3 have no reason and give no mark."""
        ids = list(check_ids)
        found: dict[int, dict[float, ReasonMark]] = {cid: {} for cid in ids}
        positive = [cid for cid in ids if cid > 0]
        if self._v3:
            try:
                with self._read_lock:
                    for chunk in _chunks(positive, 500):
                        marks = ",".join("?" * len(chunk))
                        query = (
                            f"SELECT check_id, start, reason, detail FROM segments "  # noqa: S608 -- only placeholders
                            f"WHERE check_id IN ({marks}) AND up = 0 AND reason IS NOT NULL "
                            "AND end > ? AND start < ? "
                            "UNION ALL SELECT r.check_id, r.at, r.reason, r.detail "
                            "FROM segments s JOIN segment_reasons r ON r.check_id = s.check_id "
                            "AND r.at >= s.start AND r.at <= s.end "
                            f"WHERE s.check_id IN ({marks}) AND s.up = 0 "
                            "AND s.end > ? AND s.start < ?"
                        )
                        for check_id, at, reason, detail in self._reader.execute(
                            query, (*chunk, since, now, *chunk, since, now)
                        ):
                            found[check_id][at] = ReasonMark(at, reason, detail)
            except sqlite3.Error as exc:
                if self.read_only:
                    raise
                self._failed("read", exc)
        with self._lock:
            for check_id in ids:
                for seg in self._recent.get(check_id, {}).values():
                    if (
                        not seg.up
                        and seg.reason is not None
                        and seg.end > since
                        and seg.start < now
                    ):
                        found[check_id][seg.start] = ReasonMark(seg.start, seg.reason, seg.detail)
                for at, mark in self._recent_reasons.get(check_id, {}).items():
                    if at < now:
                        found[check_id][at] = mark
        return {cid: [m for _, m in sorted(by_at.items())] for cid, by_at in found.items()}

    def last_result(self, check_id: int) -> LastResult | None:
        with self._lock:
            return self._last.get(check_id)

    def run_counts(self, check_id: int, since: float) -> tuple[int, int]:
        """(runs, failures) since an hour boundary at or before ``since``."""
        return self.run_counts_many([check_id], since)[check_id]

    def run_counts_many(self, check_ids: Iterable[int], since: float) -> dict[int, tuple[int, int]]:
        """:meth:`run_counts` of many checks, one query per 500 (``status`` on 1,000 checks
        made 1,000 queries); a check without runs gives (0, 0)."""
        hour = int(since // 3600)
        ids = list(check_ids)
        counts = dict.fromkeys(ids, (0, 0))
        # Not during a flush: its counters are neither buffered nor in the file meanwhile.
        with self._write_lock, self._read_lock:
            try:
                for chunk in _chunks([cid for cid in ids if cid > 0], 500):
                    marks = ",".join("?" * len(chunk))
                    for check_id, runs, failures in self._reader.execute(
                        f"SELECT check_id, SUM(runs), SUM(failures) FROM runs "  # noqa: S608 -- only placeholders
                        f"WHERE check_id IN ({marks}) AND hour >= ? GROUP BY check_id",
                        (*chunk, hour),
                    ):
                        counts[check_id] = (int(runs), int(failures))
            except sqlite3.Error as exc:
                if self.read_only:
                    raise
                self._failed("read", exc)
            with self._lock:
                for (cid, h), (r, f, *_) in self._pending_runs.items():
                    if h >= hour and cid in counts:
                        runs, failures = counts[cid]
                        counts[cid] = (runs + r, failures + f)
        return counts

    def latency_counts(self, check_id: int, since: float) -> dict[int, tuple[int, int]]:
        """Hour (epoch seconds // 3600) -> (timed, fast) for the hours from the one holding
        ``since``; hours without a timed run are left out."""
        hour = int(since // 3600)
        counts: dict[int, list[int]] = {}
        with self._write_lock, self._read_lock:
            if check_id > 0:
                try:
                    rows = self._reader.execute(
                        "SELECT hour, timed, fast FROM runs "
                        "WHERE check_id = ? AND hour >= ? AND timed > 0",
                        (check_id, hour),
                    ).fetchall()
                    counts = {int(h): [int(t), int(f)] for h, t, f in rows}
                except sqlite3.Error as exc:
                    if self.read_only:
                        if "no such column" in str(exc):
                            counts = {}  # a version 1 file nothing has written yet
                        else:
                            raise
                    else:
                        self._failed("read", exc)
            with self._lock:
                for (cid, h), (_, _, timed, fast) in self._pending_runs.items():
                    if cid == check_id and h >= hour and timed:
                        total = counts.setdefault(h, [0, 0])
                        total[0] += timed
                        total[1] += fast
        return {h: (t, f) for h, (t, f) in sorted(counts.items())}

    def latency_by_second(self, check_id: int, since: float) -> RunsBySecond:
        """Timed and fast runs per second from ``since`` (at most an hour back), with from
        when they are complete: exact counts for the short latency windows."""
        since = self._fine.window(since, self._clock())
        if not self.read_only:
            with self._lock:
                return self._fine.recent(check_id, since)
        with self._read_lock:
            return self._fine.from_file(self._reader, check_id, since)

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
        author: str = "",
        via: str = "cli",
    ) -> int:
        """Store a window started by ``author`` (the OS user for the CLI) at ``now``
        through ``via`` (``cli`` or ``api``)."""
        with self._write_lock:
            cursor = self._db.execute(
                "INSERT INTO maintenance "
                "(environment, service, start, end, reason, created, created_by, via) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (environment, service, start, end, reason, now, clean(author, AUTHOR_LIMIT), via),
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
        author: str = "",
    ) -> int:
        """End active (and cancel future) windows matching; returns how many changed. Who
        ended them and when is kept, and so is the end they had before."""
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
        with self._write_lock:
            cursor = self._db.execute(
                "UPDATE maintenance SET planned_end = COALESCE(planned_end, end), "  # noqa: S608 -- fixed clauses
                f"end = MAX(start, ?), ended_by = ?, ended_at = ? WHERE {' AND '.join(where)}",
                (now, clean(author, AUTHOR_LIMIT), now, *params),
            )
            return cursor.rowcount

    def maintenance(self, since: float) -> list[MaintenanceRow]:
        """Windows ending after ``since``, oldest first.

        The daemon reads them at every scrape (`maintenance start` writes them from another
        process); when the file cannot be read it answers from the last successful read.
        """
        try:
            with self._read_lock:
                audit = (
                    "created, created_by, ended_by, ended_at, planned_end"
                    if self._v3
                    else "created, '', NULL, NULL, NULL"
                ) + (", via" if self._via else ", 'cli'")
                rows = self._reader.execute(
                    f"SELECT id, environment, service, start, end, reason, {audit} "  # noqa: S608 -- fixed columns
                    "FROM maintenance WHERE end > ? ORDER BY start, id",
                    (since,),
                ).fetchall()
        except sqlite3.Error as exc:
            cached = self._maintenance_cache
            if self.read_only or cached is None or cached[0] > since:
                raise
            with self._lock:
                self.errors["read"] = self.errors.get("read", 0) + 1
            if _is_corrupt(exc):
                self._mark_corrupt(str(exc))
            return [row for row in cached[1] if row.end > since]
        found = [MaintenanceRow(*row) for row in rows]
        if not self.read_only:
            self._maintenance_cache = (since, found)
        return found

    # -- incidents written by operators ------------------------------------------------------

    def open_incident(
        self, environment: str, service: str, text: str, *, author: str, now: float
    ) -> int:
        """A new incident on the service, opened by ``author`` with ``text``; its id."""
        with self._write_lock:
            self._db.execute("BEGIN")
            try:
                cursor = self._db.execute(
                    "INSERT INTO incidents (environment, service, opened, opened_by) "
                    "VALUES (?, ?, ?, ?)",
                    (environment, service, now, clean(author, AUTHOR_LIMIT)),
                )
                assert cursor.lastrowid is not None
                self._note(cursor.lastrowid, "open", text, author, now)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            return cursor.lastrowid

    def note_incident(
        self, incident_id: int, text: str, *, author: str, now: float, resolve: bool = False
    ) -> None:
        """Add a note to an incident; ``resolve`` also marks it resolved (by ``author``)."""
        with self._write_lock:
            self._db.execute("BEGIN")
            try:
                if resolve:
                    self._db.execute(
                        "UPDATE incidents SET resolved = ?, resolved_by = ? WHERE id = ?",
                        (now, clean(author, AUTHOR_LIMIT), incident_id),
                    )
                self._note(incident_id, "resolved" if resolve else "update", text, author, now)
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _note(self, incident_id: int, state: str, text: str, author: str, now: float) -> None:
        self._db.execute(
            "INSERT INTO incident_updates VALUES (?, ?, ?, ?, ?)",
            (
                incident_id,
                now,
                clean(author, AUTHOR_LIMIT),
                state,
                clean(text, INCIDENT_TEXT_LIMIT),
            ),
        )

    def incidents(self, since: float) -> list[IncidentRow]:
        """Incidents open now or resolved after ``since``, oldest first, with their notes
        (none in a file from before schema 3)."""
        if not self._v3:
            return []
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT id, environment, service, opened, opened_by, resolved, resolved_by "
                "FROM incidents WHERE resolved IS NULL OR resolved > ? ORDER BY opened, id",
                (since,),
            ).fetchall()
            notes: dict[int, list[IncidentUpdate]] = {}
            ids = [int(row[0]) for row in rows]
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for incident_id, at, author, state, text in self._reader.execute(
                    "SELECT incident_id, at, author, state, text FROM incident_updates "  # noqa: S608 -- only placeholders
                    f"WHERE incident_id IN ({marks}) ORDER BY at, rowid",
                    chunk,
                ):
                    notes.setdefault(incident_id, []).append(
                        IncidentUpdate(at, author, state, text)
                    )
        return [
            IncidentRow(
                int(identity),
                environment,
                service,
                opened,
                opened_by,
                resolved,
                resolved_by,
                tuple(notes.get(int(identity), ())),
            )
            for identity, environment, service, opened, opened_by, resolved, resolved_by in rows
        ]

    # -- daily rollups ----------------------------------------------------------------------

    def rolled_until(self) -> int | None:
        """The first UTC day not rolled up yet (None: no day has been)."""
        if not self._v4:
            return None
        with self._read_lock:
            row = self._reader.execute(
                "SELECT value FROM meta WHERE key = 'rolled_until'"
            ).fetchone()
        return None if row is None else int(row[0])

    def first_complete_day(self) -> int | None:
        """The first UTC day whose segments are all still stored (None: none stored): where
        the first roll-up starts.

        A file that an earlier version pruned (without rolling up) has lost the segments that
        ended before its last cutoff; that cutoff is at most the earliest end still stored, so
        the first day from there on is whole. A long segment from before (a check stable for
        years) would otherwise start the roll-up years back, on days whose other checks are
        gone. A file never pruned that way is whole from its oldest segment on.
        """
        with self._read_lock:
            pruned = self._reader.execute(
                "SELECT 1 FROM meta WHERE key = 'pruned_before_rollups'"
            ).fetchone()
            query = "SELECT MIN(end) FROM segments" if pruned else "SELECT MIN(start) FROM segments"
            row = self._reader.execute(query).fetchone()
        if row is None or row[0] is None:
            return None
        return -int(-float(row[0]) // DAY) if pruned else int(float(row[0]) // DAY)

    def save_rollups(
        self,
        checks: Iterable[tuple[int, DayRollup]],
        services: Iterable[tuple[str, str, DayRollup]],
        until: int,
    ) -> None:
        """Write rolled-up days and move ``rolled_until`` to ``until``, in one transaction."""

        def values(r: DayRollup) -> tuple[int | str, ...]:
            return (
                r.day,
                _ms(r.up),
                _ms(r.down),
                _ms(r.no_data),
                _ms(r.maintenance),
                _ms(r.maintenance_down),
                r.outages,
                json.dumps(r.reasons, sort_keys=True, separators=(",", ":")),
            )

        with self._write_lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO check_days VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(check_id, *values(r)) for check_id, r in checks],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO service_days VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(env, svc, *values(r)) for env, svc, r in services],
                )
                self._db.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('rolled_until', ?)", (str(until),)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def service_days(self, environment: str, service: str, first: int, end: int) -> list[DayRollup]:
        """The service's rolled-up days in [first, end), oldest first."""
        if not self._v4:
            return []
        with self._read_lock:
            rows = self._reader.execute(
                "SELECT day, up, down, no_data, maintenance, maintenance_down, outages, reasons "
                "FROM service_days WHERE environment = ? AND service = ? AND day >= ? AND day < ? "
                "ORDER BY day",
                (environment, service, first, end),
            ).fetchall()
        return [_rollup(int(row[0]), row[1:]) for row in rows]

    def check_reasons(
        self, check_ids: Iterable[int], first: int, end: int
    ) -> dict[int, dict[str, int]]:
        """Per check, how often it began failing for each reason on the rolled-up days in
        [first, end) (checks without a failure left out)."""
        ids = [cid for cid in check_ids if cid > 0]
        found: dict[int, dict[str, int]] = {}
        if not self._v4:
            return found
        with self._read_lock:
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for check_id, reasons in self._reader.execute(
                    f"SELECT check_id, reasons FROM check_days WHERE check_id IN ({marks}) "  # noqa: S608 -- only placeholders
                    "AND day >= ? AND day < ? AND reasons != '{}'",
                    (*chunk, first, end),
                ):
                    counts = found.setdefault(int(check_id), {})
                    for reason, count in _reasons(reasons).items():
                        counts[reason] = counts.get(reason, 0) + count
        return found

    def check_days(
        self, check_ids: Iterable[int], first: int, end: int
    ) -> dict[int, list[DayRollup]]:
        """Each check's rolled-up days in [first, end), oldest first."""
        ids = [cid for cid in check_ids if cid > 0]
        found: dict[int, list[DayRollup]] = {cid: [] for cid in ids}
        if not self._v4:
            return found
        with self._read_lock:
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for row in self._reader.execute(
                    "SELECT check_id, day, up, down, no_data, maintenance, maintenance_down, "  # noqa: S608 -- only placeholders
                    f"outages, reasons FROM check_days WHERE check_id IN ({marks}) "
                    "AND day >= ? AND day < ? ORDER BY day",
                    (*chunk, first, end),
                ):
                    found[int(row[0])].append(_rollup(int(row[1]), row[2:]))
        return found

    def close(self) -> None:
        """Last flush (waiting up to CLOSE_WAIT for another process's lock), then close."""
        with self._write_lock:
            if not self.read_only:
                self._db.execute(f"PRAGMA busy_timeout={int(CLOSE_WAIT * 1000)}")
                if not self._flush() and self.buffered():
                    log.error(
                        "history database %s: %d buffered records could not be written "
                        "before stopping",
                        self.path,
                        self.buffered(),
                    )
            self._close_connections()

    def _close_connections(self) -> None:
        if self._reader is not self._db:
            self._reader.close()
        self._db.close()


def _has_latency_counts(db: sqlite3.Connection) -> bool:
    return "fast" in {row[1] for row in db.execute("PRAGMA table_info(runs)")}


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an older file to SCHEMA_VERSION in one transaction (all or nothing), keeping
    every row; new columns start empty (no reason, no author recorded)."""
    db.execute("BEGIN")
    try:
        if not _has_latency_counts(db):
            for statement in _ADD_LATENCY_COUNTS:
                db.execute(statement)
        if not _has_reasons(db):
            for statement in _ADD_REASONS_AND_AUDIT:
                db.execute(statement)
            for statement in _V3_TABLES.split(";"):
                if statement.strip():
                    db.execute(statement)
        if not _has_rollups(db):
            for statement in _V4_TABLES.split(";"):
                if statement.strip():
                    db.execute(statement)
            # Pruned without rollups until now: see HistoryStore.first_complete_day.
            db.execute("INSERT OR REPLACE INTO meta VALUES ('pruned_before_rollups', '1')")
        if not _has_maintenance_via(db):
            db.execute(_ADD_MAINTENANCE_VIA)
        db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _has_rollups(db: sqlite3.Connection) -> bool:
    """A version 4 file: it has the daily rollup tables."""
    found = db.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'service_days'"
    ).fetchone()
    return found is not None


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _rollup(day: int, row: Sequence[Any]) -> DayRollup:
    up, down, no_data, maintenance, maintenance_down, outages, reasons = row
    return DayRollup(
        day,
        up / 1000,
        down / 1000,
        no_data / 1000,
        maintenance / 1000,
        maintenance_down / 1000,
        outages,
        _reasons(reasons),
    )


def _reasons(text: str) -> dict[str, int]:
    # Most days have no failure: no JSON to parse.
    return {} if text in {"", "{}"} else {str(k): int(v) for k, v in json.loads(text).items()}


def _has_maintenance_via(db: sqlite3.Connection) -> bool:
    return "via" in {row[1] for row in db.execute("PRAGMA table_info(maintenance)")}


def _has_reasons(db: sqlite3.Connection) -> bool:
    """A version 3 file: down segments keep their reasons, maintenance its audit."""
    return "reason" in {row[1] for row in db.execute("PRAGMA table_info(segments)")}


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]
