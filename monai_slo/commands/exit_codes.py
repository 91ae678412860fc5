"""The exit codes every verb uses, as scripts and systemd read them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    """Done; every check passed."""
    FAILED = 1
    """A check failed, or there is nothing to act on yet (no history)."""
    USAGE = 2
    """Refused input: a config, a flag, a file. Restarting will not help (systemd:
    ``RestartPreventExitStatus=2``)."""
