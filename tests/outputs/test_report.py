"""The monthly availability report: exact figures from real history, rendered in real Chromium.

History is written through HistoryStore.record() one result a minute, as the daemon would,
with outages and a maintenance window at known times, so every figure is known exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.commands.report import report_command
from monai_slo.config.model import Config, load_config
from monai_slo.history.store import HistoryStore
from monai_slo.outputs.report import (
    AvailabilityReport,
    Outage,
    build_report,
    day_class,
    parse_period,
)
from monai_slo.outputs.report_html import COLOURS, render_report
from tests.fixtures_browser import (
    Chromium,
    day_classes,
    external_references,
    figures,
    hex_rgb,
    png_colours,
)

MINUTE = 60.0
NOVEMBER = 30 * 1440 * MINUTE
STALENESS = 2 * 60 + 5  # 2 x interval + timeout, as the config below gives


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def minutes_between(start: str, end: str) -> Iterable[float]:
    t, stop = at(start), at(end)
    while t < stop:
        yield t
        t += MINUTE


CONFIG = """\
storage: history.sqlite
environments:
  - name: radiology
    tier: production
    objective: 99.9
    maintenance:
      - {start: "2026-11-20T02:00:00Z", end: "2026-11-20T04:00:00Z", reason: "PACS upgrade <b>v2</b>"}
    services:
      - name: pacs
        checks:
          - {name: echo, kind: tcp, host: 127.0.0.1, port: 104, interval: 60s, timeout: 5s}
          - {name: web, kind: http, url: "http://127.0.0.1:8042/system", interval: 60s, timeout: 5s}
  - name: research
    tier: staging
    services:
      - name: router
        checks:
          - {name: echo, kind: tcp, host: 127.0.0.1, port: 11112, interval: 60s, timeout: 5s}
  - name: laptop
    tier: desktop
    services:
      - name: viewer
        checks:
          - {name: web, kind: http, url: "http://127.0.0.1:3000/", interval: 60s, timeout: 5s}
"""

HOSTILE_DETAIL = "connection refused <script>alert(1)</script>"


def record(
    store: HistoryStore,
    key: tuple[str, str, str],
    times: Iterable[float],
    down: Iterable[tuple[str, str]] = (),
    reason: FailureReason = FailureReason.REFUSED,
    detail: str = "",
) -> None:
    """One result a minute; failed inside the [start, end) ranges given."""
    ranges = [(at(a), at(b)) for a, b in down]
    for t in times:
        failed = any(a <= t < b for a, b in ranges)
        result = CheckResult(
            not failed, 0.01, reason if failed else None, detail if failed else "", t
        )
        store.record(key, "tcp", result, STALENESS)


@pytest.fixture(scope="module")
def november(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A month of history (see the module docstring of each figure's test for the outages)."""
    directory = tmp_path_factory.mktemp("report")
    path = directory / "config.yaml"
    path.write_text(CONFIG)
    config = load_config(path)
    month = list(minutes_between("2026-11-01T00:00", "2026-12-01T00:00"))
    store = HistoryStore(config.storage)
    try:
        # pacs/echo: 30 min unplanned on the 10th; 03:50-04:10 on the 20th straddles the
        # end of the 02:00-04:00 maintenance window (10 min planned, 10 min unplanned).
        record(
            store,
            ("radiology", "pacs", "echo"),
            month,
            [
                ("2026-11-10T10:00", "2026-11-10T10:30"),
                ("2026-11-20T03:50", "2026-11-20T04:10"),
            ],
        )
        # pacs/web: down 02:30-03:30 on the 20th, all inside maintenance; silent 12:00-14:00
        # on the 25th (no data once its 11:59 result goes stale at 12:01:05).
        gap = (at("2026-11-25T12:00"), at("2026-11-25T14:00"))
        record(
            store,
            ("radiology", "pacs", "web"),
            [t for t in month if not gap[0] <= t < gap[1]],
            [("2026-11-20T02:30", "2026-11-20T03:30")],
        )
        # research/router: a whole day down, then the last hour of the month down with a
        # hostile detail (the last result, so the report shows its reason).
        record(
            store,
            ("research", "router", "echo"),
            month,
            [
                ("2026-11-29T00:00", "2026-11-30T00:00"),
                ("2026-11-30T23:00", "2026-12-01T00:00"),
            ],
            detail=HOSTILE_DETAIL,
        )
        # laptop/viewer: never ran.
    finally:
        store.close()
    return config


