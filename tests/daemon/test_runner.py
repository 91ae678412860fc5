"""The runner: a run past its deadline costs its own check, never a worker for longer; a run
waiting for a worker is bounded and counted."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monai_slo.checks import tcp
from monai_slo.checks.base import CheckOutcome, CheckResult, Deadline, FailureReason
from monai_slo.checks.registry import KINDS, CheckKind
from monai_slo.config.model import CheckRef, load_config
from monai_slo.daemon.runner import CheckRunner

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Checks named ``stuck-*`` ignore their deadline until this is set (a peer that holds
    a worker as long as it likes); every other check is the real ``tcp`` kind."""
    gate = threading.Event()
    real = KINDS["tcp"]

    def run(config: tcp.Config, deadline: Deadline) -> CheckOutcome:
        if config.name.startswith("stuck"):
            gate.wait(30)
            return CheckOutcome.ok("released")
        return real.run(config, deadline)

    KINDS["tcp"] = CheckKind("tcp", real.config_type, run)
    try:
        yield gate
    finally:
        gate.set()
        KINDS["tcp"] = real


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _refs(
    tmp_path: Path, port: int, names: list[str], interval: str = "10s", timeout: str = "0.2s"
) -> list[CheckRef]:
    checks = "".join(
        f"          - {{name: {n}, kind: tcp, host: 127.0.0.1, port: {port}, "
        f"timeout: {timeout}, interval: {interval}}}\n"
        for n in names
    )
    path = tmp_path / "c.yaml"
    path.write_text(
        "environments:\n  - name: e\n    tier: production\n    services:\n      - name: s\n"
        "        checks:\n" + checks
    )
    return list(load_config(path).checks())


class _Results:
    def __init__(self) -> None:
        self.by_name: dict[str, list[CheckResult]] = {}
        self._changed = threading.Condition()

    def __call__(self, ref: CheckRef, result: CheckResult) -> None:
        with self._changed:
            self.by_name.setdefault(ref.config.name, []).append(result)
            self._changed.notify_all()

    def wait_for(self, name: str, count: int = 1, timeout: float = 5.0) -> list[CheckResult]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.by_name.get(name, [])) >= count, timeout)
            return list(self.by_name.get(name, []))


def test_stuck_runs_do_not_hold_workers(
    tmp_path: Path, release: threading.Event, listener: int
) -> None:
    """With every worker held by a check past its deadline, a healthy check still runs
    within its own deadline: the stuck ones time out and their workers are replaced."""
    stuck_a, stuck_b, healthy = _refs(tmp_path, listener, ["stuck-a", "stuck-b", "healthy"])
    results = _Results()
    runner = CheckRunner(2, results, grace=0.1)
    try:
        runner.submit(stuck_a)
        runner.submit(stuck_b)
        started = time.monotonic()
        runner.submit(healthy)
        [result] = results.wait_for("healthy")
        took = time.monotonic() - started
        assert result.success, result.detail
        assert took < 1.5, f"healthy check waited {took:.2f}s behind stuck workers"
        timed_out = results.wait_for("stuck-a") + results.wait_for("stuck-b")
        assert [r.reason for r in timed_out] == [FailureReason.TIMEOUT] * 2
        assert runner.abandoned_total == 2
        # The stuck checks are not started again while their threads are still inside them.
        assert not runner.submit(stuck_a)
        assert runner.skipped[stuck_a.key] == 1
    finally:
        release.set()
        runner.shutdown(wait=True)
    assert runner.threads() == 0


def test_abandoned_threads_are_bounded(
    tmp_path: Path, release: threading.Event, listener: int
) -> None:
    """A flood of stuck checks grows the runner by at most ``max_abandoned`` threads."""
    refs = _refs(tmp_path, listener, [f"stuck-{i}" for i in range(12)])
    results = _Results()
    runner = CheckRunner(2, results, grace=0.05, max_abandoned=3)
    try:
        for ref in refs:
            runner.submit(ref)
        deadline = time.monotonic() + 10
        while runner.abandoned_total < 5 and time.monotonic() < deadline:
            results.wait_for("never", timeout=0.05)
        assert runner.abandoned_total == 5  # 2 + 3 replacements, then the pool stops growing
        assert runner.threads() <= 2 + 3
    finally:
        release.set()
        runner.shutdown(wait=True)


