"""`monai-slo openslo`: OpenSLO v1 documents checked against a JSON Schema transcribed from the
spec (openslo_v1_subset.schema.json beside this file), and their PromQL evaluated by the real
promtool against series shaped like the daemon's."""

from __future__ import annotations

import copy
import datetime
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from monai_slo.cli import main
from monai_slo.config.model import load_config
from monai_slo.outputs.openslo import (
    OpenSloError,
    calendar_time_window,
    openslo_documents,
    rolling_duration,
)
from tests.fixtures_dicom import require_binary

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).with_name("openslo_v1_subset.schema.json")).read_text())
CONFIGS = [
    REPO / "config" / "example.yaml",
    REPO / "tests" / "promtool" / "config.yaml",
    REPO / "tests" / "promtool" / "config-quorum2.yaml",
]
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

SMALL = """
storage: history.sqlite
defaults: {interval: 10s, timeout: 5s}
environments:
  - name: Radiology_Prod
    tier: production
    objective: 99.95
    window: 7d
    services:
      - name: pacs
        checks:
          - {name: echo, kind: tcp, host: 127.0.0.1, port: 104}
          - {name: web, kind: http, url: "http://127.0.0.1:8042/", latency: {threshold: 250ms, objective: 99.5}}
  - name: ws
    tier: workstation
    services:
      - name: label
        checks:
          - {name: info, kind: http, url: "http://127.0.0.1:8000/info/"}
"""