def _report(config: Config) -> tuple[str, AvailabilityReport]:
    store = HistoryStore(config.storage)
    try:
        report = build_report(config, store, parse_period("2026-11"), at("2026-12-05T00:00"))
    finally:
        store.close()
    return render_report(report), report


@pytest.mark.parametrize(
    ("text", "start", "end", "title"),
    [
        ("2026-11", "2026-11-01T00:00", "2026-12-01T00:00", "November 2026"),
        ("2026-02", "2026-02-01T00:00", "2026-03-01T00:00", "February 2026"),
        ("2024-02", "2024-02-01T00:00", "2024-03-01T00:00", "February 2024"),
        ("2026-12", "2026-12-01T00:00", "2027-01-01T00:00", "December 2026"),
        (
            "2026-11-05..2026-11-20",
            "2026-11-05T00:00",
            "2026-11-21T00:00",
            "5 Nov 2026 to 20 Nov 2026",
        ),
        (
            "2026-11-05..2026-11-05",
            "2026-11-05T00:00",
            "2026-11-06T00:00",
            "5 Nov 2026 to 5 Nov 2026",
        ),
    ],
)
def test_period_is_whole_utc_days(text: str, start: str, end: str, title: str) -> None:
    """A month is its calendar month in UTC (leap years included); a day range includes both
    its first and its last day."""
    period = parse_period(text)
    assert (period.start, period.end, period.title, period.label) == (
        at(start),
        at(end),
        title,
        text,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-13", "no month 13"),
        ("November", "expected a month such as 2026-11"),
        ("2026-11-20..2026-11-05", "the last day is before the first"),
        ("2026-02-30..2026-03-01", "day is out of range"),
    ],
)
def test_bad_period_says_what_was_expected(text: str, message: str) -> None:
    """A period that is not a month or a day range fails with what was expected."""
    with pytest.raises(ValueError, match=message):
        parse_period(text)


