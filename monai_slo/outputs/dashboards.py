"""Grafana dashboards from code, with Grafana's own typed builders (grafana-foundation-sdk).

Three dashboards, checked in under ``grafana/dashboards/`` (a test proves they are current)::

    python -m monai_slo.outputs.dashboards grafana/dashboards

* ``monai-slo-overview.json``: every environment and service: state, availability over its
  SLO window against the objective, error budget left, burn rates, maintenance, coverage.
* ``monai-slo-service.json``: one service (or several): availability per window, budget
  burn-down, check states, durations and failure reasons over time.
* ``monai-slo-gpu.json``: the ``gpu`` kind's gauges: temperature and headroom to slowdown,
  throttling, power, memory, utilisation, ECC and XID counts.

Metric names come from :mod:`monai_slo.outputs.metric_names`, the windows from
:mod:`monai_slo.history.evaluation` and :mod:`monai_slo.slo.burn_windows`, so a renamed metric or a
new window changes the dashboards with it. Only this module needs the SDK: the daemon never
imports it (install the ``dashboards`` extra to regenerate).

Every panel selects with the same template variables: ``environment``, ``tier``, ``service``
(chained), ``prober`` and ``instance`` (which monai-slo daemon measured it; ``prober`` is the
target label of docs/scaling.md and may be absent), all multi-value with "All" = ``.*``.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from grafana_foundation_sdk.builders import (
    bargauge,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from monai_slo.checks.gpu import NEAR_SLOWDOWN_CELSIUS
from monai_slo.history.evaluation import window_label
from monai_slo.outputs import metric_names as m
from monai_slo.slo.availability import ALERT_WINDOWS
from monai_slo.slo.burn_windows import load_burn_windows

DATASOURCE_VARIABLE = "datasource"
DATASOURCE = models.DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")
TAG = "monai-slo"
GRID_WIDTH = 24

# Template variables every panel filters on, in the order they appear.
SERVICE_VARIABLES = ("environment", "tier", "service")
PROBER_VARIABLES = ("prober", "instance")
ALL_VARIABLES = (*SERVICE_VARIABLES, *PROBER_VARIABLES)
# Series are told apart by these (several probers may measure one service).
SERIES_KEY = "environment, tier, service, prober, instance"
SERVICE_LEGEND = "{{environment}} / {{service}}"

OVERVIEW_UID = "monai-slo-overview"
SERVICE_UID = "monai-slo-service"
GPU_UID = "monai-slo-gpu"

UP_DOWN = models.ValueMap(
    options={
        "0": models.ValueMappingResult(text="DOWN", color="red", index=0),
        "1": models.ValueMappingResult(text="UP", color="green", index=1),
    }
)
MAINTENANCE = models.ValueMap(
    options={
        "0": models.ValueMappingResult(text="no", color="transparent", index=0),
        "1": models.ValueMappingResult(text="maintenance", color="blue", index=1),
    }
)
THROTTLING = models.ValueMap(
    options={
        "0": models.ValueMappingResult(text="no", color="green", index=0),
        "1": models.ValueMappingResult(text="throttled", color="orange", index=1),
    }
)
RELOAD = models.ValueMap(
    options={
        "0": models.ValueMappingResult(text="rejected", color="red", index=0),
        "1": models.ValueMappingResult(text="ok", color="green", index=1),
    }
)


# ---------------------------------------------------------------------------------------
# PromQL


def selector(*extra: str, variables: Sequence[str] = ALL_VARIABLES) -> str:
    """Label matchers for the dashboard's variables (+ ``extra`` matchers)."""
    matchers = [*(f'{name}=~"${name}"' for name in variables), *extra]
    return "{" + ", ".join(matchers) + "}" if matchers else ""


SEL = selector()


def window_selector(*windows: str) -> str:
    """The variables' matchers plus one window label, or a choice of several."""
    if len(windows) == 1:
        return selector(f'window="{windows[0]}"')
    return selector(f'window=~"{"|".join(windows)}"')


def burn_windows() -> list[str]:
    """The long windows of the burn-rate alert rows, shortest first (1h, 6h, 1d, 3d)."""
    longs = sorted({row.long for row in load_burn_windows().rows})
    return [window_label(seconds) for seconds in longs]


