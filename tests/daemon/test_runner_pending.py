"""Runs that answer Pending (canaries on their way) hold no worker between polls, deliver in
the order they started, and time out at their check's deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monai_slo.checks import tcp
from monai_slo.checks.base import CheckOutcome, CheckResult, Deadline, FailureReason, Pending
from monai_slo.checks.registry import KINDS, CheckKind
from monai_slo.config.model import CheckRef, load_config
from monai_slo.daemon.runner import CheckRunner, execute

pytestmark = pytest.mark.timeout(60)


class Arrivals:
    """Checks named ``canary-*`` answer Pending, polled every 10 ms, until their name is
    released (success) or, for ``canary-lost-*``, never; other names run the real tcp kind."""

    def __init__(self) -> None:
        self.released: set[str] = set()
        self.polls = 0
        self.concurrent = 0
        self.most_concurrent = 0
        self._lock = threading.Lock()

    def release(self, *names: str) -> None:
        with self._lock:
            self.released.update(names)

    def run(self, config: tcp.Config, deadline: Deadline) -> CheckOutcome | Pending:
        if not config.name.startswith("canary"):
            return tcp.run(config, deadline)
        return self._pending(config.name)

    def _pending(self, name: str) -> Pending:
        return Pending(lambda step: self._poll(name), time.monotonic() + 0.01, step_timeout=1.0)

    def _poll(self, name: str) -> CheckOutcome | Pending:
        with self._lock:
            self.polls += 1
            self.concurrent += 1
            self.most_concurrent = max(self.most_concurrent, self.concurrent)
            arrived = name in self.released
            self.concurrent -= 1
        return CheckOutcome.ok(f"{name} arrived") if arrived else self._pending(name)


@pytest.fixture
def arrivals() -> Iterator[Arrivals]:
    fake = Arrivals()
    real = KINDS["tcp"]
    KINDS["tcp"] = CheckKind("tcp", real.config_type, fake.run)
    try:
        yield fake
    finally:
        KINDS["tcp"] = real


def _refs(tmp_path: Path, names: list[str], timeout: str = "5s") -> dict[str, CheckRef]:
    checks = "".join(
        f"          - {{name: {n}, kind: tcp, host: 127.0.0.1, port: 9, timeout: {timeout}, "
        "interval: 10s}\n"
        for n in names
    )
    path = tmp_path / "c.yaml"
    path.write_text(
        "environments:\n  - name: e\n    tier: production\n    services:\n      - name: s\n"
        "        checks:\n" + checks
    )
    return {ref.config.name: ref for ref in load_config(path).checks()}


class Sink:
    def __init__(self) -> None:
        self.results: list[tuple[str, CheckResult]] = []
        self._changed = threading.Condition()

    def __call__(self, ref: CheckRef, result: CheckResult) -> None:
        with self._changed:
            self.results.append((ref.config.name, result))
            self._changed.notify_all()

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[str, CheckResult]]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.results) >= count, timeout)
            return list(self.results)


def test_a_hundred_canaries_in_flight_hold_no_worker(tmp_path: Path, arrivals: Arrivals) -> None:
    """100 pending runs on 2 workers: a healthy check still runs at once, the pool stays at
    2 threads, and every canary is delivered when it arrives."""
    names = [f"canary-{i}" for i in range(100)]
    refs = _refs(tmp_path, [*names, "healthy"])
    sink = Sink()
    runner = CheckRunner(2, sink)
    try:
        for name in names:
            assert runner.submit(refs[name])
        deadline = time.monotonic() + 5
        while sum(runner.pending().values()) < 100 and time.monotonic() < deadline:
            sink.wait(1, timeout=0.01)
        assert sum(runner.pending().values()) == 100
        started = time.monotonic()
        runner.submit(refs["healthy"])
        [(name, _)] = sink.wait(1)  # its verdict (port 9 refuses) does not matter, its start does
        assert name == "healthy" and time.monotonic() - started < 1.0
        assert runner.threads() <= 2
        arrivals.release(*names)
        results = sink.wait(101)
        assert len(results) == 101
        assert all(r.success for n, r in results if n.startswith("canary"))
        assert runner.pending() == {}
    finally:
        runner.shutdown(wait=True)


def test_overlapping_runs_of_one_check_are_delivered_in_start_order(
    tmp_path: Path, arrivals: Arrivals
) -> None:
    """Three canaries of one check in flight; the last to start arrives first, yet history
    receives them oldest first."""
    ref = _refs(tmp_path, ["canary-flow"])["canary-flow"]
    sink = Sink()
    runner = CheckRunner(2, sink)
    try:
        for count in range(1, 4):
            assert runner.submit(ref)
            deadline = time.monotonic() + 5
            while runner.pending().get(ref.key, 0) < count and time.monotonic() < deadline:
                sink.wait(1, timeout=0.01)
        assert runner.pending()[ref.key] == 3
        arrivals.release("canary-flow")
        results = sink.wait(3)
        stamps = [r.timestamp for _, r in results]
        assert len(results) == 3 and stamps == sorted(stamps)
    finally:
        runner.shutdown(wait=True)


def test_a_canary_that_never_arrives_times_out_at_its_deadline(
    tmp_path: Path, arrivals: Arrivals
) -> None:
    """A run still pending at its check's timeout is recorded as a timeout then."""
    ref = _refs(tmp_path, ["canary-lost"], timeout="0.5s")["canary-lost"]
    sink = Sink()
    runner = CheckRunner(2, sink, grace=0.1)
    try:
        started = time.monotonic()
        runner.submit(ref)
        [(_, result)] = sink.wait(1)
        took = time.monotonic() - started
        assert result.reason is FailureReason.TIMEOUT
        assert 0.5 <= took < 1.5
    finally:
        runner.shutdown(wait=True)


def test_execute_follows_a_pending_run_to_its_verdict(tmp_path: Path, arrivals: Arrivals) -> None:
    """The synchronous path (`monai-slo check`) polls on its own thread until the verdict."""
    ref = _refs(tmp_path, ["canary-sync"])["canary-sync"]
    timer = threading.Timer(0.1, arrivals.release, args=("canary-sync",))
    timer.start()
    result = execute(ref)
    timer.join()
    assert result.success and result.duration >= 0.1
