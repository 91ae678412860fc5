"""Crash safety: kill -9 the daemon at random moments while it records; nothing breaks.

After each kill the database passes PRAGMA integrity_check, at most one flush interval of
results is lost, and the next incarnation continues the same segments (no reset, no gap).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures_http import HttpPeer

KILLS = 100
INTERVAL = 0.2
FLUSH = 0.2
CHECKS = 5

# ~1 s a kill (mostly interpreter start-up): more than the default per-test timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _latest_result(db: Path) -> float:
    if not db.exists():
        return 0.0
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = connection.execute("SELECT MAX(timestamp) FROM last_results").fetchone()
    except sqlite3.OperationalError:
        return 0.0  # schema not created yet
    finally:
        connection.close()
    return float(row[0] or 0.0)


def test_kill_minus_nine_a_hundred_times(tmp_path: Path) -> None:
    rng = random.Random(20261125)  # fixed seed: a failure can be replayed
    db = tmp_path / "history.sqlite"
    with HttpPeer() as web:
        checks = "".join(
            f"          - {{name: c{i}, kind: http, url: '{web.url}/'}}\n" for i in range(CHECKS)
        )
        config = tmp_path / "config.yaml"
        config.write_text(
            f"listen: 127.0.0.1:0\nstorage: {db}\nflush_interval: {FLUSH}s\n"
            f"defaults: {{interval: {INTERVAL}s, timeout: 0.15s, stale_after: 30s}}\n"
            "environments:\n  - name: prod\n    tier: production\n    services:\n"
            f"      - name: web\n        checks:\n{checks}"
        )
        command = [
            sys.executable,
            "-m",
            "monai_slo.cli",
            "--log-level",
            "error",
            "run",
            "-c",
            str(config),
        ]
        for kill in range(KILLS):
            started = time.time()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 15
                while _latest_result(db) <= started:
                    assert process.poll() is None, process.stderr.read() if process.stderr else ""
                    assert time.monotonic() < deadline, f"kill {kill}: nothing recorded"
                    time.sleep(0.01)  # poll interval
                time.sleep(rng.uniform(0, 2 * FLUSH))  # the random moment of the crash
                killed_at = time.time()
                os.kill(process.pid, signal.SIGKILL)
                process.wait(5)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                if process.stderr:
                    process.stderr.close()
            connection = sqlite3.connect(db)
            try:
                assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                latest = connection.execute("SELECT MAX(timestamp) FROM last_results").fetchone()[0]
                # Lost: results after the last flush. Allow one run interval and scheduling slack.
                assert killed_at - latest <= FLUSH + INTERVAL + 0.25, (kill, killed_at - latest)
            finally:
                connection.close()
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute(
            "SELECT check_id, start, end FROM segments ORDER BY check_id, start"
        ).fetchall()
    finally:
        connection.close()
    assert len({check_id for check_id, _, _ in rows}) == CHECKS
    for (check_id, _, end), (next_id, next_start, _) in itertools.pairwise(rows):
        if check_id == next_id:
            # Every restart continued the open segment: no stretch of "no data" between them.
            assert next_start <= end, (check_id, end, next_start)
