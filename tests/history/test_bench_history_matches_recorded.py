"""The benchmark's synthetic history is exactly what the daemon would have recorded.

bench/history.py writes 30 days x 1,000 checks by computing the rows per state change; these
tests prove, on a small but eventful pattern, that the rows equal those HistoryStore.record
leaves after being fed every single run.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bench.history import Pattern, generate, result, write
from monai_slo.history.store import HistoryStore

NOW = 1_750_000_000.0
# One day, dense with failures and a daemon-restart gap, so every branch is exercised.
EVENTFUL = Pattern(
    checks=4,
    checks_per_service=2,
    days=1.0,
    service_outages=60.0,
    check_outages=90.0,
    blip_probability=0.01,
    gap_days_ago=0.5,
    gap_seconds=600.0,
    seed=7,
)


def _rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {
            "checks": db.execute("SELECT * FROM checks ORDER BY id").fetchall(),
            "segments": db.execute("SELECT * FROM segments ORDER BY check_id, start").fetchall(),
            "runs": db.execute("SELECT * FROM runs ORDER BY check_id, hour").fetchall(),
            "last": db.execute(
                "SELECT check_id, timestamp, success FROM last_results ORDER BY check_id"
            ).fetchall(),
        }
    finally:
        db.close()


def test_computed_history_equals_recorded_history(tmp_path: Path) -> None:
    """Segments, hourly run counts and last results written per state change equal what
    HistoryStore.record produces from every run of the same history."""
    histories = generate(EVENTFUL, NOW)
    fast, recorded = tmp_path / "fast.sqlite", tmp_path / "recorded.sqlite"
    write(fast, EVENTFUL, histories)

    store = HistoryStore(recorded)
    for index, history in enumerate(histories):
        for timestamp, up in history.runs():
            store.record(EVENTFUL.key(index), "tcp", result(timestamp, up), EVENTFUL.staleness)
    store.close()

    expected, got = _rows(recorded), _rows(fast)
    assert got == expected
    down = [row for row in expected["segments"] if row[4] == 0]
    assert len(down) >= 10, "the pattern must produce outages for the test to mean anything"
    assert sum(row[3] for row in expected["runs"]) > 0  # (check_id, hour, runs, failures, ...)


def test_history_has_the_documented_shape() -> None:
    """The default pattern: 1,000 checks, 30 days of 30 s runs, about 99.9 % of runs good
    per check, with a two-minute gap in every check."""
    pattern = Pattern()
    histories = generate(pattern, NOW)
    runs = sum(h.count - (h.gap[1] - h.gap[0]) for h in histories)
    failed = sum(b - a for h in histories for a, b in h.down)

    assert len(histories) == 1000
    assert runs == 1000 * 86400 - 1000 * 4  # 30 d / 30 s each, less the 120 s gap
    assert 0.998 < 1 - failed / runs < 0.9995
    assert all(h.gap[1] - h.gap[0] == 4 for h in histories)
