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

A kind may answer :class:`~monai_slo.checks.base.Pending` (a canary on its way): the worker
is freed, the run waits on a timer (no thread) and is polled again on a worker when due.
Several runs of such a check may be pending at once (up to the config's ``max_in_flight``);
their results are delivered in the order the runs started, so history never steps back.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial

from monai_slo.checks.base import CheckOutcome, CheckResult, Deadline, FailureReason, Pending
from monai_slo.checks.registry import IN_PROCESS_KINDS, KINDS
from monai_slo.config.model import CheckRef
from monai_slo.daemon.attempt import attempt as _attempt
from monai_slo.daemon.process_pool import WorkerProcesses
from monai_slo.outputs.lateness import Lateness

log = logging.getLogger(__name__)

ResultSink = Callable[[CheckRef, CheckResult], None]
CheckKey = tuple[str, str, str]
# Past its own timeout a check gets this long to return before the runner gives up on it.
DEADLINE_GRACE = 0.5


def _overdue(ref: CheckRef) -> CheckOutcome:
    return CheckOutcome.fail(
        FailureReason.TIMEOUT,
        f"no result within the overall deadline of {ref.config.timeout:g}s",
    )


def execute(ref: CheckRef, clock: Callable[[], float] = time.time) -> CheckResult:
    """Run one check synchronously on this thread, pending polls included (waiting in
    between): the kind's own code, timed, exceptions contained."""
    kind = KINDS[ref.config.kind]
    deadline = Deadline(ref.config.timeout)
    timestamp = clock()
    started = time.monotonic()
    outcome = _attempt(ref.label, partial(kind.run, ref.config, deadline))
    while isinstance(outcome, Pending):
        if time.monotonic() > deadline.at + DEADLINE_GRACE:
            outcome = _overdue(ref)
            break
        pending = outcome
        time.sleep(max(0.0, min(pending.at, deadline.at) - time.monotonic()))
        outcome = _attempt(ref.label, partial(pending.poll, Deadline(pending.step_timeout)))
    return CheckResult.from_outcome(outcome, time.monotonic() - started, timestamp)


class _Run:
    __slots__ = (
        "abandoned",
        "deadline",
        "done",
        "due",
        "pending",
        "queued",
        "ref",
        "result",
        "started",
        "step_started",
        "timestamp",
    )

    def __init__(self, ref: CheckRef, timestamp: float, due: float | None) -> None:
        self.ref = ref
        self.timestamp = timestamp
        self.due = due
        self.queued = time.monotonic()
        self.started = self.queued
        self.step_started = self.queued
        self.deadline = self.queued + ref.config.timeout
        self.done = False  # a result (real or timeout) is known
        self.abandoned = False  # the watchdog gave up on it; its thread retires on return
        self.pending: Pending | None = None  # waiting for its next poll
        self.result: CheckResult | None = None  # known, waiting for earlier runs' results


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
        processes: WorkerProcesses | None = None,
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
        # Runs started while earlier runs of the same check are pending, oldest first.
        self._ordered: dict[CheckKey, deque[_Run]] = {}
        self._timers: list[tuple[float, int, _Run]] = []  # step deadlines
        self._polls: list[tuple[float, int, _Run]] = []  # pending runs' next polls
        self._sequence = itertools.count()
        self._names = itertools.count()
        self._closed = False
        self.skipped: dict[CheckKey, int] = {}
        self.abandoned_total = 0
        """Runs given up on at their deadline while their thread was still busy."""
        self.lateness = Lateness()
        """Start lateness against the schedule, including any wait for a free worker."""
        # With worker processes a worker thread only waits there for its check's outcome
        # (the runner closes them at shutdown).
        self.processes = processes
        self._watchdog = threading.Thread(target=self._watch, name="check-watchdog", daemon=True)
        self._watchdog.start()

    # -- submitting ----------------------------------------------------------------------

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
            limit: int | None = getattr(ref.config, "max_in_flight", None)
            waiting = self._ordered.get(ref.key)
            if (
                limit is not None
                and waiting is not None
                and sum(1 for r in waiting if r.result is None) >= limit
            ):
                self._skip(ref, f"has {limit} runs in flight")
                return False
            run = _Run(ref, self._clock(), due)
            self._in_flight[ref.key] = run
            if waiting:
                waiting.append(run)
            self._enqueue(run)
        return True

    def in_flight(self) -> int:
        """Runs queued or on a worker (pending runs waiting for a poll not included)."""
        with self._lock:
            return len(self._in_flight)

    def pending(self) -> dict[CheckKey, int]:
        """Runs per check that wait for a later poll (canaries on their way)."""
        with self._lock:
            return {
                key: count
                for key, runs in self._ordered.items()
                if (count := sum(1 for r in runs if r.pending is not None))
            }

    def canaries(self) -> dict[CheckKey, tuple[int, bool]]:
        """Per check with runs waiting for a later poll: how many, and whether the newest of
        its runs that ever waited is one of them (its verdict, the newest, is still to come)."""
        with self._lock:
            found = {}
            for key, runs in self._ordered.items():
                count = sum(1 for r in runs if r.pending is not None)
                if count:
                    found[key] = (count, runs[-1].pending is not None)
            return found

    def threads(self) -> int:
        """Worker threads alive, abandoned ones included."""
        with self._lock:
            return len(self._workers)

    def _enqueue(self, run: _Run) -> None:
        # Called with the lock held.
        run.queued = time.monotonic()
        self._queue.append(run)
        if self._idle:
            self._work.notify()
        elif self._may_grow():
            self._spawn()

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

    # -- workers -------------------------------------------------------------------------

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
            if run.pending is None and now - run.queued > run.ref.config.interval:
                # Its next run is already due: this one is stale, and says so.
                del self._in_flight[run.ref.key]
                waiting = self._ordered.get(run.ref.key)
                if waiting is not None and run in waiting:
                    waiting.remove(run)
                self._skip(run.ref, "waited longer than its interval for a free worker")
                continue
            if run.pending is None:
                run.started = now
                run.deadline = now + run.ref.config.timeout
                run.timestamp = self._clock()
                step_deadline = run.deadline
            else:
                step_deadline = min(now + run.pending.step_timeout, run.deadline)
            run.step_started = now
            heapq.heappush(self._timers, (step_deadline + self._grace, next(self._sequence), run))
            if self._timers[0][2] is run:
                # Only a new earliest deadline changes how long the watchdog waits.
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
                pending = run.pending
            outcome, remote = self._step(run, pending)
            with self._lock:
                if remote and self._closed:
                    # Stopping ended its process: that is no verdict on the peer.
                    self._workers.discard(me)
                    return
                abandoned = run.abandoned
                if abandoned:
                    self._abandoned -= 1
                    self._workers.discard(me)
                if pending is None and self._in_flight.get(run.ref.key) is run:
                    del self._in_flight[run.ref.key]
                if not run.done:
                    if isinstance(outcome, Pending):
                        self._park(run, outcome)
                    else:
                        self._finish(run, outcome)
                ready = self._deliverable(run)
            self._deliver_all(run.ref, ready)
            if abandoned:
                return  # a replacement took this thread's place in the pool

    def _step(self, run: _Run, pending: Pending | None) -> tuple[CheckOutcome | Pending, bool]:
        """Start the run or poll it, on this worker; whether it ran in a worker process."""
        if pending is not None:
            step = Deadline(min(pending.step_timeout, max(0.0, run.deadline - time.monotonic())))
            return _attempt(run.ref.label, partial(pending.poll, step)), False
        # The deadline starts when a worker picks the run up: time queued behind busy
        # workers is the monitor's own lateness, not the peer's.
        if run.due is not None:
            self.lateness.observe(max(0.0, time.time() - run.due))
        deadline = Deadline(run.deadline - time.monotonic())
        call: Callable[[], CheckOutcome | Pending]
        if self.processes is not None and run.ref.config.kind not in IN_PROCESS_KINDS:
            call = partial(self.processes.run, run.ref, deadline)
            return _attempt(run.ref.label, call), True
        call = partial(KINDS[run.ref.config.kind].run, run.ref.config, deadline)
        return _attempt(run.ref.label, call), False

    def _park(self, run: _Run, pending: Pending) -> None:
        # Called with the lock held: wait for the next poll on a timer, holding no thread.
        if time.monotonic() > run.deadline + self._grace:
            self._finish(run, _overdue(run.ref))
            return
        run.pending = pending
        waiting = self._ordered.setdefault(run.ref.key, deque())
        if run not in waiting:
            waiting.append(run)
        at = min(pending.at, run.deadline)
        heapq.heappush(self._polls, (at, next(self._sequence), run))
        self._wake.notify()

    def _finish(self, run: _Run, outcome: CheckOutcome) -> None:
        # Called with the lock held.
        run.done = True
        run.pending = None
        run.result = CheckResult.from_outcome(
            outcome, time.monotonic() - run.started, run.timestamp
        )

    def _deliverable(self, run: _Run) -> list[CheckResult]:
        """Known results not yet delivered, in start order where runs of the same check are
        pending (lock held); each result is handed out once."""
        waiting = self._ordered.get(run.ref.key)
        if not waiting or run not in waiting:
            result, run.result = run.result, None
            return [] if result is None else [result]
        ready = []
        while waiting and waiting[0].result is not None:
            head = waiting.popleft()
            assert head.result is not None
            ready.append(head.result)
            head.result = None
        if not waiting:
            del self._ordered[run.ref.key]
        return ready

    def _deliver_all(self, ref: CheckRef, results: list[CheckResult]) -> None:
        for result in results:
            self._deliver(ref, result)

    # -- the watchdog --------------------------------------------------------------------

    def _watch(self) -> None:
        while True:
            with self._lock:
                while not self._closed:
                    now = time.monotonic()
                    due = [heap[0][0] for heap in (self._timers, self._polls) if heap]
                    if due and min(due) <= now:
                        break
                    self._wake.wait(min(due) - now if due else None)
                if self._closed:
                    return
                now = time.monotonic()
                if self._polls and self._polls[0][0] <= now:
                    _, _, run = heapq.heappop(self._polls)
                    if not run.done and run.pending is not None:
                        self._enqueue(run)
                    continue
                _, _, run = heapq.heappop(self._timers)
                if run.done or time.monotonic() < run.step_started:
                    continue
                if run.pending is not None and not self._on_worker(run):
                    continue  # that step is over; the run waits for its next poll
                self._finish(run, _overdue(run.ref))
                self._abandon(run)
                ready = self._deliverable(run)
            self._deliver_all(run.ref, ready)

    def _on_worker(self, run: _Run) -> bool:
        # Called with the lock held: a pending run is on a worker while its poll is queued
        # or running, i.e. not parked in the poll heap.
        return all(entry[2] is not run for entry in self._polls)

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
        if self.processes is not None:
            self.processes.close()  # runs in flight there fail; their threads return
        with self._lock:
            self._closed = True
            self._queue.clear()
            self._polls.clear()
            self._ordered.clear()
            self._work.notify_all()
            self._wake.notify_all()
            workers = [w for w in self._workers if w is not threading.current_thread()]
        if wait:
            for worker in workers:
                worker.join()
