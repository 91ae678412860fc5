"""A few worker processes that run checks for the daemon, so checks use more than the one
core a Python interpreter gets.

The daemon keeps everything else (scheduling, deadlines, history, metrics): a runner thread
sends a check to the least busy process and waits for its outcome, which the process streams
back as soon as it is known. Each check's config crosses the pipe once per process.

A process that dies costs only the checks it was running: they fail at once with a reason
that says so, and a fresh process takes its place. One that stops answering (an outcome
overdue by ``hang_after`` past its deadline) is killed and replaced the same way. Processes
are spawned (never forked from this multi-threaded process), end when their pipe closes, and
are stopped with the daemon.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.config.model import CheckRef
from monai_slo.daemon import worker_process

log = logging.getLogger(__name__)

# A check's own deadline ends it; an outcome this much later means the process is stuck.
HANG_AFTER = 5.0
STOP_WAIT = 2.0
READY_WAIT = 60.0
# One interpreter runs 5,000 checks at 10 s in about half a core (docs/performance.md).
PROCESSES_FROM = 5_000
MIN_CORES = 4
CheckKey = tuple[str, str, str]


def default_processes(checks: int) -> int:
    """Worker processes when none are configured: one per core beside the daemon's own, up
    to four, from ``PROCESSES_FROM`` checks on four cores or more; else none.

    Measured on two cores (docs/performance.md): a run costs ~1.6x the CPU in a worker
    process (pipes, pickling, a thread hand-off each way) and halves the daemon's own share;
    with two cores that total runs out before one interpreter's core does.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < MIN_CORES or checks < PROCESSES_FROM:
        return 0
    return min(4, (cores or 1) - 1)


def _portable(formatter: logging.Formatter | None) -> logging.Formatter | None:
    """The daemon's log format for a worker's lines, where it can cross to the process."""
    try:
        pickle.dumps(formatter)
    except (TypeError, pickle.PicklingError, AttributeError):
        return None
    return formatter


class _Call:
    __slots__ = ("done", "outcome")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: CheckOutcome | None = None

    def settle(self, outcome: CheckOutcome) -> None:
        if self.outcome is None:
            self.outcome = outcome
            self.done.set()


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection, number: int) -> None:
        self.process = process
        self.conn = conn
        self.number = number
        self.send_lock = threading.Lock()
        self.calls: dict[int, _Call] = {}
        self.sent: dict[int, object] = {}  # token -> the config object this process holds
        self.ready = threading.Event()  # its kinds are imported
        self.why: str | None = None  # set when we kill it ourselves


class WorkerProcesses:
    """``run(ref, deadline)`` on one of ``count`` worker processes."""

    def __init__(
        self,
        count: int,
        threads: int,
        *,
        preload: Sequence[str] = (),
        hang_after: float = HANG_AFTER,
    ) -> None:
        self._threads = threads
        self._preload = tuple(preload)
        self._hang_after = hang_after
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._tokens: dict[CheckKey, int] = {}
        self._ids = itertools.count()
        self._numbers = itertools.count()
        self._closed = False
        self.replaced = 0
        """Worker processes that died or hung and were replaced."""
        with self._lock:
            for _ in range(count):
                self._start()

    def wait_ready(self, timeout: float = READY_WAIT) -> bool:
        """Wait until every process has imported its kinds (False if one has not in time)."""
        until = time.monotonic() + timeout
        with self._lock:
            workers = list(self._workers)
        return all(w.ready.wait(max(0.0, until - time.monotonic())) for w in workers)

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._workers if w.process.pid is not None]

    def _start(self) -> None:
        # Called with the lock held.
        parent, child = self._context.Pipe()
        root = logging.getLogger()
        levels = {name: logging.getLogger(name or None).level for name in ("", "pynetdicom")}
        formatter = _portable(root.handlers[0].formatter if root.handlers else None)
        number = next(self._numbers)
        process = self._context.Process(
            target=worker_process.serve,
            args=(child, self._threads, self._preload, levels, formatter),
            name=f"monai-slo-checks-{number}",
            daemon=True,
        )
        process.start()
        child.close()
        worker = _Worker(process, parent, number)
        self._workers.append(worker)
        threading.Thread(
            target=self._read, args=(worker,), name=f"check-process-{number}", daemon=True
        ).start()

    def run(self, ref: CheckRef, deadline: Deadline) -> CheckOutcome:
        """Run one check in a worker process; blocks this thread until its outcome is back."""
        call = _Call()
        with self._lock:
            if self._closed or not self._workers:
                return CheckOutcome.fail(FailureReason.ERROR, "the daemon is stopping")
            worker = min(self._workers, key=lambda w: len(w.calls))
            run_id = next(self._ids)
            token = self._tokens.setdefault(ref.key, len(self._tokens))
            worker.calls[run_id] = call
            fresh = worker.sent.get(token) is not ref.config
            if fresh:
                worker.sent[token] = ref.config
        payload = (ref.label, ref.config) if fresh else None
        try:
            with worker.send_lock:
                worker.conn.send((run_id, token, deadline.at, payload))
        except (OSError, ValueError) as exc:
            if fresh:
                worker.sent.pop(token, None)
            self._lost(worker, f"could not be reached ({type(exc).__name__})")
        if not call.done.wait(deadline.remaining() + self._hang_after):
            worker.why = f"gave no outcome {self._hang_after:g}s past a deadline and was killed"
            worker.process.kill()  # its reader sees the pipe close and settles its calls
            call.done.wait(self._hang_after)
        with self._lock:
            worker.calls.pop(run_id, None)
        if call.outcome is None:
            return CheckOutcome.fail(FailureReason.ERROR, "the check's worker process hung")
        return call.outcome

    def _read(self, worker: _Worker) -> None:
        """Settle calls as outcomes arrive; when the pipe closes, the process is gone."""
        while True:
            try:
                run_id, outcome = worker.conn.recv()
            except (EOFError, OSError):
                break
            if outcome is None:
                worker.ready.set()
                continue
            with self._lock:
                call = worker.calls.pop(run_id, None)
            if call is not None:
                call.settle(outcome)
        worker.conn.close()
        worker.process.join(STOP_WAIT)
        code = worker.process.exitcode
        if worker.why is not None:
            why = worker.why
        elif code is not None and code < 0:
            why = f"was killed by signal {-code}"
        else:
            why = f"exited with status {code}"
        self._lost(worker, why)

    def _lost(self, worker: _Worker, why: str) -> None:
        """Fail the process's calls, and put a fresh process in its place."""
        with self._lock:
            if worker not in self._workers:
                return
            self._workers.remove(worker)
            calls = list(worker.calls.values())
            worker.calls.clear()
            if not self._closed:
                self.replaced += 1
                log.warning(
                    "check worker process %s %s during %d checks; starting another",
                    worker.process.pid,
                    why,
                    len(calls),
                )
                self._start()
        with_reason = CheckOutcome.fail(
            FailureReason.ERROR, f"the check's worker process {why} while the check ran"
        )
        for call in calls:
            call.settle(with_reason)
        worker.process.kill()  # its reader then sees the pipe close and closes our end

    def close(self) -> None:
        """Stop every process (they hold nothing to save); calls in flight fail."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.process.terminate()
        until = time.monotonic() + STOP_WAIT
        for worker in workers:
            worker.process.join(max(0.0, until - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(STOP_WAIT)
        for worker in workers:
            self._lost(worker, "was stopped with the daemon")
