"""APScheduler wiring: checks spread by a fixed per-check offset, one job per phase slot.

APScheduler's own ``jitter`` re-randomises every run and was measured to lose up to a third
of runs at scale, so checks are spread instead by a stable offset derived from their name:
the same check always runs at the same phase, and a restart keeps it.

Offsets fall on ``SLOT`` boundaries and the checks sharing an interval and a slot share one
job that fires them all: at 20,000 checks one job per check spent a third of the daemon's
CPU inside APScheduler, a job per slot a few hundred jobs whatever the fleet size.
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

# Phases are this fine: the checks of one slot start together (a run is never early).
SLOT = 0.05
CHECK_JOB = "check:"


def start_offset(ref: CheckRef) -> float:
    """A stable phase in [0, interval) on a ``SLOT`` boundary, so checks sharing an interval
    do not fire together."""
    return _slot(ref) * SLOT


def _slot(ref: CheckRef) -> int:
    digest = hashlib.blake2b(ref.label.encode(), digest_size=8).digest()
    return math.floor(int.from_bytes(digest, "big") / 2**64 * ref.config.interval / SLOT)


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
        """Missed runs per check label."""
        self._slots: dict[str, tuple[CheckRef, ...]] = {}
        self.last_tick = time.monotonic()

    def start(self) -> None:
        self._scheduler.start()

    def schedule(self, checks: Iterable[CheckRef]) -> None:
        """Replace every check job with the given checks (used at start and on reload)."""
        now = datetime.now(UTC)
        for job in self._scheduler.get_jobs():
            if job.id.startswith(CHECK_JOB):
                job.remove()
        slots: dict[tuple[float, int], list[CheckRef]] = {}
        for ref in checks:
            slots.setdefault((ref.config.interval, _slot(ref)), []).append(ref)
        self._slots = {}
        for (interval, slot), refs in slots.items():
            offset = slot * SLOT
            first = now + timedelta(seconds=offset)
            job_id = f"{CHECK_JOB}{interval:g}s+{offset:.3f}s"
            self._slots[job_id] = tuple(refs)
            self._scheduler.add_job(
                self._run,
                IntervalTrigger(seconds=interval, start_date=first),
                args=(self._slots[job_id], interval, first.timestamp()),
                id=job_id,
                name=f"{len(refs)} checks every {interval:g}s at +{offset:.3f}s",
                misfire_grace_time=max(1, int(interval / 2)),
            )

    def check_jobs(self) -> int:
        """APScheduler jobs that fire checks (one per interval and phase slot in use)."""
        return sum(1 for job in self._scheduler.get_jobs() if job.id.startswith(CHECK_JOB))

    def _run(self, refs: tuple[CheckRef, ...], interval: float, anchor: float) -> None:
        # Runs are due at anchor + k * interval; the latest such time is this run's.
        behind = max(0.0, time.time() - anchor)
        # 10 ms of tolerance: a run fired a hair early is not a whole interval late.
        due = anchor + math.floor((behind + 0.01) / interval) * interval
        for ref in refs:
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
        refs = self._slots.get(event.job_id)
        labels = [event.job_id] if refs is None else [ref.label for ref in refs]
        for label in labels:
            self.missed[label] = self.missed.get(label, 0) + 1
        log.warning("job %s missed its run time (%d checks)", event.job_id, len(labels))

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
