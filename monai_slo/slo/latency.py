"""Latency SLO math as pure functions: the share of runs that succeeded within a threshold.

A check with ``latency: {threshold, objective}`` counts, per hour, the runs judged against the
threshold (``timed``) and those that succeeded within it (``fast``); a failed run is never
fast. The SLI over a window is fast / timed, an event ratio (runs, not time), over the same
windows as availability. The last hour is also kept per second (:class:`RunsBySecond`): a
window that fits in it counts exactly the runs whose second lies in the window and outside
planned maintenance. A longer window reads the hours; an hour it covers only in part (the
oldest one, and any hour cut by planned maintenance) counts pro rata for the share of its
elapsed time the window keeps: runs are taken as spread evenly over an hour.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class RunsBySecond:
    """Timed and fast runs per epoch second, every run from ``since`` on: ``seconds`` in
    ascending order, ``timed[i]`` and ``fast[i]`` the runs of ``seconds[i]``."""

    since: float
    seconds: Sequence[int]
    timed: Sequence[int]
    fast: Sequence[int]

    def count(self, lo: float, hi: float) -> tuple[int, int]:
        """(timed, fast) of the runs whose second lies in [lo, hi)."""
        i, j = bisect.bisect_left(self.seconds, lo), bisect.bisect_left(self.seconds, hi)
        return (sum(self.timed[i:j]), sum(self.fast[i:j])) if j > i else (0, 0)


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Runs timed and runs fast over one window (estimated where hours are cut)."""

    window: float
    timed: float
    fast: float

    @property
    def slow(self) -> float:
        """Runs that failed or took longer than the threshold."""
        return self.timed - self.fast

    @property
    def ratio(self) -> float | None:
        """fast / timed; None when no run was timed (never a fake 100 %)."""
        return self.fast / self.timed if self.timed > 0 else None


def latency_stats(
    hours: Mapping[int, tuple[int, int]],
    now: float,
    window: float,
    excluded: Sequence[tuple[float, float]] = (),
    recent: RunsBySecond | None = None,
) -> LatencyStats:
    """Timed and fast runs in [now - window, now), leaving out excluded intervals: counted
    from ``recent`` when it holds the whole window, else from hourly counts
    (hour -> (timed, fast))."""
    lo = now - window
    if recent is not None and lo >= recent.since:
        return _exact(recent, lo, now, window, excluded)
    timed = fast = 0.0
    for hour, (hour_timed, hour_fast) in hours.items():
        start = hour * HOUR
        end = min(start + HOUR, now)  # the current hour has run only until now
        if end <= start:
            continue
        a, b = max(start, lo), end
        if a >= b:
            continue
        kept = (b - a) - _overlap(a, b, excluded)
        share = max(0.0, kept) / (end - start)
        timed += hour_timed * share
        fast += hour_fast * share
    return LatencyStats(window, timed, fast)


def _exact(
    recent: RunsBySecond,
    lo: float,
    now: float,
    window: float,
    excluded: Sequence[tuple[float, float]],
) -> LatencyStats:
    timed, fast = recent.count(lo, now)
    for start, end in _merged(excluded, lo, now):
        held_timed, held_fast = recent.count(start, end)
        timed -= held_timed
        fast -= held_fast
    return LatencyStats(window, timed, fast)


def _merged(
    intervals: Sequence[tuple[float, float]], lo: float, hi: float
) -> list[tuple[float, float]]:
    """``intervals`` cut to [lo, hi), overlapping ones joined (each second counted once)."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted((max(a, lo), min(b, hi)) for a, b in intervals):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlap(a: float, b: float, intervals: Sequence[tuple[float, float]]) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for start, end in intervals)


def latency_budget_remaining(stats: LatencyStats, objective_ratio: float) -> float | None:
    """Share of the window's budget of slow runs left: 1 - slow / allowed slow runs (negative
    when overspent); None before any run was timed."""
    if stats.timed <= 0:
        return None
    allowed = (1 - objective_ratio) * stats.timed
    if allowed <= 0:
        return 0.0 if stats.slow > 0 else 1.0
    return 1 - stats.slow / allowed


def latency_burn_rate(stats: LatencyStats, objective_ratio: float) -> float | None:
    """(1 - latency ratio) / (1 - objective): 1.0 spends the budget exactly over the window."""
    ratio = stats.ratio
    if ratio is None or objective_ratio >= 1:
        return None
    return (1 - ratio) / (1 - objective_ratio)
