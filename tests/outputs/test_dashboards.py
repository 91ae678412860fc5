"""Grafana dashboards: generated from code, checked in and current, well formed, and every
panel's PromQL answered by a real Prometheus scraping a real daemon.

The end-to-end part runs the daemon in this process against a pynetdicom Verification SCP,
a local HTTP server (one path healthy, one answering 503 so failure series exist), an Orthanc
that study_flow canaries go to (one flow arriving, one waiting for an AI result that never
comes) and two fake GPUs behind the NVML boundary, has a real Prometheus scrape it every
second, and then
runs each panel target with the template variables substituted as Grafana would, asserting
a successful, non-empty answer. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monai_slo.checks.gpu.verdict import ACTIONS, VERDICTS
from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.outputs import dashboards
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.metrics import FIXED_FAMILIES
from monai_slo.testing.nvml import FakeNvml, use_nvml
from tests.fixtures_dicom import OrthancPeer, PynetdicomPeer, free_port, require_binary
from tests.fixtures_http import HttpPeer, Route
from tests.fixtures_prometheus import PrometheusServer, http_json

REPO = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = REPO / "grafana" / "dashboards"
PROVISIONING = REPO / "grafana" / "provisioning"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# What Grafana puts in for its own variables when it sends a query.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
METRIC = re.compile(r"\bmonai_slo[a-zA-Z0-9_:]*")
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+), (?P<label>\w+)\)$")
PROBER = "test-site"


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARD_DIR.glob("*.json"))
    }


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that queries (rows left out)."""
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return list(board["templating"]["list"])


def referenced(text: str) -> set[str]:
    return {a or b for a, b in VARIABLE.findall(text)}


