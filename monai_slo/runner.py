"""Runs checks on worker threads under an overall deadline no peer can stretch.

A check that overruns its deadline is recorded as a timeout at the deadline; its thread is
left to finish on its own (sockets carry the same deadline, so it does soon) and the check is
not started again until it has. Exceptions inside a check become failed results (``error``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from monai_slo.checks import KINDS
from monai_slo.checks.base import CheckOutcome, CheckResult, Deadline, FailureReason
from monai_slo.config import CheckRef
from monai_slo.scheduler import Lateness

log = logging.getLogger(__name__)

ResultSink = Callable[[CheckRef, CheckResult], None]
# Past its own timeout a check gets this long to return before the runner gives up on it.
DEADLINE_GRACE = 0.5
MAX_DETAIL = 300


def execute(ref: CheckRef, clock: Callable[[], float] = time.time) -> CheckResult:
    """Run one check synchronously: the kind's own code, timed, exceptions contained."""
    kind = KINDS[ref.config.kind]
    deadline = Deadline(ref.config.timeout)
    timestamp = clock()
    started = time.monotonic()
    try:
        outcome = kind.run(ref.config, deadline)
    except Exception as exc:
        log.exception("check %s raised", ref.label)
        outcome = CheckOutcome.fail(FailureReason.ERROR, f"{type(exc).__name__}: {exc}")
    duration = time.monotonic() - started
    if len(outcome.detail) > MAX_DETAIL:
        outcome = replace(outcome, detail=outcome.detail[: MAX_DETAIL - 1] + "…")
    return CheckResult.from_outcome(outcome, duration, timestamp)


class _Run:
    __slots__ = ("done", "due", "ref", "started", "timestamp")

    def __init__(self, ref: CheckRef, timestamp: float) -> None:
        self.ref = ref
        self.timestamp = timestamp
        self.started = time.monotonic()
        self.done = False  # a result (real or timeout) has been delivered
        self.due: float | None = None


class CheckRunner:
    """Submits checks to a pool; a watchdog records timeouts for runs past their deadline."""

    def __init__(
        self,
        workers: int,
        sink: ResultSink,
        *,
        clock: Callable[[], float] = time.time,
        grace: float = DEADLINE_GRACE,
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check")
        self._sink = sink
        self._clock = clock
        self._grace = grace
        self._lock = threading.Lock()
        self._in_flight: dict[tuple[str, str, str], _Run] = {}
        self._timers: list[tuple[float, int, _Run]] = []
        self._sequence = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._closed = False
        self.skipped: dict[tuple[str, str, str], int] = {}
        self.lateness = Lateness()
        """Start lateness against the schedule, including any wait for a free worker."""
        self._watchdog = threading.Thread(target=self._watch, name="check-watchdog", daemon=True)
        self._watchdog.start()

    def submit(self, ref: CheckRef, due: float | None = None) -> bool:
        """Start a run unless the previous one is still going (then count a skip).

        ``due`` (wall time the schedule wanted the run) feeds the start-lateness histogram,
        measured when a worker actually starts the check.
        """
        with self._lock:
            if self._closed:
                return False
            if ref.key in self._in_flight:
                self.skipped[ref.key] = self.skipped.get(ref.key, 0) + 1
                log.warning("check %s still running, skipping this run", ref.label)
                return False
            run = _Run(ref, self._clock())
            run.due = due
            self._in_flight[ref.key] = run
        future = self._pool.submit(self._execute, run)
        future.add_done_callback(lambda f: self._finished(run, f))
        return True

    def _execute(self, run: _Run) -> CheckResult:
        # The deadline starts when a worker picks the run up: time queued behind busy workers
        # is the monitor's own lateness, not the peer's.
        with self._lock:
            run.started = time.monotonic()
            run.timestamp = self._clock()
            deadline = run.started + run.ref.config.timeout + self._grace
            heapq.heappush(self._timers, (deadline, next(self._sequence), run))
            self._wake.notify()
        if run.due is not None:
            self.lateness.observe(max(0.0, time.time() - run.due))
        return execute(run.ref, self._clock)

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def _finished(self, run: _Run, future: Future[CheckResult]) -> None:
        with self._lock:
            if self._in_flight.get(run.ref.key) is run:
                del self._in_flight[run.ref.key]
            deliver = not run.done
            run.done = True
        if deliver and not future.cancelled():
            self._deliver(run.ref, future.result())

    def _watch(self) -> None:
        while True:
            with self._lock:
                while not self._closed and (
                    not self._timers or self._timers[0][0] > time.monotonic()
                ):
                    timeout = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._wake.wait(timeout)
                if self._closed:
                    return
                _, _, run = heapq.heappop(self._timers)
                if run.done:
                    continue
                run.done = True
            limit = run.ref.config.timeout
            result = CheckResult(
                False,
                time.monotonic() - run.started,
                FailureReason.TIMEOUT,
                f"no result within the overall deadline of {limit:g}s",
                run.timestamp,
            )
            self._deliver(run.ref, result)

    def _deliver(self, ref: CheckRef, result: CheckResult) -> None:
        try:
            self._sink(ref, result)
        except Exception:
            log.exception("recording the result of %s failed", ref.label)

    def shutdown(self, wait: bool = False) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify_all()
        self._pool.shutdown(wait=wait, cancel_futures=True)
