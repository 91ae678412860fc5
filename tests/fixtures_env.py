"""Where the tests meet the machine: the real peers (Orthanc, DCMTK, sshd, promtool,
Prometheus, Alertmanager, Chromium, kubectl...) a test needs installed.

Every "this peer is not here" goes through `missing_peer`. On a developer's machine it skips
the test with the reason. Under `CI=true` (how `.ci/run` is run) it fails the test instead:
a CI machine where scripts/install-test-deps.sh did not install a peer must not pass by
skipping every test that would have used it.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

INSTALL_HINT = "scripts/install-test-deps.sh installs it"


def under_ci() -> bool:
    """True where the environment says this is a CI run (`CI=true`, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_peer(reason: str) -> NoReturn:
    """Skip the test because a real peer is absent, or fail it under `CI=true`."""
    if under_ci():
        pytest.fail(f"{reason} (CI=true: a missing peer fails the test instead of skipping it)")
    pytest.skip(reason)


def find_binary(name: str, *fallbacks: str) -> str | None:
    """Path of an executable on PATH or at one of the fallback paths, or None."""
    found = shutil.which(name)
    if found is not None:
        return found
    return next((path for path in fallbacks if os.access(path, os.X_OK)), None)


def require_binary(name: str, *fallbacks: str) -> str:
    """Path of an executable, or `missing_peer` when it is not installed."""
    found = find_binary(name, *fallbacks)
    if found is None:
        missing_peer(f"{name} is not installed ({INSTALL_HINT})")
    return found
