"""The last hour of latency verdicts per second, beside the store's hourly counts.

Hours alone make a latency window shorter than an hour an estimate (its hours pro rata), so
the store also keeps timed and fast runs per check per epoch second for the last
:data:`FINE_KEEP` seconds (table ``latency_seconds``): windows up to an hour are counted
exactly, each run at its second (:func:`monai_slo.slo.latency.latency_stats`). That costs at
most one row per check per second of the last hour, and one row per run for checks slower
than that (12 for a canary every 5 minutes); rows are written with the store's flush, in its
transaction, and pruned there once a minute as they age out. The file notes since when the
table is complete (its creation: a file from before it reads its hours, as before).

The daemon's store keeps the last hour in memory too (loaded at open, compact arrays: 16
bytes per row), so /metrics reads no row from the file; a read-only store (the CLI) reads the
file. Measured for 1,000 checks with a latency objective every 10 s (361,000 rows): 5.3 MB in
the file, 6.7 MB in memory, +17 ms of CPU per flush of 1,000 rows, 12 ms for the prune once a
minute, ~1 s to load at open; a check's read 7 µs (the hourly query beside it: 37 µs).
Not thread-safe on its own: the store calls it under its locks.
"""

from __future__ import annotations

import bisect
import itertools
import math
import operator
import sqlite3
import time
from array import array

from monai_slo.slo.latency import RunsBySecond

FINE_KEEP = 3600.0
# How often rows older than FINE_KEEP are deleted (a scan of the last hour's rows).
PRUNE_EVERY = 60.0

TABLE = """
CREATE TABLE IF NOT EXISTS latency_seconds (
    check_id INTEGER NOT NULL REFERENCES checks(id), second INTEGER NOT NULL,
    timed INTEGER NOT NULL, fast INTEGER NOT NULL,
    PRIMARY KEY (check_id, second)
) WITHOUT ROWID
"""
# meta key: since when latency_seconds holds every timed run.
SINCE_KEY = "latency_seconds_since"

Key = tuple[int, int]
"""(check id, epoch second)"""


def add_table(db: sqlite3.Connection, now: float) -> None:
    """Create the table in a file that lacks it (new, or from before it existed), noting
    ``now`` as the time from which it is complete; a file that has it is not written."""
    if db.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'latency_seconds'"
    ).fetchone():
        return
    db.execute("BEGIN")
    try:
        db.execute(TABLE)
        db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (SINCE_KEY, now))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class _Recent:
    """One check's last hour: seconds ascending, with their timed and fast runs."""

    __slots__ = ("fast", "seconds", "timed")

    def __init__(self) -> None:
        self.seconds = array("q")
        self.timed = array("I")
        self.fast = array("I")

    def add(self, second: int, timed: int, fast: int) -> None:
        seconds = self.seconds
        if seconds and seconds[-1] == second:
            self.timed[-1] += timed
            self.fast[-1] += fast
            return
        # Results come in time order per check (the store holds a clock that stepped back at
        # the last result); an earlier second still goes in its place.
        at = (
            len(seconds)
            if not seconds or seconds[-1] < second
            else bisect.bisect_left(seconds, second)
        )
        if at < len(seconds) and seconds[at] == second:
            self.timed[at] += timed
            self.fast[at] += fast
            return
        seconds.insert(at, second)
        self.timed.insert(at, timed)
        self.fast.insert(at, fast)
        if seconds[0] < second - FINE_KEEP - PRUNE_EVERY:
            self.trim(second - FINE_KEEP)

    def trim(self, cutoff: float) -> None:
        cut = bisect.bisect_left(self.seconds, cutoff)
        if cut:
            del self.seconds[:cut], self.timed[:cut], self.fast[:cut]

    def runs(self, since: float) -> RunsBySecond:
        start = bisect.bisect_left(self.seconds, math.floor(since))
        return RunsBySecond(since, self.seconds[start:], self.timed[start:], self.fast[start:])