def over_slo_window(metric: str, sel: str = SEL) -> str:
    """``metric{window=<each service's own SLO window>}``: one series per service.

    The SLO window differs between environments (30d, 28d, 1d ...) and is only a label
    value, so PromQL cannot compute it. A service exposes the alert windows plus its SLO
    window; any other label value is therefore its SLO window. Where the SLO window equals
    an alert window (say 1d), that window is picked where ``monai_slo_slo_window_seconds``
    says so.
    """
    labels = [window_label(seconds) for seconds in ALERT_WINDOWS]
    inner = sel[1:-1]
    clauses = [f'{metric}{{{inner}, window!~"{"|".join(labels)}"}}']
    for seconds, label in zip(ALERT_WINDOWS, labels, strict=True):
        clauses.append(
            f'({metric}{{{inner}, window="{label}"}} and ignoring (window) '
            f"({m.SLO_WINDOW_SECONDS} == {int(seconds)}))"
        )
    return " or ".join(clauses)


def row_value(expr: str) -> str:
    """One value per series for a table: the metric name and window dropped, so the merge
    transformation can join the queries' rows on the remaining labels."""
    return f"max without (window) ({expr})"


# ---------------------------------------------------------------------------------------
# Building blocks


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False
    column: str = ""
    """Table column title (table queries only)."""


