"""Service timelines kept between /metrics scrapes, so a scrape reads only what changed.

History only changes from the time of the next result on: the store extends or closes a
check's latest segment at that result's start, or opens a new one there, and a result still
to come started at most its check's timeout (plus the runner's grace) ago. So a service's
timeline up to ``settle`` seconds ago never changes: it is kept with running totals per
state, and each scrape fetches and merges only the segments from there on (about one per
check). A wall clock that stepped (it moved unlike the monotonic clock between two scrapes)
discards what was kept. Window figures then cost two binary searches instead of a pass over
30 days of spans. The numbers equal those of :func:`monai_slo.slo.availability.window_stats` over a
freshly built timeline (to float rounding); tests/test_perf_evaluation.py holds them to it.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from monai_slo.history.store import HistoryStore
from monai_slo.slo.availability import Segment, Span, State, WindowStats, service_timeline

# Drop spans that no window reaches any more once this many have piled up.
_TRIM_AFTER = 256


class Timeline:
    """A service's spans from ``origin``: settled ones with running totals, then a tail."""

    def __init__(self, origin: float) -> None:
        self.origin = origin
        self.settled_until = origin
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._states: list[State] = []
        # Seconds per state before span i (index 0 is the base; one more entry than spans).
        self._up = [0.0]
        self._down = [0.0]
        self._no_data = [0.0]
        self.tail: list[Span] = []

    def settle(self, spans: Sequence[Span], until: float) -> None:
        """Append spans covering [settled_until, until) that will never change again."""
        for span in spans:
            if span.end <= span.start:
                continue
            self._starts.append(span.start)
            self._ends.append(span.end)
            self._states.append(span.state)
            length = span.end - span.start
            self._up.append(self._up[-1] + (length if span.state is State.UP else 0.0))
            self._down.append(self._down[-1] + (length if span.state is State.DOWN else 0.0))
            self._no_data.append(
                self._no_data[-1] + (length if span.state is State.NO_DATA else 0.0)
            )
        self.settled_until = until

    def trim(self, since: float) -> None:
        """Forget settled spans that end before ``since`` (no window reaches them)."""
        drop = bisect.bisect_right(self._ends, since)
        if drop < _TRIM_AFTER or drop * 2 < len(self._starts):
            return
        del self._starts[:drop], self._ends[:drop], self._states[:drop]
        del self._up[:drop], self._down[:drop], self._no_data[:drop]

    def _settled_before(self, t: float) -> tuple[float, float, float]:
        """Seconds per state (up, down, no data) in settled spans before ``t``."""
        index = bisect.bisect_right(self._starts, t) - 1
        if index < 0:
            return self._up[0], self._down[0], self._no_data[0]
        up, down, no_data = self._up[index], self._down[index], self._no_data[index]
        part = min(t, self._ends[index]) - self._starts[index]
        state = self._states[index]
        if state is State.UP:
            up += part
        elif state is State.DOWN:
            down += part
        else:
            no_data += part
        return up, down, no_data

    def time_in(self, a: float, b: float) -> tuple[float, float, float]:
        """Seconds per state (up, down, no data) the spans cover within [a, b)."""
        if b <= a:
            return 0.0, 0.0, 0.0
        up = down = no_data = 0.0
        if a < self.settled_until:
            high = min(b, self.settled_until)
            up_b, down_b, no_data_b = self._settled_before(high)
            up_a, down_a, no_data_a = self._settled_before(a)
            up, down, no_data = up_b - up_a, down_b - down_a, no_data_b - no_data_a
        if b > self.settled_until:
            for span in self.tail:
                lo, hi = max(span.start, a), min(span.end, b)
                if lo < hi:
                    if span.state is State.UP:
                        up += hi - lo
                    elif span.state is State.DOWN:
                        down += hi - lo
                    else:
                        no_data += hi - lo
        return up, down, no_data

    def stats(
        self, now: float, window: float, excluded: Sequence[tuple[float, float]] = ()
    ) -> WindowStats:
        """What :func:`monai_slo.slo.availability.window_stats` gives for these spans (``excluded``
        sorted and disjoint, as :func:`monai_slo.config.maintenance.merge` makes them)."""
        lo = now - window
        up, down, no_data = self.time_in(lo, now)
        left = window
        for start, end in excluded:
            a, b = max(start, lo), min(end, now)
            if a < b:
                ex_up, ex_down, ex_no_data = self.time_in(a, b)
                up, down, no_data = up - ex_up, down - ex_down, no_data - ex_no_data
                left -= b - a
        # Differences of running totals can leave -1e-12 where the truth is 0.
        up, down, no_data = max(0.0, up), max(0.0, down), max(0.0, no_data)
        no_data += max(0.0, left - (up + down + no_data))
        return WindowStats(window, up, down, no_data)

    def state_at(self, t: float) -> State:
        for span in reversed(self.tail):
            if span.start <= t < span.end:
                return span.state
            if span.end <= t:
                return State.NO_DATA
        if t < self.settled_until:
            index = bisect.bisect_right(self._starts, t) - 1
            if index >= 0 and t < self._ends[index]:
                return self._states[index]
        return State.NO_DATA


