"""Burn-rate factors scaled to the SLO window, pinned without promtool: the table's factors are
for 30 days, and a 7-day environment's alerts fire at factor x 7 / 30 (the same share of its
budget), in the scaled rows, in the generated rule expressions and in the unreachable-row
warnings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monai_slo.config.model import Config, load_config
from monai_slo.outputs.rules import generate_rules, unreachable_warnings
from monai_slo.slo.burn_windows import load_burn_windows

DAY = 86400
WORKBOOK = [14.4, 6.0, 3.0, 1.0]  # burn_windows.yaml, for 30 days
THRESHOLD = re.compile(r"\) > ([0-9.e+-]+)\n")


def _config(tmp_path: Path, objective: float = 99.9) -> Config:
    """A 30-day and a 7-day production environment, one TCP check each."""
    environments = "".join(
        f"  - name: {name}\n    tier: production\n    objective: {objective}\n"
        f"    window: {window}\n    services:\n      - name: s\n        checks:\n"
        "          - {name: c, kind: tcp, host: 127.0.0.1, port: 9}\n"
        for name, window in (("month", "30d"), ("week", "7d"))
    )
    path = tmp_path / "config.yaml"
    path.write_text(f"retention: 90d\nenvironments:\n{environments}")
    return load_config(path)


def test_a_seven_day_window_scales_every_factor_by_seven_thirtieths() -> None:
    """For 7 days the workbook's 14.4, 6, 3 and 1 become 3.36, 1.4, 0.7 and 0.2333: each row
    still fires at 2 %, 5 %, 10 % and 10 % of the (7-day) budget spent in its long window."""
    rows = load_burn_windows().for_window(7 * DAY)
    assert [r.factor for r in rows] == pytest.approx([3.36, 1.4, 0.7, 7 / 30])
    assert [r.budget_share for r in rows] == pytest.approx([0.02, 0.05, 0.1, 0.1])
    for scaled in rows:
        assert scaled.factor * scaled.row.long / (7 * DAY) == pytest.approx(scaled.budget_share)


def test_the_thirty_day_window_keeps_the_workbook_factors() -> None:
    """At the table's own base window the factors are the workbook's, unscaled."""
    assert [r.factor for r in load_burn_windows().for_window(30 * DAY)] == WORKBOOK


def _burn_thresholds(config: Config, environment: str) -> list[tuple[str, str, float]]:
    """(long window, short window, threshold) of each burn alert of one environment, the
    threshold read back from the PromQL (the same number on both windows)."""
    found = []
    for group in generate_rules(config)["groups"]:
        for rule in group["rules"]:
            labels = rule.get("labels", {})
            if rule.get("alert") != "MonaiSloErrorBudgetBurn":
                continue
            if labels["environment"] != environment:
                continue
            long_threshold, short_threshold = THRESHOLD.findall(rule["expr"])
            assert long_threshold == short_threshold, rule["expr"]
            found.append((labels["long_window"], labels["short_window"], float(long_threshold)))
    return found


def test_generated_burn_alerts_use_the_scaled_factor(tmp_path: Path) -> None:
    """The rule file's burn alerts compare against the factor scaled to each environment's
    own SLO window: 14.4 / 6 / 3 / 1 for 30 days, 3.36 / 1.4 / 0.7 / 0.233333 for 7 days."""
    config = _config(tmp_path)
    month = _burn_thresholds(config, "month")
    week = _burn_thresholds(config, "week")
    windows = [("1h", "5m"), ("6h", "30m"), ("1d", "2h"), ("3d", "6h")]
    assert [(long, short) for long, short, _ in month] == windows
    assert [(long, short) for long, short, _ in week] == windows
    assert [t for _, _, t in month] == WORKBOOK
    assert [t for _, _, t in week] == pytest.approx([3.36, 1.4, 0.7, 7 / 30], rel=1e-5)


def test_unreachable_warnings_judge_the_scaled_factor(tmp_path: Path) -> None:
    """A row whose 30-day factor (300) a total outage at 99 % (burn rate 100) cannot reach is
    reported for the 30-day environment only: scaled to 7 days it is 70, which it can."""
    windows = load_burn_windows(
        "base_window: 30d\nrows:\n  - {severity: page, long: 1h, short: 5m, factor: 300}\n"
    )
    warnings = unreachable_warnings(_config(tmp_path, objective=99), windows)
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("month/s: the page alert over 1h and 5m can never fire")
    assert "threshold 300 (scaled to a 30d window)" in warnings[0]