def substitute(text: str, values: dict[str, str]) -> str:
    """``$var``/``${var}`` replaced as Grafana would: builtins, then the chosen values."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return BUILTINS[name] if name in BUILTINS else values[name]

    return VARIABLE.sub(replace, text)


def overlaps(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


# --- generated, current, well formed ------------------------------------------------------


def test_checked_in_dashboards_are_current() -> None:
    """grafana/dashboards/ holds exactly what `python -m monai_slo.outputs.dashboards` writes now:
    a change to the generator or a metric name without regenerating fails here."""
    rendered = dashboards.render_dashboards()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in DASHBOARD_DIR.glob("*.json")}
    assert (
        sorted(on_disk)
        == sorted(rendered)
        == [
            "monai-slo-gpu.json",
            "monai-slo-overview.json",
            "monai-slo-service.json",
        ]
    )
    stale = [name for name, text in rendered.items() if on_disk[name] != text]
    assert not stale, (
        f"regenerate with: python -m monai_slo.outputs.dashboards grafana/dashboards ({stale})"
    )


def test_daemon_runs_without_the_sdk() -> None:
    """Only the generator needs grafana-foundation-sdk: the CLI, daemon and collector
    import nothing from it (it is an optional extra)."""
    code = (
        "import sys\n"
        "import monai_slo.cli, monai_slo.daemon.daemon, monai_slo.outputs.metrics, monai_slo.outputs.metric_names\n"
        "assert not [n for n in sys.modules if n.startswith('grafana_foundation_sdk')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_main_writes_the_dashboards(tmp_path: Path) -> None:
    """The command line writes one JSON file per dashboard into the directory it is given."""
    assert dashboards.main([str(tmp_path / "out")]) == 0
    written = {path.name: json.loads(path.read_text()) for path in (tmp_path / "out").iterdir()}
    assert {board["uid"] for board in written.values()} == {
        dashboards.OVERVIEW_UID,
        dashboards.SERVICE_UID,
        dashboards.GPU_UID,
    }


def test_python_m_writes_the_checked_in_dashboards(tmp_path: Path) -> None:
    """`python -m monai_slo.outputs.dashboards DIR`, the command README and the provisioning
    file document, writes exactly the files checked in under grafana/dashboards/."""
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "monai_slo.outputs.dashboards", str(out)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        p.name: p.read_bytes() for p in DASHBOARD_DIR.glob("*.json")
    }


def test_each_board_is_a_module_of_its_own() -> None:
    """The package holds the panel kit and one module per board; each board module builds
    its board from the kit (a new board is a new module, not more lines in one file)."""
    package = Path(dashboards.__file__).parent
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "__main__"}
    assert modules == {"kit", "overview", "service", "gpu"}
    boards = {make.__module__.rsplit(".", 1)[-1] for make in dashboards.BOARDS.values()}
    assert boards == modules - {"kit"}


@pytest.mark.parametrize("name", sorted(dashboards.BOARDS))
def test_dashboard_structure(name: str) -> None:
    """Each dashboard: schemaVersion, uid, title and tag set; unique panel ids; panels on
    the 24-column grid without overlaps; every panel, target and annotation on the
    ${datasource} variable with a titled, non-empty query; refIds unique per panel."""
    board = load_dashboards()[name]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 39
    assert board["uid"] and board["title"] and dashboards.TAG in board["tags"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    for panel in board["panels"]:
        assert panel["title"].strip(), panel
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0, panel
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    for a, b in itertools.combinations(board["panels"], 2):
        assert not overlaps(a["gridPos"], b["gridPos"]), (a["title"], b["title"])
    for panel in panels(board):
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert panel.get("description"), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)) and all(refs), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for annotation in board["annotations"].get("list", []):
        assert annotation["datasource"] == DATASOURCE_REF and annotation["expr"]


def test_overlap_check_catches_overlapping_panels() -> None:
    """The grid check itself: side by side is fine, one cell shared is an overlap."""
    left = {"x": 0, "y": 0, "w": 12, "h": 8}
    assert not overlaps(left, {"x": 12, "y": 0, "w": 12, "h": 8})
    assert not overlaps(left, {"x": 0, "y": 8, "w": 24, "h": 1})
    assert overlaps(left, {"x": 11, "y": 7, "w": 2, "h": 2})


@pytest.mark.parametrize("name", sorted(dashboards.BOARDS))
def test_template_variables(name: str) -> None:
    """datasource first, then environment, tier, service, prober, instance: multi-value with
    All = .*, each a label_values() query using only variables defined before it; every
    variable a panel or annotation uses is defined (or one of Grafana's own)."""
    board = load_dashboards()[name]
    found = variables(board)
    assert found[0]["type"] == "datasource" and found[0]["query"] == "prometheus"
    names = [variable["name"] for variable in found]
    assert names[:6] == ["datasource", "environment", "tier", "service", "prober", "instance"]
    for index, variable in enumerate(found[1:], start=1):
        assert variable["type"] == "query" and variable["datasource"] == DATASOURCE_REF
        assert variable["multi"] and variable["includeAll"] and variable["allValue"] == ".*"
        match = LABEL_VALUES.match(variable["query"])
        assert match and match["label"] == variable["name"], variable["query"]
        assert referenced(variable["query"]) <= set(names[1:index]), variable["name"]
    used: set[str] = set()
    for panel in panels(board):
        for target in panel["targets"]:
            used |= referenced(target["expr"])
            used |= referenced(target.get("legendFormat", "")) - {"__all"}
    for annotation in board["annotations"].get("list", []):
        used |= referenced(annotation["expr"])
    assert used - set(BUILTINS) <= set(names), used - set(names)
    # Every dashboard narrows its panels by each service and prober variable.
    assert {"environment", "tier", "service", "prober", "instance"} <= used


def test_dashboard_uids_unique_and_drill_down_link_resolves() -> None:
    """Three distinct uids; the overview's service link opens the service dashboard."""
    boards = load_dashboards()
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == 3
    overview = json.dumps(boards["monai-slo-overview.json"])
    assert f"/d/{dashboards.SERVICE_UID}?" in overview
    assert dashboards.SERVICE_UID in uids


def test_slo_window_query_covers_every_alert_window() -> None:
    """The SLO-window selector falls back, window by window, to the alert windows the daemon
    computes (a 1d or 3d SLO window is one of them), and excludes them otherwise."""
    expr = dashboards.over_slo_window(m.AVAILABILITY_RATIO)
    assert 'window!~"5m|30m|1h|2h|6h|1d|3d"' in expr
    for label, seconds in (("5m", 300), ("1d", 86400), ("3d", 259200)):
        assert (
            f'window="{label}"}} and ignoring (window) ({m.SLO_WINDOW_SECONDS} == {seconds})'
            in (expr)
        )


def test_provisioning_files() -> None:
    """The datasource file provisions a Prometheus datasource; the dashboard provider reads
    JSON files from a directory into a MONAI SLO folder."""
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] and source["url"].startswith("http")
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "monai-slo.yaml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    assert provider["folder"] == "MONAI SLO"


