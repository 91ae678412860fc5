"""Start-up errors are one line naming what and where, with exit 2; `-c FILE` works after any
verb and sub-verb."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CONFIG = """\
listen: 127.0.0.1:{port}
storage: {storage}
environments:
  - name: radiology
    tier: staging
    services:
      - name: pacs
        checks:
          - {{name: hl7, kind: tcp, host: 127.0.0.1, port: 9}}
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monai_slo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "MONAI_SLO_CONFIG": str(cwd / "absent.yaml")},
        check=False,
    )


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program already listens on."""
    holder = socket.create_server(("127.0.0.1", 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def _assert_one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    return lines[0]


def test_run_on_a_busy_port_is_one_line_and_exit_2(tmp_path: Path, busy_port: int) -> None:
    """`run` on a port in use says where and what to do, exit 2, no traceback."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(port=busy_port, storage=tmp_path / "h.sqlite"))
    done = _cli("run", "-c", str(config), cwd=tmp_path)
    assert done.returncode == 2
    line = _assert_one_line(done.stderr)
    assert f"127.0.0.1:{busy_port}" in line and "in use" in line and "--listen" in line


def test_demo_on_a_busy_port_says_so(tmp_path: Path, busy_port: int) -> None:
    """A second demo (or anything else on its port) is refused in one line with exit 2."""
    done = _cli("demo", "--listen", f"127.0.0.1:{busy_port}", "--duration", "5", cwd=tmp_path)
    assert done.returncode == 2
    assert f"127.0.0.1:{busy_port}" in _assert_one_line(done.stderr)


def test_config_option_after_the_sub_verb(tmp_path: Path) -> None:
    """`maintenance start -c FILE --service X` works as `maintenance -c FILE start` does."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(port=0, storage=tmp_path / "h.sqlite"))
    started = _cli(
        "maintenance", "start", "-c", str(config), "--service", "pacs", "--for", "1h",
        "--reason", "PACS upgrade", cwd=tmp_path,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    listed = _cli("maintenance", "-c", str(config), "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "PACS upgrade" in listed.stdout
    listed_after = _cli("maintenance", "list", "-c", str(config), cwd=tmp_path)
    assert listed_after.returncode == 0, listed_after.stderr
    assert "PACS upgrade" in listed_after.stdout
