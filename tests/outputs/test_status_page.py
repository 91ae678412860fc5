"""The status page at /: states in words, availability vs objective, budget left, a 90-day strip.

Figures are checked exactly from real HistoryStore history at a fixed clock; the page served
by a real daemon is loaded in real headless Chromium.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import Config, load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.daemon.server import MetricsServer
from monai_slo.history.store import HistoryStore
from monai_slo.outputs.report_html import COLOURS
from monai_slo.outputs.status_page import StatusPage
from tests.fixtures_browser import (
    Chromium,
    day_classes,
    external_references,
    figures,
    hex_rgb,
    png_colours,
)
from tests.fixtures_dicom import free_port
from tests.fixtures_http import HttpPeer

MINUTE = 60.0


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


NOW = at("2026-11-25T12:00")

CONFIG = """\
storage: history.sqlite
environments:
  - name: prod
    tier: production
    objective: 99
    services:
      - name: pacs
        checks: [{name: echo, kind: tcp, host: 127.0.0.1, port: 104, interval: 60s, timeout: 5s}]
      - name: router
        checks: [{name: echo, kind: tcp, host: 127.0.0.1, port: 105, interval: 60s, timeout: 5s}]
      - name: archive
        checks: [{name: echo, kind: tcp, host: 127.0.0.1, port: 106, interval: 60s, timeout: 5s}]
      - name: worklist
        checks: [{name: echo, kind: tcp, host: 127.0.0.1, port: 107, interval: 60s, timeout: 5s}]
  - name: dev
    tier: development
    services:
      - name: viewer
        checks: [{name: web, kind: http, url: "http://127.0.0.1:3000/", interval: 60s, timeout: 5s}]
