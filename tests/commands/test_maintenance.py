"""Planned maintenance: config windows, CLI windows, exclusion from availability, the metric."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.cli import main
from monai_slo.config.maintenance import MaintenanceSpec, Window, merge
from monai_slo.config.model import load_config
from monai_slo.history.evaluation import evaluate, evaluate_service
from monai_slo.history.store import HistoryStore

KEY = ("prod", "pacs", "port")


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_recurring_window_in_its_time_zone() -> None:
    """'0 2 * * SUN' for 2h in Europe/Berlin is 01:00-03:00 UTC in winter."""
    spec = MaintenanceSpec(schedule="0 2 * * SUN", duration="2h", timezone="Europe/Berlin")  # type: ignore[arg-type]
    windows = spec.windows(_ts("2026-11-28T00:00:00+00:00"), _ts("2026-12-07T00:00:00+00:00"))
    starts = [datetime.fromtimestamp(w.start, UTC).isoformat() for w in windows]
    assert starts == ["2026-11-29T01:00:00+00:00", "2026-12-06T01:00:00+00:00"]
    assert all(w.end - w.start == 7200 for w in windows)


def test_recurring_window_started_before_range_is_included() -> None:
    """An occurrence that began before 'since' but is still running overlaps the range."""
    spec = MaintenanceSpec(schedule="0 2 * * *", duration="2h")  # type: ignore[arg-type]
    windows = spec.windows(_ts("2026-11-29T03:00:00+00:00"), _ts("2026-11-29T03:30:00+00:00"))
    assert [(w.start, w.end) for w in windows] == [
        (_ts("2026-11-29T02:00:00+00:00"), _ts("2026-11-29T04:00:00+00:00"))
    ]


def test_one_off_window_without_zone_uses_timezone() -> None:
    spec = MaintenanceSpec(start="2026-12-01T22:00", end="2026-12-02T01:00", timezone="UTC")  # type: ignore[arg-type]
    assert spec.windows(0, 2e10) == [
        Window(_ts("2026-12-01T22:00:00+00:00"), _ts("2026-12-02T01:00:00+00:00"), "")
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"schedule": "every sunday", "duration": "1h"}, "expected a cron expression"),
        ({"schedule": "0 2 * * *"}, "needs both schedule and duration"),
        ({"start": "2026-12-01T22:00", "end": "2026-12-01T21:00"}, "end must be after start"),
        ({"schedule": "0 2 * * *", "duration": "1h", "timezone": "Mars/Base"}, "IANA time zone"),
        (
            {"schedule": "0 2 * * *", "duration": "1h", "start": "2026-12-01T22:00"},
            "either schedule",
        ),
    ],
)
def test_invalid_windows(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MaintenanceSpec(**fields)  # type: ignore[arg-type]


def test_merge_overlapping_windows() -> None:
    """Overlapping windows are excluded once, not twice."""
    assert merge([Window(0, 10, ""), Window(5, 20, ""), Window(30, 40, "")]) == [(0, 20), (30, 40)]


def _config(tmp_path: Path, maintenance: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "listen: 127.0.0.1:0\nstorage: history.sqlite\n"
        "environments:\n  - name: prod\n    tier: production\n    window: 1d\n"
        f"{maintenance}"
        "    services:\n      - name: pacs\n"
        "        checks: [{name: port, kind: tcp, host: 127.0.0.1, port: 104, interval: 10s, timeout: 2s}]\n"
        "      - name: ris\n"
        "        checks: [{name: port, kind: tcp, host: 127.0.0.1, port: 105, interval: 10s, timeout: 2s}]\n"
    )
    return path


def _record_outage(store: HistoryStore, now: float) -> None:
    """Up for 10 min, down 10 min, up 10 min, ending now (results every 10 s)."""
    for offset in range(1800, 0, -10):
        ok = not (1200 >= offset > 600)
        result = CheckResult(ok, 0.01, None if ok else FailureReason.REFUSED, "", now - offset)
        store.record(KEY, "tcp", result, staleness=22)


def test_config_maintenance_excludes_outage(tmp_path: Path) -> None:
    """Downtime inside a configured window leaves both numerator and denominator."""
    now = time.time()
    start = datetime.fromtimestamp(now - 1200, UTC).isoformat()
    end = datetime.fromtimestamp(now - 600, UTC).isoformat()
    with_window = load_config(
        _config(
            tmp_path, f"    maintenance: [{{start: '{start}', end: '{end}', reason: upgrade}}]\n"
        )
    )
    without = load_config(_config(tmp_path))
    store = HistoryStore(with_window.storage)
    _record_outage(store, now)
    plain = evaluate_service(next(without.services()), store, now).slo_window.stats
    planned = evaluate_service(next(with_window.services()), store, now).slo_window.stats
    assert plain.down == pytest.approx(600, abs=10)
    assert planned.down == pytest.approx(0, abs=10)
    assert planned.up == pytest.approx(plain.up, abs=10)
    assert planned.availability == pytest.approx(1.0, abs=0.01)


def test_cli_maintenance_start_list_stop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A window started from the CLI is stored durably, shows as active, and ends on stop."""
    path = _config(tmp_path)
    assert (
        main(
            [
                "maintenance",
                "-c",
                str(path),
                "start",
                "--service",
                "pacs",
                "--for",
                "2h",
                "--reason",
                "PACS upgrade",
            ]
        )
        == 0
    )
    assert "maintenance #1 for prod/pacs" in capsys.readouterr().out
    config = load_config(path)
    store = HistoryStore(config.storage)
    reports = {r.service.name: r for r in evaluate(config, store, time.time())}
    assert reports["pacs"].maintenance_active
    assert not reports["ris"].maintenance_active
    store.close()
    assert main(["maintenance", "-c", str(path), "list"]) == 0
    listing = capsys.readouterr().out
    assert "PACS upgrade" in listing and "active" in listing
    assert main(["maintenance", "-c", str(path), "stop", "--service", "pacs"]) == 0
    store = HistoryStore(config.storage)
    reports = {r.service.name: r for r in evaluate(config, store, time.time())}
    assert not reports["pacs"].maintenance_active
    assert main(["maintenance", "-c", str(path), "stop", "--service", "pacs"]) == 1


