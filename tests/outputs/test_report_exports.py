"""``report --format html|pdf|csv|json``: every format names each outage's reason, states the
accounting method, and carries the HTML summary's figures.

A month of history written through HistoryStore.record(), one result a minute: pacs/echo times
out on the 10th and is refused on the 20th (two outages, two reasons), one CLI maintenance
window planned by ``alice``, one incident.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.cli import main
from monai_slo.commands.report import report_command
from monai_slo.config.model import Config, load_config
from monai_slo.history.store import HistoryStore
from monai_slo.outputs.report import AvailabilityReport, build_report, parse_period
from monai_slo.outputs.report_csv import COLUMNS, neutralise, render_csv
from monai_slo.outputs.report_data import ACCOUNTING_METHOD, percent, render_json
from monai_slo.outputs.report_html import render_report
from tests.fixtures_browser import figures

MINUTE = 60.0
STALENESS = 2 * 60 + 5
NOW = "2026-12-02T00:00"
TIMEOUT_DETAIL = "no answer within 5s"
REFUSED_DETAIL = "connection refused by 10.0.0.7:104"

CONFIG = """\
storage: history.sqlite
environments:
  - name: radiology
    tier: production
    objective: 99.9
    services:
      - name: pacs
        checks:
          - {name: echo, kind: tcp, host: 127.0.0.1, port: 104, interval: 60s, timeout: 5s}
  - name: research
    tier: staging
    services:
      - name: router
        checks:
          - {name: echo, kind: tcp, host: 127.0.0.1, port: 11112, interval: 60s, timeout: 5s}
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _record(
    store: HistoryStore,
    key: tuple[str, str, str],
    downs: Iterable[tuple[str, str, FailureReason, str]],
) -> None:
    ranges = [(at(a), at(b), reason, detail) for a, b, reason, detail in downs]
    t, stop = at("2026-11-01T00:00"), at("2026-12-01T00:00")
    while t < stop:
        hit = next((r for r in ranges if r[0] <= t < r[1]), None)
        result = (
            CheckResult(True, 0.01, None, "", t)
            if hit is None
            else CheckResult(False, 0.01, hit[2], hit[3], t)
        )
        store.record(key, "tcp", result, STALENESS)
        t += MINUTE


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Config:
    directory = tmp_path_factory.mktemp("exports")
    (directory / "config.yaml").write_text(CONFIG)
    config = load_config(directory / "config.yaml")
    store = HistoryStore(config.storage)
    try:
        _record(
            store,
            ("radiology", "pacs", "echo"),
            [
                ("2026-11-10T10:00", "2026-11-10T10:30", FailureReason.TIMEOUT, TIMEOUT_DETAIL),
                ("2026-11-20T08:00", "2026-11-20T08:45", FailureReason.REFUSED, REFUSED_DETAIL),
            ],
        )
        _record(store, ("research", "router", "echo"), [])
        store.add_maintenance(
            "radiology",
            "pacs",
            at("2026-11-15T02:00"),
            at("2026-11-15T04:00"),
            reason="PACS upgrade",
            now=at("2026-11-14T09:00"),
            author="alice",
        )
        store.open_incident(
            "radiology",
            "pacs",
            "PACS archive unreachable",
            author="bob",
            now=at("2026-11-20T08:10"),
        )
    finally:
        store.close()
    return config


def _report(config: Config) -> AvailabilityReport:
    store = HistoryStore(config.storage, read_only=True)
    try:
        return build_report(config, store, parse_period("2026-11"), at(NOW))
    finally:
        store.close()


def _both_reasons_named(text: str) -> None:
    assert TIMEOUT_DETAIL in text and "timeout" in text
    assert REFUSED_DETAIL in text and "refused" in text


def test_html_json_and_csv_name_both_outages_and_the_method(month: Config) -> None:
    report = _report(month)
    page, document, table = render_report(report), render_json(report), render_csv(report)
    for text in (page, document, table):
        _both_reasons_named(text)
        assert "alice" in text  # who planned the window
        assert ACCOUNTING_METHOD in text
    assert '<footer class="method"' in page


def test_json_is_the_whole_model_with_the_html_figures(month: Config) -> None:
    report = _report(month)
    shown = figures(render_report(report))
    document = json.loads(render_json(report))
    assert document["schema"] == "monai-slo-report/1"
    assert document["period"]["start"] == "2026-11-01T00:00:00Z"
    assert document["accounting_method"]["summary"] == ACCOUNTING_METHOD
    services = {f"{s['environment']}/{s['service']}": s for s in document["services"]}
    assert set(services) == set(shown) == {"radiology/pacs", "research/router"}
    for key, service in services.items():
        html = shown[key]
        assert percent(service["availability"]) == html["availability"]
        assert f"{service['unplanned_down_seconds'] / 60:.1f}" == html["unplanned"]
        assert f"{service['no_data_seconds'] / 60:.1f}" == html["nodata"]
        assert f"{service['maintenance_down_seconds'] / 60:.1f}" == html["maintenance-down"]
        assert percent(service["budget_consumed"], 1) == html["budget"]
        assert service["status"] == html["met"]
    pacs = services["radiology/pacs"]
    assert pacs["unplanned_down_seconds"] == 75 * MINUTE
    assert pacs["met"] is False  # 75 min > 0.1 % of (30 d - 2 h)
    timeout, refused = pacs["outages"]
    assert timeout["start"] == "2026-11-10T10:00:00Z"
    assert timeout["checks"][0]["reasons"][0] == {
        "at": "2026-11-10T10:00:00Z",
        "reason": "timeout",
        "detail": TIMEOUT_DETAIL,
    }
    assert refused["checks"][0]["reason"] == "refused"
    assert refused["incidents"] == [pacs["incidents"][0]["id"]]
    (window,) = pacs["maintenance"]
    assert (window["source"], window["created_by"], window["reason"]) == (
        "cli",
        "alice",
        "PACS upgrade",
    )
    assert document["rollup_notice"] is None


