"""A calendar-month SLO window in Europe/Berlin: the error budget is spent over the month and
full again at the local midnight that starts the next one, read from a real daemon's /metrics
an instant before and after that midnight. October 2026 ends a daylight-saving period (clocks
go back on 25 October), so it lasts 31 days and one hour; the budget's allowance is over
exactly that."""

from __future__ import annotations

import http.client
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.daemon.scheduler import start_offset
from monai_slo.history.evaluation import evaluate
from monai_slo.history.store import HistoryStore
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.report import build_report, parse_period
from monai_slo.outputs.report_html import render_report
from monai_slo.outputs.rules import RULES_FILE, render_rules
from monai_slo.periods import CalendarWindow
from tests.fixtures_env import missing_peer

KEY = ("hospital", "pacs", "port")
OBJECTIVE = 0.999
# Midnight starting November in Berlin (CET, UTC+1): 23:00 UTC on 31 October.
BOUNDARY = datetime(2026, 10, 31, 23, 0, tzinfo=UTC).timestamp()
OCTOBER_START = datetime(2026, 9, 30, 22, 0, tzinfo=UTC).timestamp()  # CEST, UTC+2
OCTOBER = BOUNDARY - OCTOBER_START
NOVEMBER = 30 * 86400.0
OUTAGE = 1800.0  # on 20 October
STEP = 600.0

CONFIG = """\
listen: 127.0.0.1:0
storage: {storage}
environments:
  - name: hospital
    tier: production
    objective: 99.9
    window: calendar_month
    timezone: Europe/Berlin
    services:
      - name: pacs
        checks:
          # Runs once a day, first well after this test has scraped: the history below is all.
          - {{name: port, kind: tcp, host: 127.0.0.1, port: 9, interval: 1d, timeout: 5s}}
"""


def test_october_2026_in_berlin_is_31_days_and_an_hour() -> None:
    window = CalendarWindow("calendar_month", "Europe/Berlin")
    assert OCTOBER == 31 * 86400 + 3600
    assert window.period(BOUNDARY - 1) == (OCTOBER_START, BOUNDARY)
    assert window.period(BOUNDARY) == (BOUNDARY, BOUNDARY + NOVEMBER)
    # The spring change shortens March by the hour October gains.
    march_end = datetime(2026, 3, 31, 22, 0, tzinfo=UTC).timestamp()
    start, end = window.period(march_end - 1)
    assert (start, end) == (datetime(2026, 2, 28, 23, 0, tzinfo=UTC).timestamp(), march_end)
    assert end - start == 31 * 86400 - 3600


def _history(path: Path) -> None:
    """Up every ten minutes through October and into November, down for 30 minutes on 20
    October (a refused connection)."""
    store = HistoryStore(path)
    try:
        outage = datetime(2026, 10, 20, 9, 0, tzinfo=UTC).timestamp()
        t = OCTOBER_START - 3600
        while t < BOUNDARY + 3600:
            down = outage <= t < outage + OUTAGE
            reason = FailureReason.REFUSED if down else None
            store.record(KEY, "tcp", CheckResult(not down, 0.01, reason, "", t), 2 * STEP)
            t += STEP
        store.flush()
    finally:
        store.close()


