"""`maintenance start|stop --prober URL ...` against three real daemons with basic auth: the
window reaches every prober's history with the authenticated author, a prober that cannot be
reached is named and fails the command, and the password is never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import bcrypt
import pytest
import trustme

from tests.fixtures_daemon import DaemonProcess, basic_auth
from tests.fixtures_dicom import free_port
from tests.fixtures_http import HttpPeer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

USER, PASSWORD = "oncall", "correct horse battery"


def _maintenance_active(daemon: DaemonProcess) -> float | None:
    for line in daemon.metrics().splitlines():
        if line.startswith("monai_slo_maintenance_active{"):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[list[DaemonProcess]]:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web = f"basic_auth_users:\n  {USER}: '{hashed}'\n"
    with HttpPeer() as peer, ExitStack() as stack:
        check = {
            "name": "web",
            "kind": "http",
            "url": peer.url,
            "interval": "1s",
            "timeout": "0.5s",
        }
        daemons = [
            DaemonProcess(
                tmp_path / f"prober-{n}", checks=[check], web=web, auth=basic_auth(USER, PASSWORD)
            )
            for n in range(3)
        ]
        yield [stack.enter_context(daemon) for daemon in daemons]


def _cli(*args: str, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MONAI_SLO_PROBER_PASSWORD"}
    if password is not None:
        env["MONAI_SLO_PROBER_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "monai_slo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _probers(daemons: list[DaemonProcess]) -> list[str]:
    return [arg for daemon in daemons for arg in ("--prober", daemon.url)]


def test_one_window_reaches_every_prober(fleet: list[DaemonProcess], tmp_path: Path) -> None:
    started = _cli(
        "maintenance",
        "start",
        *_probers(fleet),
        "--prober-user",
        USER,
        "--service",
        "pacs",
        "--for",
        "2h",
        "--reason",
        "PACS upgrade",
    )
    assert started.returncode == 0, started.stdout + started.stderr
    lines = started.stdout.splitlines()
    assert len(lines) == 3
    for daemon, line in zip(fleet, lines, strict=True):
        assert line.startswith(f"{daemon.url}: ok: maintenance #1 for radiology/pacs"), line
        assert _maintenance_active(daemon) == 1
        listed = daemon.cli("maintenance", "list", "-o", "json")
        [row] = [r for r in json.loads(listed.stdout) if r["source"] == "api"]
        assert (row["created_by"], row["reason"], row["state"]) == (USER, "PACS upgrade", "active")
    # -c after the sub-verb stays accepted (and is not needed: the probers know the services).
    stopped = _cli(
        "maintenance",
        "stop",
        *_probers(fleet),
        "--prober-user",
        USER,
        "--service",
        "pacs",
        "-c",
        str(tmp_path / "absent.yaml"),
    )
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert stopped.stdout.count(": ok: ended 1 maintenance window") == 3
    for daemon in fleet:
        assert _maintenance_active(daemon) == 0
        listed = json.loads(daemon.cli("maintenance", "list", "-o", "json").stdout)
        assert [r["ended_by"] for r in listed if r["source"] == "api"] == [USER]
    assert PASSWORD not in started.stdout + started.stderr + stopped.stdout + stopped.stderr


def test_failing_probers_are_named_and_fail_the_command(
    fleet: list[DaemonProcess], tmp_path: Path
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    result = _cli(
        "maintenance",
        "start",
        *_probers(fleet[:2]),
        "--prober",
        closed,
        "--prober-user",
        USER,
        "--service",
        "pacs",
        "--for",
        "30m",
    )
    assert result.returncode == 1
    ok_a, ok_b, failed = result.stdout.splitlines()
    assert ": ok: maintenance #1" in ok_a and ": ok: maintenance #1" in ok_b
    assert failed == f"{closed}: error: connection refused"
    assert "failed on 1 of 3 probers" in result.stderr
    assert _maintenance_active(fleet[2]) == 0  # not named, not changed

    (tmp_path / "wrong").write_text("not the password\n")
    wrong = _cli(
        "maintenance",
        "stop",
        "--prober",
        fleet[0].url,
        "--prober-user",
        USER,
        "--prober-password-file",
        str(tmp_path / "wrong"),
        "--id",
        "1",
    )
    assert wrong.returncode == 1
    assert wrong.stdout.strip() == f"{fleet[0].url}: error: HTTP 401: unauthorized"
    assert _maintenance_active(fleet[0]) == 1
    assert "not the password" not in wrong.stdout + wrong.stderr

    missing = _cli(
        "maintenance", "start", "--prober", fleet[0].url, "--prober-user", USER, "--service",
        "pacs", "--for", "1h", password=None,
    )  # fmt: skip
    assert missing.returncode == 2 and "MONAI_SLO_PROBER_PASSWORD" in missing.stderr
    unknown = _cli(
        "maintenance", "start", "--prober", fleet[0].url, "--prober-user", USER, "--service",
        "nope", "--for", "1h",
    )  # fmt: skip
    assert unknown.returncode == 1
    assert f"{fleet[0].url}: error: HTTP 404: no service matches --service nope" in unknown.stdout
    bad_url = _cli(
        "maintenance", "start", "--prober", "prober-a:9790", "--service", "x", "--for", "1h"
    )
    assert bad_url.returncode == 2 and "expected http(s)://host:port" in bad_url.stderr


def test_prober_certificates_are_verified(tmp_path: Path, tls_ca: trustme.CA) -> None:
    """An HTTPS prober whose CA the CLI was not given is refused, naming TLS; with --prober-ca
    the window is stored (loopback, no basic auth: the author is api@127.0.0.1)."""
    with HttpPeer() as peer:
        check = {
            "name": "web",
            "kind": "http",
            "url": peer.url,
            "interval": "1s",
            "timeout": "0.5s",
        }
        with DaemonProcess(tmp_path, checks=[check], tls=tls_ca) as daemon:
            args = (
                "maintenance",
                "start",
                "--prober",
                daemon.url,
                "--service",
                "pacs",
                "--for",
                "1h",
            )
            untrusted = _cli(*args, password=None)
            assert untrusted.returncode == 1
            assert untrusted.stdout.startswith(f"{daemon.url}: error: TLS certificate not trusted")
            assert _maintenance_active(daemon) == 0
            trusted = _cli(*args, "--prober-ca", str(daemon.ca_file), password=None)
            assert trusted.returncode == 0, trusted.stdout + trusted.stderr
            assert _maintenance_active(daemon) == 1
            listed = json.loads(daemon.cli("maintenance", "list", "-o", "json").stdout)
            assert [r["created_by"] for r in listed if r["source"] == "api"] == ["api@127.0.0.1"]
