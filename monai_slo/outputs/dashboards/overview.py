"""The overview dashboard (``monai-slo-overview.json``): every environment and service: state,
availability over its SLO window against the objective, error budget left, burn rates,
maintenance, coverage."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models

from monai_slo.outputs import metric_names as m
from monai_slo.outputs.dashboards.kit import (
    BUDGET_THRESHOLDS,
    BURN_THRESHOLDS,
    BURN_UNIT,
    MAINTENANCE,
    OVERVIEW_UID,
    PROBER_VARIABLES,
    RELOAD,
    SEL,
    SERIES_KEY,
    SERVICE_LEGEND,
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
    service_link,
    stat_panel,
    state_timeline,
    table_panel,
    thresholds,
    time_series,
    variables,
    window_selector,
)


def overview() -> Board:
    board = Board(
        OVERVIEW_UID,
        "MONAI SLO / Overview",
        "Every environment and service monai-slo measures: state, availability over the SLO "
        "window against the objective, error budget left, burn rates, maintenance.",
        variables(m.SLO_WINDOW_SECONDS),
        [maintenance_annotation()],
    )
    board.row("Now")
    board.add(
        stat_panel(
            "Services up",
            "Services whose checks all passed on their last run.",
            Query(f"count({m.SERVICE_UP}{SEL} == 1) or vector(0)", instant=True),
            ((None, "green"),),
        ),
        4,
        4,
    )
    board.add(
        stat_panel(
            "Services down",
            "Services with at least one check failing on its last run.",
            Query(f"count({m.SERVICE_UP}{SEL} == 0) or vector(0)", instant=True),
            ((None, "green"), (1, "red")),
        ),
        4,
        4,
    )
    board.add(
        stat_panel(
            "No data",
            "Services with no current result (just started, or every check stale).",
            Query(
                f"count({m.SLO_WINDOW_SECONDS}{SEL} unless on ({SERIES_KEY}) "
                f"{m.SERVICE_UP}{SEL}) or vector(0)",
                instant=True,
            ),
            ((None, "green"), (1, "orange")),
        ),
        4,
        4,
    )
    board.add(
        stat_panel(
            "In planned maintenance",
            "Services in a maintenance window now: left out of availability and budget.",
            Query(f"sum({m.MAINTENANCE_ACTIVE}{SEL}) or vector(0)", instant=True),
            ((None, "green"), (1, "blue")),
        ),
        4,
        4,
    )
    board.add(
        stat_panel(
            "Lowest error budget left",
            "The smallest share of its SLO window's error budget any service has left "
            "(negative: overspent). Best-effort tiers have no budget.",
            Query(f"min({m.ERROR_BUDGET_REMAINING_RATIO}{SEL})", instant=True),
            BUDGET_THRESHOLDS,
            unit="percentunit",
        ),
        4,
        4,
    )
    fastest = burn_windows()[0]
    board.add(
        stat_panel(
            f"Fastest burn ({fastest})",
            f"The highest burn rate over {fastest}: 1 spends the budget exactly over the "
            "SLO window; the first page fires at 14.4 for a 30-day window.",
            Query(f"max({m.BURN_RATE}{window_selector(fastest)})", instant=True),
            BURN_THRESHOLDS,
            unit=BURN_UNIT,
        ),
        4,
        4,
    )

    board.row("Services")
    columns = [
        Query(row_value(f"{m.SERVICE_UP}{SEL}"), table=True, column="State"),
        Query(
            row_value(over_slo_window(m.AVAILABILITY_RATIO)),
            table=True,
            column="Availability (SLO window)",
        ),
        Query(row_value(f"{m.OBJECTIVE_RATIO}{SEL}"), table=True, column="Objective"),
        Query(
            row_value(f"{m.ERROR_BUDGET_REMAINING_RATIO}{SEL}"),
            table=True,
            column="Error budget left",
        ),
        *(
            Query(
                row_value(f"{m.BURN_RATE}{window_selector(window)}"),
                table=True,
                column=f"Burn {window}",
            )
            for window in burn_windows()
        ),
        Query(row_value(f"{m.MAINTENANCE_ACTIVE}{SEL}"), table=True, column="Maintenance"),
        Query(
            row_value(over_slo_window(m.DATA_COVERAGE_RATIO)),
            table=True,
            column="Data coverage",
        ),
        Query(row_value(f"{m.SLO_WINDOW_SECONDS}{SEL}"), table=True, column="SLO window"),
    ]
    board.add(
        table_panel(
            "Services",
            "One row per service (and prober). Availability, budget and coverage are over "
            "the service's own SLO window; maintenance is left out of all of them. Click a "
            "service for its drill-down.",
            columns,
            [
                Column("State", mapping=UP_DOWN),
                Column("Availability (SLO window)", unit="percentunit", decimals=3),
                Column("Objective", unit="percentunit", decimals=3),
                Column(
                    "Error budget left", unit="percentunit", decimals=1, steps=BUDGET_THRESHOLDS
                ),
                *(
                    Column(f"Burn {window}", unit=BURN_UNIT, decimals=2, steps=BURN_THRESHOLDS)
                    for window in burn_windows()
                ),
                Column("Maintenance", mapping=MAINTENANCE),
                Column("Data coverage", unit="percentunit", decimals=1),
                Column("SLO window", unit="dtdurations"),
                Column("service", link=service_link()),
            ],
        ),
        24,
        10,
    )

    board.row("Over time")
    board.add(
        state_timeline(
            "Service state",
            "Up (every check passed) or down (any check failed); gaps: no data.",
            [Query(f"{m.SERVICE_UP}{SEL}", SERVICE_LEGEND)],
            UP_DOWN,
        ),
        12,
        8,
    )
    board.add(
        state_timeline(
            "Planned maintenance",
            "Maintenance windows (config and `monai-slo maintenance`).",
            [Query(f"{m.MAINTENANCE_ACTIVE}{SEL}", SERVICE_LEGEND)],
            MAINTENANCE,
        ),
        12,
        8,
    )
    board.add(
        time_series(
            "Availability over the SLO window vs objective",
            "Time-weighted availability over each service's SLO window (solid) and its "
            "objective (dashed).",
            [
                Query(over_slo_window(m.AVAILABILITY_RATIO), SERVICE_LEGEND),
                Query(f"{m.OBJECTIVE_RATIO}{SEL}", SERVICE_LEGEND + " objective"),
            ],
            "percentunit",
        )
        .decimals(3)
        .with_override(*dashed_override(".* objective")),
        12,
        9,
    )
    board.add(
        time_series(
            "Error budget remaining",
            "Share of the SLO window's error budget left; below 0 the objective is missed.",
            [Query(f"{m.ERROR_BUDGET_REMAINING_RATIO}{SEL}", SERVICE_LEGEND)],
            "percentunit",
        )
        .thresholds(thresholds(*BUDGET_THRESHOLDS))
        .thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        ),
        12,
        9,
    )
    board.add(
        time_series(
            "Burn rate",
            "How fast the budget goes over the alert windows: 1 = on budget. Pages fire "
            "when both windows of a row burn faster than its factor (see the rules).",
            [
                Query(
                    f"{m.BURN_RATE}{window_selector(*burn_windows())}",
                    SERVICE_LEGEND + " {{window}}",
                )
            ],
            BURN_UNIT,
        ),
        12,
        9,
    )
    board.add(
        bar_gauge(
            "Data coverage (SLO window)",
            "Share of the SLO window with results: low after a first start or an outage "
            "of the prober itself; availability is computed over the covered time only.",
            [Query(over_slo_window(m.DATA_COVERAGE_RATIO), SERVICE_LEGEND, instant=True)],
            "percentunit",
            ((None, "orange"), (0.9, "green")),
            minimum=0,
            maximum=1,
        ),
        12,
        9,
    )

    board.row("Probers")
    prober_sel = selector(variables=PROBER_VARIABLES)
    board.add(
        table_panel(
            "monai-slo daemons",
            "Each prober: version, whether its last config reload was accepted, and "
            "scheduler health over the time range.",
            [
                Query(row_value(f"{m.BUILD_INFO}{prober_sel}"), table=True, column="Running"),
                Query(
                    row_value(f"{m.CONFIG_LAST_RELOAD_SUCCESSFUL}{prober_sel}"),
                    table=True,
                    column="Config reload",
                ),
                Query(
                    f"sum by (prober, instance) "
                    f"(increase({m.total(m.SCHEDULER_MISSED_RUNS)}{prober_sel}[$__range]))",
                    table=True,
                    column="Missed runs",
                ),
                Query(
                    f"sum by (prober, instance) "
                    f"(increase({m.total(m.CHECK_SKIPPED_RUNS)}{prober_sel}[$__range]))",
                    table=True,
                    column="Skipped runs",
                ),
            ],
            [
                Column(
                    "Running",
                    mapping=models.ValueMap(
                        options={"1": models.ValueMappingResult(text="yes", color="green")}
                    ),
                ),
                Column("Config reload", mapping=RELOAD),
            ],
        ),
        12,
        7,
    )
    board.add(
        time_series(
            "Check start lateness (p99)",
            "How late check runs start against their schedule: a busy or starved prober.",
            [
                Query(
                    "histogram_quantile(0.99, sum by (prober, instance, le) "
                    f"(rate({m.bucket(m.SCHEDULER_START_LATENESS_SECONDS)}{prober_sel}"
                    "[$__rate_interval])))",
                    "{{instance}}",
                )
            ],
            "s",
        ),
        12,
        7,
    )
    return board
