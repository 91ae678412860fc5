"""Incidents through the real CLI: open, update, resolve, list; on the status page and in the
report beside the outage they explain; operator text escaped everywhere."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import time
from pathlib import Path

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import load_config
from monai_slo.history.store import HistoryStore
from monai_slo.outputs.report import Period, build_report
from monai_slo.outputs.report_html import render_report
from monai_slo.outputs.status_page import StatusPage

CONFIG = """\
storage: {storage}
environments:
  - name: radiology
    tier: production
    services:
      - name: pacs
        checks:
          - {{name: echo, kind: tcp, host: 127.0.0.1, port: 104, interval: 60s, timeout: 5s}}
"""
HOSTILE = "<script>alert(1)</script> \x1b[31mred\u202e"


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monai_slo", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_incident_lifecycle_everywhere(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    config_file = tmp_path / "config.yaml"
    config_file.write_text(CONFIG.format(storage=storage))
    now = time.time()
    store = HistoryStore(storage)
    key = ("radiology", "pacs", "echo")
    for minute in range(30, 0, -1):  # down for the last half hour
        store.record(
            key,
            "tcp",
            CheckResult(False, 0.1, FailureReason.REFUSED, "closed", now - minute * 60),
            125,
        )
    store.close()

    opened = _cli(config_file, "incident", "open", "--service", "pacs", f"PACS down {HOSTILE}")
    assert opened.returncode == 0, opened.stderr
    assert _cli(config_file, "incident", "open", "--service", "pacs", "again").returncode == 1
    assert (
        _cli(config_file, "incident", "update", "--service", "pacs", "vendor called").returncode
        == 0
    )

    config = load_config(config_file)
    store = HistoryStore(storage, read_only=True)
    try:
        page = StatusPage(lambda: config, store).html()
    finally:
        store.close()
    assert 'data-current-incident="1"' in page
    assert "vendor called" in page and "Incidents, last 90 days" in page
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "\x1b" not in page and "\u202e" not in page

    resolved = _cli(config_file, "incident", "resolve", "--service", "pacs", "port reopened")
    assert resolved.returncode == 0, resolved.stderr
    listed = json.loads(_cli(config_file, "incident", "list", "-o", "json").stdout)
    (incident,) = listed
    assert incident["state"] == "resolved"
    assert incident["opened_by"] == incident["resolved_by"] == getpass.getuser()
    assert [u["state"] for u in incident["updates"]] == ["open", "update", "resolved"]
    assert "\x1b" not in incident["updates"][0]["text"]
    table = _cli(config_file, "incident", "list")
    assert table.returncode == 0 and "\x1b[31m" not in table.stdout

    store = HistoryStore(storage, read_only=True)
    try:
        day = now - now % 86400
        report = build_report(
            config, store, Period(day - 86400, day + 86400, "x", "x"), time.time()
        )
    finally:
        store.close()
    (pacs,) = report.environments[0].services
    assert [i.id for i in pacs.outages[-1].incidents] == [1]
    html = render_report(report)
    assert 'data-incident="1"' in html and "port reopened" in html
    assert "<script>alert" not in html
