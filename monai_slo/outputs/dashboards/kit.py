"""The panel kit every monai-slo dashboard is built from: PromQL helpers over the shared
template variables, typed panel builders (time series, state timeline, stat, bar gauge, table),
the :class:`Board` that lays panels out on Grafana's grid, the variables and the maintenance
annotation.

Every panel selects with the same template variables: ``environment``, ``tier``, ``service``
(chained), ``prober`` and ``instance`` (which monai-slo daemon measured it; ``prober`` is the
target label of docs/scaling.md and may be absent), all multi-value with "All" = ``.*``.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from grafana_foundation_sdk.builders import (
    bargauge,
    heatmap,
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
from grafana_foundation_sdk.models import heatmap as models_heatmap
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

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


def ranked(values: Sequence[str], colors: Sequence[str]) -> models.ValueMap:
    """Value i shown as ``values[i]`` in ``colors[i]``: the mapping for :func:`one_of`."""
    return models.ValueMap(
        options={
            str(i): models.ValueMappingResult(text=text, color=color, index=i)
            for i, (text, color) in enumerate(zip(values, colors, strict=True))
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


def one_of(metric: str, sel: str, label: str, values: Sequence[str]) -> str:
    """A state set (one series per ``label`` value, 1 for the current one) as one series
    whose value is the current value's index in ``values`` (shown with :func:`ranked`)."""
    inner = sel[1:-1]
    parts = [
        f'({metric}{{{inner}, {label}="{value}"}} == 1) * {index}'
        for index, value in enumerate(values)
    ]
    return f"max without ({label}) (\n  " + "\nor\n  ".join(parts) + "\n)"


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
    heatmap: bool = False
    """Histogram buckets for a heat map (one series per ``le``)."""
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
        elif query.heatmap:
            target.format(PromQueryFormat.HEATMAP).range()
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


def heatmap_panel(title: str, description: str, query: Query, unit: str) -> heatmap.Panel:
    """A Prometheus histogram's buckets over time, as Grafana's heat map reads them."""
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .targets(targets([query]))
        .calculate(False)
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.LE))
        .y_axis(heatmap.YAxisConfig().unit(unit))
        .cell_values(heatmap.CellValues().unit("short"))
        .color(
            heatmap.HeatmapColorOptions()
            .mode(models_heatmap.HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .fill("dark-orange")
            .scale(models_heatmap.HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
        )
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


def service_link() -> str:
    return (
        f"/d/{SERVICE_UID}?var-environment=${{__data.fields.environment}}"
        "&var-service=${__data.fields.service}&${__url_time_range}"
    )


def dashed_override(
    pattern: str,
) -> tuple[models.MatcherConfig, list[models.DynamicConfigValue]]:
    built = dashed(pattern).build()
    return built.matcher, built.properties
