"""Rule generation: the shipped rules are current, the burn-rate scaling keeps the budget share,
every alert carries what routing and on-call need. promtool runs the rules in test_promtool.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from monai_slo.commands.rules import rules_command
from monai_slo.config.model import AlertingOptions, load_config
from monai_slo.outputs.rules import (
    RULES_FILE,
    generate_rules,
    prom_duration,
    render_rules,
    unreachable_warnings,
)
from monai_slo.slo.burn_windows import BurnWindows, load_burn_windows, max_burn_rate

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"
SHIPPED = REPO / "deploy" / "prometheus" / RULES_FILE
TEST_CONFIG = REPO / "tests" / "promtool" / "config.yaml"
DAY = 86400.0


def alerts(document: dict[str, Any], group: str, name: str | None = None) -> list[dict[str, Any]]:
    rules = next(g["rules"] for g in document["groups"] if g["name"] == group)
    return [r for r in rules if "alert" in r and name in (None, r["alert"])]


def small_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text("storage: h.sqlite\nretention: 400d\nenvironments:\n" + body)
    return path


def test_shipped_rules_are_current() -> None:
    """deploy/prometheus/monai-slo.rules.yml is exactly what config/example.yaml generates."""
    expected = render_rules(load_config(EXAMPLE))
    assert SHIPPED.read_text() == expected, (
        "deploy/prometheus is stale: run "
        "`monai-slo rules -c config/example.yaml -o deploy/prometheus`"
    )


@pytest.mark.parametrize("window_days", [7, 28, 30, 90])
def test_scaled_factors_keep_the_budget_share(window_days: int) -> None:
    """For any SLO window a row fires at the same share of that window's budget spent over its
    long window as the workbook's row does for 30 days (2 %, 5 %, 10 %, 10 %)."""
    table = load_burn_windows()
    window = window_days * DAY
    rows = table.for_window(window)
    assert [s.row for s in rows] == list(table.rows)
    for scaled in rows:
        spent = scaled.factor * scaled.row.long / window
        assert spent == pytest.approx(scaled.budget_share)
    assert [round(s.budget_share, 4) for s in rows] == [0.02, 0.05, 0.1, 0.1]
    assert rows[0].factor == pytest.approx(14.4 * window_days / 30)


def test_rows_longer_than_the_slo_window_are_dropped() -> None:
    """A 1-day SLO window keeps the 1h, 6h and 1d rows and drops the 3d one."""
    rows = load_burn_windows().for_window(DAY)
    assert [r.row.long for r in rows] == [3600, 21600, DAY]
    assert [r.factor for r in rows] == pytest.approx([14.4 / 30, 6 / 30, 3 / 30])


def test_the_shipped_table_is_the_workbook_table() -> None:
    """burn_windows.yaml holds the SRE workbook rows for a 30-day window."""
    table = load_burn_windows()
    assert table.base_window == 30 * DAY
    assert [(r.severity, r.long, r.short, r.factor) for r in table.rows] == [
        ("page", 3600, 300, 14.4),
        ("page", 21600, 1800, 6),
        ("ticket", DAY, 7200, 3),
        ("ticket", 3 * DAY, 21600, 1),
    ]


def test_a_table_with_a_window_the_daemon_lacks_is_rejected() -> None:
    """A row whose window the daemon does not expose fails validation naming the field."""
    with pytest.raises(ValidationError) as caught:
        load_burn_windows(
            "base_window: 30d\nrows:\n  - {severity: page, long: 4h, short: 5m, factor: 10}\n"
        )
    assert caught.value.errors()[0]["loc"] == ("rows", 0, "long")
    assert "expected a window the daemon exposes" in str(caught.value)
    with pytest.raises(ValidationError, match="short"):
        load_burn_windows(
            "base_window: 30d\nrows:\n  - {severity: page, long: 5m, short: 1h, factor: 10}\n"
        )


def test_burn_alerts_only_for_tiers_with_an_objective() -> None:
    """Production and staging get one burn-rate alert per row; a best-effort workstation none,
    though its checks still get check-down alerts."""
    document = generate_rules(load_config(EXAMPLE))
    production = alerts(document, "monai-slo:radiology-production", "MonaiSloErrorBudgetBurn")
    assert [a["labels"]["severity"] for a in production] == ["page", "page", "ticket", "ticket"]
    assert len(alerts(document, "monai-slo:radiology-staging", "MonaiSloErrorBudgetBurn")) == 4
    workstation = "monai-slo:research-workstation"
    assert alerts(document, workstation, "MonaiSloErrorBudgetBurn") == []
    # one per distinct check interval (monai-label, jupyterlab, workstation-ssh share one)
    intervals = {
        ref.config.interval
        for env in load_config(EXAMPLE).environments
        if env.name == "research-workstation"
        for service in env.services
        for ref in service.checks
    }
    assert len(alerts(document, workstation, "MonaiSloCheckDown")) == len(intervals) >= 1


