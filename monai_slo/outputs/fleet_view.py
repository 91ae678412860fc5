"""The fleet's figures read back from the engine that evaluates the generated rules, as the
same evaluated model one prober's history gives (``ServiceReport``, ``AvailabilityReport``),
so ``status --prometheus`` and ``report --prometheus`` print and render what they do for one
prober.

The engine records the fleet SLI once per evaluation (``monai_slo:service_sli:fleet``: 1 up,
0 down, absent for no data or maintenance) and its per-window sums; each sample stands for
one evaluation interval, estimated from the recorded samples' spacing. Status reads the
per-window sums (cheap over 30 days); the report reads the instant series' raw samples, a day
per query (less for many services), and rebuilds the timeline from them. Check detail,
latency and incidents stay in each prober's own history.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monai_slo.config.maintenance import Window
from monai_slo.config.model import Config
from monai_slo.history.evaluation import ServiceReport, WindowReport, window_label
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.prometheus_source import EngineError, Labels, PrometheusSource
from monai_slo.outputs.report import (
    DAY,
    AvailabilityReport,
    EnvironmentPeriod,
    Period,
    period_from_spans,
)
from monai_slo.slo.availability import (
    ALERT_WINDOWS,
    Span,
    State,
    WindowStats,
    burn_rate,
    error_budget_remaining,
)
from monai_slo.tiers import percent_to_ratio

# A gap longer than this many evaluation intervals between two samples is no data (shorter:
# an evaluation that ran late or was skipped).
GAP_INTERVALS = 3.0
ENGINE_MAINTENANCE = "maintenance (recorded by the engine)"
HOUR = 3600.0
POINTS_PER_QUERY = 1_000_000

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class FleetStatus:
    reports: list[ServiceReport]
    probers: tuple[str, ...]
    """The probers the fold counts now (their ``prober`` label, else their instance)."""
    reporting: dict[Key, int]
    """Per service, how many probers report it now."""
    interval: float
    """The engine's evaluation interval, as its samples are spaced."""


def _key(labels: Labels) -> Key:
    return labels.get("environment", ""), labels.get("service", "")


def _environments(config: Config) -> str:
    names = "|".join(e.name for e in config.environments)
    return f'environment=~"{names}"'


def evaluation_interval(source: PrometheusSource, config: Config, at: float) -> float:
    """The spacing of the fleet's recorded samples over the last 10 minutes (their median)."""
    found = source.samples(
        f"{m.RECORDED_FLEET_SERVICE_REPORTING}{{{_environments(config)}}}[10m]", at
    )
    gaps = [b[0] - a[0] for _, points in found for a, b in itertools.pairwise(points)]
    gaps = [gap for gap in gaps if gap > 0]
    if not gaps:
        raise EngineError(
            f"{source.url}: no fleet series recorded in the last 10 minutes "
            f"({m.RECORDED_FLEET_SERVICE_REPORTING}); are the rules of `monai-slo rules` loaded?"
        )
    return statistics.median(gaps)


def probers_reporting(source: PrometheusSource, config: Config, at: float) -> tuple[str, ...]:
    """The probers the fold counts at ``at``: reporting some service, their target not down."""
    job = config.alerting.job
    found = source.vector(
        f"count by (job, instance, prober) ({m.SERVICE_UP}{{{_environments(config)}}}"
        f' unless on (job, instance) (up{{job="{job}"}} == 0))',
        at,
    )
    return tuple(sorted(labels.get("prober") or labels.get("instance", "?") for labels, _ in found))


def _by_key(found: Iterable[tuple[Labels, float]]) -> dict[Key, float]:
    return {_key(labels): value for labels, value in found}


def _by_window(found: Iterable[tuple[Labels, float]]) -> dict[tuple[str, str, str], float]:
    return {(*_key(labels), labels.get("window", "")): value for labels, value in found}


