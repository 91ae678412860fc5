"""The runner's watchdog is woken only when a run brings an earlier deadline than any it
already waits for (most runs do not: same timeouts, later starts), yet a short-timeout run
started behind a long one is still timed out at its own deadline."""

from __future__ import annotations

import time
from pathlib import Path
from threading import Event

import pytest

from monai_slo.checks.base import FailureReason
from monai_slo.daemon.runner import CheckRunner
from tests.daemon.test_runner import _refs, _Results, listener, release

__all__ = ["listener", "release"]  # fixtures used here

pytestmark = pytest.mark.timeout(60)


def test_later_deadlines_do_not_wake_the_watchdog(tmp_path: Path, listener: int) -> None:
    """Runs one after another with the same timeout: only the first wakes the watchdog."""
    (ref,) = _refs(tmp_path, listener, ["web"], timeout="5s")
    results = _Results()
    runner = CheckRunner(2, results)
    wakes: list[int] = []
    notify = runner._wake.notify

    def counting(n: int = 1) -> None:
        wakes.append(n)
        notify(n)

    runner._wake.notify = counting  # type: ignore[method-assign]
    try:
        for count in range(1, 6):
            assert runner.submit(ref)
            assert len(results.wait_for("web", count)) == count
            deadline = time.monotonic() + 5
            while runner.in_flight() and time.monotonic() < deadline:
                time.sleep(0.005)  # polling for the run to leave in-flight
        assert all(r.success for r in results.by_name["web"])
        assert len(wakes) == 1
    finally:
        runner.shutdown()


def test_short_run_behind_a_long_one_times_out_on_time(tmp_path: Path, release: Event) -> None:
    """A stuck run with a 5 s timeout, then a stuck one with 0.3 s: the second is a timeout
    at about 0.3 s (plus the grace), not when the first one's deadline comes."""
    (long_ref,) = _refs(tmp_path, 1, ["stuck-long"], timeout="5s")
    (short_ref,) = _refs(tmp_path, 1, ["stuck-short"], timeout="0.3s")
    results = _Results()
    runner = CheckRunner(4, results, grace=0.1)
    try:
        assert runner.submit(long_ref)
        deadline = time.monotonic() + 5
        while not runner._timers and time.monotonic() < deadline:
            time.sleep(0.005)  # polling until a worker has started the long run
        assert runner._timers
        started = time.monotonic()
        assert runner.submit(short_ref)
        (result,) = results.wait_for("stuck-short", 1, timeout=4)
        assert result.reason is FailureReason.TIMEOUT
        assert time.monotonic() - started < 2.0
    finally:
        release.set()
        runner.shutdown()
