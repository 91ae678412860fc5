"""`status` and `report` only read the history: beside a closed database they leave no -wal or
-shm file behind, and beside one a daemon is writing they read what it has written so far."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.cli import main
from monai_slo.history.store import HistoryStore

KEY = ("prod", "pacs", "echo")
CONFIG = """
storage: {storage}
environments:
  - name: prod
    tier: production
    services:
      - name: pacs
        checks:
          - {{name: echo, kind: tcp, host: 127.0.0.1, port: 104, interval: 10s, timeout: 5s}}
"""


def _history(tmp_path: Path) -> tuple[Path, Path]:
    """A config in tmp_path and its history in tmp_path/db/ (a directory of its own)."""
    (tmp_path / "db").mkdir()
    storage = tmp_path / "db" / "history.sqlite"
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(storage=storage))
    return config, storage


def _record(store: HistoryStore, now: float) -> None:
    """Up for the first 5 of the last 10 minutes, down for the last 5."""
    for i in range(60):
        at = now - 600 + 10 * i
        ok = i < 30
        result = CheckResult(ok, 0.01, None if ok else FailureReason.REFUSED, "", at)
        store.record(KEY, "tcp", result, staleness=25)


def _availability_1h(config: Path, capsys: pytest.CaptureFixture[str]) -> float:
    assert main(["status", "-c", str(config), "-o", "json"]) == 0
    service = json.loads(capsys.readouterr().out)["services"][0]
    return float(service["windows"]["1h"]["availability_ratio"])


def test_status_and_report_leave_no_files_beside_a_closed_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, storage = _history(tmp_path)
    writer = HistoryStore(storage)
    _record(writer, time.time())
    writer.close()
    before = sorted(p.name for p in storage.parent.iterdir())
    assert before == ["history.sqlite"]
    mtime = storage.stat().st_mtime_ns
    assert _availability_1h(config, capsys) == pytest.approx(0.5, abs=0.01)
    month = time.strftime("%Y-%m", time.gmtime())
    out = tmp_path / "report.html"
    assert main(["report", "-c", str(config), "--period", month, "-o", str(out)]) == 0
    assert out.stat().st_size > 0
    assert sorted(p.name for p in storage.parent.iterdir()) == before
    assert storage.stat().st_mtime_ns == mtime


def test_status_reads_what_a_writing_daemon_has_flushed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the daemon's store open and its flushes still in the WAL (not yet in the main
    file), status shows them; after more flushes it shows those too."""
    config, storage = _history(tmp_path)
    writer = HistoryStore(storage)
    try:
        writer.record(KEY, "tcp", CheckResult(True, 0.01, None, "", time.time() - 900), 25)
        assert writer.flush()
        now = time.time()
        _record(writer, now)
        assert writer.flush()
        # The flushed segments are in the WAL only: the main file alone does not have them.
        main_file = sqlite3.connect(f"{storage.as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            in_main = main_file.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
        except sqlite3.OperationalError:  # not even the tables are checkpointed yet
            in_main = 0
        finally:
            main_file.close()
        assert in_main < 2
        assert (storage.parent / "history.sqlite-wal").stat().st_size > 0
        # 25 s up at -900 s, 300 s up, 300 s down.
        assert _availability_1h(config, capsys) == pytest.approx(325 / 625, abs=0.01)
        # The daemon goes on: the service comes back and the reader sees that as well.
        later = time.time()
        for at in (later - 5, later - 1):
            writer.record(KEY, "tcp", CheckResult(True, 0.01, None, "", at), 25)
        assert writer.flush()
        assert main(["status", "-c", str(config), "-o", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["services"][0]["state"] == "up"
    finally:
        writer.close()