def fleet_status(config: Config, source: PrometheusSource, now: float) -> FleetStatus:
    """Every service's windows, budget and state from the engine's recorded fleet series."""
    interval = evaluation_interval(source, config, now)
    where = _environments(config)
    good = _by_window(source.vector(f"{m.RECORDED_FLEET_GOOD_SAMPLES}{{{where}}}", now))
    counted = _by_window(source.vector(f"{m.RECORDED_FLEET_SAMPLES}{{{where}}}", now))
    sli = _by_key(source.vector(f"{m.RECORDED_FLEET_SERVICE_SLI}{{{where}}}", now))
    reporting = _by_key(source.vector(f"{m.RECORDED_FLEET_SERVICE_REPORTING}{{{where}}}", now))
    maintenance = _by_key(source.vector(f"{m.RECORDED_MAINTENANCE_ACTIVE}{{{where}}}", now))
    reports = []
    for service in config.services():
        key = service.key
        windows = []
        for seconds in sorted({*ALERT_WINDOWS, service.window}):
            label = window_label(seconds)
            samples = counted.get((*key, label), 0.0)
            up = good.get((*key, label), 0.0) * interval
            measured = samples * interval
            stats = WindowStats(seconds, up, measured - up, max(0.0, seconds - measured))
            objective = service.objective
            rate = burn_rate(stats, percent_to_ratio(objective)) if objective is not None else None
            windows.append(WindowReport(label, stats, rate))
        slo_window = next(w for w in windows if w.stats.window == service.window)
        budget = (
            error_budget_remaining(slo_window.stats, percent_to_ratio(service.objective))
            if service.objective is not None
            else None
        )
        state = {1.0: State.UP, 0.0: State.DOWN}.get(sli.get(key, -1.0), State.NO_DATA)
        reports.append(
            ServiceReport(
                service,
                state,
                tuple(windows),
                slo_window,
                budget,
                (),
                maintenance_active=maintenance.get(key, 0.0) == 1.0,
            )
        )
    return FleetStatus(
        reports,
        probers_reporting(source, config, now),
        {k: int(v) for k, v in reporting.items()},
        interval,
    )


def _spans(points: Sequence[tuple[float, float]], interval: float) -> list[Span]:
    """Each sample stands for the interval after it (up to the next sample, or one interval
    when the next one is further than a gap); equal neighbours merged."""
    spans: list[Span] = []
    for index, (at, value) in enumerate(points):
        following = points[index + 1][0] if index + 1 < len(points) else None
        end = at + interval
        if following is not None and following - at <= GAP_INTERVALS * interval:
            end = following
        state = State.UP if value == 1 else State.DOWN
        if spans and spans[-1].state is state and spans[-1].end == at:
            spans[-1] = Span(spans[-1].start, end, state)
        else:
            spans.append(Span(at, end, state))
    return spans


def chunk_seconds(services: int, interval: float) -> float:
    """How much time one raw-sample query covers: about POINTS_PER_QUERY samples over every
    service (some 35 MB of JSON, under the answer bound), between an hour and a day."""
    return min(DAY, max(HOUR, POINTS_PER_QUERY * interval / max(1, services)))


def _raw(
    source: PrometheusSource, expr: str, start: float, until: float, chunk: float
) -> dict[Key, list[tuple[float, float]]]:
    """Raw samples of ``expr`` in [start, until), ``chunk`` seconds per query, per service."""
    found: dict[Key, dict[float, float]] = {}
    chunk_end = until
    while chunk_end > start:
        span = min(chunk, chunk_end - start)
        for labels, points in source.samples(f"{expr}[{max(1, round(span))}s]", chunk_end):
            into = found.setdefault(_key(labels), {})
            into.update((at, v) for at, v in points if start <= at < until)
        chunk_end -= span
    return {key: sorted(points.items()) for key, points in found.items()}


def fleet_report(
    config: Config, source: PrometheusSource, period: Period, now: float
) -> tuple[AvailabilityReport, tuple[str, ...]]:
    """The period's report from the fleet SLI's samples; and the probers reporting now."""
    until = max(period.start, min(period.end, now))
    interval = evaluation_interval(source, config, now)
    where = _environments(config)
    chunk = chunk_seconds(len(list(config.services())), interval)
    sli = _raw(source, f"{m.RECORDED_FLEET_SERVICE_SLI}{{{where}}}", period.start, until, chunk)
    planned = _raw(
        source, f"{m.RECORDED_MAINTENANCE_ACTIVE}{{{where}}}", period.start, until, chunk
    )
    probers = probers_reporting(source, config, now)

    environments = []
    for environment in config.environments:
        services = []
        for service in environment.services:
            spans = _spans(sli.get(service.key, []), interval)
            windows = [
                Window(span.start, span.end, ENGINE_MAINTENANCE)
                for span in _spans(
                    [(at, v) for at, v in planned.get(service.key, []) if v == 1], interval
                )
            ]
            services.append(period_from_spans(service, period, until, spans, windows))
        environments.append(EnvironmentPeriod(environment, tuple(services)))
    source_text = f"{source.url} (the fleet SLI of {len(probers)} probers reporting now)"
    report = AvailabilityReport(
        period, until, now, source_text, config.retention, tuple(environments)
    )
    return report, probers