class LatencyBySecond:
    """Verdicts waiting for the next flush; in a daemon's store the last hour in memory."""

    def __init__(self, db: sqlite3.Connection, now: float, *, in_memory: bool) -> None:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (SINCE_KEY,)).fetchone()
        self.since = float(row[0]) if row else math.inf
        """Rows are complete from here (never, in a file without the table)."""
        self.pending: dict[Key, list[int]] = {}
        self.in_memory = in_memory
        self._recent: dict[int, _Recent] = {}
        self._pruned_at = time.monotonic()
        if in_memory and self.since < math.inf:
            self._load(db, now)

    def _load(self, db: sqlite3.Connection, now: float) -> None:
        """The file's last hour into memory, a check's rows at once (the primary key's order)."""
        rows = db.execute(
            "SELECT check_id, second, timed, fast FROM latency_seconds WHERE second >= ? "
            "ORDER BY check_id, second",
            (math.floor(now - FINE_KEEP),),
        ).fetchall()
        for check_id, group in itertools.groupby(rows, key=operator.itemgetter(0)):
            _, seconds, timed, fast = zip(*group, strict=True)
            recent = self._recent[int(check_id)] = _Recent()
            recent.seconds.extend(seconds)
            recent.timed.extend(timed)
            recent.fast.extend(fast)

    def add(self, check_id: int, at: float, fast: bool) -> None:
        counts = self.pending.setdefault((check_id, int(at)), [0, 0])
        counts[0] += 1
        counts[1] += int(fast)
        if self.in_memory:
            self._recent.setdefault(check_id, _Recent()).add(int(at), 1, int(fast))

    def renumber(self, temporary: int, real: int) -> None:
        """A provisional check id became a real one."""
        for cid, second in [k for k in self.pending if k[0] == temporary]:
            self.pending[(real, second)] = self.pending.pop((cid, second))
        if temporary in self._recent:
            self._recent[real] = self._recent.pop(temporary)

    def drop_oldest(self) -> None:
        """Drop the oldest pending verdict (the hourly counts hold it too, and memory)."""
        del self.pending[next(iter(self.pending))]

    def take(self) -> dict[Key, list[int]]:
        """The pending verdicts of checks with real ids, removed from the buffer."""
        taken = {k: n for k, n in self.pending.items() if k[0] > 0}
        for key in taken:
            del self.pending[key]
        return taken

    def put_back(self, taken: dict[Key, list[int]]) -> None:
        """Verdicts whose write failed wait for the next flush."""
        for key, (timed, fast) in taken.items():
            counts = self.pending.setdefault(key, [0, 0])
            counts[0] += timed
            counts[1] += fast

    def write(self, db: sqlite3.Connection, taken: dict[Key, list[int]], now: float) -> bool:
        """Write ``taken`` inside the caller's transaction, deleting aged rows when due;
        returns whether it pruned (call :meth:`pruned` once the transaction commits)."""
        db.executemany(
            "INSERT INTO latency_seconds (check_id, second, timed, fast) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (check_id, second) DO UPDATE "
            "SET timed = timed + excluded.timed, fast = fast + excluded.fast",
            [(cid, second, timed, fast) for (cid, second), (timed, fast) in taken.items()],
        )
        if time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return False
        db.execute(
            "DELETE FROM latency_seconds WHERE second < ?", (int(now - FINE_KEEP - PRUNE_EVERY),)
        )
        return True

    def pruned(self) -> None:
        self._pruned_at = time.monotonic()

    def window(self, since: float, now: float) -> float:
        """From when runs can be read for a window starting at ``since``."""
        return max(since, now - FINE_KEEP, self.since)

    def recent(self, check_id: int, since: float) -> RunsBySecond:
        """The check's runs from ``since`` (from :meth:`window`), from memory."""
        found = self._recent.get(check_id)
        if found is None or since == math.inf:
            return RunsBySecond(since, (), (), ())
        return found.runs(since)

    def from_file(self, db: sqlite3.Connection, check_id: int, since: float) -> RunsBySecond:
        """The check's runs from ``since`` (from :meth:`window`), from the file."""
        if check_id <= 0 or since == math.inf:
            return RunsBySecond(since, (), (), ())
        rows = db.execute(
            "SELECT second, timed, fast FROM latency_seconds WHERE check_id = ? AND second >= ? "
            "ORDER BY second",
            (check_id, math.floor(since)),
        ).fetchall()
        return RunsBySecond(
            since, [int(r[0]) for r in rows], [int(r[1]) for r in rows], [int(r[2]) for r in rows]
        )
