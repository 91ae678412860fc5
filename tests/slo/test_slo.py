"""SLO math: time-weighted availability, service aggregation, no data, budget and burn rate."""

from __future__ import annotations

import pytest

from monai_slo.slo.availability import (
    Segment,
    Span,
    State,
    WindowStats,
    burn_rate,
    error_budget_remaining,
    service_timeline,
    state_at,
    window_stats,
)

UP, DOWN = True, False


@pytest.mark.parametrize(
    ("checks", "expected"),
    [
        # one check, all up
        ([[Segment(0, 100, UP)]], [Span(0, 100, State.UP)]),
        # a gap is no data
        (
            [[Segment(0, 40, UP), Segment(60, 100, UP)]],
            [Span(0, 40, State.UP), Span(40, 60, State.NO_DATA), Span(60, 100, State.UP)],
        ),
        # any check down makes the service down
        (
            [
                [Segment(0, 100, UP)],
                [Segment(0, 30, UP), Segment(30, 50, DOWN), Segment(50, 100, UP)],
            ],
            [Span(0, 30, State.UP), Span(30, 50, State.DOWN), Span(50, 100, State.UP)],
        ),
        # down wins over no data; up needs every check
        (
            [[Segment(0, 100, UP)], [Segment(20, 40, DOWN), Segment(60, 100, UP)]],
            [
                Span(0, 20, State.NO_DATA),
                Span(20, 40, State.DOWN),
                Span(40, 60, State.NO_DATA),
                Span(60, 100, State.UP),
            ],
        ),
        # two overlapping outages merge into one down span
        (
            [
                [Segment(0, 10, UP), Segment(10, 30, DOWN), Segment(30, 100, UP)],
                [Segment(0, 20, UP), Segment(20, 40, DOWN), Segment(40, 100, UP)],
            ],
            [Span(0, 10, State.UP), Span(10, 40, State.DOWN), Span(40, 100, State.UP)],
        ),
        # segments outside the range are clipped
        ([[Segment(-50, 150, DOWN)]], [Span(0, 100, State.DOWN)]),
        # no checks at all
        ([], [Span(0, 100, State.NO_DATA)]),
    ],
)
def test_service_timeline(checks: list[list[Segment]], expected: list[Span]) -> None:
    """A service is down while any check is down, up while all are up, else no data."""
    assert service_timeline(checks, 0, 100) == expected


@pytest.mark.parametrize(
    ("window", "excluded", "up", "down", "no_data"),
    [
        (100, (), 70, 20, 10),
        (50, (), 40, 0, 10),  # [50, 100): 60-100 up, 50-60 no data
        (200, (), 70, 20, 110),  # time before history is no data
        (100, ((20, 30),), 70, 10, 10),  # maintenance removes 10 s of the outage
    ],
)
def test_window_stats(
    window: float, excluded: tuple[tuple[float, float], ...], up: float, down: float, no_data: float
) -> None:
    """Seconds up/down/no-data per window, excluded time left out of every bucket."""
    spans = [
        Span(0, 20, State.UP),
        Span(20, 40, State.DOWN),
        Span(40, 50, State.UP),
        Span(50, 60, State.NO_DATA),
        Span(60, 100, State.UP),
    ]
    stats = window_stats(spans, 100, window, excluded)
    assert (stats.up, stats.down, stats.no_data) == pytest.approx((up, down, no_data))


@pytest.mark.parametrize(
    ("up", "down", "no_data", "availability", "coverage"),
    [
        (90, 10, 0, 0.9, 1.0),
        (999, 1, 1000, 0.999, 0.5),
        (0, 0, 100, None, 0.0),  # nothing measured: no availability, never a fake 100 %
        (0, 50, 50, 0.0, 0.5),
    ],
)
def test_availability_and_coverage(
    up: float, down: float, no_data: float, availability: float | None, coverage: float
) -> None:
    stats = WindowStats(up + down + no_data, up, down, no_data)
    assert stats.availability == (None if availability is None else pytest.approx(availability))
    assert stats.coverage == pytest.approx(coverage)


@pytest.mark.parametrize(
    ("down", "objective", "remaining"),
    [
        (0, 0.999, 1.0),
        (2592, 0.999, 0.0),  # 30 d at 99.9 % allows 43.2 min = 2592 s
        (1296, 0.999, 0.5),
        (5184, 0.999, -1.0),  # overspent twice
        (25.92, 0.99999, 0.0),  # 99.999 % over 30 d is 25.92 s
    ],
)
def test_error_budget_remaining(down: float, objective: float, remaining: float) -> None:
    """Budget is the allowed downtime over the whole window; downtime spends it."""
    window = 30 * 86400
    stats = WindowStats(window, window - down, down, 0)
    assert error_budget_remaining(stats, objective) == pytest.approx(remaining, abs=1e-9)


@pytest.mark.parametrize(
    ("up", "down", "objective", "rate"),
    [
        (3600, 0, 0.999, 0.0),
        (3596.4, 3.6, 0.999, 1.0),  # exactly the objective's error rate
        (3548.16, 51.84, 0.999, 14.4),  # the fast-burn paging threshold
        (0, 0, 0.999, None),  # no data: no burn rate rather than a false page
    ],
)
def test_burn_rate(up: float, down: float, objective: float, rate: float | None) -> None:
    stats = WindowStats(3600, up, down, 3600 - up - down)
    assert burn_rate(stats, objective) == (None if rate is None else pytest.approx(rate))


def test_state_at() -> None:
    spans = [Span(0, 10, State.UP), Span(10, 20, State.DOWN)]
    assert [state_at(spans, t) for t in (5, 10, 19.9, 20, -1)] == [
        State.UP,
        State.DOWN,
        State.DOWN,
        State.NO_DATA,
        State.NO_DATA,
    ]