def _config(tmp_path: Path, text: str = SMALL) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def _errors(document: dict[str, Any]) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(document)]


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert "Transcribed" in SCHEMA["$comment"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_document_of_the_shipped_configs_is_valid_openslo_v1(path: Path) -> None:
    """A Service per service, an SLO per objective and per latency objective, all valid."""
    config = load_config(path)
    documents = openslo_documents(config).documents
    for document in documents:
        assert _errors(document) == [], document["metadata"]["name"]
    kinds = [d["kind"] for d in documents]
    assert kinds.count("Service") == len(list(config.services()))
    with_objective = sum(1 for s in config.services() if s.objective is not None)
    with_latency = sum(1 for c in config.checks() if c.config.latency is not None)
    assert kinds.count("SLO") == with_objective + with_latency
    names = [d["metadata"]["name"] for d in documents]
    assert len(set(names)) == len(names)
    services = {d["metadata"]["name"] for d in documents if d["kind"] == "Service"}
    assert {d["spec"]["service"] for d in documents if d["kind"] == "SLO"} <= services


def test_the_schema_refuses_what_the_spec_refuses(tmp_path: Path) -> None:
    """Each mutation of a valid SLO breaks one rule of the spec and the schema says so."""
    slo = next(
        d for d in openslo_documents(load_config(_config(tmp_path))).documents if d["kind"] == "SLO"
    )
    assert _errors(slo) == []

    def mutated(change: Any) -> dict[str, Any]:
        document = copy.deepcopy(slo)
        change(document)
        return document

    spec = "spec"
    broken = {
        "percent as target": lambda d: d[spec]["objectives"][0].update(target=99.95),
        "upper-case name": lambda d: d["metadata"].update(name="Radiology_Prod"),
        "two windows": lambda d: d[spec]["timeWindow"].append(d[spec]["timeWindow"][0]),
        "seconds window": lambda d: d[spec]["timeWindow"][0].update(duration="30s"),
        "no slice window": lambda d: d[spec]["objectives"][0].pop("timeSliceWindow"),
        "unknown method": lambda d: d[spec].update(budgetingMethod="Timeslice"),
        "misspelt field": lambda d: d[spec].update(objective=d[spec].pop("objectives")),
        "threshold without op": lambda d: d[spec]["objectives"][0].pop("op"),
        "v1alpha": lambda d: d.update(apiVersion="openslo/v1alpha"),
    }
    for what, change in broken.items():
        assert _errors(mutated(change)), what


def test_objectives_are_exact_decimals_and_the_window_is_rolling(tmp_path: Path) -> None:
    """99.95 % is target 0.9995 (not 0.9994999999999999), 7d is a rolling 7d window; the
    Timeslices method names its slice; best-effort tiers get a Service and no SLO."""
    documents = openslo_documents(load_config(_config(tmp_path))).documents
    by_name = {d["metadata"]["name"]: d for d in documents}
    assert sorted(by_name) == [
        "radiology-prod-pacs",
        "radiology-prod-pacs-availability",
        "radiology-prod-pacs-web-latency",
        "ws-label",
    ]
    availability = by_name["radiology-prod-pacs-availability"]["spec"]
    assert availability["timeWindow"] == [{"duration": "7d", "isRolling": True}]
    assert availability["budgetingMethod"] == "Timeslices"
    objective = availability["objectives"][0]
    assert (objective["target"], objective["timeSliceWindow"]) == (0.9995, "1m")
    assert json.dumps(objective["target"]) == "0.9995"
    latency = by_name["radiology-prod-pacs-web-latency"]
    assert latency["spec"]["objectives"][0]["target"] == 0.995
    assert latency["metadata"]["labels"]["check"] == "web"
    assert (
        "<= bool 0.25"
        in latency["spec"]["indicator"]["spec"]["thresholdMetric"]["metricSource"]["spec"]["query"]
    )


def test_windows_and_names_openslo_cannot_write(tmp_path: Path) -> None:
    """Windows in whole minutes only; long names are cut to 63 characters and stay unique."""
    assert [rolling_duration(s) for s in (2592000, 129600, 5400, 60)] == [
        "30d",
        "36h",
        "90m",
        "1m",
    ]
    with pytest.raises(OpenSloError, match="whole minutes"):
        rolling_duration(90.5)
    long = "s" * 60
    text = SMALL.replace("name: pacs", f"name: {long}a").replace("name: label", f"name: {long}b")
    text = text.replace("name: ws", "name: Radiology_Prod2")
    names = [
        d["metadata"]["name"]
        for d in openslo_documents(load_config(_config(tmp_path, text))).documents
    ]
    assert all(len(n) <= 63 for n in names)
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("window", "duration"),
    [("calendar_month", "1M"), ("calendar_week", "1w"), ("calendar_quarter", "1Q")],
)
def test_a_calendar_window_is_a_calendar_aligned_time_window(
    tmp_path: Path, window: str, duration: str
) -> None:
    """`window: calendar_month` with `timezone:` is a calendar-aligned window in that zone,
    anchored at a Monday that starts a month and a quarter; valid against the schema."""
    text = SMALL.replace("window: 7d", f"window: {window}\n    timezone: Europe/Berlin")
    config = load_config(_config(tmp_path, text))
    slos = [d for d in openslo_documents(config).documents if d["kind"] == "SLO"]
    assert len(slos) == 2
    for slo in slos:
        assert _errors(slo) == []
        assert slo["spec"]["timeWindow"] == [
            {
                "duration": duration,
                "calendar": {"startTime": "2024-01-01 00:00:00", "timeZone": "Europe/Berlin"},
                "isRolling": False,
            }
        ]
    assert calendar_time_window("calendar_month", "UTC")[0]["calendar"]["timeZone"] == "UTC"
    monday = datetime.date(2024, 1, 1)
    assert (monday.weekday(), monday.day, monday.month % 3) == (0, 1, 1)


