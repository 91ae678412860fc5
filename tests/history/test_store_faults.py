"""Store faults while running: nothing is lost, checks and scrapes never wait on the file.

* A real full filesystem (a tiny tmpfs the test mounts; needs root, CI runs as root,
  elsewhere these tests skip with the reason).
* Another process holding the database's exclusive lock for ~10 s under a running daemon.
* The file damaged under a running daemon: reported, /-/ready false, still serving.
"""

from __future__ import annotations

import errno
import http.client
import logging
import os
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.history.store import HistoryStore

KEY = ("prod", "pacs", "echo")


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    """Write a filler file until the filesystem says ENOSPC."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return filler


def _result(at: float, ok: bool) -> CheckResult:
    return CheckResult(ok, 0.01, None if ok else FailureReason.TIMEOUT, "", at)


def test_full_disk_keeps_results_in_memory_and_catches_up(
    tiny_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a full disk flushes fail and are counted, each distinct error is logged once, reads
    still see every result, and once space returns the buffered results are written."""
    path = tiny_fs / "history.sqlite"
    store = HistoryStore(path)
    store.record(KEY, "dicom_echo", _result(1000, True), staleness=60)
    assert store.flush()
    filler = _fill(tiny_fs)
    other = ("prod", "router", "echo")  # registering a new check needs a write too
    with caplog.at_level(logging.ERROR, logger="monai_slo.history.store"):
        for at in range(1010, 1500, 10):
            store.record(KEY, "dicom_echo", _result(at, at < 1200), staleness=60)
            store.record(other, "dicom_echo", _result(at, True), staleness=60)
            store.flush()
    failed = sum(store.errors.values())
    assert failed >= 40
    distinct = {r.getMessage() for r in caplog.records}
    assert len(caplog.records) == len(distinct) <= 3
    check_id = store.check_id(KEY)
    segments = store.segments([check_id], 0, 1500)[check_id]
    assert [(s.start, s.up) for s in segments] == [(1000, True), (1200, False)]
    filler.unlink()
    assert store.flush()
    store.close()
    reopened = HistoryStore(path)
    check_id = reopened.check_id(KEY)
    assert [(s.start, s.end, s.up) for s in reopened.segments([check_id], 0, 1500)[check_id]] == [
        (1000, 1200, True),
        (1200, 1500, False),
    ]
    other_id = reopened.known_id(other)
    assert other_id is not None and other_id > 0
    assert reopened.segments([other_id], 0, 1500)[other_id][0].start == 1010


def test_daemon_keeps_checking_and_serving_on_a_full_disk(tiny_fs: Path) -> None:
    """With its history on a full disk the daemon keeps checking, serves /metrics from memory
    and counts monai_slo_store_errors_total; when space returns the history catches up: every
    run counted while the disk was full is in the file, with the newest result, and flushes
    stop adding errors."""
    from monai_slo.config.model import load_config
    from monai_slo.daemon.daemon import Daemon
    from tests.fixtures_http import HttpPeer

    with HttpPeer() as web:
        config_path = tiny_fs.parent / "config.yaml"
        config_path.write_text(
            f"listen: 127.0.0.1:0\nstorage: {tiny_fs / 'history.sqlite'}\nflush_interval: 0.2s\n"
            "environments:\n  - name: prod\n    tier: production\n    services:\n"
            "      - name: web\n        checks:\n"
            f"          - {{name: a, kind: http, url: '{web.url}/', interval: 0.3s, timeout: 0.2s}}\n"
        )
        daemon = Daemon(load_config(config_path))
        daemon.start()
        try:
            labels = {"environment": "prod", "tier": "production", "service": "web"}
            deadline = time.monotonic() + 10
            while daemon.registry.get_sample_value("monai_slo_service_up", labels) != 1:
                assert time.monotonic() < deadline, "service never came up"
                time.sleep(0.02)  # poll interval
            filler = _fill(tiny_fs)
            deadline = time.monotonic() + 10
            while not daemon.registry.get_sample_value(
                "monai_slo_store_errors_total", {"operation": "write"}
            ):
                assert time.monotonic() < deadline, "no store error counted on a full disk"
                time.sleep(0.02)
            runs = daemon.counters.runs[("prod", "web", "a")]
            deadline = time.monotonic() + 10
            while daemon.counters.runs[("prod", "web", "a")] < runs + 3:
                assert time.monotonic() < deadline, "checks stopped on a full disk"
                time.sleep(0.02)
            assert daemon.registry.get_sample_value("monai_slo_service_up", labels) == 1
            # Every run counted so far happened on (or before) the full disk.
            counted_while_full = daemon.counters.runs[("prod", "web", "a")]
            last_while_full = daemon.counters.last[("prod", "web", "a")].timestamp
            filler.unlink()
            deadline = time.monotonic() + 10
            while not daemon.store.flush():
                assert time.monotonic() < deadline, "history never caught up"
                time.sleep(0.02)
            # Space is back: the next flush writes too, and adds no error.
            errors = dict(daemon.store.errors)
            assert daemon.store.flush()
            assert dict(daemon.store.errors) == errors
        finally:
            daemon.stop()
    reopened = HistoryStore(tiny_fs / "history.sqlite")
    check_id = reopened.known_id(("prod", "web", "a"))
    assert check_id is not None
    last = reopened.last_result(check_id)
    assert last is not None and last.success
    assert last.timestamp >= last_while_full  # the results buffered on the full disk were written
    stored_runs, _ = reopened.run_counts(check_id, 0)
    assert stored_runs >= counted_while_full, (stored_runs, counted_while_full)


