"""Audited maintenance: who started a window and when, who ended it early and when, through
the real CLI; config windows are listed as such."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path

CONFIG = """\
storage: {storage}
environments:
  - name: radiology
    tier: production
    maintenance:
      - {{schedule: "0 2 * * *", duration: 1h, reason: nightly backup}}
    services:
      - name: pacs
        checks:
          - {{name: echo, kind: tcp, host: 127.0.0.1, port: 104}}
"""


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monai_slo", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_and_stop_record_who_and_when(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(storage=tmp_path / "history.sqlite"))
    started = _cli(
        config,
        "maintenance",
        "start",
        "--service",
        "pacs",
        "--for",
        "2h",
        "--reason",
        "PACS upgrade",
    )
    assert started.returncode == 0, started.stderr
    stopped = _cli(config, "maintenance", "stop", "--service", "pacs")
    assert stopped.returncode == 0, stopped.stderr
    listed = _cli(config, "maintenance", "list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    (cli_row,) = [r for r in rows if r["source"] == "cli"]
    user = getpass.getuser()
    assert cli_row["created_by"] == user
    assert cli_row["created"].endswith("UTC")
    assert cli_row["ended_by"] == user
    assert cli_row["ended_at"].endswith("UTC")
    assert cli_row["planned_end"] is not None and cli_row["planned_end"] != cli_row["end"]
    config_rows = [r for r in rows if r["source"] == "config"]
    assert config_rows and all(r["created_by"] is None for r in config_rows)
    table = _cli(config, "maintenance", "list")
    assert f"started by {user}" in table.stdout.replace("\n", " ") or user in table.stdout
