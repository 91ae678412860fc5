"""`monai-slo status` asks the running daemon at the config's listen address and falls back to
the history file, saying which it used; the daemon's figures are the same document."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.fixtures_daemon import DaemonProcess, until
from tests.fixtures_http import HttpPeer


def _check(peer: HttpPeer) -> dict[str, object]:
    return {"name": "web", "kind": "http", "url": peer.url, "interval": "0.5s", "timeout": "0.4s"}


@pytest.mark.slow
def test_status_uses_the_daemon_then_history_when_it_is_gone(tmp_path: Path) -> None:
    with HttpPeer() as peer:
        daemon = DaemonProcess(tmp_path, checks=[_check(peer)])
        with daemon:
            until(lambda: daemon.api("GET", "/api/v1/status")[1]["checks"][0]["runs"] >= 2)
            asked = daemon.cli("status", "-o", "json")
            table = daemon.cli("status")
            other = tmp_path / "other.yaml"  # another config on the same address
            document = yaml.safe_load(daemon.config.read_text())
            document["environments"][0]["services"][0]["checks"][0]["name"] = "renamed"
            other.write_text(yaml.safe_dump(document))
            refused = daemon.cli("status", "--source", "daemon", config=other)
        started = time.monotonic()
        fallback = daemon.cli("status", "-o", "json")
        fallback_seconds = time.monotonic() - started
        table_after = daemon.cli("status")
        gone = daemon.cli("status", "--source", "daemon")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["source"] == "daemon"
    assert json.loads(asked.stdout)["checks"][0]["in_flight"] == 0
    assert table.returncode == 0 and "UP" in table.stdout
    assert table.stderr.strip() == f"source: daemon at 127.0.0.1:{daemon.port}"
    assert refused.returncode == 1 and "runs another config" in refused.stderr

    assert fallback.returncode == 0, fallback.stderr
    assert json.loads(fallback.stdout)["source"] == "history"
    assert fallback_seconds < 10  # refused at once, no long wait (a whole CLI start included)
    assert table_after.returncode == 0 and "radiology (staging)" in table_after.stdout
    assert table_after.stderr.startswith(f"source: history file {tmp_path / 'history.sqlite'}")
    assert "no daemon answered" in table_after.stderr
    assert gone.returncode == 1 and "no daemon answered" in gone.stderr
