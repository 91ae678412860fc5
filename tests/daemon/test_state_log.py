"""Logs say what changed: a check down for ten minutes at 1 s intervals is a handful of
lines, not six hundred; `--log-format json` writes one object per line with stable keys."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import load_config
from monai_slo.daemon.state_log import StateLog
from tests.fixtures_net import free_port


def _ref(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text(
        "environments:\n  - name: radiology\n    tier: staging\n    services:\n"
        "      - name: pacs\n        checks:\n"
        "          - {name: echo, kind: tcp, host: 127.0.0.1, port: 9, interval: 1s, "
        "timeout: 0.5s}\n"
    )
    return next(iter(load_config(path).checks()))


def test_ten_minutes_down_at_one_second_is_a_handful_of_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """700 failed runs, then recovery: down once, still down when the reason changes and
    after ten minutes (with the count), recovered once with the outage's length and count."""
    ref = _ref(tmp_path)
    states = StateLog()
    start = 1_800_000_000.0
    caplog.set_level(logging.INFO, logger="monai_slo.daemon.state_log")
    states.record(ref, CheckResult(True, 0.01, None, "ok", start))
    for second in range(1, 701):
        reason = FailureReason.REFUSED if second < 300 else FailureReason.TIMEOUT
        states.record(ref, CheckResult(False, 0.01, reason, "no answer", start + second))
    states.record(ref, CheckResult(True, 0.01, None, "ok", start + 701))

    lines = [r.getMessage() for r in caplog.records]
    events = [getattr(r, "event", "") for r in caplog.records]
    assert events == ["up", "down", "still_down", "still_down", "recovered"], lines
    assert "now timeout" in lines[2]
    assert "still down after 10m (601 failed runs)" in lines[3]
    assert "recovered after 11m40s down (700 failed runs)" in lines[4]


@pytest.mark.slow
def test_daemon_json_logs_name_the_change_once(tmp_path: Path) -> None:
    """A real daemon with a check failing every 0.2 s logs its `down` event once in JSON
    with the check and reason as keys, and no per-run lines at the default level."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\nstorage: {tmp_path / 'h.sqlite'}\n"
        "environments:\n  - name: radiology\n    tier: staging\n    services:\n"
        "      - name: pacs\n        checks:\n"
        "          - {name: hl7, kind: tcp, host: 127.0.0.1, port: 9, interval: 0.2s, "
        "timeout: 0.1s}\n"
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "monai_slo", "--log-format", "json", "run", "-c", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    try:
        assert daemon.stderr is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = daemon.stderr.readline()
            if not line:
                break
            lines.append(line)
            if '"event": "down"' in line:
                break
        time.sleep(2.0)  # ten more failed runs happen meanwhile: none may log at INFO
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, rest = daemon.communicate(timeout=20)
    lines += rest.splitlines()
    entries = [json.loads(line) for line in lines if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    downs = [e for e in entries if e.get("event") == "down"]
    assert len(downs) == 1, entries
    assert downs[0]["check"] == "radiology/pacs/hl7" and downs[0]["reason"] == "refused"
    assert not [e for e in entries if e.get("event") == "run"]
