"""`monai-slo demo`: the daemon against its own simulated peers, showing availability."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fixtures_dicom import free_port


def test_demo_runs_and_shows_every_service(tmp_path: Path) -> None:
    """The demo starts its peers, records history and prints the status table, then stops
    cleanly after --duration."""
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
            "7",
            "--every",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"http://127.0.0.1:{port}/metrics" in out
    for service in ("demo-pacs", "demo-gateway", "local-inference"):
        assert service in out
    assert "UP" in out
    assert storage.exists()
