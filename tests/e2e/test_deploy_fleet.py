"""The fleet's deploy files: the federation configs pass `promtool check config` (the central
one with the generated rules beside it), the vmagent scrape config and vmalert's arguments
with the generated rules pass their own dry runs, and every prober is a target of the job
the rules watch. The same shapes run for real in tests/e2e/test_fleet_engines.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from monai_slo.config.model import load_config
from monai_slo.outputs.rules import RULES_FILE, render_rules
from tests.fixtures_dicom import require_binary

REPO = Path(__file__).resolve().parents[2]
FEDERATION = REPO / "deploy" / "federation"
VICTORIA = REPO / "deploy" / "victoriametrics"
EXAMPLE = REPO / "config" / "example.yaml"


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_federation_configs_pass_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    for name in ("site-prometheus.yml", "central-prometheus.yml"):
        shutil.copy(FEDERATION / name, tmp_path / name)
    (tmp_path / RULES_FILE).write_text(render_rules(load_config(EXAMPLE)))
    for name in ("site-prometheus.yml", "central-prometheus.yml"):
        result = run(promtool, "check", "config", str(tmp_path / name))
        assert result.returncode == 0, result.stdout + result.stderr
    central = yaml.safe_load((FEDERATION / "central-prometheus.yml").read_text())
    (federate,) = central["scrape_configs"]
    assert federate["honor_labels"] is True and federate["metrics_path"] == "/federate"
    job = load_config(EXAMPLE).alerting.job
    assert federate["params"]["match[]"] == [f'{{job="{job}"}}']
    site = yaml.safe_load((FEDERATION / "site-prometheus.yml").read_text())
    assert "external_labels" not in site.get("global", {})
    assert [c["job_name"] for c in site["scrape_configs"]] == [job]


def test_victoriametrics_files_pass_dry_runs(tmp_path: Path) -> None:
    vmagent, vmalert = require_binary("vmagent"), require_binary("vmalert")
    result = run(vmagent, f"-promscrape.config={VICTORIA / 'vmagent-site.yml'}", "-dryRun")
    assert result.returncode == 0, result.stdout + result.stderr
    scrape = yaml.safe_load((VICTORIA / "vmagent-site.yml").read_text())
    assert [c["job_name"] for c in scrape["scrape_configs"]] == [load_config(EXAMPLE).alerting.job]
    rules = tmp_path / RULES_FILE
    rules.write_text(render_rules(load_config(EXAMPLE)))
    args = [
        line
        for line in (VICTORIA / "vmalert.args").read_text().splitlines()
        if line.startswith("-")
    ]
    assert any(a.startswith("-datasource.queryStep=") for a in args)
    args = [f"-rule={rules}" if a.startswith("-rule=") else a for a in args]
    result = run(vmalert, *args, "-dryRun")
    assert result.returncode == 0, result.stdout + result.stderr
