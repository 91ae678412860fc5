"""The body of one check worker process (see ``process_pool``): runs the checks the daemon
sends it on threads of its own and sends each outcome back as soon as it is known.

It holds no history and no counters, only the configs it was sent. It ends when the
daemon's end of the pipe closes (the daemon stopped, or died), without waiting for checks
still in flight: nobody is left to tell.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from multiprocessing.connection import Connection

from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, FailureReason, Pending
from monai_slo.checks.registry import KINDS
from monai_slo.daemon.attempt import attempt

# parent -> child: (run id, check token, deadline on the shared monotonic clock,
#                   (label, config) the first time this process sees the token, else None)
Request = tuple[int, int, float, tuple[str, CheckConfig] | None]
# child -> parent: (run id, outcome); (-1, None) once, when the process is ready
Reply = tuple[int, CheckOutcome | None]


def serve(
    conn: Connection,
    threads: int,
    preload: tuple[str, ...],
    levels: dict[str, int],
    formatter: logging.Formatter | None,
) -> None:
    """The process's main: read requests until the daemon's end closes."""
    # Ctrl-C at a terminal reaches the whole process group; the daemon decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _configure_logging(levels, formatter)
    for kind in preload:
        # Import the kind's module now, not in a first run; if it fails, its checks fail
        # with the reason when they run and the process serves the others.
        try:
            KINDS[kind]
        except Exception as exc:
            logging.getLogger(__name__).warning("kind %s did not import: %s", kind, exc)
    configs: dict[int, tuple[str, CheckConfig]] = {}
    replies = _Replies(conn)
    replies.send(-1, None)
    pool = ThreadPoolExecutor(threads, thread_name_prefix="check")
    while True:
        try:
            run_id, token, at, payload = conn.recv()
        except (EOFError, OSError):
            break
        if payload is not None:
            configs[token] = payload
        label, config = configs[token]
        pool.submit(_run, replies, run_id, label, config, at)
    os._exit(0)  # checks still running have no one to report to


class _Replies:
    """The pipe back to the daemon, shared by the check threads."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def send(self, run_id: int, outcome: CheckOutcome | None) -> None:
        try:
            with self._lock:
                self._conn.send((run_id, outcome))
        except (OSError, ValueError):
            os._exit(0)  # the daemon is gone


def _run(replies: _Replies, run_id: int, label: str, config: CheckConfig, at: float) -> None:
    outcome = attempt(label, partial(_check, config, at))
    if isinstance(outcome, Pending):
        outcome = CheckOutcome.fail(
            FailureReason.ERROR, f"kind {config.kind} cannot wait for a verdict in a worker process"
        )
    replies.send(run_id, outcome)


def _check(config: CheckConfig, at: float) -> CheckOutcome | Pending:
    deadline = Deadline(at - time.monotonic())
    return KINDS[config.kind].run(config, deadline)


def _configure_logging(levels: dict[str, int], formatter: logging.Formatter | None) -> None:
    handler = logging.StreamHandler()
    if formatter is not None:
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
