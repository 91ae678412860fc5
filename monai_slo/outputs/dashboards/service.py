"""The service dashboard (``monai-slo-service.json``): one service (or several): availability per
window, budget burn-down, check states, durations and failure reasons over time."""

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
    return board
