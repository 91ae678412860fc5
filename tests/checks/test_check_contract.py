"""The contract every check kind keeps: the deadline is honoured, failures carry a reason from
the bounded set, and the result has the common shape. Parametrized over every registered kind,
so a new kind without an entry here fails the suite."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, FailureReason
from monai_slo.checks.registry import KINDS
from monai_slo.testing.nvml import FakeNvml, use_nvml
from tests.fixtures_dicom import SilentListener
from tests.fixtures_net import ScriptedPeer

TIMEOUT = 0.3
GRACE = 0.5

# kind -> the keys that point it at a peer on 127.0.0.1:port
NETWORK: dict[str, Callable[[int], dict[str, Any]]] = {
    "dicom_echo": lambda port: {"host": "127.0.0.1", "port": port},
    "dicom_find": lambda port: {"host": "127.0.0.1", "port": port},
    "dicom_store_context": lambda port: {"host": "127.0.0.1", "port": port},
    "dicomweb": lambda port: {"base_url": f"http://127.0.0.1:{port}/dicom-web"},
    "http": lambda port: {"url": f"http://127.0.0.1:{port}/health"},
    # a plain connect to a silent peer succeeds, so the contract uses the TLS handshake
    "tcp": lambda port: {"host": "127.0.0.1", "port": port, "tls": True},
    "ssh": lambda port: {"host": "127.0.0.1", "port": port},
    # the canary's C-STORE meets the peer first
    "study_flow": lambda port: {
        "send": {"host": "127.0.0.1", "port": port, "called_aet": "ROUTER"},
        "arrive": [{"name": "pacs", "host": "127.0.0.1", "port": port, "called_aet": "PACS"}],
    },
}
LOCAL: dict[str, dict[str, Any]] = {"gpu": {}, "host": {"tier": "desktop"}}


def test_every_kind_is_covered() -> None:
    assert set(KINDS) == set(NETWORK) | set(LOCAL)


def _config(kind: str, **keys: Any) -> CheckConfig:
    return KINDS[kind].config_type.model_validate(
        {"name": "contract", "kind": kind, "interval": 10, "timeout": TIMEOUT, **keys}
    )


def _run(kind: str, config: CheckConfig) -> tuple[CheckOutcome, float]:
    started = time.monotonic()
    outcome = KINDS[kind].run(config, Deadline(config.timeout))
    return outcome, time.monotonic() - started


def _assert_shape(outcome: CheckOutcome) -> None:
    assert isinstance(outcome, CheckOutcome)
    assert isinstance(outcome.success, bool)
    assert (outcome.reason is None) == outcome.success
    if outcome.reason is not None:
        assert outcome.reason in set(FailureReason)
    assert isinstance(outcome.detail, str)
    assert len(outcome.detail) <= 300
    assert all(isinstance(v, float | int) for v in outcome.values.values())


@pytest.fixture(scope="module")
def closing() -> Iterator[int]:
    peer = ScriptedPeer(read_first=False)
    yield peer.port
    peer.close()


@pytest.fixture
def no_handshake() -> Iterator[int]:
    """A port whose SYNs go unanswered: a listener with a full accept queue that never accepts
    (the kernel drops further SYNs), the loopback stand-in for a firewalled host."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    filler = socket.create_connection(("127.0.0.1", port), timeout=1)
    try:
        yield port
    finally:
        filler.close()
        listener.close()


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("kind", sorted(NETWORK))
def test_silent_peer_times_out_within_deadline(kind: str) -> None:
    """A peer that accepts and never answers: reason timeout, within timeout + grace."""
    with SilentListener() as silent:
        outcome, elapsed = _run(kind, _config(kind, **NETWORK[kind](silent.port)))
    _assert_shape(outcome)
    assert outcome.reason is FailureReason.TIMEOUT, outcome
    assert elapsed <= TIMEOUT + GRACE


@pytest.mark.parametrize("kind", sorted(NETWORK))
def test_unanswered_handshake_times_out(kind: str, no_handshake: int) -> None:
    """A port that never completes the TCP handshake: reason timeout, within the deadline."""
    outcome, elapsed = _run(kind, _config(kind, **NETWORK[kind](no_handshake)))
    _assert_shape(outcome)
    assert outcome.reason is FailureReason.TIMEOUT, outcome
    assert elapsed <= TIMEOUT + GRACE


@pytest.mark.parametrize("kind", sorted(NETWORK))
def test_closing_peer_fails_with_bounded_reason(kind: str, closing: int) -> None:
    """A peer that accepts and closes at once: a bounded failure reason, quickly."""
    outcome, elapsed = _run(kind, _config(kind, **NETWORK[kind](closing)))
    _assert_shape(outcome)
    assert not outcome.success
    assert outcome.reason not in {FailureReason.ERROR, FailureReason.TIMEOUT}, outcome
    assert elapsed <= TIMEOUT + GRACE


@pytest.mark.parametrize("kind", sorted(NETWORK))
def test_closed_port_is_refused(kind: str) -> None:
    outcome, elapsed = _run(kind, _config(kind, **NETWORK[kind](_closed_port())))
    _assert_shape(outcome)
    assert outcome.reason is FailureReason.REFUSED, outcome
    assert elapsed <= TIMEOUT + GRACE


@pytest.mark.parametrize("kind", sorted(LOCAL))
def test_local_kinds_keep_the_shape_and_deadline(kind: str, tmp_path: Path) -> None:
    """Kinds that read the local machine (GPU through a fake NVML, host) keep the contract."""
    with use_nvml(FakeNvml(gpus=1)):
        outcome, elapsed = _run(kind, _config(kind, **LOCAL[kind]))
    _assert_shape(outcome)
    assert elapsed <= TIMEOUT + GRACE


@pytest.mark.parametrize("kind", sorted(NETWORK))
def test_deadline_spent_before_the_run_is_a_timeout(kind: str) -> None:
    """A run whose deadline is already spent (queued or starved that long) says timeout; it
    never reaches a peer with a zero timeout, nor raises."""
    config = _config(kind, **NETWORK[kind](_closed_port()))
    outcome = KINDS[kind].run(config, Deadline(0.0))
    _assert_shape(outcome)
    assert not outcome.success
    assert outcome.reason in {FailureReason.TIMEOUT, FailureReason.REFUSED}, outcome