def sample_names() -> set[str]:
    """Every series name the daemon exports or the rules record, as PromQL sees it: counters
    with _total, histograms with _bucket/_sum/_count, every other name as it is."""
    kinds = dict(FIXED_FAMILIES)
    names: set[str] = set()
    for key, value in vars(m).items():
        if not (key.isupper() and isinstance(value, str) and value.startswith("monai_slo")):
            continue
        kind = kinds.get(value, "gauge")
        if kind == "counter":
            names.add(m.total(value))
        elif kind == "histogram":
            names |= {f"{value}_bucket", f"{value}_sum", f"{value}_count"}
        else:
            names.add(value)
    names.discard(m.PREFIX)
    return names


def all_exprs(board: dict[str, Any]) -> dict[str, str]:
    """Every panel target and annotation expr, variables set to All as Grafana sends them."""
    return panel_queries(board, {}, annotations=True)


@pytest.mark.parametrize("name", sorted(dashboards.BOARDS))
def test_panel_queries_use_only_exported_names_and_parse(name: str, tmp_path: Path) -> None:
    """Each panel's PromQL names only series from monai_slo.outputs.metric_names (in the
    form the daemon exports them), and parses: promtool checks every one as a rule."""
    board = load_dashboards()[name]
    exprs = all_exprs(board)
    known = sample_names()
    for title, expr in exprs.items():
        unknown = set(METRIC.findall(expr)) - known
        assert not unknown, (title, unknown)
    rules = [
        {"record": f"dashboard:query_{index}", "expr": e} for index, e in enumerate(exprs.values())
    ]
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": name, "rules": rules}]}))
    result = subprocess.run(
        [require_binary("promtool"), "check", "rules", "--lint=none", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_service_board_has_a_study_flow_row_and_the_gpu_board_verdicts() -> None:
    """The service dashboard's study-flow row: latency per stage (last and quantiles from
    the histogram), a heat map of the histogram, canaries in flight and lost ones, every
    panel on study_flow checks only; the GPU dashboard shows each GPU's verdict and
    suggested action from their state sets, every state mapped."""
    service = load_dashboards()["monai-slo-service.json"]
    rows = [p["title"] for p in service["panels"] if p["type"] == "row"]
    assert rows[-1] == "Study flow"
    start = next(i for i, p in enumerate(service["panels"]) if p["title"] == "Study flow")
    flow = {p["title"]: p for p in service["panels"][start + 1 :]}
    assert set(flow) == {
        "Canary latency per stage",
        "Canary latency p50 / p95 per stage",
        "End-to-end latency heat map",
        "Canaries in flight",
        "Lost canaries",
    }
    for panel in flow.values():
        for target in panel["targets"]:
            assert 'kind="study_flow"' in target["expr"], panel["title"]
    heat = flow["End-to-end latency heat map"]
    assert heat["type"] == "heatmap" and heat["targets"][0]["format"] == "heatmap"
    assert f"{m.STUDY_FLOW_LATENCY_SECONDS}_bucket" in heat["targets"][0]["expr"]
    quantiles = [t["expr"] for t in flow["Canary latency p50 / p95 per stage"]["targets"]]
    assert all(e.startswith("histogram_quantile(") for e in quantiles)
    assert m.STUDY_FLOW_IN_FLIGHT in flow["Canaries in flight"]["targets"][0]["expr"]
    assert 'reason="not_arrived"' in flow["Lost canaries"]["targets"][0]["expr"]

    gpu = {p["title"]: p for p in load_dashboards()["monai-slo-gpu.json"]["panels"]}
    for title, metric, label, states in (
        ("GPU verdict", m.GPU_HEALTH, "verdict", VERDICTS),
        ("Suggested action", m.GPU_SUGGESTED_ACTION, "action", ACTIONS),
    ):
        (target,) = gpu[title]["targets"]
        assert metric in target["expr"] and f"max without ({label})" in target["expr"]
        (mapping,) = gpu[title]["fieldConfig"]["defaults"]["mappings"]
        shown = [mapping["options"][str(i)]["text"] for i in range(len(states))]
        assert shown == list(states)


# --- every panel query against a real Prometheus ------------------------------------------


@dataclass
class Stack:
    prometheus: PrometheusServer
    metrics_port: int

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.prometheus.query(expr)

    def label_values(self, label: str, selector: str) -> list[str]:
        params = urllib.parse.urlencode({"match[]": selector})
        status, data = http_json(
            self.prometheus.port, "GET", f"/api/v1/label/{label}/values?{params}"
        )
        assert status == 200 and data["status"] == "success", (status, data)
        return list(data["data"])


def write_config(
    path: Path, port: int, web: HttpPeer, pacs: PynetdicomPeer, orthanc: OrthancPeer
) -> Path:
    now = dt.datetime.now(dt.UTC)
    flow_peer = f"{{host: 127.0.0.1, port: {orthanc.dicom_port}, called_aet: {orthanc.aet}}}"
    start = (now - dt.timedelta(hours=1)).isoformat()
    end = (now + dt.timedelta(hours=1)).isoformat()
    path.write_text(
        f"listen: 127.0.0.1:{port}\n"
        "storage: history.sqlite\n"
        "flush_interval: 1s\n"
        "defaults: {interval: 500ms, timeout: 400ms}\n"
        "environments:\n"
        "  - name: radiology\n"
        "    tier: production\n"
        "    window: 30d\n"
        "    services:\n"
        "      - name: pacs\n"
        "        checks:\n"
        f"          - {{name: echo, kind: dicom_echo, host: 127.0.0.1, port: {pacs.port}, "
        f"called_aet: {pacs.aet}}}\n"
        f"          - {{name: web, kind: http, url: '{web.url}health',"
        " latency: {threshold: 300ms, objective: 99}}\n"
        "      - name: gateway\n"
        "        checks:\n"
        f"          - {{name: health, kind: http, url: '{web.url}down',"
        " latency: {threshold: 300ms, objective: 99}}\n"
        f"          - {{name: roundtrip, kind: study_flow, interval: 1s, timeout: 2s, poll: 100ms,"
        f" send: {flow_peer}, arrive: [{{name: pacs, {flow_peer[1:-1]}}}],"
        " latency: {threshold: 2s, objective: 99}}\n"
        f"          - {{name: lost, kind: study_flow, interval: 1s, timeout: 2s, poll: 200ms,"
        f" send: {flow_peer}, arrive: [{{name: ai-result, series_modality: SR,"
        f" {flow_peer[1:-1]}}}]}}\n"
        "      - name: viewer\n"
        f"        maintenance: [{{start: '{start}', end: '{end}', reason: upgrade}}]\n"
        "        checks:\n"
        f"          - {{name: web, kind: http, url: '{web.url}health'}}\n"
        "  - name: research\n"
        "    tier: development\n"
        "    window: 1d\n"
        "    services:\n"
        "      - name: inference\n"
        "        checks:\n"
        "          - {name: gpus, kind: gpu, expected_count: 2}\n"
    )
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The daemon (production: pacs up, gateway down with study flows into an Orthanc, one
    arriving and one lost, viewer in maintenance, latency objectives on pacs/web,
    gateway/health and gateway/roundtrip; development: two fake GPUs) scraped every second by
    Prometheus with a prober label."""
    tmp = tmp_path_factory.mktemp("dashboards")
    with (
        HttpPeer() as web,
        PynetdicomPeer() as pacs,
        OrthancPeer(tmp / "orthanc", aet="PACS") as orthanc,
        use_nvml(FakeNvml(gpus=2)),
    ):
        web.routes["/down"] = Route(status=503, body=b"down\n")
        port = free_port()
        config = write_config(tmp / "config.yaml", port, web, pacs, orthanc)
        daemon = Daemon(load_config(config))
        daemon.start()
        try:
            prometheus = PrometheusServer(
                tmp / "prometheus", targets=[f"127.0.0.1:{port}"], rule_files=[]
            )
            # As deploy/prometheus/prometheus.yml does: the prober label names the site.
            prometheus.config["scrape_configs"][0]["static_configs"][0]["labels"] = {
                "prober": PROBER
            }
            with prometheus:
                yield Stack(prometheus, port)
        finally:
            daemon.stop()


def assert_answered_eventually(stack: Stack, exprs: dict[str, str], timeout: float = 40.0) -> None:
    """Poll until every expr (label -> PromQL) has a non-empty result; a PromQL error
    fails at once (PrometheusServer.query asserts status success)."""
    deadline = time.monotonic() + timeout
    pending = dict(exprs)
    while True:
        pending = {label: expr for label, expr in pending.items() if not stack.query(expr)}
        if not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no data after {timeout}s for {len(pending)} of {len(exprs)} queries:\n"
                + "\n".join(f"{label}: {expr}" for label, expr in pending.items())
            )
        time.sleep(0.5)  # poll interval; the loop re-checks every pending query


def panel_queries(
    board: dict[str, Any], chosen: dict[str, str], *, annotations: bool
) -> dict[str, str]:
    values = {variable["name"]: ".*" for variable in variables(board)}
    values.update(chosen)
    exprs = {
        f"{panel['title']} [{target['refId']}]": substitute(target["expr"], values)
        for panel in panels(board)
        for target in panel["targets"]
    }
    if annotations:
        for annotation in board["annotations"].get("list", []):
            exprs[f"annotation {annotation['name']}"] = substitute(annotation["expr"], values)
    assert not any("$" in expr for expr in exprs.values()), exprs
    return exprs


# (dashboard, variables chosen; the others All). Concrete choices are single values, which
# Grafana puts in as they are (regex-escaped; these need no escaping).
CASES = [
    ("monai-slo-overview.json", {}),
    ("monai-slo-overview.json", {"environment": "radiology", "prober": PROBER}),
    ("monai-slo-service.json", {}),
    ("monai-slo-service.json", {"environment": "radiology", "service": "gateway"}),
    ("monai-slo-gpu.json", {}),
    ("monai-slo-gpu.json", {"environment": "research", "service": "inference", "gpu": "1"}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "chosen"), CASES)
def test_every_panel_query_has_data(stack: Stack, name: str, chosen: dict[str, str]) -> None:
    """Each panel target (and, with All selected, each annotation) of the dashboard, with
    the variables substituted, is valid PromQL with a non-empty instant-query result from a
    Prometheus scraping the daemon."""
    board = load_dashboards()[name]
    exprs = panel_queries(board, chosen, annotations=not chosen)
    assert len(exprs) >= 10
    assert_answered_eventually(stack, exprs)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(dashboards.BOARDS))
def test_variable_queries_list_values(stack: Stack, name: str) -> None:
    """Each query variable's label_values() finds values in Prometheus (All upstream), and
    the prober variable finds the scrape config's prober label."""
    board = load_dashboards()[name]
    everything = {variable["name"]: ".*" for variable in variables(board)}
    found: dict[str, list[str]] = {}
    for variable in variables(board)[1:]:
        match = LABEL_VALUES.match(variable["query"])
        assert match
        selector = substitute(match["selector"], everything)
        deadline = time.monotonic() + 30
        while not (values := stack.label_values(match["label"], selector)):
            assert time.monotonic() < deadline, f"no values for {variable['name']}"
            time.sleep(0.5)  # poll interval; the loop asks again
        found[variable["name"]] = values
    assert found["prober"] == [PROBER]
    assert set(found["environment"]) <= {"radiology", "research"}
    if name == "monai-slo-gpu.json":
        assert found["service"] == ["inference"] and found["gpu"] == ["0", "1"]
    else:
        assert set(found["service"]) == {"pacs", "gateway", "viewer", "inference"}


@pytest.mark.slow
def test_slo_window_query_picks_each_services_own_window(stack: Stack) -> None:
    """Over the SLO window means each service's own: 30d for the production environment
    (not an alert window), 1d for the development one (an alert window, picked through
    monai_slo_slo_window_seconds); exactly one series per service."""
    everything = dict.fromkeys(dashboards.ALL_VARIABLES, ".*")
    expr = substitute(dashboards.over_slo_window(m.DATA_COVERAGE_RATIO), everything)
    assert_answered_eventually(stack, {"coverage": f"count({expr}) == 4"})
    windows = {
        (series["metric"]["environment"], series["metric"]["service"]): series["metric"]["window"]
        for series in stack.query(expr)
    }
    assert windows == {
        ("radiology", "pacs"): "30d",
        ("radiology", "gateway"): "30d",
        ("radiology", "viewer"): "30d",
        ("research", "inference"): "1d",
    }


@pytest.mark.slow
def test_metric_names_are_what_the_daemon_exposes(stack: Stack) -> None:
    """Every name in monai_slo.outputs.metric_names is a family the running daemon exposes (the gpu
    kind's included), so a dashboard query cannot silently target a renamed metric."""
    wanted = {
        value
        for name, value in vars(m).items()
        if name.isupper()
        and isinstance(value, str)
        and value.startswith(m.PREFIX)
        and value != m.PREFIX
    }
    assert m.SERVICE_UP in wanted and m.GPU_INFO in wanted
    assert m.STUDY_FLOW_LAST_LATENCY_SECONDS in wanted  # per canary that arrived

    def exposed() -> set[str]:
        conn = http.client.HTTPConnection("127.0.0.1", stack.metrics_port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        return {family.name for family in text_string_to_metric_families(text)}

    deadline = time.monotonic() + 20
    while missing := wanted - exposed():
        assert time.monotonic() < deadline, f"not exposed: {sorted(missing)}"
        time.sleep(0.2)  # poll interval; gpu series appear after the check's first run
