"""The fleet SLI in the generated rules: the quorum option, the instant fold, the chained
windows and what the burn-rate alerts read. promtool runs them in tests/promtool/fleet.test.yml
and quorum.test.yml; the slow test measures their evaluation cost on a real Prometheus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monai_slo.config.model import AlertingOptions, load_config
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.rules import fleet_windows, generate_rules
from monai_slo.slo.burn_windows import load_burn_windows

REPO = Path(__file__).resolve().parents[2]
TEST_CONFIG = REPO / "tests" / "promtool" / "config.yaml"


def records(document: dict[str, Any], group: str, name: str) -> list[dict[str, Any]]:
    rules = next(g["rules"] for g in document["groups"] if g["name"] == group)
    return [r for r in rules if r.get("record") == name]


def test_quorum_defaults_to_all_and_rejects_nonsense() -> None:
    """`alerting.quorum` is 'all' unless set; an integer must be at least 1."""
    assert AlertingOptions().quorum == "all"
    assert AlertingOptions.model_validate({"quorum": 2}).quorum == 2
    for bad in (0, -1, "most"):
        with pytest.raises(ValidationError) as caught:
            AlertingOptions.model_validate({"quorum": bad})
        assert caught.value.errors()[0]["loc"][0] == "quorum"


def test_the_quorum_decides_the_instant_state() -> None:
    """'all': down when every reporting prober sees it down (the best of them does); k: when
    at least k do (or every reporting one, when fewer than k report). Both read the probers'
    series, leaving out a prober whose target is down, and the SLI does too: no recorded
    series between the scrape and the SLI."""
    config = load_config(TEST_CONFIG)
    up = (
        f'({m.SERVICE_UP}{{environment="prod"}} unless on (job, instance) '
        '(up{job="monai-slo"} == 0))'
    )
    document = generate_rules(config)
    (every,) = records(document, "monai-slo:prod", m.RECORDED_FLEET_SERVICE_DOWN)
    assert every["expr"] == f"1 - max without (instance, prober) ({up})"
    (sli,) = records(document, "monai-slo:prod", m.RECORDED_FLEET_SERVICE_SLI)
    # 'all': the SLI is the best prober's state itself, not 1 - (1 - it).
    assert sli["expr"].startswith(f"max without (instance, prober) ({up})\nunless")
    two = generate_rules(config, AlertingOptions(quorum=2))
    (rule,) = records(two, "monai-slo:prod", m.RECORDED_FLEET_SERVICE_DOWN)
    (sli,) = records(two, "monai-slo:prod", m.RECORDED_FLEET_SERVICE_SLI)
    assert rule["expr"] in sli["expr"] and ":fleet" not in sli["expr"].split("unless on (env")[0]
    assert rule["expr"] == (
        f"(count without (instance, prober) ({up} == 0) or "
        f"count without (instance, prober) ({up}) * 0) >= bool "
        f"clamp_max(count without (instance, prober) ({up}), 2)"
    )


def test_windows_chain_from_shorter_recorded_ones() -> None:
    """5m reads the instant series; every longer window sums non-overlapping shorter recorded
    windows at offsets, so the 30d window is ten 3d lookups, not a 30-day range."""
    config = load_config(TEST_CONFIG)
    prod = next(e for e in config.environments if e.name == "prod")
    assert fleet_windows(prod, load_burn_windows()) == [
        300,
        1800,
        3600,
        7200,
        21600,
        86400,
        259200,
        2592000,
    ]
    good = records(generate_rules(config), "monai-slo:prod", m.RECORDED_FLEET_GOOD_SAMPLES)
    by_window = {r["labels"]["window"]: r["expr"] for r in good}
    assert by_window["5m"].startswith(f"sum_over_time({m.RECORDED_FLEET_SERVICE_SLI}")
    assert "[4m59s999ms]" in by_window["5m"]
    thirty = by_window["30d"]
    assert "[" not in thirty
    assert thirty.count('window="3d"') == 10
    assert "offset 27d" in thirty


def test_burn_alerts_read_the_fleet_and_per_prober_views_stay() -> None:
    """MonaiSloErrorBudgetBurn reads the fleet burn rate; the per-prober folds the dashboards
    use are still recorded; the latency alert reads the fleet latency burn rate."""
    document = generate_rules(load_config(TEST_CONFIG))
    rules = next(g["rules"] for g in document["groups"] if g["name"] == "monai-slo:prod")
    burn = [r for r in rules if r.get("alert") == "MonaiSloErrorBudgetBurn"]
    assert burn and all(m.RECORDED_FLEET_BURN_RATE in r["expr"] for r in burn)
    assert all(m.RECORDED_BURN_RATE not in r["expr"] for r in burn)
    recorded = {r.get("record") for r in rules}
    assert {m.RECORDED_SERVICE_UP, m.RECORDED_BURN_RATE, m.RECORDED_AVAILABILITY_RATIO} <= recorded
    latency = [r for r in rules if r.get("alert") == "MonaiSloLatencyBudgetBurn"]
    assert latency and all(m.RECORDED_FLEET_LATENCY_BURN_RATE in r["expr"] for r in latency)
    assert all(m.RECORDED_LATENCY_BURN_RATE not in r["expr"] for r in latency)
    assert m.RECORDED_LATENCY_BURN_RATE in recorded  # the per-prober view stays


def test_the_latency_fleet_fold_follows_the_quorum() -> None:
    """'all': the lowest burn rate of the reporting probers; k: the lowest of the k highest
    (the one at least k reach), and the budget left the highest of the k lowest."""
    config = load_config(TEST_CONFIG)
    every = records(generate_rules(config), "monai-slo:prod", m.RECORDED_FLEET_LATENCY_BURN_RATE)
    assert every[0]["expr"] == (
        f'min without (instance, prober) ({m.LATENCY_BURN_RATE}{{environment="prod"}})'
    )
    two = generate_rules(config, AlertingOptions(quorum=2))
    (burn,) = records(two, "monai-slo:prod", m.RECORDED_FLEET_LATENCY_BURN_RATE)
    assert burn["expr"].startswith("min without (instance, prober) (")
    assert (
        f'topk without (instance, prober) (2, {m.LATENCY_BURN_RATE}{{environment="prod"}})'
        in (burn["expr"])
    )
    (budget,) = records(
        two, "monai-slo:prod", m.RECORDED_FLEET_LATENCY_ERROR_BUDGET_REMAINING_RATIO
    )
    assert budget["expr"].startswith("max without (instance, prober) (")
    assert "bottomk without (instance, prober) (2, " in budget["expr"]
    # Only environments with a latency objective record it.
    assert records(two, "monai-slo:stage", m.RECORDED_FLEET_LATENCY_BURN_RATE) == []


def test_best_effort_services_get_availability_but_no_burn_rate() -> None:
    """A workstation's fleet availability is recorded; it has no objective, so no burn rate."""
    document = generate_rules(load_config(TEST_CONFIG))
    assert records(document, "monai-slo:ws", m.RECORDED_FLEET_AVAILABILITY_RATIO)
    assert records(document, "monai-slo:ws", m.RECORDED_FLEET_BURN_RATE) == []


@pytest.mark.slow
def test_rule_evaluation_cost_for_1000_services(tmp_path: Path) -> None:
    """A real Prometheus evaluates the rules of 1,000 services seen by three probers; the
    figure (prometheus_rule_group_last_duration_seconds) is printed for the record."""
    from bench.fleet_rules import measure

    cost = measure(tmp_path, services=1000, probers=3, evaluations=5)
    print(f"group {cost.seconds * 1000:.0f} ms, fleet SLI rules {cost.fleet_seconds * 1000:.0f} ms")
    assert cost.rules > 1000  # one no-data alert per service, the rest per environment
    assert 0 < cost.fleet_seconds < cost.seconds < 10