def targets(queries: Sequence[Query]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    """Prometheus queries with refIds A, B, C ... on the dashboard's datasource."""
    built: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for ref, query in zip(string.ascii_uppercase, queries, strict=False):
        target = prometheus.Dataquery().expr(query.expr).ref_id(ref).datasource(DATASOURCE)
        if query.legend:
            target.legend_format(query.legend)
        if query.table:
            target.format(PromQueryFormat.TABLE).instant()
        elif query.instant:
            target.instant()
        else:
            target.range()
        built.append(target)
    return built


def thresholds(*steps: tuple[float | None, str]) -> builders.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (-Infinity)."""
    return (
        builders.ThresholdsConfig()
        .mode(models.ThresholdsMode.ABSOLUTE)
        .steps([models.Threshold(value=value, color=color) for value, color in steps])
    )


BUDGET_THRESHOLDS = ((None, "red"), (0.0, "orange"), (0.25, "green"))
BURN_THRESHOLDS = ((None, "green"), (1.0, "orange"), (6.0, "red"))
BURN_UNIT = "suffix:x"  # Grafana custom unit: the value, then "x"


def legend_table() -> common_builders.VizLegendOptions:
    return (
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "min", "max"])
    )


def time_series(
    title: str, description: str, queries: Sequence[Query], unit: str
) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .targets(targets(queries))
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(legend_table())
    )


def dashed(pattern: str) -> builders.DashboardFieldConfigSourceOverrides:
    """Series whose name matches ``pattern`` (an objective, a limit) drawn dashed."""
    return (
        builders.DashboardFieldConfigSourceOverrides()
        .matcher(models.MatcherConfig(id_val="byRegexp", options=pattern))
        .properties(
            [
                models.DynamicConfigValue(
                    id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
                ),
                models.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
            ]
        )
    )


def state_timeline(
    title: str, description: str, queries: Sequence[Query], mapping: models.ValueMap
) -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .targets(targets(queries))
        .mappings([mapping])
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.9)
        .fill_opacity(80)
        .line_width(0)
    )


def stat_panel(
    title: str,
    description: str,
    query: Query,
    steps: Sequence[tuple[float | None, str]],
    unit: str = "none",
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .targets(targets([query]))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )


def bar_gauge(
    title: str,
    description: str,
    queries: Sequence[Query],
    unit: str,
    steps: Sequence[tuple[float | None, str]],
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> bargauge.Panel:
    panel = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .targets(targets(queries))
        .unit(unit)
        .thresholds(thresholds(*steps))
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    if minimum is not None:
        panel.min(minimum)
    if maximum is not None:
        panel.max(maximum)
    return panel


@dataclass(frozen=True)
class Column:
    """Display settings of one table column, by its title."""

    name: str
    unit: str = ""
    decimals: int | None = None
    mapping: models.ValueMap | None = None
    steps: tuple[tuple[float | None, str], ...] = ()
    link: str = ""


def table_panel(
    title: str, description: str, queries: Sequence[Query], columns: Sequence[Column] = ()
) -> table.Panel:
    """Instant table queries merged into one row per series, with titled columns."""
    renames = {
        f"Value #{ref}": q.column for ref, q in zip(string.ascii_uppercase, queries, strict=False)
    }
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .targets(targets(queries))
        .with_transformation(models.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            models.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True, "job": True, "__name__": True},
                    "renameByName": renames,
                },
            )
        )
    )
    for column in columns:
        properties: list[models.DynamicConfigValue] = []
        if column.unit:
            properties.append(models.DynamicConfigValue(id_val="unit", value=column.unit))
        if column.decimals is not None:
            properties.append(models.DynamicConfigValue(id_val="decimals", value=column.decimals))
        if column.mapping is not None:
            properties.append(models.DynamicConfigValue(id_val="mappings", value=[column.mapping]))
        if column.steps:
            properties.append(
                models.DynamicConfigValue(
                    id_val="thresholds", value=thresholds(*column.steps).build()
                )
            )
        if column.mapping is not None or column.steps:
            properties.append(
                models.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "color-background"}
                )
            )
        if column.link:
            properties.append(
                models.DynamicConfigValue(
                    id_val="links",
                    value=[{"title": "Drill down", "url": column.link}],
                )
            )
        panel.override_by_name(column.name, properties)
    return panel


class _PanelBuilder(Protocol):
    def build(self) -> models.Panel: ...


@dataclass
class Board:
    """One dashboard: panels laid out left to right in rows of 24 grid units."""

    uid: str
    title: str
    description: str
    variables: list[cogbuilder.Builder[models.VariableModel]]
    annotations: list[builders.AnnotationQuery] = field(default_factory=list)
    panels: list[models.Panel | models.RowPanel] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_height: int = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def _new_line(self) -> None:
        self._y += self._row_height
        self._x = 0
        self._row_height = 0

    def row(self, title: str) -> None:
        self._new_line()
        self.panels.append(
            models.RowPanel(
                title=title,
                id_val=self._next_id(),
                grid_pos=models.GridPos(h=1, w=GRID_WIDTH, x=0, y=self._y),
                panels=[],
            )
        )
        self._y += 1

    def add(self, builder: _PanelBuilder, w: int, h: int) -> None:
        if self._x + w > GRID_WIDTH:
            self._new_line()
        panel = builder.build()
        panel.id_val = self._next_id()
        panel.datasource = DATASOURCE
        panel.grid_pos = models.GridPos(h=h, w=w, x=self._x, y=self._y)
        self.panels.append(panel)
        self._x += w
        self._row_height = max(self._row_height, h)

    def build(self) -> dict[str, Any]:
        dashboard = (
            builders.Dashboard(self.title)
            .uid(self.uid)
            .description(self.description)
            .tags([TAG])
            .editable()
            .tooltip(models.DashboardCursorSync.CROSSHAIR)
            .time("now-24h", "now")
            .refresh("1m")
            .timezone("browser")
            .link(
                builders.DashboardLink("MONAI SLO")
                .type(models.DashboardLinkType.DASHBOARDS)
                .tags([TAG])
                .as_dropdown(True)
                .include_vars(True)
                .keep_time(True)
            )
            .variables(list(self.variables))
            .annotations(list(self.annotations))
            .build()
        )
        dashboard.panels = list(self.panels)
        data: dict[str, Any] = json.loads(json.dumps(dashboard, cls=JSONEncoder))
        for annotation in data.get("annotations", {}).get("list", []):
            # Prometheus annotation fields the SDK's AnnotationQuery does not model.
            if annotation.get("expr"):
                annotation.update(
                    step="60s",
                    titleFormat="Planned maintenance",
                    textFormat="{{environment}} / {{service}}",
                    tagKeys="environment,service",
                    useValueForTime=False,
                )
        return data


# ---------------------------------------------------------------------------------------
# Template variables and annotations


def _all() -> models.VariableOption:
    return models.VariableOption(selected=True, text=["All"], value=["$__all"])


def variables(
    catalogue: str, extra: Sequence[tuple[str, str, str]] = ()
) -> list[cogbuilder.Builder[models.VariableModel]]:
    """datasource, environment, tier, service, prober, instance (+ ``extra``), chained.

    ``catalogue`` is the metric whose labels list what there is to choose;
    ``extra`` holds (name, label, metric) for variables chained after all the others.
    """
    found: list[cogbuilder.Builder[models.VariableModel]] = [
        builders.DatasourceVariable(DATASOURCE_VARIABLE).label("Data source").type("prometheus")
    ]
    labels = {
        "environment": "Environment",
        "tier": "Tier",
        "service": "Service",
        "prober": "Prober",
        "instance": "Instance",
    }

    def variable(
        name: str, label: str, metric: str, chained: Sequence[str]
    ) -> builders.QueryVariable:
        query = f"label_values({metric}{selector(variables=chained)}, {name})"
        return (
            builders.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query(query)
            .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(models.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(_all())
        )

    # A variable may only use those before it (Grafana resolves them in order).
    for index, name in enumerate(SERVICE_VARIABLES):
        found.append(variable(name, labels[name], catalogue, SERVICE_VARIABLES[:index]))
    found.append(variable("prober", labels["prober"], m.BUILD_INFO, ()))
    found.append(variable("instance", labels["instance"], m.BUILD_INFO, ("prober",)))
    for name, label, metric in extra:
        found.append(variable(name, label, metric, ALL_VARIABLES))
    return found


def maintenance_annotation() -> builders.AnnotationQuery:
    return (
        builders.AnnotationQuery()
        .name("Planned maintenance")
        .datasource(DATASOURCE)
        .enable(True)
        .icon_color("blue")
        .expr(f"{m.MAINTENANCE_ACTIVE}{SEL} == 1")
    )


# ---------------------------------------------------------------------------------------
# The dashboards


def service_link() -> str:
    return (
        f"/d/{SERVICE_UID}?var-environment=${{__data.fields.environment}}"
        "&var-service=${__data.fields.service}&${__url_time_range}"
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
        .with_override(*_dashed_override(".* objective")),
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


def _dashed_override(
    pattern: str,
) -> tuple[models.MatcherConfig, list[models.DynamicConfigValue]]:
    built = dashed(pattern).build()
    return built.matcher, built.properties


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
        .with_override(*_dashed_override(".* objective")),
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
    return board


def gpu() -> Board:
    gpu_sel = selector('gpu=~"$gpu"')
    gpu_legend = "{{instance}} GPU {{gpu}}"
    board = Board(
        GPU_UID,
        "MONAI SLO / GPUs",
        "The gpu check's readings from NVML: inventory, temperature and headroom to "
        "slowdown, clock throttling, power, memory, utilisation, ECC and XID counts.",
        variables(m.GPU_INFO, [("gpu", "GPU", m.GPU_INFO)]),
    )
    board.row("Inventory")
    board.add(
        stat_panel(
            "GPUs visible",
            "GPUs NVML reports on the selected hosts (the check fails below expected_count).",
            Query(f"sum({m.GPU_COUNT}{SEL})", instant=True),
            ((None, "green"),),
        ),
        4,
        6,
    )
    board.add(
        table_panel(
            "GPUs",
            "Model, driver and CUDA version of each watched GPU.",
            [Query(row_value(f"{m.GPU_INFO}{gpu_sel}"), table=True, column="Seen")],
        ),
        20,
        6,
    )
    board.add(
        state_timeline(
            "GPU check state",
            "Fails on a lost GPU, fewer GPUs than expected, critical XIDs, uncorrected "
            "ECC errors, row remapping, driver recovery actions (and, if configured, heat "
            "or throttling).",
            [
                Query(
                    m.CHECK_UP + selector('kind="gpu"'),
                    "{{instance}} {{service}} / {{check}}",
                )
            ],
            UP_DOWN,
        ),
        24,
        5,
    )

    board.row("Thermal")
    board.add(
        time_series(
            "Temperature",
            "GPU temperature (solid) and the slowdown threshold where the GPU starts "
            "throttling its clocks (dashed).",
            [
                Query(f"{m.GPU_TEMPERATURE_CELSIUS}{gpu_sel}", gpu_legend),
                Query(f"{m.GPU_TEMPERATURE_SLOWDOWN_CELSIUS}{gpu_sel}", gpu_legend + " slowdown"),
            ],
            "celsius",
        ).with_override(*_dashed_override(".* slowdown")),
        12,
        8,
    )
    board.add(
        bar_gauge(
            "Headroom to slowdown",
            f"Degrees below the slowdown threshold; under {NEAR_SLOWDOWN_CELSIUS} the check warns.",
            [
                Query(
                    f"{m.GPU_TEMPERATURE_SLOWDOWN_CELSIUS}{gpu_sel} - "
                    f"{m.GPU_TEMPERATURE_CELSIUS}{gpu_sel}",
                    gpu_legend,
                    instant=True,
                )
            ],
            "celsius",
            ((None, "red"), (NEAR_SLOWDOWN_CELSIUS, "orange"), (15, "green")),
            minimum=0,
        ),
        12,
        8,
    )
    board.add(
        state_timeline(
            "Clock throttling",
            "Throttle reasons active per GPU. sw_power_cap is normal under full load; "
            "hw_slowdown, hw_thermal, hw_power_brake and sw_thermal are not.",
            [Query(f"{m.GPU_THROTTLE_ACTIVE}{gpu_sel}", gpu_legend + " {{reason}}")],
            THROTTLING,
        ),
        24,
        8,
    )

    board.row("Load")
    board.add(
        time_series(
            "Power",
            "Power draw.",
            [Query(f"{m.GPU_POWER_WATTS}{gpu_sel}", gpu_legend)],
            "watt",
        ),
        8,
        8,
    )
    board.add(
        time_series(
            "Memory used",
            "Framebuffer memory used (solid) and installed (dashed).",
            [
                Query(f"{m.GPU_MEMORY_USED_BYTES}{gpu_sel}", gpu_legend),
                Query(f"{m.GPU_MEMORY_TOTAL_BYTES}{gpu_sel}", gpu_legend + " total"),
            ],
            "bytes",
        ).with_override(*_dashed_override(".* total")),
        8,
        8,
    )
    board.add(
        time_series(
            "Utilisation",
            "Share of time a kernel was running on the GPU.",
            [Query(f"{m.GPU_UTILIZATION_RATIO}{gpu_sel}", gpu_legend)],
            "percentunit",
        ).max(1),
        8,
        8,
    )

    board.row("Errors")
    board.add(
        time_series(
            "Uncorrected ECC errors (volatile)",
            "Uncorrected volatile ECC errors since the last driver reload; any fails the check.",
            [Query(f"{m.GPU_ECC_UNCORRECTED_VOLATILE_ERRORS}{gpu_sel}", gpu_legend)],
            "short",
        ),
        12,
        7,
    )
    board.add(
        time_series(
            "XID events since daemon start",
            "XID events NVML reported; critical ones fail the check, application XIDs "
            "(13, 31, 43 ...) are a CUDA program's fault.",
            [Query(f"{m.GPU_XID_EVENTS_SINCE_START}{gpu_sel}", gpu_legend)],
            "short",
        ),
        12,
        7,
    )
    return board


# ---------------------------------------------------------------------------------------
# Output

BOARDS = {
    f"{OVERVIEW_UID}.json": overview,
    f"{SERVICE_UID}.json": service,
    f"{GPU_UID}.json": gpu,
}


def render_dashboards() -> dict[str, str]:
    """File name -> dashboard JSON text, as checked in under grafana/dashboards/."""
    return {
        name: json.dumps(make().build(), indent=2, ensure_ascii=False) + "\n"
        for name, make in BOARDS.items()
    }


def write_dashboards(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_dashboards().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monai_slo.outputs.dashboards",
        description="Write the Grafana dashboards (JSON) into DIRECTORY.",
    )
    parser.add_argument("directory", type=Path, help="e.g. grafana/dashboards")
    args = parser.parse_args(argv)
    for path in write_dashboards(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
