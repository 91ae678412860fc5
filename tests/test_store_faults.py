"""Store faults on a real full filesystem (a tiny tmpfs the test mounts): nothing is lost.

Needs root to mount; CI runs as root. Elsewhere these tests skip with the reason.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.store import HistoryStore

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
    with caplog.at_level(logging.ERROR, logger="monai_slo.store"):
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
    and counts monai_slo_store_errors_total; when space returns the history catches up."""
    from monai_slo.config import load_config
    from monai_slo.daemon import Daemon
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
            filler.unlink()
            errors = daemon.store.errors["write"]
            deadline = time.monotonic() + 10
            while not daemon.store.flush():
                assert time.monotonic() < deadline, "history never caught up"
                time.sleep(0.02)
            assert daemon.store.errors["write"] >= errors
        finally:
            daemon.stop()
    reopened = HistoryStore(tiny_fs / "history.sqlite")
    check_id = reopened.known_id(("prod", "web", "a"))
    assert check_id is not None
    last = reopened.last_result(check_id)
    assert last is not None and last.success
