"""Windows and macOS: every runtime dependency has wheels there, the core runs with the
Linux-only calls taken away, the default paths are each system's own, and the service
definitions shipped for them (launchd, Task Scheduler) parse and run what the README says."""

from __future__ import annotations

import json
import os
import plistlib
import re
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath

import pytest

from monai_slo.config.paths import default_paths
from tests.fixtures_env import missing_peer

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("other_platform_probe.py")
PLIST = REPO / "deploy" / "launchd" / "org.monai.slo.plist"
TASK = REPO / "deploy" / "windows" / "monai-slo.task.xml"
TASK_NS = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
# macOS 11 is the lowest tag every dependency has wheels for (google-re2's x86_64 wheels
# start there; bcrypt has none below 10.12).
WHEEL_PLATFORMS = ("win_amd64", "macosx_11_0_x86_64", "macosx_11_0_arm64")
# What pip prints when it cannot reach the index at all (not: a wheel is missing).
UNREACHABLE = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|"
    r"Network is unreachable|Could not fetch URL|ProxyError|Name or service not known"
)


def test_default_paths_per_operating_system() -> None:
    """Linux /etc and /var/lib, macOS /Library/Application Support, Windows %ProgramData%."""
    linux = default_paths("linux", {})
    assert (str(linux.config), str(linux.storage)) == (
        "/etc/monai-slo/config.yaml",
        "/var/lib/monai-slo/history.sqlite",
    )
    mac = default_paths("darwin", {})
    assert str(mac.config) == "/Library/Application Support/monai-slo/config.yaml"
    assert str(mac.storage) == "/Library/Application Support/monai-slo/history.sqlite"
    windows = default_paths("win32", {})
    assert str(windows.config) == r"C:\ProgramData\monai-slo\config.yaml"
    assert str(windows.storage) == r"C:\ProgramData\monai-slo\history.sqlite"
    moved = default_paths("win32", {"ProgramData": r"D:\Data"})
    assert str(moved.config) == r"D:\Data\monai-slo\config.yaml"


def test_launchd_plist_runs_the_daemon_with_the_macos_config() -> None:
    """deploy/launchd/org.monai.slo.plist parses (plistlib), is labelled as its file name,
    starts `monai-slo run -c <the macOS default config>` at load and restarts on failure."""
    with PLIST.open("rb") as handle:
        plist = plistlib.load(handle)
    assert plist["Label"] == PLIST.stem == "org.monai.slo"
    program, *arguments = plist["ProgramArguments"]
    assert program == "/opt/monai-slo/bin/monai-slo"
    assert arguments == ["run", "-c", str(default_paths("darwin", {}).config)]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["WorkingDirectory"] == str(default_paths("darwin", {}).config.parent)
    assert plist["ExitTimeOut"] >= 10


def test_windows_task_runs_the_daemon_at_boot_without_a_time_limit() -> None:
    """deploy/windows/monai-slo.task.xml is a Task Scheduler definition (its namespace) that
    starts at boot, never times out (the default stops a task after 72 h), restarts on
    failure, and runs `monai-slo.exe run -c <the Windows default config>`."""
    root = ET.parse(TASK).getroot()
    assert root.tag == f"{{{TASK_NS['t']}}}Task"
    assert root.find("t:Triggers/t:BootTrigger/t:Enabled", TASK_NS).text == "true"  # type: ignore[union-attr]
    settings = root.find("t:Settings", TASK_NS)
    assert settings is not None
    assert settings.find("t:ExecutionTimeLimit", TASK_NS).text == "PT0S"  # type: ignore[union-attr]
    assert settings.find("t:RestartOnFailure/t:Interval", TASK_NS) is not None
    assert settings.find("t:DisallowStartIfOnBatteries", TASK_NS).text == "false"  # type: ignore[union-attr]
    principal = root.find("t:Principals/t:Principal", TASK_NS)
    actions = root.find("t:Actions", TASK_NS)
    assert principal is not None and actions is not None
    assert actions.get("Context") == principal.get("id")
    arguments = root.find("t:Actions/t:Exec/t:Arguments", TASK_NS).text or ""  # type: ignore[union-attr]
    config = str(default_paths("win32", {}).config)
    log = str(PureWindowsPath(config).parent / "monai-slo.log")
    assert (
        f'/d /c ""C:\\Program Files\\monai-slo\\Scripts\\monai-slo.exe" run -c "{config}" '
        f'>> "{log}" 2>&1"'
    ) == arguments


def _runtime_dependencies() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


@pytest.mark.slow
@pytest.mark.parametrize("platform", WHEEL_PLATFORMS)
def test_every_runtime_dependency_has_a_wheel(platform: str, tmp_path: Path) -> None:
    """`pip download --only-binary=:all:` of every runtime dependency for CPython 3.11 on
    the platform succeeds: nothing needs a compiler there. Needs PyPI: skipped when it is
    unreachable, failed under CI=true."""
    dependencies = _runtime_dependencies()
    assert len(dependencies) >= 10
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--only-binary=:all:",
            "--platform",
            platform,
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--disable-pip-version-check",
            "-d",
            str(tmp_path),
            *dependencies,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0 and UNREACHABLE.search(output):
        missing_peer(f"PyPI is unreachable for pip download: {output.strip().splitlines()[-1]}")
    assert done.returncode == 0, output[-3000:]
    wheels = sorted(p.name for p in tmp_path.glob("*.whl"))
    assert not list(tmp_path.glob("*.tar.gz")), "a source distribution was chosen"
    binary = [w for w in wheels if not w.endswith("-none-any.whl")]
    tag = platform.split("_", maxsplit=1)[0]
    assert binary and all(tag in w for w in binary), wheels


@pytest.mark.slow
@pytest.mark.parametrize(
    ("platform", "config_dir"),
    [("win32", r"C:\ProgramData\monai-slo"), ("darwin", "/Library/Application Support/monai-slo")],
)
def test_the_core_runs_without_linux_only_calls(
    platform: str, config_dir: str, tmp_path: Path
) -> None:
    """In a fresh interpreter with sys.platform faked and the Linux-only socket options, os
    functions, signals and modules (resource, fcntl ...) removed before monai_slo is
    imported: every module imports, the daemon runs http, tcp and dicom_echo checks against
    loopback peers, serves /metrics from its listener, writes its history, and `status`
    reads it back; the default paths are the platform's."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ProgramData", None)
    done = subprocess.run(
        [sys.executable, str(PROBE), platform, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["platform"] == platform
    assert {"socket.TCP_QUICKACK", "signal.SIGHUP"} <= set(found["removed"])
    assert found["imported"] >= 80
    assert found["check_up"] == {"web": 1.0, "port": 1.0, "echo": 1.0}
    assert found["status_code"] == 0
    assert found["service_state"] == "up"
    assert found["check_states"] == {"web": "up", "port": "up", "echo": "up"}
    assert found["default_config"].startswith(config_dir)
    assert found["default_storage"].startswith(config_dir)
    assert (tmp_path / "history.sqlite").stat().st_size > 0