def test_cli_environment_wide_window(tmp_path: Path) -> None:
    """--environment without --service covers every service of that environment."""
    path = _config(tmp_path)
    assert (
        main(["maintenance", "-c", str(path), "start", "--environment", "prod", "--for", "30m"])
        == 0
    )
    config = load_config(path)
    reports = evaluate(config, HistoryStore(config.storage), time.time())
    assert all(r.maintenance_active for r in reports)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "--service", "nope", "--for", "1h"], "no service matches"),
        (["start", "--for", "1h"], "name a service"),
    ],
)
def test_cli_maintenance_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["maintenance", "-c", str(_config(tmp_path)), *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_duration_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(
            [
                "maintenance",
                "-c",
                str(_config(tmp_path)),
                "start",
                "--service",
                "pacs",
                "--for",
                "soon",
            ]
        )
    assert info.value.code == 2


def test_running_daemon_sees_cli_maintenance(tmp_path: Path) -> None:
    """The daemon reads CLI windows from the shared database at scrape time: no restart needed."""
    from monai_slo.daemon.daemon import Daemon

    path = _config(tmp_path)
    daemon = Daemon(load_config(path))
    try:
        labels = {"environment": "prod", "tier": "production", "service": "pacs"}
        assert daemon.registry.get_sample_value("monai_slo_maintenance_active", labels) == 0
        assert (
            main(["maintenance", "-c", str(path), "start", "--service", "pacs", "--for", "1h"]) == 0
        )
        assert daemon.registry.get_sample_value("monai_slo_maintenance_active", labels) == 1
    finally:
        daemon.stop()