def test_every_alert_carries_routing_labels_and_annotations() -> None:
    """Every alert has a severity and a summary; service alerts say the budget left and a
    runbook hint; the held-back ones are guarded by maintenance."""
    document = generate_rules(load_config(EXAMPLE), AlertingOptions(runbook_url="https://x/rb"))
    for group in document["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                # per-prober folds, or the fleet SLI (folded per instant, then windowed)
                assert rule["record"].endswith(("_over_probers", ":fleet"))
                continue
            assert rule["labels"]["severity"] in {"page", "ticket", "info"}
            assert rule["annotations"]["summary"]
            assert rule["annotations"]["runbook_url"] == "https://x/rb"
            if rule["alert"] in {
                "MonaiSloErrorBudgetBurn",
                "MonaiSloCheckDown",
                "MonaiSloGpuFatal",
            }:
                assert (
                    "monai_slo:error_budget_remaining_ratio" in rule["annotations"]["budget_left"]
                )
                assert rule["annotations"]["runbook"]
                assert "unless on (environment, service)" in rule["expr"]
                assert "monai_slo:maintenance_active:max_over_probers" in rule["expr"]


def test_check_down_waits_n_minus_one_intervals(tmp_path: Path) -> None:
    """MonaiSloCheckDown waits (N - 1) x the check's interval: N failed runs in a row."""
    config = load_config(
        small_config(
            tmp_path,
            "  - name: e\n    tier: production\n    services:\n      - name: s\n        checks:\n"
            "          - {name: a, kind: tcp, host: 127.0.0.1, port: 1, interval: 10s}\n"
            "          - {name: b, kind: tcp, host: 127.0.0.1, port: 1, interval: 45s}\n",
        )
    )
    five = alerts(generate_rules(config, AlertingOptions(check_down_after=5)), "monai-slo:e")
    assert [a["for"] for a in five if a["alert"] == "MonaiSloCheckDown"] == ["40s", "3m"]
    one = alerts(generate_rules(config, AlertingOptions(check_down_after=1)), "monai-slo:e")
    assert all("for" not in a for a in one if a["alert"] == "MonaiSloCheckDown")


def test_no_data_waits_for_the_slowest_check(tmp_path: Path) -> None:
    """MonaiSloNoData waits 5m, or longer when a check's result may stand longer than that."""
    config = load_config(
        small_config(
            tmp_path,
            "  - name: e\n    tier: staging\n    services:\n      - name: s\n        checks:\n"
            "          - {name: a, kind: tcp, host: 127.0.0.1, port: 1, interval: 10m}\n"
            "      - name: t\n        checks:\n"
            "          - {name: a, kind: tcp, host: 127.0.0.1, port: 1, interval: 10s}\n",
        )
    )
    no_data = alerts(generate_rules(config), "monai-slo:e", "MonaiSloNoData")
    assert [a["for"] for a in no_data] == ["20m5s", "5m"]
    assert no_data[0]["labels"] == {
        "severity": "ticket",
        "tier": "staging",
        "environment": "e",
        "service": "s",
        "job": "monai-slo",
    }


def test_alerting_options_reject_bad_values() -> None:
    """Bad alerting options fail validation naming the field."""
    with pytest.raises(ValidationError) as caught:
        AlertingOptions(check_down_after=0)
    assert caught.value.errors()[0]["loc"] == ("check_down_after",)
    with pytest.raises(ValidationError) as caught:
        AlertingOptions.model_validate({"job": 'a"b'})
    assert caught.value.errors()[0]["loc"] == ("job",)


def test_daemon_alerts_use_the_job_and_the_highest_tier(tmp_path: Path) -> None:
    """Daemon-level alerts watch the configured job and route like the config's highest tier,
    so a workstation-only prober alerts nobody."""
    config = load_config(
        small_config(
            tmp_path,
            "  - name: w\n    tier: workstation\n    services:\n      - name: s\n        checks:\n"
            "          - {name: a, kind: tcp, host: 127.0.0.1, port: 1}\n",
        )
    )
    daemon = alerts(generate_rules(config, AlertingOptions(job="probers")), "monai-slo:daemon")
    assert {a["labels"]["tier"] for a in daemon} == {"workstation"}
    assert all('job="probers"' in a["expr"] for a in daemon)


def test_unreachable_thresholds_are_warned(tmp_path: Path) -> None:
    """99 % over a year: the 14.4x row scales to 175x, more than a total outage (100x) burns."""
    config = load_config(
        small_config(
            tmp_path,
            "  - name: e\n    tier: production\n    objective: 99\n    window: 365d\n"
            "    services:\n      - name: s\n        checks:\n"
            "          - {name: a, kind: tcp, host: 127.0.0.1, port: 1}\n",
        )
    )
    warnings = unreachable_warnings(config)
    assert len(warnings) == 1
    assert "e/s: the page alert over 1h and 5m can never fire" in warnings[0]
    assert max_burn_rate(99) == pytest.approx(100)
    assert unreachable_warnings(load_config(EXAMPLE)) == []


def test_custom_table(tmp_path: Path) -> None:
    """A table passed in replaces the shipped one (windows and factors are data)."""
    table = BurnWindows.model_validate(
        yaml.safe_load(
            "base_window: 7d\nrows:\n  - {severity: page, long: 30m, short: 5m, factor: 10}\n"
        )
    )
    document = generate_rules(load_config(TEST_CONFIG), windows=table)
    burn = alerts(document, "monai-slo:stage", "MonaiSloErrorBudgetBurn")
    assert len(burn) == 1
    assert 'window="30m"}) > 10\n' in burn[0]["expr"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (1.5, "1s500ms"), (20, "20s"), (90, "1m30s"), (7200, "2h"), (90061, "1d1h1m1s")],
)
def test_prom_duration(seconds: float, text: str) -> None:
    """Durations are written the way Prometheus parses them."""
    assert prom_duration(seconds) == text


def test_rules_command_writes_the_file_or_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rules -o DIR` writes DIR/monai-slo.rules.yml; without -o the same text goes to stdout."""
    config = load_config(TEST_CONFIG)
    assert rules_command(config, tmp_path / "out") == 0
    written = (tmp_path / "out" / RULES_FILE).read_text()
    assert written.startswith("# Prometheus rules for monai-slo, generated by")
    capsys.readouterr()
    assert rules_command(config, None) == 0
    assert capsys.readouterr().out == written
    groups = [g["name"] for g in yaml.safe_load(written)["groups"]]
    assert groups == ["monai-slo:prod", "monai-slo:stage", "monai-slo:ws", "monai-slo:daemon"]