def test_csv_has_one_row_per_service_with_the_html_figures(month: Config) -> None:
    report = _report(month)
    shown = figures(render_report(report))
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    assert len(rows) == 2 and tuple(rows[0]) == COLUMNS
    for row in rows:
        html = shown[f"{row['environment']}/{row['service']}"]
        assert row["availability_percent"] + "%" == html["availability"]
        assert row["unplanned_down_minutes"] == html["unplanned"]
        assert row["maintenance_down_minutes"] == html["maintenance-down"]
        assert row["no_data_minutes"] == html["nodata"]
        assert row["budget_consumed_percent"] + "%" == html["budget"]
        assert row["objective_met"] == html["met"]
        assert row["objective_percent"] + "%" == html["objective"]
        assert row["period"] == "2026-11"
    pacs = rows[0]
    assert pacs["outage_count"] == "2" and pacs["unplanned_down_minutes"] == "75.0"
    assert "echo: timeout: " + TIMEOUT_DETAIL in pacs["outages"]
    assert "echo: refused: " + REFUSED_DETAIL in pacs["outages"]
    assert "incident #1: PACS archive unreachable" in pacs["outages"]


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("pacs", "pacs"),
        ("99.907", "99.907"),
    ],
)
def test_formula_cells_are_neutralised(cell: str, shown: str) -> None:
    assert neutralise(cell) == shown


def test_every_cell_of_a_hostile_report_is_neutralised(month: Config) -> None:
    """Config names cannot start with a formula character today; text from elsewhere (a
    renamed service here) at a cell's start still reaches the spreadsheet as text."""
    report = _report(month)
    env = report.environments[0]
    pacs = env.services[0]
    hostile = replace(pacs, service=replace(pacs.service, name="=cmd|' /C calc'!A0"))
    report = replace(report, environments=(replace(env, services=(hostile,)),))
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    cells = [cell for row in rows[1:] for cell in row]
    assert "'=cmd|' /C calc'!A0" in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@")]


def test_default_names_and_stdout(
    month: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for fmt in ("csv", "json"):
        assert report_command(month, "2026-11", None, now=at(NOW), fmt=fmt) == 0
        assert (tmp_path / f"monai-slo-report-2026-11.{fmt}").stat().st_size > 0
    capsys.readouterr()
    assert report_command(month, "2026-11", Path("-"), now=at(NOW), fmt="json") == 0
    assert json.loads(capsys.readouterr().out)["period"]["label"] == "2026-11"
    # Through the CLI: --format picks the renderer, -o - writes only the document to stdout.
    assert (
        main(
            ["report", "-c", str(month.source), "--period", "2026-11", "--format", "csv", "-o", "-"]
        )
        == 0
    )
    assert next(csv.reader(io.StringIO(capsys.readouterr().out))) == list(COLUMNS)


def test_pdf_without_chromium_is_one_line_and_exit_2(
    month: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("MONAI_SLO_CHROMIUM", raising=False)
    assert report_command(month, "2026-11", None, now=at(NOW), fmt="pdf") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chromium" in err and "MONAI_SLO_CHROMIUM" in err
    monkeypatch.setenv("MONAI_SLO_CHROMIUM", str(tmp_path / "no-such-chromium"))
    assert report_command(month, "2026-11", None, now=at(NOW), fmt="pdf") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-chromium" in err
    assert not list(tmp_path.glob("*.pdf"))


def test_pdf_from_a_failing_chromium_is_one_line_and_exit_2(
    month: Config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'ERROR: cannot open display' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MONAI_SLO_CHROMIUM", str(fake))
    assert report_command(month, "2026-11", None, now=at(NOW), fmt="pdf") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exited 1" in err and "cannot open display" in err


@pytest.mark.slow
def test_pdf_names_both_outages_with_the_method_on_every_page(
    month: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Printed by the real headless Chromium; read back with poppler's pdftotext and rendered
    with pdftoppm (first page kept as tmp_path/page-1.png for a look)."""
    if shutil.which("chromium") is None or shutil.which("pdftotext") is None:
        from tests.fixtures_env import missing_peer

        missing_peer("chromium and poppler-utils (scripts/install-test-deps.sh installs them)")
    monkeypatch.chdir(tmp_path)
    assert report_command(month, "2026-11", None, now=at(NOW), fmt="pdf") == 0
    pdf = tmp_path / "monai-slo-report-2026-11.pdf"
    assert pdf.read_bytes().startswith(b"%PDF-")
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    _both_reasons_named(" ".join(text.split()))
    pages = [page for page in text.split("\f") if page.strip()]
    assert len(pages) >= 2
    for number, page in enumerate(pages, 1):
        flat = " ".join(page.split())
        assert "Time-weighted availability" in flat and f"Page {number} of {len(pages)}" in flat
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")],
        check=True,
    )
    assert (tmp_path / "page-1.png").stat().st_size > 0