# The lock holder: takes the lock, says so on stdout, holds it, releases it and says so.
_LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
print("released", flush=True)
"""
LOCK_SECONDS = 10.0
MONAI_SLO = str(Path(sys.executable).parent / "monai-slo")
INTERVAL = 1.0
# A scrape while the lock is held: served from memory, so far under a second.
SCRAPE_LIMIT = 0.5


def _scrape(port: int) -> tuple[float, dict[str, float]]:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        conn.close()
    from prometheus_client.parser import text_string_to_metric_families

    samples = {
        sample.name + str(sorted(sample.labels.items()) if "operation" in sample.labels else ""): (
            sample.value
        )
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return time.monotonic() - started, samples


def _ready(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/-/ready")
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _line(stream: object, timeout: float) -> str:
    """The next line the lock holder prints, waiting at most ``timeout``."""
    assert hasattr(stream, "readline") and hasattr(stream, "fileno")
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline().decode().strip() if ready else ""


def _db_runs(db: Path) -> int:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(connection.execute("SELECT COALESCE(SUM(runs), 0) FROM runs").fetchone()[0])
    finally:
        connection.close()


@pytest.mark.slow
def test_another_process_holding_the_lock_stalls_neither_checks_nor_scrapes(
    tmp_path: Path,
) -> None:
    """A 10 s exclusive lock by another process: the 1 s check runs on schedule, every scrape
    answers within SCRAPE_LIMIT, /-/ready stays 200 (a lock is not a failure until
    LOCK_GRACE), and once the lock is gone the buffered runs are in the database."""
    from tests.fixtures_dicom import free_port
    from tests.fixtures_http import HttpPeer

    db = tmp_path / "history.sqlite"
    port = free_port()
    with HttpPeer() as web:
        config = tmp_path / "config.yaml"
        config.write_text(
            f"listen: 127.0.0.1:{port}\nstorage: {db}\nflush_interval: 0.5s\nworkers: 4\n"
            "environments:\n  - name: prod\n    tier: production\n    services:\n"
            "      - name: web\n        checks:\n"
            f"          - {{name: a, kind: tcp, host: 127.0.0.1, port: {web.port}, "
            f"interval: {INTERVAL}s, timeout: 0.5s}}\n"
        )
        log = tmp_path / "daemon.log"
        with log.open("wb") as log_file:
            daemon = subprocess.Popen(
                [MONAI_SLO, "--log-level", "warning", "run", "-c", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        locker: subprocess.Popen[bytes] | None = None
        try:
            deadline = time.monotonic() + 20
            while True:
                assert daemon.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "daemon never recorded"
                try:
                    if db.exists() and _db_runs(db) >= 2:
                        break
                except (OSError, sqlite3.Error):
                    pass
                time.sleep(0.05)  # poll interval
            locker = subprocess.Popen(
                [sys.executable, "-c", _LOCKER, str(db), str(LOCK_SECONDS)],
                stdout=subprocess.PIPE,
            )
            assert _line(locker.stdout, 20) == "locked"
            locked_at = time.monotonic()
            _, first = _scrape(port)
            slowest = 0.0
            samples = first
            scraped_at = locked_at
            released = ""
            while not released:
                took, samples = _scrape(port)
                scraped_at = time.monotonic()
                slowest = max(slowest, took)
                assert _ready(port) == 200
                released = _line(locker.stdout, 0.2)  # also the poll interval
                assert time.monotonic() - locked_at < LOCK_SECONDS + 20, "lock never released"
            assert released == "released"
            runs_during = (
                samples["monai_slo_check_runs_total"] - first["monai_slo_check_runs_total"]
            )
            expected = (scraped_at - locked_at) / INTERVAL
            assert slowest < SCRAPE_LIMIT, f"a scrape took {slowest:.2f}s during the lock"
            assert runs_during >= expected - 2, (runs_during, expected)
            assert samples["monai_slo_check_skipped_runs_total"] == 0
            write_errors = samples.get("monai_slo_store_errors_total[('operation', 'write')]", 0)
            assert write_errors > 0, "the lock never blocked a write: the test proved nothing"
            total = samples["monai_slo_check_runs_total"]
            deadline = time.monotonic() + 10
            while _db_runs(db) < total:
                assert time.monotonic() < deadline, (_db_runs(db), total)
                time.sleep(0.05)  # poll interval
        finally:
            if locker is not None and locker.poll() is None:
                locker.kill()
                locker.wait()
            if daemon.poll() is None:
                daemon.terminate()
                daemon.wait(15)
    assert "Traceback" not in log.read_text()


def test_damage_found_while_running_is_reported_and_the_daemon_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The file damaged under a running daemon: the integrity check reports it (log,
    monai_slo_store_errors_total{operation="integrity"}, /-/ready 503), writes stop, and
    checks and /metrics go on from memory."""
    from monai_slo.config.model import load_config
    from monai_slo.daemon.daemon import Daemon
    from tests.fixtures_http import HttpPeer

    db = tmp_path / "history.sqlite"
    with HttpPeer() as web:
        config_path = tmp_path / "config.yaml"
        config_path.write_text(
            f"listen: 127.0.0.1:0\nstorage: {db}\nflush_interval: 0.2s\n"
            "environments:\n  - name: prod\n    tier: production\n    services:\n"
            "      - name: web\n        checks:\n"
            + "".join(
                f"          - {{name: c{i}, kind: http, url: '{web.url}/', interval: 0.3s, "
                "timeout: 0.2s}\n"
                for i in range(20)
            )
        )
        daemon = Daemon(load_config(config_path))
        daemon.start()
        try:
            labels = {"environment": "prod", "tier": "production", "service": "web"}
            deadline = time.monotonic() + 10
            while daemon.registry.get_sample_value("monai_slo_service_up", labels) != 1:
                assert time.monotonic() < deadline, "service never came up"
                time.sleep(0.02)  # poll interval
            assert daemon.store.flush()
            assert daemon.store.check_integrity()
            checkpoint = sqlite3.connect(db)
            checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page into the file
            checkpoint.close()
            size = db.stat().st_size
            assert size >= 3 * 4096
            with db.open("r+b") as file:  # garbage over every page but the header page
                file.seek(4096)
                file.write(os.urandom(size - 4096))
            with caplog.at_level(logging.ERROR, logger="monai_slo.history.store"):
                assert not daemon.store.check_integrity()
            assert any("is damaged" in r.getMessage() for r in caplog.records)
            assert daemon.registry.get_sample_value(
                "monai_slo_store_errors_total", {"operation": "integrity"}
            )
            assert daemon.registry.get_sample_value("monai_slo_store_healthy") == 0
            conn = http.client.HTTPConnection("127.0.0.1", daemon.server.port, timeout=5)
            conn.request("GET", "/-/ready")
            assert conn.getresponse().status == 503
            conn.close()
            runs = daemon.counters.runs[("prod", "web", "c0")]
            deadline = time.monotonic() + 10
            while daemon.counters.runs[("prod", "web", "c0")] < runs + 3:
                assert time.monotonic() < deadline, "checks stopped"
                time.sleep(0.02)  # poll interval
            assert daemon.registry.get_sample_value("monai_slo_service_up", labels) == 1
            assert not daemon.store.flush()  # no writes into a damaged file
        finally:
            daemon.stop()
