"""The service timeline (one sort, spans opened only where the state changes) equals the
heap-merge it replaced, kept here as the reference, for any segments: overlapping checks,
touching and gapped segments, edges on the window's bounds, empty checks, no checks."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from monai_slo.slo.availability import Segment, Span, State, service_timeline, window_stats


def _reference(checks: Sequence[Sequence[Segment]], start: float, end: float) -> list[Span]:
    if end <= start:
        return []
    events: list[tuple[float, int, int]] = []
    for segments in checks:
        for seg in segments:
            a, b = max(seg.start, start), min(seg.end, end)
            if a < b:
                events.append((a, int(not seg.up), int(seg.up)))
                events.append((b, -int(not seg.up), -int(seg.up)))
    heapq.heapify(events)
    spans: list[Span] = []
    down = up = 0
    cursor = start
    total = len(checks)

    def state() -> State:
        if down:
            return State.DOWN
        return State.UP if total and up == total else State.NO_DATA

    def append(a: float, b: float, s: State) -> None:
        if spans and spans[-1].state == s and spans[-1].end == a:
            spans[-1] = Span(spans[-1].start, b, s)
        else:
            spans.append(Span(a, b, s))

    while events:
        at = events[0][0]
        if at > cursor:
            append(cursor, at, state())
            cursor = at
        while events and events[0][0] == at:
            _, d_down, d_up = heapq.heappop(events)
            down += d_down
            up += d_up
    if cursor < end:
        append(cursor, end, state())
    return spans


@st.composite
def _check(draw: st.DrawFn) -> list[Segment]:
    """One check's segments: in order, never overlapping, touching or with gaps."""
    at = draw(st.integers(-20, 20)) / 2
    segments = []
    for _ in range(draw(st.integers(0, 8))):
        at += draw(st.sampled_from([0, 0, 0.5, 3]))
        length = draw(st.integers(1, 12)) / 2
        segments.append(Segment(at, at + length, draw(st.booleans())))
        at += length
    return segments


@settings(max_examples=400, deadline=None)
@given(
    checks=st.lists(_check(), max_size=6),
    start=st.integers(-10, 10),
    length=st.integers(-2, 40),
)
def test_service_timeline_matches_reference(
    checks: list[list[Segment]], start: int, length: int
) -> None:
    end = start + length / 2
    fast, slow = service_timeline(checks, start, end), _reference(checks, start, end)
    assert fast == slow
    for window in (1.0, 5.0, 100.0):  # and so every figure read from them
        assert window_stats(fast, end, window) == window_stats(slow, end, window)
        assert window_stats(fast, end, window, [(start + 1, start + 2)]) == window_stats(
            slow, end, window, [(start + 1, start + 2)]
        )
