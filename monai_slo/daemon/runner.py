"""Runs checks on worker threads under an overall deadline no peer can stretch.

A check that overruns its deadline is recorded as a timeout at the deadline and its worker
is *abandoned*: a fresh worker takes its place at once, so a peer that holds a socket open
past every timeout costs its own check, never a slot that healthy checks need. The
abandoned thread ends on its own (sockets carry the same deadline, so it does soon) and the
check is not started again until it has. How many threads may be abandoned at once is
bounded; past that the pool shrinks rather than grow without limit.

A run waits for a free worker at most its check's interval: by then its next run is due,
so a run still queued is dropped and counted as skipped, never silently lost. Exceptions
inside a check become failed results (``error``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from monai_slo.checks.base import CheckOutcome, CheckResult, Deadline, FailureReason
from monai_slo.checks.registry import KINDS
from monai_slo.config.model import CheckRef
from monai_slo.outputs.lateness import Lateness
from monai_slo.safe_text import clean

log = logging.getLogger(__name__)

ResultSink = Callable[[CheckRef, CheckResult], None]
CheckKey = tuple[str, str, str]
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
        # One line per run: a peer that trips a bug must not flood the log with tracebacks.
        log.warning("check %s raised %s: %s", ref.label, type(exc).__name__, exc)
        log.debug("check %s raised", ref.label, exc_info=True)
        outcome = CheckOutcome.fail(FailureReason.ERROR, f"{type(exc).__name__}: {exc}")
    duration = time.monotonic() - started
    detail = clean(outcome.detail, MAX_DETAIL)  # peer text: stored and shown as data
    if detail != outcome.detail:
        outcome = replace(outcome, detail=detail)
    return CheckResult.from_outcome(outcome, duration, timestamp)


class _Run:
    __slots__ = ("abandoned", "done", "due", "queued", "ref", "started", "timestamp")

    def __init__(self, ref: CheckRef, timestamp: float, due: float | None) -> None:
        self.ref = ref
        self.timestamp = timestamp
        self.due = due
        self.queued = time.monotonic()
        self.started = self.queued
        self.done = False  # a result (real or timeout) has been delivered
        self.abandoned = False  # the watchdog gave up on it; its thread retires on return


class CheckRunner:
    """Queues checks for a bounded pool of workers; a watchdog times out overdue runs."""

    def __init__(
        self,
        workers: int,
        sink: ResultSink,
        *,
        clock: Callable[[], float] = time.time,
        grace: float = DEADLINE_GRACE,
        max_abandoned: int | None = None,
    ) -> None:
        self._size = workers
        # Each abandoned thread holds at most one socket until its own deadline ends it;
        # as many again as the pool keeps a peer flood from growing threads without end.
        self._max_abandoned = workers if max_abandoned is None else max_abandoned
        self._sink = sink
        self._clock = clock
        self._grace = grace
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._wake = threading.Condition(self._lock)
        self._queue: deque[_Run] = deque()
        self._workers: set[threading.Thread] = set()
        self._idle = 0
        self._abandoned = 0
        self._in_flight: dict[CheckKey, _Run] = {}
        self._timers: list[tuple[float, int, _Run]] = []
        self._sequence = itertools.count()
        self._names = itertools.count()
        self._closed = False
        self.skipped: dict[CheckKey, int] = {}
        self.abandoned_total = 0
        """Runs given up on at their deadline while their thread was still busy."""
        self.lateness = Lateness()
        """Start lateness against the schedule, including any wait for a free worker."""
        self._watchdog = threading.Thread(target=self._watch, name="check-watchdog", daemon=True)
        self._watchdog.start()

    def submit(self, ref: CheckRef, due: float | None = None) -> bool:
        """Queue a run unless the previous one is still going (then count a skip).

        ``due`` (wall time the schedule wanted the run) feeds the start-lateness histogram,
        measured when a worker actually starts the check.
        """
        with self._lock:
            if self._closed:
                return False
            if ref.key in self._in_flight:
                self._skip(ref, "still running")
                return False
            run = _Run(ref, self._clock(), due)
            self._in_flight[ref.key] = run
            self._queue.append(run)
            if self._idle:
                self._work.notify()
            elif self._may_grow():
                self._spawn()
        return True

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def threads(self) -> int:
        """Worker threads alive, abandoned ones included."""
        with self._lock:
            return len(self._workers)

    def _skip(self, ref: CheckRef, why: str) -> None:
        # Called with the lock held.
        self.skipped[ref.key] = self.skipped.get(ref.key, 0) + 1
        log.debug("check %s %s, skipping this run", ref.label, why)

    def _may_grow(self) -> bool:
        # Called with the lock held: room for a worker beside the busy and abandoned ones.
        return len(self._workers) < self._size + min(self._abandoned, self._max_abandoned)

    def _spawn(self) -> None:
        # Called with the lock held.
        thread = threading.Thread(
            target=self._serve, name=f"check-{next(self._names)}", daemon=True
        )
        self._workers.add(thread)
        thread.start()

    def _next_run(self) -> _Run | None:
        """The next queued run still worth starting, or None once closed (lock held)."""
        while True:
            while not self._queue and not self._closed:
                self._idle += 1
                self._work.wait()
                self._idle -= 1
            if self._closed:
                return None
            run = self._queue.popleft()
            now = time.monotonic()
            if now - run.queued > run.ref.config.interval:
                # Its next run is already due: this one is stale, and says so.
                del self._in_flight[run.ref.key]
                self._skip(run.ref, "waited longer than its interval for a free worker")
                continue
            run.started = now
            run.timestamp = self._clock()
            deadline = now + run.ref.config.timeout + self._grace
            heapq.heappush(self._timers, (deadline, next(self._sequence), run))
            self._wake.notify()
            return run

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                run = self._next_run()
                if run is None:
                    self._workers.discard(me)
                    return
            # The deadline starts when a worker picks the run up: time queued behind busy
            # workers is the monitor's own lateness, not the peer's.
            if run.due is not None:
                self.lateness.observe(max(0.0, time.time() - run.due))
            result = execute(run.ref, self._clock)
            with self._lock:
                if self._in_flight.get(run.ref.key) is run:
                    del self._in_flight[run.ref.key]
                deliver = not run.done
                run.done = True
                if run.abandoned:
                    self._abandoned -= 1
                    self._workers.discard(me)
            if deliver:
                self._deliver(run.ref, result)
            if run.abandoned:
                return  # a replacement took this thread's place in the pool

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
                self._abandon(run)
            limit = run.ref.config.timeout
            result = CheckResult(
                False,
                time.monotonic() - run.started,
                FailureReason.TIMEOUT,
                f"no result within the overall deadline of {limit:g}s",
                run.timestamp,
            )
            self._deliver(run.ref, result)

    def _abandon(self, run: _Run) -> None:
        # Called with the lock held: the run's thread is still inside the check.
        run.abandoned = True
        self._abandoned += 1
        self.abandoned_total += 1
        if self._abandoned <= self._max_abandoned:
            if self._queue and not self._idle and self._may_grow():
                self._spawn()
            # else the next submit that finds no idle worker spawns the replacement
        else:
            log.warning(
                "%d checks are past their deadline and still running; "
                "not replacing their workers until some finish",
                self._abandoned,
            )

    def _deliver(self, ref: CheckRef, result: CheckResult) -> None:
        try:
            self._sink(ref, result)
        except Exception:
            log.exception("recording the result of %s failed", ref.label)

    def shutdown(self, wait: bool = False) -> None:
        with self._lock:
            self._closed = True
            self._queue.clear()
            self._work.notify_all()
            self._wake.notify_all()
            workers = [w for w in self._workers if w is not threading.current_thread()]
        if wait:
            for worker in workers:
                worker.join()
