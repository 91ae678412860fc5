"""One call into a kind, exceptions contained and peer text cleaned: the same on a worker
thread of the daemon and in a worker process (``worker_process``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from monai_slo.checks.base import CheckOutcome, FailureReason, Pending
from monai_slo.safe_text import clean

log = logging.getLogger("monai_slo.daemon.runner")

MAX_DETAIL = 300


def attempt(label: str, step: Callable[[], CheckOutcome | Pending]) -> CheckOutcome | Pending:
    """Run ``step``; an exception becomes a failed outcome (``error``) and one log line."""
    try:
        outcome = step()
    except Exception as exc:
        # One line per run: a peer that trips a bug must not flood the log with tracebacks.
        log.warning("check %s raised %s: %s", label, type(exc).__name__, exc)
        log.debug("check %s raised", label, exc_info=True)
        outcome = CheckOutcome.fail(FailureReason.ERROR, f"{type(exc).__name__}: {exc}")
    if isinstance(outcome, Pending):
        return outcome
    detail = clean(outcome.detail, MAX_DETAIL)  # peer text: stored and shown as data
    return outcome if detail == outcome.detail else replace(outcome, detail=detail)
