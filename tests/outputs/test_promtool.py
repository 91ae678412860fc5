"""The generated rules and the shipped configs, checked by Prometheus's and Alertmanager's own
tools: `promtool check rules/config`, the `promtool test rules` suites in tests/promtool/, and
`amtool check-config` / `amtool config routes test`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monai_slo.config.model import load_config
from monai_slo.outputs.rules import RULES_FILE, render_rules
from tests.fixtures_dicom import require_binary

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "tests" / "promtool"
SHIPPED_RULES = REPO / "deploy" / "prometheus" / RULES_FILE
SHIPPED_PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
SHIPPED_ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
STRIPPED = "monai-slo.noannotations.rules.yml"
# The same config with alerting.quorum 2, for quorum.test.yml.
QUORUM2_CONFIG = SUITES / "config-quorum2.yaml"
QUORUM2_STRIPPED = "monai-slo.quorum2.noannotations.rules.yml"


def stripped(text: str) -> str:
    """The rule file without annotations."""
    document = yaml.safe_load(text)
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return yaml.safe_dump(document, sort_keys=False)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def suite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suites beside the rules generated from tests/promtool/config.yaml, plus a copy of
    those rules without annotations (promtool compares every annotation of an expected alert;
    only annotations.test.yml spells them out), and the stripped rules of the quorum-2
    config."""
    directory = tmp_path_factory.mktemp("promtool")
    text = render_rules(load_config(SUITES / "config.yaml"))
    (directory / RULES_FILE).write_text(text)
    (directory / STRIPPED).write_text(stripped(text))
    (directory / QUORUM2_STRIPPED).write_text(stripped(render_rules(load_config(QUORUM2_CONFIG))))
    for suite in SUITES.glob("*.test.yml"):
        shutil.copy(suite, directory)
    return directory


def test_promtool_accepts_shipped_and_generated_rules(suite_dir: Path) -> None:
    """`promtool check rules` (with its duplicate-rule lint) passes the shipped rules and the
    rules of the test config."""
    promtool = require_binary("promtool")
    for path in (SHIPPED_RULES, suite_dir / RULES_FILE):
        result = run(promtool, "check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_sample_prometheus_config() -> None:
    """deploy/prometheus/prometheus.yml is valid and loads the shipped rules beside it."""
    promtool = require_binary("promtool")
    result = run(promtool, "check", "config", str(SHIPPED_PROMETHEUS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


@pytest.mark.parametrize("suite", sorted(p.name for p in SUITES.glob("*.test.yml")))
def test_promtool_suite(suite_dir: Path, suite: str) -> None:
    """Each suite in tests/promtool passes `promtool test rules`: alerts fire above their
    thresholds and not just below, need both windows, respect maintenance and probers."""
    promtool = require_binary("promtool")
    result = run(promtool, "test", "rules", str(suite_dir / suite))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_suite_catches_a_wrong_threshold(suite_dir: Path, tmp_path: Path) -> None:
    """The burn suite fails against rules whose page threshold is slightly too low: the
    'just below' series would fire (the suites can fail)."""
    promtool = require_binary("promtool")
    broken = (suite_dir / STRIPPED).read_text().replace("> 14.4", "> 14.2")
    (tmp_path / STRIPPED).write_text(broken)
    shutil.copy(suite_dir / "burn.test.yml", tmp_path)
    result = run(promtool, "test", "rules", str(tmp_path / "burn.test.yml"))
    assert result.returncode != 0
    assert 'service="long-below"' in result.stderr


def test_amtool_accepts_the_shipped_alertmanager_config() -> None:
    """`amtool check-config` passes deploy/alertmanager/alertmanager.yml."""
    amtool = require_binary("amtool")
    result = run(amtool, "check-config", str(SHIPPED_ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("alertname=MonaiSloErrorBudgetBurn severity=page tier=production", "pager"),
        ("alertname=MonaiSloGpuFatal severity=page tier=production", "pager"),
        ("alertname=MonaiSloErrorBudgetBurn severity=ticket tier=production", "tickets"),
        ("alertname=MonaiSloCheckDown severity=ticket tier=production", "tickets"),
        ("alertname=MonaiSloErrorBudgetBurn severity=page tier=staging", "tickets"),
        ("alertname=MonaiSloErrorBudgetBurn severity=page tier=workstation", "null"),
        ("alertname=MonaiSloCheckDown severity=ticket tier=development", "null"),
        ("alertname=MonaiSloCheckDown severity=ticket tier=desktop", "null"),
        ("alertname=MonaiSloMaintenance severity=info tier=production", "null"),
    ],
)
def test_alertmanager_routes_by_severity_and_tier(labels: str, receiver: str) -> None:
    """Production pages page, production tickets and all of staging open tickets,
    best-effort tiers and maintenance notices reach nobody."""
    amtool = require_binary("amtool")
    result = run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={SHIPPED_ALERTMANAGER}",
        *labels.split(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]
