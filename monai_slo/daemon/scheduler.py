"""APScheduler wiring: one interval job per check, spread by a fixed per-check offset.

APScheduler's own ``jitter`` re-randomises every run and was measured to lose up to a third
of runs at scale, so checks are spread instead by a stable offset derived from their name:
the same check always runs at the same phase, and a restart keeps it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monai_slo.config.model import CheckRef

log = logging.getLogger(__name__)


def start_offset(ref: CheckRef) -> float:
    """A stable phase in [0, interval) so checks sharing an interval do not fire together."""
    digest = hashlib.blake2b(ref.label.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * ref.config.interval


class CheckScheduler:
    """Fires ``fire(ref, due)`` for each check, ``due`` being the wall time the run was due."""

    def __init__(self, fire: Callable[[CheckRef, float], object]) -> None:
        self._fire = fire
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self._scheduler.add_listener(self._missed, EVENT_JOB_MISSED)
        self.missed: dict[str, int] = {}
        self.last_tick = time.monotonic()

    def start(self) -> None:
        self._scheduler.start()

    def schedule(self, checks: Iterable[CheckRef]) -> None:
        """Replace every check job with the given checks (used at start and on reload)."""
        now = datetime.now(UTC)
        for job in self._scheduler.get_jobs():
            if job.id.startswith("check:"):
                job.remove()
        for ref in checks:
            first = now + timedelta(seconds=start_offset(ref))
            self._scheduler.add_job(
                self._run,
                IntervalTrigger(seconds=ref.config.interval, start_date=first),
                args=(ref, first.timestamp()),
                id=f"check:{ref.label}",
                name=ref.label,
                misfire_grace_time=max(1, int(ref.config.interval / 2)),
            )

    def _run(self, ref: CheckRef, anchor: float) -> None:
        # Runs are due at anchor + k * interval; the latest such time is this run's.
        behind = max(0.0, time.time() - anchor)
        # 10 ms of tolerance: a run fired a hair early is not a whole interval late.
        due = anchor + math.floor((behind + 0.01) / ref.config.interval) * ref.config.interval
        self._fire(ref, due)

    def every(self, name: str, seconds: float, func: Callable[[], object]) -> None:
        self._scheduler.add_job(
            func,
            IntervalTrigger(seconds=seconds),
            id=f"task:{name}",
            name=name,
            replace_existing=True,
        )

    def _missed(self, event: JobExecutionEvent) -> None:
        self.missed[event.job_id] = self.missed.get(event.job_id, 0) + 1
        log.warning("job %s missed its run time", event.job_id)

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