"""


def record(
    store: HistoryStore,
    key: tuple[str, str, str],
    start: str,
    end: float,
    down: Iterable[tuple[float, float]] = (),
    step: float = MINUTE,
    detail: str = "",
) -> None:
    """One result per ``step`` from ``start`` to ``end``; failed inside the ``down`` ranges."""
    ranges = list(down)
    t = at(start)
    while t < end:
        failed = any(a <= t < b for a, b in ranges)
        result = CheckResult(
            not failed, 0.01, FailureReason.TIMEOUT if failed else None, detail if failed else "", t
        )
        store.record(key, "tcp", result, 2 * step + 5)
        t += step


@pytest.fixture
def history(tmp_path: Path) -> Iterable[tuple[Config, HistoryStore]]:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    config = load_config(path)
    store = HistoryStore(config.storage)
    # pacs: ten days, two hours down three days ago.
    record(
        store,
        ("prod", "pacs", "echo"),
        "2026-11-15T12:00",
        NOW,
        [(at("2026-11-22T10:00"), at("2026-11-22T12:00"))],
    )
    # router: a day, failing for the last five minutes (so DOWN now).
    record(
        store,
        ("prod", "router", "echo"),
        "2026-11-24T12:00",
        NOW,
        [(NOW - 5 * MINUTE, NOW)],
        detail="no answer within 5s <i>",
    )
    # worklist: down in the last hour, all of it inside maintenance started from the CLI.
    record(store, ("prod", "worklist", "echo"), "2026-11-25T00:00", NOW, [(NOW - 3600, NOW)])
    store.add_maintenance("prod", "worklist", NOW - 3600, NOW + 3600, reason="swap <disk>", now=NOW)
    record(store, ("dev", "viewer", "web"), "2026-11-25T00:00", NOW)
    # archive: never ran.
    yield config, store
    store.close()


def test_states_figures_and_banner(history: tuple[Config, HistoryStore]) -> None:
    """Each service shows its state as a word, availability over its SLO window against the
    objective, and the budget left; maintenance outranks down; the banner names what is down."""
    config, store = history
    page = StatusPage(lambda: config, store, clock=lambda: NOW).html()
    shown = figures(page)
    assert shown["prod/pacs"] == {
        "state": "UP",
        "availability": "99.167%",  # 120 min down of 10 days measured
        "objective": "99%",
        "budget": "72.2%",  # 1 - 120 / (1 % of 30 days)
        "availability-days": "99.167%",
    }
    assert shown["prod/router"]["state"] == "DOWN"
    assert shown["prod/router"]["availability"] == "99.653%"  # 5 of 1440 min
    assert shown["prod/router"]["budget"] == "98.8%"
    assert shown["prod/router"]["failing"] == "Failing now: echo: timeout (no answer within 5s <i>)"
    assert shown["prod/archive"]["state"] == "NO DATA"
    assert shown["prod/archive"]["availability"] == "—"
    assert shown["prod/worklist"]["state"] == "MAINTENANCE"
    assert shown["prod/worklist"]["availability"] == "100.000%"  # the hour down is planned
    assert shown["dev/viewer"] == {
        "state": "UP",
        "availability": "100.000%",
        "objective": "best effort",
        "availability-days": "100.000%",
    }
    assert shown[""]["banner"] == (
        "1 of 5 services DOWN: router (prod) (1 in planned maintenance, 1 without data)"
    )
    assert "Planned maintenance until" in page and "swap &lt;disk&gt;" in page
    assert '<meta http-equiv="refresh" content="30">' in page
    assert external_references(page) == []
    assert "<i>" not in page


def test_ninety_day_strip(history: tuple[Config, HistoryStore]) -> None:
    """One bar per UTC day for 90 days ending today: no data before history, a day with an
    outage coloured by its availability against the objective, days without downtime green."""
    config, store = history
    days = day_classes(StatusPage(lambda: config, store, clock=lambda: NOW).html())
    pacs = days["prod/pacs"]
    first = datetime.fromtimestamp(NOW, UTC).date() - timedelta(days=89)
    assert list(pacs) == [str(first + timedelta(days=n)) for n in range(90)]
    assert {pacs[str(first + timedelta(days=n))] for n in range(79)} == {"nodata"}
    assert pacs["2026-11-22"] == "degraded"  # 91.7 %: below 99 %, above 90 %
    assert pacs["2026-11-15"] == pacs["2026-11-25"] == "ok"
    assert days["prod/archive"]["2026-11-25"] == "nodata"
    assert days["prod/router"]["2026-11-25"] == "ok"  # 5 min of 12 h: 99.3 %


def test_strip_is_cached_per_service_for_a_while(history: tuple[Config, HistoryStore]) -> None:
    """The 90-day strip costs one history query per service and is reused until it expires;
    the current state is evaluated afresh on every request."""
    config, store = history
    page = StatusPage(lambda: config, store, clock=lambda: NOW)
    page.html()
    assert page.strip_queries == 5
    page.html()
    assert page.strip_queries == 5
    expired = StatusPage(lambda: config, store, clock=lambda: NOW, strip_ttl=0)
    expired.html()
    expired.html()
    assert expired.strip_queries == 10


def test_render_cost_with_a_busy_history(tmp_path: Path) -> None:
    """20 services whose checks flapped every two hours for 90 days (2,160 segments each):
    a warm render makes no strip query, and both renders stay within ceilings that only a
    per-day rescan of the history (90x the work) would break. Measured here: cold ~1.5 s,
    warm ~0.5 s, most of it the same evaluation /metrics does per scrape."""
    checks = "".join(
        f"      - name: s{n}\n        checks:\n"
        f"          - {{name: a, kind: tcp, host: 127.0.0.1, port: 1, interval: 60s, timeout: 5s}}\n"
        for n in range(20)
    )
    path = tmp_path / "c.yaml"
    path.write_text(
        f"storage: h.sqlite\nenvironments:\n  - name: prod\n    tier: production\n    services:\n{checks}"
    )
    config = load_config(path)
    store = HistoryStore(config.storage)
    try:
        start = NOW - 90 * 86400
        for n in range(20):
            for slot in range(90 * 12):
                t = start + slot * 7200
                for offset, ok in ((0, True), (6600, False)):
                    result = CheckResult(ok, 0.01, None, "", t + offset)
                    store.record(("prod", f"s{n}", "a"), "tcp", result, 7200)
        store.flush()
        page = StatusPage(lambda: config, store, clock=lambda: NOW)
        started = time.perf_counter()
        page.render()
        cold = time.perf_counter() - started
        assert page.strip_queries == 20
        started = time.perf_counter()
        body = page.render()
        warm = time.perf_counter() - started
        assert page.strip_queries == 20
    finally:
        store.close()
    assert body.count(b'data-class="bad"') == 20 * 90  # 10 min down every 2 h: 91.7 % a day
    assert cold < 30, cold
    assert warm < 10, warm


def test_server_serves_page_with_headers_and_500_on_error() -> None:
    """/ answers text/html; charset=utf-8 with Cache-Control: no-store; a page that fails to
    render answers 500 (and the listener keeps serving); without a page, / is 404."""

    def broken() -> bytes:
        raise RuntimeError("boom")

    for page, status in ((lambda: b"<p>hi</p>", 200), (broken, 500), (None, 404)):
        server = MetricsServer("127.0.0.1", 0, CollectorRegistry(), ready=lambda: True, page=page)
        server.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read()
            assert response.status == status
            if status == 200:
                assert body == b"<p>hi</p>"
                assert response.getheader("Content-Type") == "text/html; charset=utf-8"
                assert response.getheader("Cache-Control") == "no-store"
            conn.request("GET", "/-/healthy")
            assert conn.getresponse().status == 200
            conn.close()
        finally:
            server.stop()


def _get(port: int, path: str = "/") -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def wait_until(condition: object, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)  # poll interval; the loop re-checks the condition


@pytest.mark.slow
def test_daemon_status_page_in_chromium(tmp_path: Path, chromium: Chromium) -> None:
    """A real daemon checking a real HTTP peer and a closed port serves / on its metrics
    listener; Chromium renders it with UP, DOWN and MAINTENANCE in words, the figures, the
    90-day strip from earlier history, and the state colours on screen."""
    with HttpPeer() as web:
        port, closed = free_port(), free_port()
        now = datetime.now(UTC)
        window = f"{{start: '{(now - timedelta(hours=1)).isoformat()}', end: '{(now + timedelta(hours=1)).isoformat()}', reason: 'disk swap'}}"
        path = tmp_path / "c.yaml"
        path.write_text(
            f"listen: 127.0.0.1:{port}\nstorage: history.sqlite\nflush_interval: 1s\n"
            "defaults: {interval: 0.5s, timeout: 0.4s}\n"
            "environments:\n  - name: radiology\n    tier: production\n    window: 1d\n"
            "    services:\n"
            f"      - name: viewer\n        checks: [{{name: web, kind: http, url: '{web.url}/'}}]\n"
            f"      - name: router\n        checks: [{{name: echo, kind: tcp, host: 127.0.0.1, port: {closed}}}]\n"
            f"      - name: archive\n        maintenance: [{window}]\n"
            f"        checks: [{{name: port, kind: tcp, host: 127.0.0.1, port: {web.port}}}]\n"
        )
        config = load_config(path)
        # Earlier history: the viewer was down for two hours five days ago.
        seed = HistoryStore(config.storage)
        today = time.time() // 86400 * 86400
        outage_day = today - 5 * 86400
        t = today - 10 * 86400
        while t < today:
            ok = not outage_day + 3600 <= t < outage_day + 3 * 3600
            seed.record(
                ("radiology", "viewer", "web"), "http", CheckResult(ok, 0.01, None, "", t), 700
            )
            t += 600
        seed.close()

        daemon = Daemon(config)
        daemon.start()
        try:

            def settled() -> bool:
                shown = figures(_get(port)[2])
                return (
                    shown.get("radiology/viewer", {}).get("state") == "UP"
                    and shown.get("radiology/router", {}).get("state") == "DOWN"
                    and shown.get("radiology/archive", {}).get("state") == "MAINTENANCE"
                )

            wait_until(settled, what="viewer UP, router DOWN, archive MAINTENANCE")
            status, headers, body = _get(port)
            assert status == 200
            assert headers["Content-Type"] == "text/html; charset=utf-8"
            assert headers["Cache-Control"] == "no-store"
            assert '<meta http-equiv="refresh" content="30">' in body
            assert external_references(body) == []

            url = f"http://127.0.0.1:{port}/"
            dom = chromium.dump_dom(url)
            shown = figures(dom)
            assert shown["radiology/router"]["state"] == "DOWN"
            assert shown["radiology/router"]["failing"].startswith("Failing now: echo: refused")
            assert shown["radiology/router"]["objective"] == "99.9%"
            assert shown["radiology/viewer"]["availability"] == "100.000%"
            assert shown["radiology/archive"]["state"] == "MAINTENANCE"
            assert shown[""]["banner"].startswith("1 of 3 services DOWN: router (radiology)")
            strip = day_classes(dom)["radiology/viewer"]
            assert len(strip) == 90
            outage = datetime.fromtimestamp(outage_day, UTC).strftime("%Y-%m-%d")
            assert strip[outage] == "bad"
            before = datetime.fromtimestamp(today - 20 * 86400, UTC).strftime("%Y-%m-%d")
            assert strip[before] == "nodata"

            shot = chromium.screenshot(url, tmp_path / "status.png", size=(1280, 1000))
            colours = png_colours(shot)
            assert len(colours) > 50, "screenshot looks blank"
            for name in ("up", "down", "maintenance", "nodata"):
                assert colours[hex_rgb(COLOURS[name])] > 200, f"no {name} colour on screen"
        finally:
            daemon.stop()
