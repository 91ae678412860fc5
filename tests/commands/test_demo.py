"""`monai-slo demo`: the daemon against its own simulated peers, showing availability."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.fixtures_dicom import free_port

# Every check's first run (offsets up to 4.7 s of the demo's 5 s interval) comes before the
# second table at 8 s; the gateway is up for the first 105 s of its cycle.
DURATION, EVERY = 9, 4
CHECKS = {
    ("demo-production", "demo-pacs", "echo", "dicom_echo"),
    ("demo-staging", "demo-gateway", "health", "http"),
    ("demo-staging", "demo-gateway", "port", "tcp"),
    ("demo-workstation", "local-inference", "ready", "http"),
}


def _last_table(out: str) -> dict[str, dict[str, str]]:
    """The rows of the last status tables printed (one per environment), by service, as
    {column: cell}; columns are at least two spaces apart."""
    tables = out.split("\nservices")
    assert len(tables) >= 2, out
    lines = tables[-1].split("burn:")[0].splitlines()
    header_line = next(line for line in lines if "SERVICE" in line and "STATE" in line)
    # Each environment's table names its SLO window in the header ("SLO 30d").
    header = [re.sub(r"^SLO \w+$", "SLO", h) for h in re.split(r"\s{2,}", header_line.strip())]
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[lines.index(header_line) + 1 :]]
    body = [row for row in rows if len(row) == len(header) and row[0] != "SERVICE"]
    return {row[0]: dict(zip(header, row, strict=True)) for row in body}


def test_demo_runs_and_shows_every_service(tmp_path: Path) -> None:
    """The demo starts its peers, prints where its metrics are, prints the status table with
    every service UP at 100 % once each check has run, records a successful run of every check
    in its history, then stops cleanly after --duration."""
    port = free_port()
    storage = tmp_path / "demo.sqlite"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai_slo.cli",
            "demo",
            "--listen",
            f"127.0.0.1:{port}",
            "--storage",
            str(storage),
            "--duration",
            str(DURATION),
            "--every",
            str(EVERY),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},  # one line per table row
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"metrics: http://127.0.0.1:{port}/metrics" in out
    table = _last_table(out)
    assert set(table) == {"demo-pacs", "demo-gateway", "local-inference"}, out
    for service, row in table.items():
        assert row["STATE"] == "UP", (service, row)
        assert row["1h"] == "100.000%", (service, row)
    assert table["demo-pacs"]["OBJECTIVE"] == "99.9%"
    assert table["demo-gateway"]["OBJECTIVE"] == "98%"
    assert table["local-inference"]["OBJECTIVE"] == "best effort"
    assert "overspent" not in out
    written = tmp_path / "demo.yaml"  # the config it ran, beside its history
    assert f"config: {written}" in out
    assert f"monai-slo status -c {written}" in out and f"monai-slo report -c {written}" in out
    assert str(port) in written.read_text()

    connection = sqlite3.connect(f"file:{storage}?mode=ro", uri=True)
    try:
        stored = connection.execute(
            "SELECT environment, service, name, kind, success, detail, runs, failures"
            " FROM checks JOIN last_results ON last_results.check_id = checks.id"
            " JOIN (SELECT check_id, SUM(runs) AS runs, SUM(failures) AS failures FROM runs"
            "       GROUP BY check_id) AS totals ON totals.check_id = checks.id"
        ).fetchall()
    finally:
        connection.close()
    assert {row[:4] for row in stored} == CHECKS
    for *name, success, detail, runs, failures in stored:
        assert success == 1 and runs >= 1 and failures == 0, (name, detail, runs, failures)
