"""The last hour of latency verdicts per second, beside the store's hourly counts.

Hours alone make a latency window shorter than an hour an estimate (its hours pro rata), so
the store also keeps timed and fast runs per check per epoch second for the last
:data:`FINE_KEEP` seconds (table ``latency_seconds``): windows up to an hour are counted
exactly, each run at its second (:func:`monai_slo.slo.latency.latency_stats`). That costs at
most one row per check per second of the last hour, and one row per run for checks slower
than that (12 for a canary every 5 minutes); rows are written with the store's flush, in its
transaction, and pruned there once a minute as they age out. The file notes since when the
table is complete (its creation: a file from before it reads its hours, as before).

Not thread-safe on its own: the store calls it under its locks.
"""

from __future__ import annotations

import math
import sqlite3
import time

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


class LatencyBySecond:
    """Verdicts waiting for the next flush, and reads that add them to the file's rows."""

    def __init__(self, db: sqlite3.Connection) -> None:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (SINCE_KEY,)).fetchone()
        self.since = float(row[0]) if row else math.inf
        """Rows are complete from here (never, in a file without the table)."""
        self.pending: dict[Key, list[int]] = {}
        self._pruned_at = time.monotonic()

    def add(self, check_id: int, at: float, fast: bool) -> None:
        counts = self.pending.setdefault((check_id, int(at)), [0, 0])
        counts[0] += 1
        counts[1] += int(fast)

    def renumber(self, temporary: int, real: int) -> None:
        """A provisional check id became a real one."""
        for cid, second in [k for k in self.pending if k[0] == temporary]:
            self.pending[(real, second)] = self.pending.pop((cid, second))

    def drop_oldest(self) -> None:
        """Drop the oldest pending verdict (the hourly counts hold it too); windows reaching
        back to it are read from the hours from then on."""
        key = next(iter(self.pending))
        del self.pending[key]
        self.since = max(self.since, key[1] + 1.0)

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

    def rows(self, db: sqlite3.Connection, check_id: int, since: float) -> dict[int, list[int]]:
        """The file's rows of ``check_id`` from ``since``: second -> [timed, fast]."""
        if check_id <= 0 or since == math.inf:
            return {}
        rows = db.execute(
            "SELECT second, timed, fast FROM latency_seconds WHERE check_id = ? AND second >= ?",
            (check_id, math.floor(since)),
        ).fetchall()
        return {int(s): [int(t), int(f)] for s, t, f in rows}

    def with_pending(
        self, counts: dict[int, list[int]], check_id: int, since: float
    ) -> RunsBySecond:
        """``counts`` (from :meth:`rows`) plus the pending verdicts, from ``since``."""
        for (cid, second), (timed, fast) in self.pending.items():
            if cid == check_id and second >= since:
                total = counts.setdefault(second, [0, 0])
                total[0] += timed
                total[1] += fast
        return RunsBySecond(since, {s: (t, f) for s, (t, f) in counts.items()})
