"""Log lines that say what changed: a check going down (with its reason), still down (every
``reminder`` seconds, with the count), its reason changing, and recovering (with the outage's
length). Each run is logged at DEBUG only: a check down at 30 s otherwise writes 2,880
warnings a day that bury the few lines an administrator needs.

Records carry ``event``, ``check`` and ``reason`` as extra fields, which the JSON log format
(``--log-format json``) writes as keys of their own.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from monai_slo.checks.base import CheckResult
from monai_slo.config.model import CheckRef
from monai_slo.durations import format_duration

log = logging.getLogger(__name__)

REMINDER = 600.0  # "still down" at most every 10 minutes per check


@dataclass
class _Down:
    since: float
    reason: str
    failures: int
    reminded: float


class StateLog:
    """Turns the stream of results into state-change log lines (thread-safe)."""

    def __init__(self, reminder: float = REMINDER) -> None:
        self.reminder = reminder
        self._down: dict[tuple[str, str, str], _Down] = {}
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def record(self, ref: CheckRef, result: CheckResult) -> None:
        log.debug(
            "%s %s in %.3fs%s%s",
            ref.label,
            "ok" if result.success else "failed",
            result.duration,
            f" reason={result.reason}" if result.reason else "",
            f": {result.detail}" if result.detail else "",
            extra={"event": "run", "check": ref.label, "reason": result.reason or ""},
        )
        at = result.timestamp
        reason = str(result.reason or "error")
        with self._lock:
            first = ref.key not in self._seen
            self._seen.add(ref.key)
            down = self._down.get(ref.key)
            if result.success:
                if down is not None:
                    del self._down[ref.key]
            elif down is None:
                self._down[ref.key] = _Down(at, reason, 1, at)
            else:
                down.failures += 1
                changed = down.reason != reason
                remind = at - down.reminded >= self.reminder
                down.reason = reason
                if remind:
                    down.reminded = at
        extra = {"check": ref.label, "reason": "" if result.success else reason}
        if result.success:
            if down is not None:
                log.info(
                    "%s recovered after %s down (%d failed runs)",
                    ref.label,
                    format_duration(max(0.0, at - down.since)),
                    down.failures,
                    extra={**extra, "event": "recovered"},
                )
            elif first:
                log.info("%s is up", ref.label, extra={**extra, "event": "up"})
        elif down is None:
            log.warning(
                "%s is down (%s): %s",
                ref.label,
                reason,
                result.detail,
                extra={**extra, "event": "down"},
            )
        elif changed or remind:
            log.warning(
                "%s still down after %s (%d failed runs), %s: %s",
                ref.label,
                format_duration(max(0.0, at - down.since)),
                down.failures,
                f"now {reason}" if changed else reason,
                result.detail,
                extra={**extra, "event": "still_down"},
            )

    def forget(self, keys: set[tuple[str, str, str]]) -> None:
        """Drop checks a reload removed."""
        with self._lock:
            for key in keys:
                self._down.pop(key, None)
                self._seen.discard(key)
