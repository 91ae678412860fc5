"""Wall-clock jumps (through the daemon's injectable clock) create no phantom downtime and
never corrupt history; durations come from the monotonic clock."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.history.evaluation import evaluate_service
from tests.fixtures_http import HttpPeer

KEY = ("prod", "web", "a")


class SteppingClock:
    """Wall time plus an offset the test can step forward and back."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _wait_runs(daemon: Daemon, more: int) -> None:
    target = daemon.counters.runs.get(KEY, 0) + more
    deadline = time.monotonic() + 10
    while daemon.counters.runs.get(KEY, 0) < target:
        assert time.monotonic() < deadline, "checks stopped running"
        time.sleep(0.01)  # poll interval


def _segments(db: Path) -> list[tuple[float, float, float, int]]:
    connection = sqlite3.connect(db)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return connection.execute(
            "SELECT start, last, end, up FROM segments ORDER BY start"
        ).fetchall()
    finally:
        connection.close()


def test_clock_jumps_forward_and_back(tmp_path: Path) -> None:
    """+1 h then back: the skipped hour is no data (not downtime), results stamped in the
    'past' never rewrite history, segments stay ordered and non-overlapping, and every
    duration stays a real (monotonic) sub-second figure."""
    clock = SteppingClock()
    with HttpPeer() as web:
        path = tmp_path / "c.yaml"
        path.write_text(
            "listen: 127.0.0.1:0\nstorage: h.sqlite\nflush_interval: 0.2s\n"
            "environments:\n  - name: prod\n    tier: production\n    services:\n"
            "      - name: web\n        checks:\n"
            f"          - {{name: a, kind: http, url: '{web.url}/', interval: 0.1s, timeout: 0.08s}}\n"
        )
        config = load_config(path)
        daemon = Daemon(config, clock=clock)
        daemon.start()
        try:
            _wait_runs(daemon, 3)
            clock.offset = 3600.0
            _wait_runs(daemon, 3)
            clock.offset = 0.0
            _wait_runs(daemon, 3)
            durations = [daemon.counters.last[KEY].duration]
            service = next(config.services())
            stats = evaluate_service(service, daemon.store, clock() + 3600).slo_window.stats
            assert stats.down == 0
            assert stats.up > 0
            assert stats.no_data > 3000  # the skipped hour is not counted as up either
        finally:
            daemon.stop()
    assert all(0 <= d < 1 for d in durations)
    segments = _segments(config.storage)
    for (start, last, end, _), following in itertools.pairwise(segments):
        assert start <= last <= end <= following[0]
    assert {up for *_, up in segments} == {1}


def test_durations_ignore_wall_clock(tmp_path: Path) -> None:
    """A check's duration is measured on the monotonic clock, not the injected wall clock."""
    from monai_slo.config.model import CheckRef
    from monai_slo.daemon.runner import execute

    with HttpPeer() as web:
        path = tmp_path / "c.yaml"
        path.write_text(
            "environments:\n  - name: prod\n    tier: production\n    services:\n"
            f"      - name: web\n        checks: [{{name: a, kind: http, url: '{web.url}/'}}]\n"
        )
        ref: CheckRef = next(load_config(path).checks())
        jumps = iter([1000.0, -5000.0])
        wall: Callable[[], float] = lambda: next(jumps)  # noqa: E731
        result = execute(ref, clock=wall)
    assert result.timestamp == 1000.0
    assert 0 < result.duration < 1