# Services settled this recently share one query per scrape.
_PREFETCH_SPAN = 600.0
# How far the wall clock may drift from the monotonic clock between scrapes (NTP slewing).
_CLOCK_TOLERANCE = 1.0


@dataclass
class _Entry:
    ids: tuple[int | None, ...]
    timeline: Timeline
    now: float
    monotonic: float

    def stale(self, ids: tuple[int | None, ...], since: float, now: float, mono: float) -> bool:
        """New ids (reconfigured, or a check's first result), a longer window, or a clock step."""
        return (
            ids != self.ids
            or since < self.timeline.origin
            or now < self.now
            or abs((now - self.now) - (mono - self.monotonic)) > _CLOCK_TOLERANCE
        )


class TimelineCache:
    """Per service, the settled part of its timeline; owned by one collector.

    Not thread-safe: the collector calls it under its own lock.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._monotonic = monotonic
        # (from, now, segments by id) fetched for every recently settled service at once.
        self._prefetched: tuple[float, float, dict[int, list[Segment]]] | None = None

    def prefetch(self, store: HistoryStore, now: float, span: float = _PREFETCH_SPAN) -> None:
        """Fetch the tails of all services settled within ``span`` in one query: the store
        also passes over its buffered results once per query, not once per service."""
        recent = [
            entry
            for entry in self._entries.values()
            if now - span <= entry.timeline.settled_until <= now
        ]
        ids = [i for entry in recent for i in entry.ids if i is not None]
        if not ids:
            self._prefetched = None
            return
        start = min(entry.timeline.settled_until for entry in recent)
        self._prefetched = (start, now, store.segments(ids, start, now))

    def timeline(
        self,
        service: tuple[str, str],
        ids: Sequence[int | None],
        store: HistoryStore,
        since: float,
        now: float,
        *,
        settle: float,
    ) -> tuple[Timeline, list[list[Segment]]]:
        """The service's timeline over [since, now), and each check's segments from the
        previously settled point on (its latest one among them), in the order of ``ids``.

        ``settle``: how long ago a result still to come may have started (the longest check
        timeout plus slack); nothing newer is ever settled.
        """
        key_ids = tuple(ids)
        mono = self._monotonic()
        entry = self._entries.get(service)
        if entry is None or entry.stale(key_ids, since, now, mono):
            entry = _Entry(key_ids, Timeline(since), now, mono)
            self._entries[service] = entry
        timeline = entry.timeline
        entry.now, entry.monotonic = now, mono
        start = timeline.settled_until
        known = [i for i in ids if i is not None]
        fetched = self._fetched(known, start, now)
        if fetched is None:
            fetched = store.segments(known, start, now)
        per_check = [fetched.get(i, []) if i is not None else [] for i in ids]
        settled = now - settle
        if settled > start:
            timeline.settle(service_timeline(per_check, start, settled), settled)
        timeline.tail = service_timeline(per_check, max(start, settled), now)
        timeline.trim(since)
        return timeline, per_check

    def _fetched(
        self, ids: Sequence[int], start: float, now: float
    ) -> dict[int, list[Segment]] | None:
        """The prefetched segments, when they cover these ids from ``start`` to ``now``.

        They may reach further back than ``start``; the timeline is clipped to it anyway.
        """
        if self._prefetched is None:
            return None
        since, until, fetched = self._prefetched
        if until != now or since > start or any(i not in fetched for i in ids):
            return None
        return fetched

    def forget(self, keep: set[tuple[str, str]]) -> None:
        """Drop services no longer configured."""
        for service in list(self._entries):
            if service not in keep:
                del self._entries[service]
