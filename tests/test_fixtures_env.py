"""The one gate every "real peer not installed" passes: skip on a developer's machine, fail
under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures_env import missing_peer, require_binary

ABSENT = "monai-slo-test-no-such-binary"


@pytest.mark.parametrize("value", ["", "false", "0"])
def test_a_missing_peer_skips_off_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Without CI=true a missing binary skips the test and names what is missing."""
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=f"{ABSENT} is not installed"):
        require_binary(ABSENT)


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_a_missing_peer_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Under CI=true the same missing binary fails the test: CI cannot pass by skipping."""
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=f"{ABSENT} is not installed.*CI=true"):
        require_binary(ABSENT)
    with pytest.raises(pytest.fail.Exception, match="orthanc-dicomweb"):
        missing_peer("orthanc-dicomweb is not installed")


def test_a_fallback_path_is_found_when_not_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A binary outside PATH (the venv's kubectl, /usr/sbin/sshd) is found at its fallback."""
    monkeypatch.setenv("CI", "true")
    binary = tmp_path / ABSENT
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert require_binary(ABSENT, str(tmp_path / "elsewhere"), str(binary)) == str(binary)
    binary.chmod(0o644)
    assert not os.access(binary, os.X_OK)
    with pytest.raises(pytest.fail.Exception):
        require_binary(ABSENT, str(binary))