def test_a_run_that_waits_past_its_interval_is_counted_as_skipped(
    tmp_path: Path, release: threading.Event, listener: int
) -> None:
    """A queued run whose next run is already due when a worker frees is dropped and
    counted as skipped, never run late nor silently lost."""
    stuck, queued = _refs(tmp_path, listener, ["stuck-only", "queued"], interval="1s")
    results = _Results()
    runner = CheckRunner(1, results, grace=5.0, max_abandoned=0)
    try:
        runner.submit(stuck)
        runner.submit(queued)
        assert not runner.submit(queued)  # still waiting: this one is skipped at once
        time.sleep(1.1)  # the queued run's interval passes while the only worker is held
        release.set()
        results.wait_for("stuck-only")
        deadline = time.monotonic() + 5
        while runner.in_flight() and time.monotonic() < deadline:
            results.wait_for("never", timeout=0.05)
        assert runner.in_flight() == 0
        assert "queued" not in results.by_name
        assert runner.skipped[queued.key] == 2
        assert runner.submit(queued)  # and the next run goes ahead
        [result] = results.wait_for("queued")
        assert result.success
    finally:
        release.set()
        runner.shutdown(wait=True)


class _SlowTcp:
    """The real ``tcp`` kind, held at a gate before it connects (a slow peer), counting how
    many runs of it are inside at once."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self.entered = 0
        self._changed = threading.Condition()
        self._real = KINDS["tcp"]

    def run(self, config: tcp.Config, deadline: Deadline) -> CheckOutcome:
        with self._changed:
            self.entered += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self._changed.notify_all()
        try:
            self.gate.wait(deadline.remaining())
            return self._real.run(config, deadline)
        finally:
            with self._changed:
                self.inside -= 1
                self._changed.notify_all()

    def wait_entered(self, count: int, timeout: float = 5.0) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self.entered >= count, timeout)
            return self.entered


@pytest.fixture
def slow_tcp() -> Iterator[_SlowTcp]:
    slow = _SlowTcp()
    KINDS["tcp"] = CheckKind("tcp", slow._real.config_type, slow.run)
    try:
        yield slow
    finally:
        slow.gate.set()
        KINDS["tcp"] = slow._real


def test_a_turn_that_comes_while_the_last_run_is_still_going_is_skipped(
    tmp_path: Path, slow_tcp: _SlowTcp, listener: int
) -> None:
    """A check still running (slow, but inside its deadline) when its next turns come is not
    started a second time: each of those turns is refused and counted as skipped, two runs of
    one check are never inside the kind at once, and the turn after it finished runs."""
    (ref,) = _refs(tmp_path, listener, ["slow"], interval="10s", timeout="5s")
    results = _Results()
    runner = CheckRunner(4, results)  # workers to spare: only the guard keeps runs apart
    try:
        assert runner.submit(ref)
        assert slow_tcp.wait_entered(1) == 1
        accepted = 1 + sum(runner.submit(ref) for _ in range(3))
        # Any turn the runner accepted gets a worker and enters the kind before the gate opens.
        slow_tcp.wait_entered(accepted)
        overlapping = slow_tcp.most_inside
        slow_tcp.gate.set()
        done = results.wait_for("slow", accepted)
        assert accepted == 1, f"{accepted - 1} turns started while the run was in flight"
        assert runner.skipped.get(ref.key) == 3
        assert overlapping == 1, f"{overlapping} runs of one check were inside it at once"
        assert [r.success for r in done] == [True], [r.detail for r in done]
        assert runner.submit(ref)  # the run is over: the next turn goes ahead
        assert [r.success for r in results.wait_for("slow", 2)] == [True, True]
        assert slow_tcp.most_inside == 1
        assert runner.skipped[ref.key] == 3
    finally:
        slow_tcp.gate.set()
        runner.shutdown(wait=True)
