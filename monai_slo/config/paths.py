"""Where the config and the history live when nothing says otherwise, per operating system.

The one place these defaults are written (``deploy/`` and the README follow it):

* Linux and other POSIX systems: ``/etc/monai-slo/config.yaml`` and
  ``/var/lib/monai-slo/history.sqlite`` (the systemd unit's ``ConfigurationDirectory=`` and
  ``StateDirectory=``; systemd's ``$STATE_DIRECTORY`` wins for the history);
* macOS: both in ``/Library/Application Support/monai-slo/``, the system-wide place for an
  application's files that the launchd daemon (``deploy/launchd``) runs as root with;
* Windows: both in ``%ProgramData%\\monai-slo\\`` (``C:\\ProgramData`` unless set), the
  machine-wide application data folder the scheduled task (``deploy/windows``) reads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.sqlite"
MACOS_DIRECTORY = "/Library/Application Support/monai-slo"
WINDOWS_PROGRAM_DATA = r"C:\ProgramData"


@dataclass(frozen=True, slots=True)
class DefaultPaths:
    config: Path
    storage: Path


def default_paths(
    platform: str | None = None, environ: Mapping[str, str] | None = None
) -> DefaultPaths:
    """The defaults for ``platform`` (``sys.platform`` unless given)."""
    platform = sys.platform if platform is None else platform
    env = os.environ if environ is None else environ
    if platform == "win32":
        # Joined as Windows paths whatever runs this, so the value is the same everywhere.
        base = PureWindowsPath(env.get("ProgramData") or WINDOWS_PROGRAM_DATA, "monai-slo")
        return DefaultPaths(Path(str(base / CONFIG_FILE)), Path(str(base / HISTORY_FILE)))
    if platform == "darwin":
        base_dir = Path(MACOS_DIRECTORY)
        return DefaultPaths(base_dir / CONFIG_FILE, base_dir / HISTORY_FILE)
    return DefaultPaths(
        Path("/etc/monai-slo") / CONFIG_FILE, Path("/var/lib/monai-slo") / HISTORY_FILE
    )