def test_thirty_minutes_down_in_november(tmp_path: Path) -> None:
    """30 minutes down in November with a 2 h maintenance window (down 1 h inside it): the
    maintenance leaves the denominator, so availability is exactly 1 - 30/(43200 - 120); the
    hour down in maintenance is counted as maintenance downtime, not against the budget."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "storage: h.sqlite\nenvironments:\n  - name: prod\n    tier: production\n"
        "    maintenance: [{start: '2026-11-20T02:00:00Z', end: '2026-11-20T04:00:00Z'}]\n"
        "    services:\n      - name: pacs\n        checks:\n"
        "          - {name: echo, kind: tcp, host: 127.0.0.1, port: 104, interval: 60s, timeout: 5s}\n"
    )
    config = load_config(path)
    store = HistoryStore(config.storage)
    try:
        record(
            store,
            ("prod", "pacs", "echo"),
            minutes_between("2026-11-01T00:00", "2026-12-01T00:00"),
            [("2026-11-10T10:00", "2026-11-10T10:30"), ("2026-11-20T02:30", "2026-11-20T03:30")],
        )
        report = build_report(config, store, parse_period("2026-11"), at("2026-12-01T08:00"))
    finally:
        store.close()
    (pacs,) = report.environments[0].services
    assert pacs.availability == 1 - 30 / (43200 - 120)
    assert pacs.unplanned_down == 30 * MINUTE
    assert pacs.maintenance_down == 60 * MINUTE
    assert pacs.maintenance == 120 * MINUTE
    assert pacs.stats.no_data == 0
    assert pacs.allowed_downtime == pytest.approx(0.001 * (43200 - 120) * MINUTE)
    assert pacs.budget_consumed == pytest.approx(30 / 43.08)
    assert pacs.met is True


def test_figures_per_service(november: Config) -> None:
    """Per service: availability with maintenance excluded, downtime split into unplanned and
    maintenance, no data, budget consumed against the month's allowance, and outages with the
    checks that were down (a reason only where the check's last result is in that outage)."""
    _, report = _report(november)
    pacs, router, viewer = (s for env in report.environments for s in env.services)

    no_data = at("2026-11-25T14:00") - (at("2026-11-25T11:59") + STALENESS)
    up = NOVEMBER - 120 * MINUTE - 40 * MINUTE - no_data
    assert pacs.unplanned_down == 40 * MINUTE
    assert pacs.maintenance_down == 70 * MINUTE
    assert pacs.stats.no_data == no_data
    assert pacs.availability == up / (up + 40 * MINUTE)
    assert pacs.budget_consumed == pytest.approx(40 / (0.001 * (43200 - 120)))
    assert pacs.met is True
    assert [(o.start, o.end, o.in_maintenance) for o in pacs.outages] == [
        (at("2026-11-10T10:00"), at("2026-11-10T10:30"), 0.0),
        (at("2026-11-20T02:30"), at("2026-11-20T03:30"), 3600.0),
        (at("2026-11-20T03:50"), at("2026-11-20T04:10"), 600.0),
    ]
    assert [[c.name for c in o.checks] for o in pacs.outages] == [["echo"], ["web"], ["echo"]]
    # Every outage keeps its own reason, though each check's last result is a success.
    assert all(c.reason == "refused" for o in pacs.outages for c in o.checks)

    assert router.service.objective == 98.0
    assert router.availability == 1 - 1500 / 43200
    assert router.budget_consumed == pytest.approx(1500 / (0.02 * 43200))
    assert router.met is False
    first, last = router.outages
    assert first.checks[0].reason == "refused" and first.duration == 86400  # not only the newest
    assert last == Outage(
        at("2026-11-30T23:00"),
        at("2026-12-01T00:00"),
        0.0,
        False,
        last.checks,
    )
    assert (last.checks[0].reason, last.checks[0].detail) == ("refused", HOSTILE_DETAIL)

    assert viewer.service.objective is None
    assert viewer.availability is None and viewer.budget_consumed is None and viewer.met is None
    assert viewer.stats.no_data == NOVEMBER

    days = {day.day: day_class(day, 0.999) for day in pacs.days}
    assert len(days) == 30
    assert days["2026-11-10"] == "bad"  # 30 min of a 1440 min day: 97.9 %
    assert days["2026-11-20"] == "degraded"  # 10 min of 1320 measured: 99.24 %
    assert days["2026-11-25"] == "ok"  # no data is not downtime
    assert sum(1 for kind in days.values() if kind == "ok") == 28


def test_month_in_progress_counts_to_now(november: Config) -> None:
    """A report for the running month covers the month up to now, marks a running outage as
    ongoing, and still measures the budget against the whole month's allowance."""
    store = HistoryStore(november.storage)
    try:
        report = build_report(november, store, parse_period("2026-11"), at("2026-11-29T12:00"))
    finally:
        store.close()
    router = report.environments[1].services[0]
    assert report.in_progress and report.until == at("2026-11-29T12:00")
    assert router.unplanned_down == 12 * 3600
    assert router.outages[-1].ongoing
    assert router.allowed_downtime == pytest.approx(0.02 * NOVEMBER)
    assert len(router.days) == 29


def test_report_command_writes_the_default_file(
    november: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`monai-slo report --period 2026-11` writes monai-slo-report-2026-11.html in the working
    directory; -o picks the file; a bad period exits 2, missing history exits 1."""
    monkeypatch.chdir(tmp_path)
    assert report_command(november, "2026-11", None, now=at("2026-12-05T00:00")) == 0
    written = tmp_path / "monai-slo-report-2026-11.html"
    assert "Availability report: November 2026" in written.read_text()
    assert f"wrote {written.name}" in capsys.readouterr().out

    chosen = tmp_path / "out" / "nov.html"
    chosen.parent.mkdir()
    assert report_command(november, "2026-11-05..2026-11-20", chosen) == 0
    assert "5 Nov 2026 to 20 Nov 2026" in chosen.read_text()

    assert report_command(november, "2026-13", None) == 2
    assert "--period: expected a month" in capsys.readouterr().err

    missing = load_config_with_storage(tmp_path, tmp_path / "nothing" / "h.sqlite")
    assert report_command(missing, "2026-11", None) == 1
    assert "no history yet" in capsys.readouterr().err


def load_config_with_storage(directory: Path, storage: Path) -> Config:
    path = directory / "other.yaml"
    path.write_text(CONFIG.replace("storage: history.sqlite", f"storage: {storage}"))
    return load_config(path)


def test_report_is_self_contained_and_escapes_history(november: Config) -> None:
    """The HTML fetches nothing (no src/href, scripts, stylesheets, url()) and every string
    from the config or the history is escaped."""
    page, _ = _report(november)
    assert external_references(page) == []
    assert "<script" not in page and "<b>v2" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "PACS upgrade &lt;b&gt;v2&lt;/b&gt;" in page


def test_report_renders_in_chromium(november: Config, tmp_path: Path, chromium: Chromium) -> None:
    """Opened in real headless Chromium, the report shows every service's figures in the DOM,
    the day bars with the right classes, and a screenshot with the chart's colours in it."""
    page, _ = _report(november)
    path = tmp_path / "report.html"
    path.write_text(page, encoding="utf-8")

    dom = chromium.dump_dom(path.as_uri())
    shown = figures(dom)
    assert shown["radiology/pacs"] == {
        "objective": "99.9%",
        "availability": "99.907%",
        "met": "met",
        "unplanned": "40.0",
        "maintenance-down": "70.0",
        "nodata": "118.9",
        "budget": "92.9%",
    }
    assert shown["research/router"] == {
        "objective": "98%",
        "availability": "96.528%",
        "met": "missed",
        "unplanned": "1500.0",
        "maintenance-down": "0.0",
        "nodata": "0.0",
        "budget": "173.6%",
    }
    assert shown["laptop/viewer"]["objective"] == "best effort"
    assert shown["laptop/viewer"]["availability"] == "—"
    assert shown["laptop/viewer"]["nodata"] == "43200.0"
    days = day_classes(dom)
    assert days["radiology/pacs"]["2026-11-10"] == "bad"
    assert days["radiology/pacs"]["2026-11-20"] == "degraded"
    assert days["research/router"]["2026-11-29"] == "bad"
    assert set(days["laptop/viewer"].values()) == {"nodata"}
    assert "<script" not in dom  # the hostile detail stayed text
    assert "refused: connection refused &lt;script&gt;" in dom
    assert re.search(r"2026-11-10 10:00:00</td><td>2026-11-10 10:30:00", dom)

    shot = chromium.screenshot(path.as_uri(), tmp_path / "report.png", size=(1280, 2400))
    colours = png_colours(shot)
    assert len(colours) > 50, "screenshot looks blank"
    for name in ("up", "down", "maintenance", "nodata", "degraded"):
        assert colours[hex_rgb(COLOURS[name])] > 100, f"no {name} colour on screen"


def test_flapping_month_lists_the_longest_outages(tmp_path: Path) -> None:
    """A check flapping all month (4,320 outages) still reports quickly: the outage table
    lists the 200 longest in time order and says how many shorter ones it left out."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "storage: h.sqlite\nenvironments:\n  - name: prod\n    tier: production\n"
        "    services:\n      - name: pacs\n        checks:\n"
        "          - {name: echo, kind: tcp, host: 127.0.0.1, port: 104, interval: 60s, timeout: 5s}\n"
    )
    config = load_config(path)
    store = HistoryStore(config.storage)
    try:
        start = at("2026-11-01T00:00")
        for slot in range(30 * 144):  # ten-minute slots: up 5 min, down 5 min (one 7 min)
            t = start + slot * 600
            store.record(("prod", "pacs", "echo"), "tcp", CheckResult(True, 0.01, None, "", t), 600)
            down_at = t + (180 if slot == 1000 else 300)
            store.record(
                ("prod", "pacs", "echo"),
                "tcp",
                CheckResult(False, 0.01, FailureReason.TIMEOUT, "", down_at),
                600,
            )
        report = build_report(config, store, parse_period("2026-11"), at("2026-12-02T00:00"))
    finally:
        store.close()
    (pacs,) = report.environments[0].services
    assert len(pacs.outages) == 4320
    page = render_report(report)
    assert page.count('class="outage"') == 200
    assert "4120 shorter outages" in page
    listed = re.findall(r'<tr class="outage"><td>([^<]+)</td>', page)
    assert listed == sorted(listed) and "2026-11-07 22:43:00" in listed  # the 7-min one
