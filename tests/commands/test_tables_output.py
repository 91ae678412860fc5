"""The terminal tables fit a terminal and never cut a number; `-o json|yaml` carry the same
figures for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.history.store import HistoryStore

ENVIRONMENT = "radiology-production-west"
SERVICES = ("clinical-pacs-router-primary", "ai-inference-gateway")

CONFIG = f"""\
storage: {{storage}}
environments:
  - name: {ENVIRONMENT}
    tier: production
    objective: 99.9
    window: 30d
    services:
      - name: {SERVICES[0]}
        checks:
          - {{{{name: dicom-echo-primary, kind: tcp, host: 127.0.0.1, port: 9}}}}
      - name: {SERVICES[1]}
        checks:
          - {{{{name: triton-ready, kind: tcp, host: 127.0.0.1, port: 9}}}}
"""


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two services with two hours of 30 s runs that ended ten minutes ago (so the figures
    stay put between calls); the router was down for 20 minutes, more than an hour ago."""
    folder = tmp_path_factory.mktemp("tables")
    config = folder / "config.yaml"
    config.write_text(CONFIG.format(storage=folder / "history.sqlite"))
    store = HistoryStore(folder / "history.sqlite")
    now = time.time()
    for step in range(240):
        at = now - 7800 + step * 30
        router_down = 1000 <= step * 30 < 2200
        for service, check in zip(SERVICES, ("dicom-echo-primary", "triton-ready"), strict=True):
            down = router_down and service == SERVICES[0]
            result = CheckResult(
                not down,
                0.004,
                FailureReason.REFUSED if down else None,
                "connection refused by 127.0.0.1:9" if down else "ok",
                at,
            )
            store.record((ENVIRONMENT, service, check), "tcp", result, staleness=90.0)
    assert store.flush()
    store.close()
    return config


def _status(config: Path, *args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monai_slo", "status", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": str(columns)},
        check=False,
    )


def _figures(data: dict[str, object]) -> list[str]:
    """The numbers the default table shows, formatted as it formats them."""
    shown = []
    for service in data["services"]:  # type: ignore[attr-defined]
        windows = service["windows"]
        for label in ("1h", "1d", service["slo_window"]):
            ratio = windows[label]["availability_ratio"]
            shown.append(f"{ratio * 100:.3f}%")
        remaining = service["error_budget_remaining_ratio"]
        shown.append(
            f"overspent {1 - remaining:.1f}x" if remaining < 0 else f"{remaining * 100:.1f}% left"
        )
    return shown


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_status_fits_and_cuts_no_number(history: Path, columns: int) -> None:
    """At 80, 100 and 200 columns every line fits and every figure is shown whole."""
    data = json.loads(_status(history, "-o", "json").stdout)
    done = _status(history, columns=columns)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    for figure in _figures(data):
        assert figure in done.stdout, (figure, done.stdout)
    assert "…" not in done.stdout
    assert "burn:" in done.stdout  # the footnote says what burn means


def test_status_json_and_yaml_carry_the_same_figures(history: Path) -> None:
    """-o json and -o yaml parse to the same data, with the router's outage in it."""
    as_json = json.loads(_status(history, "-o", "json").stdout)
    as_yaml = yaml.safe_load(_status(history, "-o", "yaml").stdout)

    def figures(data: dict[str, object]) -> list[object]:  # coverage moves with the clock
        return [
            (s["service"], s["state"], s["error_budget_remaining_ratio"],
             {k: w["availability_ratio"] for k, w in s["windows"].items()
              if k in ("1h", "1d", "30d")})
            for s in data["services"]  # type: ignore[attr-defined]
        ]  # fmt: skip

    assert figures(as_json) == figures(as_yaml)
    assert [c["failures"] for c in as_json["checks"]] == [c["failures"] for c in as_yaml["checks"]]
    router = next(s for s in as_json["services"] if s["service"] == SERVICES[0])
    other = next(s for s in as_json["services"] if s["service"] == SERVICES[1])
    assert router["windows"]["1h"]["availability_ratio"] == pytest.approx(1.0)
    assert router["windows"]["1d"]["availability_ratio"] == pytest.approx(1 - 1200 / 7200, abs=0.01)
    assert router["state"] == "no_data"  # its last result is older than its staleness
    assert other["windows"]["1d"]["availability_ratio"] == pytest.approx(1.0)
    assert router["error_budget_remaining_ratio"] < other["error_budget_remaining_ratio"]
    checks = {c["check"]: c for c in as_json["checks"]}
    assert checks["dicom-echo-primary"]["failures"] == 40


def test_wide_shows_every_column(history: Path) -> None:
    """--wide adds the tier, coverage, kind and duration columns."""
    done = _status(history, "--wide", columns=250)
    assert done.returncode == 0, done.stderr
    for header in ("TIER", "COVERAGE", "KIND", "TIME"):
        assert header in done.stdout


def test_tiers_and_check_speak_json(tmp_path: Path) -> None:
    """`tiers -o json` lists every tier; `check -o json` the same verdicts as its table."""
    tiers = json.loads(
        subprocess.run(
            [sys.executable, "-m", "monai_slo", "tiers", "-o", "json"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
    )  # fmt: skip
    assert [t["tier"] for t in tiers][-1] == "production"
    production = tiers[-1]
    assert production["allowed_downtime_seconds"]["99"]["30d"] == pytest.approx(0.01 * 30 * 86400)
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.format(storage=tmp_path / "h.sqlite"))
    done = subprocess.run(
        [sys.executable, "-m", "monai_slo", "check", "-c", str(config), "-o", "json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1  # port 9 refuses
    rows = json.loads(done.stdout)
    assert {r["check"] for r in rows} == {"dicom-echo-primary", "triton-ready"}
    assert all(r["reason"] == "refused" and r["success"] is False for r in rows)