def test_cli_writes_yaml_json_and_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout YAML by default (a multi-document stream), -o json the same documents as a JSON
    list, -o DIR a file; a window OpenSLO cannot write is exit 2 with one line."""
    path = _config(tmp_path)
    assert main(["openslo", "-c", str(path)]) == 0
    from_yaml = list(yaml.safe_load_all(capsys.readouterr().out))
    assert main(["openslo", "-c", str(path), "-o", "json"]) == 0
    from_json = json.loads(capsys.readouterr().out)
    assert from_json == from_yaml
    assert len(from_json) == 4
    assert main(["openslo", "-c", str(path), "-o", str(tmp_path / "out")]) == 0
    written = list(yaml.safe_load_all((tmp_path / "out" / "openslo.yaml").read_text()))
    assert written == from_yaml
    capsys.readouterr()
    odd = _config(tmp_path, SMALL.replace("window: 7d", "window: 1h30s"))
    assert main(["openslo", "-c", str(odd)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "whole minutes" in err


def _query(document: dict[str, Any]) -> str:
    query = document["spec"]["indicator"]["spec"]["thresholdMetric"]["metricSource"]["spec"]
    return str(query["query"])


def _promtool_test(tmp_path: Path, tests: list[dict[str, Any]]) -> None:
    promtool = require_binary("promtool")
    suite = tmp_path / "openslo.test.yml"
    suite.write_text(
        yaml.safe_dump({"rule_files": [], "evaluation_interval": "1m", "tests": tests})
    )
    result = subprocess.run(
        [promtool, "test", "rules", str(suite)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _series(metric: str, values: str, **labels: str) -> dict[str, str]:
    matchers = ",".join(f'{k}="{v}"' for k, v in {"job": "monai-slo", **labels}.items())
    return {"series": f"{metric}{{{matchers}}}", "values": values}


SERVICE = {"environment": "prod", "tier": "production", "service": "pacs"}
OUT = '{environment="prod",job="monai-slo",service="pacs",tier="production"}'


def _expect(query: str, at: str, value: float | None, labels: str = OUT) -> dict[str, Any]:
    samples = [] if value is None else [{"labels": labels, "value": value}]
    return {"expr": query, "eval_time": at, "exp_samples": samples}


@pytest.mark.parametrize("quorum", ["config.yaml", "config-quorum2.yaml"])
def test_availability_query_in_promtool(tmp_path: Path, quorum: str) -> None:
    """The SLI reads 1 while up, 0 while down (every prober down, or two of three with quorum
    2), and nothing in maintenance: promtool evaluates the exported query."""
    config = load_config(REPO / "tests" / "promtool" / quorum)
    slo = next(
        d
        for d in openslo_documents(config).documents
        if d["metadata"]["name"] == "prod-pacs-availability"
    )
    query = _query(slo)
    # minute:   0 1 2 3 4 5
    # a:        1 0 0 0 1 1
    # b:        1 1 0 0 1 1
    # c:        1 1 1 0 1 1
    # maint:    0 0 0 0 1 0
    series = [
        _series("monai_slo_service_up", "1 0 0 0 1 1", instance="a", **SERVICE),
        _series("monai_slo_service_up", "1 1 0 0 1 1", instance="b", **SERVICE),
        _series("monai_slo_service_up", "1 1 1 0 1 1", instance="c", **SERVICE),
        _series("monai_slo_maintenance_active", "0 0 0 0 1 0", instance="a", **SERVICE),
    ]
    two_down = 0 if quorum == "config-quorum2.yaml" else 1
    expected = [(0, 1), (1, 1), (2, two_down), (3, 0), (4, None), (5, 1)]
    _promtool_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [_expect(query, f"{m}m", v) for m, v in expected],
            }
        ],
    )


def test_latency_query_in_promtool(tmp_path: Path) -> None:
    """1 while the last run succeeded within the threshold (1s), 0 when slower or failed."""
    config = load_config(REPO / "tests" / "promtool" / "config.yaml")
    slo = next(
        d
        for d in openslo_documents(config).documents
        if d["metadata"]["name"] == "prod-pacs-web-latency"
    )
    labels = {**SERVICE, "check": "web", "kind": "http"}
    out = (
        '{check="web",environment="prod",job="monai-slo",kind="http",service="pacs",'
        'tier="production"}'
    )
    series = [
        _series("monai_slo_check_duration_seconds", "0.2 1 1.5 0.3", instance="a", **labels),
        _series("monai_slo_check_up", "1 1 1 0", instance="a", **labels),
        _series("monai_slo_maintenance_active", "0 0 0 0", instance="a", **SERVICE),
    ]
    expected = [(0, 1), (1, 1), (2, 0), (3, 0)]
    _promtool_test(
        tmp_path,
        [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [_expect(_query(slo), f"{m}m", v, out) for m, v in expected],
            }
        ],
    )


def test_a_budget_under_one_time_slice_is_exported_with_a_warning(tmp_path: Path) -> None:
    """99.999 % over 30 days allows 26 s: less than one 1-minute slice, which the export says
    (the document is still written); 99.95 % over 7 days (5 minutes) says nothing."""
    assert openslo_documents(load_config(_config(tmp_path))).warnings == []
    text = SMALL.replace("objective: 99.95", "objective: 99.999").replace(
        "window: 7d", "window: 30d"
    )
    export = openslo_documents(load_config(_config(tmp_path, text)))
    assert len(export.warnings) == 1
    assert "Radiology_Prod/pacs: 99.999% allows 26s" in export.warnings[0]
    assert any(d["kind"] == "SLO" for d in export.documents)