def _scrape(port: int) -> dict[tuple[str, str], float]:
    """(family, window label or "") -> value for the pacs service."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        conn.close()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("service") == "pacs" and "check" not in sample.labels:
                found[sample.name, sample.labels.get(m.WINDOW, "")] = sample.value
    return found


def _page(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, list[float]]]:
    storage = tmp_path / "history.sqlite"
    _history(storage)
    config = load_config(tmp_path / "c.yaml", CONFIG.format(storage=storage))
    ref = next(config.checks())
    assert start_offset(ref) > 600, "the check would run during the test"
    now = [BOUNDARY - 1.0]
    running = Daemon(config, clock=lambda: now[0])
    running.start()
    try:
        yield running, now
    finally:
        running.stop()


def test_budget_resets_at_midnight_berlin_on_metrics(daemon: tuple[Daemon, list[float]]) -> None:
    running, now = daemon
    port = running.server.port
    allowed = (1 - OBJECTIVE) * OCTOBER  # 2,682 s: the DST hour counts

    before = _scrape(port)
    assert before[m.SLO_WINDOW_SECONDS, ""] == OCTOBER
    assert before[m.ERROR_BUDGET_REMAINING_RATIO, ""] == pytest.approx(1 - OUTAGE / allowed)
    measured = BOUNDARY - 1 - OCTOBER_START
    assert before[m.AVAILABILITY_RATIO, "calendar_month"] == pytest.approx(1 - OUTAGE / measured)
    assert (m.AVAILABILITY_RATIO, "30d") not in before  # one SLO window per service
    assert (m.BURN_RATE, "1h") in before  # the alert windows stay rolling

    page = _page(port)
    assert "this calendar month (since 1 Oct 2026 00:00 Europe/Berlin)" in page

    now[0] = BOUNDARY + 1.0
    after = _scrape(port)
    assert after[m.SLO_WINDOW_SECONDS, ""] == NOVEMBER
    assert after[m.ERROR_BUDGET_REMAINING_RATIO, ""] == 1.0
    assert after[m.AVAILABILITY_RATIO, "calendar_month"] == 1.0
    assert after[m.DATA_COVERAGE_RATIO, "calendar_month"] == 1.0
    assert "this calendar month (since 1 Nov 2026 00:00 Europe/Berlin)" in _page(port)


def test_budget_resets_in_evaluation(tmp_path: Path) -> None:
    """The same through :func:`evaluate` (what `status` reads), without the cache."""
    storage = tmp_path / "history.sqlite"
    _history(storage)
    config = load_config(tmp_path / "c.yaml", CONFIG.format(storage=storage))
    store = HistoryStore(storage, read_only=True)
    try:
        (before,) = evaluate(config, store, BOUNDARY - 1.0)
        (after,) = evaluate(config, store, BOUNDARY)
        report = build_report(config, store, parse_period("2026-10"), BOUNDARY)
    finally:
        store.close()
    assert before.slo_window.label == "calendar_month"
    assert before.slo_window.period == (OCTOBER_START, BOUNDARY)
    assert before.budget_remaining == pytest.approx(1 - OUTAGE / ((1 - OBJECTIVE) * OCTOBER))
    assert after.slo_window.period == (BOUNDARY, BOUNDARY + NOVEMBER)
    assert after.budget_remaining == 1.0
    assert after.slo_window.stats.availability is None  # nothing measured yet: not a fake 100 %
    # The report's October is Berlin's, as the daemon's budget: the same share consumed.
    (environment,) = report.environments
    assert environment.period is not None
    assert (environment.period.start, environment.period.end) == (OCTOBER_START, BOUNDARY)
    (pacs,) = environment.services
    assert pacs.budget_consumed == pytest.approx(1 - before.budget_remaining)
    assert len(pacs.days) == 31
    assert [d.day for d in pacs.days][:2] == ["2026-10-01", "2026-10-02"]
    assert pacs.days[24].end - pacs.days[24].start == 25 * 3600  # clocks go back on the 25th
    html = render_report(report)
    assert "calendar month, Europe/Berlin" in html
    assert 'data-zone="Europe/Berlin"' in html


def test_rules_stay_on_rolling_windows(tmp_path: Path) -> None:
    """Burn-rate alerting is the same for a calendar month as for a rolling 30 days: the rules
    of the two configs are identical, and promtool accepts them."""
    storage = tmp_path / "history.sqlite"
    calendar = load_config(tmp_path / "a.yaml", CONFIG.format(storage=storage))
    rolling = load_config(
        tmp_path / "a.yaml",
        CONFIG.format(storage=storage).replace(
            "window: calendar_month\n    timezone: Europe/Berlin", "window: 30d"
        ),
    )
    assert rolling.environments[0].calendar is None
    rules = render_rules(calendar)
    assert rules == render_rules(rolling)
    path = tmp_path / RULES_FILE
    path.write_text(rules)
    promtool = shutil.which("promtool")
    if promtool is None:
        missing_peer("promtool")
    assert promtool is not None
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
