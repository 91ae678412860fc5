"""Every metric, label and recorded-series name is written once, in
monai_slo.outputs.metric_names: the collector, the rule generator and the dashboards read it,
and the collector describes its families so a registry refuses a duplicate."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import monai_slo
from monai_slo.checks.base import CheckResult
from monai_slo.config.model import load_config
from monai_slo.history.store import HistoryStore
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.lateness import Lateness
from monai_slo.outputs.metrics import FIXED_FAMILIES, DaemonView, LiveCounters, SloCollector

PACKAGE = Path(monai_slo.__file__).parent
NAME = re.compile(r"monai_slo[_:][a-z]")
# Folders that may import metric_names (outputs and above); the ones below it cannot without
# an upward import, and name families only in prose or by suffix (checks.gpu).
READERS = ("outputs", "testing", "daemon", "commands")


def _code_strings(path: Path) -> Iterator[tuple[int, str]]:
    """String constants in code, docstrings left out (they may name a metric in prose)."""
    tree = ast.parse(path.read_text())
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value


MODULES = [
    *sorted(
        path
        for folder in READERS
        for path in (PACKAGE / folder).rglob("*.py")
        if path.name != "metric_names.py"
    ),
    PACKAGE / "cli.py",
]


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_no_module_spells_a_metric_name(path: Path) -> None:
    """Outside metric_names no code string contains a monai_slo_ or monai_slo: name."""
    found = [f"line {line}: {text!r}" for line, text in _code_strings(path) if NAME.search(text)]
    assert not found, f"{path.name} spells metric names itself: {found}"


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[SloCollector]:
    path = tmp_path / "config.yaml"
    path.write_text(
        "storage: h.sqlite\nenvironments:\n  - name: radiology\n    tier: production\n"
        "    services:\n      - name: pacs\n        checks:\n"
        "          - {name: web, kind: http, url: 'http://127.0.0.1:1/'}\n"
    )
    config = load_config(path)
    store = HistoryStore(config.storage)
    counters = LiveCounters()
    now = 1_750_000_000.0
    for ref in config.checks():
        result = CheckResult(True, 0.01, None, "", now - 10)
        store.record(ref.key, ref.config.kind, result, ref.config.staleness)
        counters.record(ref, result)
    view = DaemonView(config, store, counters, lateness=Lateness(), clock=lambda: now)
    yield SloCollector(view)
    store.close()


def test_describe_names_every_family_collect_yields(collector: SloCollector) -> None:
    """describe() announces exactly the families collect() yields (with their types), every
    one a name from metric_names."""
    described = {(metric.name, metric.type) for metric in collector.describe()}
    collected = {(metric.name, metric.type) for metric in collector.collect()}
    assert described == collected == set(FIXED_FAMILIES)
    names = {value for key, value in vars(m).items() if key.isupper() and isinstance(value, str)}
    assert {name for name, _ in described} <= names


def test_a_registry_refuses_a_second_collector_with_the_same_names(
    collector: SloCollector,
) -> None:
    """Registering the collector twice, or beside another collector that already exposes one
    of its names, fails at register time instead of writing the family twice on /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(SloCollector(collector.view))

    class Clash(Collector):
        def collect(self) -> Iterator[Metric]:
            yield GaugeMetricFamily(m.SERVICE_UP, "clash", value=1)

        def describe(self) -> Iterator[Metric]:
            return self.collect()

    other = CollectorRegistry(auto_describe=False)
    other.register(Clash())
    with pytest.raises(ValueError, match="monai_slo_service_up"):
        other.register(collector)
