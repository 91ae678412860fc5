"""Years of history in bounded space: before segments age out of ``retention`` each UTC day is
rolled up, per check and per service, into one row of seconds up, down, without data and in
maintenance, outages begun and failure reasons with counts (:class:`DayRollup`), kept for
``archive_retention``. A report over an older period reads these rows.

The daemon calls :func:`archive_and_prune` where it pruned before: it rolls up the days that
have aged out since the last pass (a few per pass, so a long-stopped daemon catches up in
steps), then prunes, never deleting the segments of a day not rolled up yet.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Sequence

from monai_slo.config.maintenance import merge
from monai_slo.config.model import Config, Service
from monai_slo.history.evaluation import maintenance_windows
from monai_slo.history.store import DAY, DayRollup, HistoryStore, ReasonMark
from monai_slo.slo.availability import Segment, Span, State, service_timeline, window_stats

log = logging.getLogger(__name__)

# Days rolled up per pass: a pass reads each day's segments of every check once.
DAYS_PER_PASS = 7
# The instant before a day that tells an outage begun that day from one going on from before.
_BEFORE = 1.0


def archive_and_prune(config: Config, store: HistoryStore, now: float) -> int:
    """Roll up the days that aged out of the retention, then prune; the days rolled up.

    A roll-up that fails (disk full, a lock held) is logged and tried at the next pass; the
    prune still never deletes a day not rolled up, so nothing is lost meanwhile.
    """
    rolled = 0
    until: int | None = None
    try:
        rolled = roll_up(config, store, now)
        until = store.rolled_until()
    except sqlite3.Error as exc:
        log.error(
            "history database %s: daily roll-up failed, trying again later: %s", store.path, exc
        )
        try:
            until = store.rolled_until()
        except sqlite3.Error:
            until = None
    if until is None:
        return 0  # nothing is pruned before a first roll-up has said where it stands
    store.prune(now, keep_from=until * DAY)
    return rolled


def roll_up(config: Config, store: HistoryStore, now: float, *, limit: int = DAYS_PER_PASS) -> int:
    """Roll up at most ``limit`` whole UTC days before ``now - retention`` not rolled up yet;
    how many were."""
    end = int((now - store.retention) // DAY)  # days before this have aged out
    first = store.rolled_until()
    if first is None:
        whole = store.first_complete_day()
        first = end if whole is None else min(end, whole)
    last = min(end, first + limit)
    if last <= first:
        if store.rolled_until() is None:
            store.save_rollups((), (), first)
        return 0
    stored = store.maintenance(first * DAY)
    services = list(config.services())
    ids = {ref.key: store.known_id(ref.key) for service in services for ref in service.checks}
    known = [i for i in ids.values() if i is not None]
    check_rows: list[tuple[int, DayRollup]] = []
    service_rows: list[tuple[str, str, DayRollup]] = []
    for day in range(first, last):
        lo, hi = float(day * DAY), float((day + 1) * DAY)
        segments = store.segments(known, lo - _BEFORE, hi)
        marks = store.reasons(known, lo, hi)
        for service in services:
            excluded = merge(maintenance_windows(service, stored, lo, hi))
            per_check = []
            reasons: Counter[str] = Counter()
            for ref in service.checks:
                check_id = ids[ref.key]
                own = segments.get(check_id, []) if check_id is not None else []
                per_check.append(own)
                if check_id is None:
                    continue
                counts = _reason_counts(marks.get(check_id, []), lo, hi)
                reasons.update(counts)
                check_rows.append((check_id, _day(day, [own], excluded, counts)))
            service_rows.append(
                (service.environment, service.name, _day(day, per_check, excluded, reasons))
            )
    store.save_rollups(check_rows, service_rows, last)
    return last - first


def _reason_counts(marks: Sequence[ReasonMark], lo: float, hi: float) -> dict[str, int]:
    return dict(Counter(mark.reason or "failed" for mark in marks if lo <= mark.at < hi))


def _day(
    day: int,
    checks: Sequence[Sequence[Segment]],
    excluded: Sequence[tuple[float, float]],
    reasons: dict[str, int],
) -> DayRollup:
    lo, hi = float(day * DAY), float((day + 1) * DAY)
    spans = service_timeline(checks, lo - _BEFORE, hi)
    stats = window_stats(spans, hi, DAY, excluded)
    maintenance = sum(max(0.0, min(hi, b) - max(lo, a)) for a, b in excluded)
    return DayRollup(
        day,
        stats.up,
        stats.down,
        stats.no_data,
        maintenance,
        _down_within(spans, excluded, lo, hi),
        sum(1 for span in spans if span.state is State.DOWN and span.start >= lo),
        reasons,
    )


def _down_within(
    spans: Sequence[Span], excluded: Sequence[tuple[float, float]], lo: float, hi: float
) -> float:
    total = 0.0
    for span in spans:
        if span.state is not State.DOWN:
            continue
        for a, b in excluded:
            total += max(0.0, min(span.end, b, hi) - max(span.start, a, lo))
    return total


def service_rollups(
    store: HistoryStore, service: Service, start: float, end: float
) -> list[DayRollup]:
    """The service's rolled-up days within [start, end) (whole UTC days)."""
    return store.service_days(service.environment, service.name, int(start // DAY), int(end // DAY))
