"""The service dashboard (``monai-slo-service.json``): one service (or several): availability per
window, budget burn-down, check states, durations and failure reasons over time, latency
objectives, and the study flow of its study_flow checks (latency per stage, heat map, canaries
in flight and lost)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.models import common

from monai_slo.history.evaluation import window_label
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.dashboards.kit import (
    BUDGET_THRESHOLDS,
    BURN_UNIT,
    SEL,
    SERVICE_LEGEND,
    SERVICE_UID,
    UP_DOWN,
    Board,
    Column,
    Query,
    bar_gauge,
    burn_windows,
    dashed_override,
    heatmap_panel,
    maintenance_annotation,
    over_slo_window,
    row_value,
    selector,
    state_timeline,
    table_panel,
    thresholds,
    time_series,
    variables,
    window_selector,
)
from monai_slo.slo.availability import ALERT_WINDOWS

# The study-flow row's panels: the chosen checks, of the study_flow kind only.
FLOW = ('check=~"$check"', 'kind="study_flow"')


def service() -> Board:
    check_sel = selector('check=~"$check"')
    board = Board(
        SERVICE_UID,
        "MONAI SLO / Service",
        "One service in depth: availability per window, error budget burn-down, and each "
        "check's state, duration and failure reasons over time.",
        variables(m.SLO_WINDOW_SECONDS, [("check", "Check", m.total(m.CHECK_RUNS))]),
        [maintenance_annotation()],
    )
    board.row("State")
    board.add(
        state_timeline(
            "Service state",
            "Up (every check passed) or down (any check failed); gaps: no data.",
            [Query(f"{m.SERVICE_UP}{SEL}", SERVICE_LEGEND)],
            UP_DOWN,
        ),
        24,
        5,
    )
    board.add(
        state_timeline(
            "Check state",
            "Each check's last result over time.",
            [Query(f"{m.CHECK_UP}{check_sel}", "{{service}} / {{check}} ({{kind}})")],
            UP_DOWN,
        ),
        24,
        7,
    )

    board.row("Availability and error budget")
    per_window = [
        Query(
            f"{m.AVAILABILITY_RATIO}{window_selector(window_label(seconds))}",
            SERVICE_LEGEND + f" {window_label(seconds)}",
            instant=True,
        )
        for seconds in ALERT_WINDOWS
    ]
    per_window.append(
        Query(
            over_slo_window(m.AVAILABILITY_RATIO),
            SERVICE_LEGEND + " SLO window ({{window}})",
            instant=True,
        )
    )
    board.add(
        bar_gauge(
            "Availability per window",
            "Time-weighted availability over each window the daemon computes, the SLO "
            "window last; maintenance excluded.",
            per_window,
            "percentunit",
            ((None, "red"), (0.99, "orange"), (0.999, "green")),
            minimum=0.9,
            maximum=1,
        ).decimals(3),
        8,
        11,
    )
    board.add(
        time_series(
            "Error budget burn-down",
            "Share of the SLO window's error budget left over time (dashed line: 0, the "
            "objective missed).",
            [
                Query(f"{m.ERROR_BUDGET_REMAINING_RATIO}{SEL}", SERVICE_LEGEND),
            ],
            "percentunit",
        )
        .thresholds(thresholds(*BUDGET_THRESHOLDS))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        ),
        8,
        11,
    )
    board.add(
        time_series(
            "Availability over the SLO window vs objective",
            "Availability over the SLO window (solid) and the objective (dashed).",
            [
                Query(over_slo_window(m.AVAILABILITY_RATIO), SERVICE_LEGEND),
                Query(f"{m.OBJECTIVE_RATIO}{SEL}", SERVICE_LEGEND + " objective"),
            ],
            "percentunit",
        )
        .decimals(3)
        .with_override(*dashed_override(".* objective")),
        8,
        11,
    )
    board.add(
        time_series(
            "Burn rate per window",
            "Error budget burn rate over each alert window (1 = on budget).",
            [
                Query(
                    f"{m.BURN_RATE}{window_selector(*burn_windows())}",
                    SERVICE_LEGEND + " {{window}}",
                )
            ],
            BURN_UNIT,
        ),
        12,
        8,
    )
    board.add(
        time_series(
            "Data coverage per window",
            "Share of each window with results; availability is over covered time only.",
            [Query(f"{m.DATA_COVERAGE_RATIO}{SEL}", SERVICE_LEGEND + " {{window}}")],
            "percentunit",
        ),
        12,
        8,
    )

    board.row("Checks")
    board.add(
        time_series(
            "Check duration",
            "How long each check's last run took (a rising DICOM echo time often comes "
            "before an outage).",
            [Query(f"{m.CHECK_DURATION_SECONDS}{check_sel}", "{{service}} / {{check}}")],
            "s",
        ),
        12,
        9,
    )
    board.add(
        time_series(
            "Failures by reason",
            "Failed runs per interval, by the check's bounded failure reason.",
            [
                Query(
                    "sum by (environment, service, check, reason) "
                    f"(increase({m.total(m.CHECK_FAILURES)}{check_sel}[$__rate_interval]))",
                    "{{service}} / {{check}}: {{reason}}",
                )
            ],
            "short",
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL)),
        12,
        9,
    )
    board.add(
        table_panel(
            "Checks",
            "Each check now, and its runs and failures over the time range.",
            [
                Query(row_value(f"{m.CHECK_UP}{check_sel}"), table=True, column="State"),
                Query(
                    row_value(f"{m.CHECK_DURATION_SECONDS}{check_sel}"),
                    table=True,
                    column="Last duration",
                ),
                Query(
                    f"round(sum without (reason) "
                    f"(increase({m.total(m.CHECK_RUNS)}{check_sel}[$__range])))",
                    table=True,
                    column="Runs",
                ),
                Query(
                    f"round(sum without (reason) "
                    f"(increase({m.total(m.CHECK_FAILURES)}{check_sel}[$__range])))",
                    table=True,
                    column="Failures",
                ),
                Query(
                    row_value(f"{m.CHECK_LAST_RUN_TIMESTAMP_SECONDS}{check_sel}") + " * 1000",
                    table=True,
                    column="Last run",
                ),
            ],
            [
                Column("State", mapping=UP_DOWN),
                Column("Last duration", unit="s"),
                Column("Last run", unit="dateTimeFromNow"),
            ],
        ),
        14,
        9,
    )
    board.add(
        bar_gauge(
            "Failures by reason (time range)",
            "Failed runs over the selected time range, by reason.",
            [
                Query(
                    f"sum by (reason) (increase({m.total(m.CHECK_FAILURES)}{check_sel}[$__range]))",
                    "{{reason}}",
                    instant=True,
                )
            ],
            "short",
            ((None, "red"),),
        ),
        10,
        9,
    )

    board.row("Latency objectives")
    check_legend = "{{service}} / {{check}}"
    board.add(
        time_series(
            "Runs within the latency threshold vs objective",
            "Share of each check's runs over the SLO window that succeeded within its latency "
            "threshold (solid) and its latency objective (dashed); only checks with a "
            "latency objective.",
            [
                Query(over_slo_window(m.LATENCY_RATIO, check_sel), check_legend),
                Query(f"{m.LATENCY_OBJECTIVE_RATIO}{check_sel}", check_legend + " objective"),
            ],
            "percentunit",
        )
        .decimals(3)
        .with_override(*dashed_override(".* objective")),
        12,
        8,
    )
    board.add(
        time_series(
            "Latency burn rate per window",
            "Latency budget burn rate over each alert window (1 = on budget): slow or "
            "failed runs against the share the objective allows.",
            [
                Query(
                    f"{m.LATENCY_BURN_RATE}"
                    + selector('check=~"$check"', f'window=~"{"|".join(burn_windows())}"'),
                    check_legend + " {{window}}",
                )
            ],
            BURN_UNIT,
        ),
        12,
        8,
    )
    study_flow_row(board)
    return board


def study_flow_row(board: Board) -> None:
    """Canaries of the study_flow checks: how long each stage took to see them, their spread,
    how many are still on their way and how many never arrived. The row is on every service
    dashboard (it is not generated from a config); its panels show "No data" where a service
    has no study_flow check."""
    flow_sel = selector(*FLOW)
    buckets = f"{m.STUDY_FLOW_LATENCY_SECONDS}_bucket"
    end_to_end = selector(*FLOW, 'stage="end_to_end"')
    legend = "{{service}} / {{check}}"
    board.row("Study flow")
    board.add(
        time_series(
            "Canary latency per stage",
            "From the canary's C-STORE to its first sight at each stage (end_to_end: the "
            "last stage), per canary that arrived; dashed: the latency threshold.",
            [
                Query(f"{m.STUDY_FLOW_LAST_LATENCY_SECONDS}{flow_sel}", legend + " {{stage}}"),
                Query(f"{m.LATENCY_THRESHOLD_SECONDS}{flow_sel}", legend + " threshold"),
            ],
            "s",
        ).with_override(*dashed_override(".* threshold")),
        12,
        9,
    )
    board.add(
        time_series(
            "Canary latency p50 / p95 per stage",
            "Quantiles of the stage latencies over each interval (at least 5m, the usual "
            "canary interval), from the latency histogram.",
            [
                Query(
                    f"histogram_quantile({q}, sum by (environment, service, check, stage, le) "
                    f"(rate({buckets}{flow_sel}[$__rate_interval])))",
                    legend + f" {{{{stage}}}} p{round(q * 100)}",
                )
                for q in (0.5, 0.95)
            ],
            "s",
        ).interval("5m"),
        12,
        9,
    )
    board.add(
        heatmap_panel(
            "End-to-end latency heat map",
            "Canaries per end-to-end latency bucket over time (at least 5m per column).",
            Query(
                f"sum by (le) (increase({buckets}{end_to_end}[$__rate_interval]))",
                "{{le}}",
                heatmap=True,
            ),
            "s",
        ).interval("5m"),
        12,
        9,
    )
    board.add(
        time_series(
            "Canaries in flight",
            "Canaries sent and not yet seen at every stage nor timed out (at most "
            "max_in_flight per check).",
            [Query(f"{m.STUDY_FLOW_IN_FLIGHT}{flow_sel}", legend)],
            "short",
        ),
        6,
        9,
    )
    board.add(
        time_series(
            "Lost canaries",
            "Canaries not seen at some stage within the check's timeout (reason "
            "not_arrived), per interval.",
            [
                Query(
                    "sum by (environment, service, check) (increase("
                    + m.total(m.CHECK_FAILURES)
                    + selector(*FLOW, 'reason="not_arrived"')
                    + "[$__rate_interval]))",
                    legend,
                )
            ],
            "short",
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80),
        6,
        9,
    )
