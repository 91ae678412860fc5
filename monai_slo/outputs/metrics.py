"""The /metrics collector: every family computed at scrape time from live counters and history.

Gauges and counters are :mod:`monai_slo.outputs.exposition`'s deferred families: their rows
become lines directly (prometheus_client's sample objects only if something asks for them)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from monai_slo import __version__
from monai_slo.checks.base import CheckResult
from monai_slo.config.model import CheckRef, Config
from monai_slo.history.evaluation import ServiceReport, evaluate
from monai_slo.history.store import HistoryStore
from monai_slo.history.timeline import TimelineCache
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.exposition import Counter, Gauge, Row, label_set, sample_line
from monai_slo.outputs.lateness import Lateness
from monai_slo.slo.availability import State

CHECK_LABELS = list(m.CHECK_LABELS)
SERVICE_LABELS = list(m.SERVICE_LABELS)
CheckKey = tuple[str, str, str]


Line = tuple[Row, str]
"""A row of a family (label values, value) with its line already written."""


@dataclass(slots=True)
class CheckLines:
    """One check's /metrics lines for its last result, written as the result is recorded
    (or by the scrape that first finds them missing) so that a scrape copies them; valid
    while ``labels``, ``last``, ``runs`` and ``failures`` are what the scrape sees. A new
    object per result (a scrape may still be writing the previous one); only ``skipped``
    is replaced in place, by scrapes under the counters' lock."""

    labels: tuple[str, ...]
    label_set: str
    last: CheckResult | None
    runs: int
    failures: dict[str, int] | None
    up: str
    duration: str
    last_run: str
    runs_line: str
    failure_lines: tuple[Line, ...]
    skipped: Line | None


def check_label_values(ref: CheckRef) -> tuple[str, ...]:
    return (ref.environment, ref.tier, ref.service, ref.config.name, ref.config.kind)


_CHECK_NAMES = tuple(m.CHECK_LABELS)
_FAILURE_NAMES = (*_CHECK_NAMES, m.REASON)
_RUNS_SAMPLE = m.CHECK_RUNS + "_total"
_FAILURES_SAMPLE = m.CHECK_FAILURES + "_total"
_SKIPPED_SAMPLE = m.CHECK_SKIPPED_RUNS + "_total"


@dataclass
class LiveCounters:
    """Since-start counters and last results, fed by the runner's result sink."""

    runs: dict[CheckKey, int] = field(default_factory=dict)
    failures: dict[CheckKey, dict[str, int]] = field(default_factory=dict)
    last: dict[CheckKey, CheckResult] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    lines: dict[CheckKey, CheckLines] = field(default_factory=dict)
    """Each check's lines for its last result (issue 15: a scrape at 5,000 checks spent
    ~100 ms writing them); see :class:`CheckLines`."""

    def record(self, ref: CheckRef, result: CheckResult) -> None:
        with self.lock:
            key = ref.key
            runs = self.runs[key] = self.runs.get(key, 0) + 1
            by_reason = self.failures.get(key)
            if not result.success and result.reason is not None:
                by_reason = self.failures.setdefault(key, {})
                by_reason[result.reason] = by_reason.get(result.reason, 0) + 1
            self.last[key] = result
            self.lines[key] = _check_lines(
                check_label_values(ref), result, runs, by_reason, self.lines.get(key)
            )


def _check_lines(
    labels: tuple[str, ...],
    last: CheckResult | None,
    runs: int,
    failures: dict[str, int] | None,
    before: CheckLines | None,
) -> CheckLines:
    if before is not None and before.labels == labels:
        labels, text = before.labels, before.label_set
    else:
        text = label_set(_CHECK_NAMES, labels)
        before = None
    if before is not None and before.failures == failures:
        failure_lines = before.failure_lines
    else:
        failure_lines = tuple(
            _failure_line(labels, reason, count)
            for reason, count in sorted((failures or {}).items())
        )
    up = duration = last_run = ""
    if last is not None:
        up = sample_line(m.CHECK_UP, text, 1 if last.success else 0)
        duration = sample_line(m.CHECK_DURATION_SECONDS, text, last.duration)
        last_run = sample_line(m.CHECK_LAST_RUN_TIMESTAMP_SECONDS, text, last.timestamp)
    return CheckLines(
        labels,
        text,
        last,
        runs,
        dict(failures) if failures else None,
        up,
        duration,
        last_run,
        sample_line(_RUNS_SAMPLE, text, runs),
        failure_lines,
        None if before is None else before.skipped,
    )


def _failure_line(labels: tuple[str, ...], reason: str, count: int) -> Line:
    values = (*labels, reason)
    return (values, count), sample_line(_FAILURES_SAMPLE, label_set(_FAILURE_NAMES, values), count)


def _last(kept: CheckLines) -> CheckResult:
    assert kept.last is not None  # only checks with a result are kept in these families
    return kept.last


def _kept_families(
    up: Gauge, duration: Gauge, last_ts: Gauge, runs: Counter, skipped: Counter
) -> None:
    """Where each family reads its rows and lines in :class:`CheckLines`."""
    up.reads_kept(lambda k: (k.labels, 1 if _last(k).success else 0), attrgetter("up"))
    duration.reads_kept(lambda k: (k.labels, _last(k).duration), attrgetter("duration"))
    last_ts.reads_kept(lambda k: (k.labels, _last(k).timestamp), attrgetter("last_run"))
    runs.reads_kept(lambda k: (k.labels, k.runs), attrgetter("runs_line"))
    skipped.reads_kept(itemgetter(0), itemgetter(1))  # kept: the Line itself


@dataclass
class DaemonView:
    """What the collector reads; the daemon swaps ``config`` on reload."""

    config: Config
    store: HistoryStore
    counters: LiveCounters
    skipped: Callable[[], dict[CheckKey, int]] = dict
    lateness: Lateness | None = None
    missed: Callable[[], dict[str, int]] = dict
    reload_successful: bool = True
    reload_timestamp: float = field(default_factory=time.time)
    clock: Callable[[], float] = time.time
    study_flow: StudyFlowLatencies | None = None
    in_flight: Callable[[], dict[CheckKey, int]] = dict
    """Canaries in flight per check (the runner's pending runs)."""


def _check_labels(ref: CheckRef) -> list[str]:
    return [ref.environment, ref.tier, ref.service, ref.config.name, ref.config.kind]


def _extra_family(families: dict[str, Gauge], suffix: str, extra_labels: tuple[str, ...]) -> Gauge:
    """The family for a kind-specific gauge; the first series seen fixes its label names."""
    family = families.get(suffix)
    if family is None:
        family = Gauge(
            m.kind_family(suffix),
            f"{suffix} reported by the check",
            labels=[*CHECK_LABELS, *extra_labels],
        )
        families[suffix] = family
    return family


# Every family ``collect`` yields whatever the config holds, with its type: what ``describe``
# announces to the registry.
FIXED_FAMILIES: tuple[tuple[str, str], ...] = (
    (m.CHECK_UP, "gauge"),
    (m.CHECK_DURATION_SECONDS, "gauge"),
    (m.CHECK_LAST_RUN_TIMESTAMP_SECONDS, "gauge"),
    (m.CHECK_RUNS, "counter"),
    (m.CHECK_FAILURES, "counter"),
    (m.CHECK_SKIPPED_RUNS, "counter"),
    (m.SERVICE_UP, "gauge"),
    (m.AVAILABILITY_RATIO, "gauge"),
    (m.DATA_COVERAGE_RATIO, "gauge"),
    (m.OBJECTIVE_RATIO, "gauge"),
    (m.SLO_WINDOW_SECONDS, "gauge"),
    (m.ERROR_BUDGET_REMAINING_RATIO, "gauge"),
    (m.BURN_RATE, "gauge"),
    (m.MAINTENANCE_ACTIVE, "gauge"),
    (m.LATENCY_RATIO, "gauge"),
    (m.LATENCY_OBJECTIVE_RATIO, "gauge"),
    (m.LATENCY_THRESHOLD_SECONDS, "gauge"),
    (m.LATENCY_BURN_RATE, "gauge"),
    (m.LATENCY_ERROR_BUDGET_REMAINING_RATIO, "gauge"),
    (m.BUILD_INFO, "gauge"),
    (m.CONFIG_LAST_RELOAD_SUCCESSFUL, "gauge"),
    (m.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, "gauge"),
    (m.SCHEDULER_START_LATENESS_SECONDS, "histogram"),
    (m.SCHEDULER_MISSED_RUNS, "counter"),
    (m.STORE_ERRORS, "counter"),
    (m.STORE_HEALTHY, "gauge"),
    (m.STORE_BUFFERED_RECORDS, "gauge"),
    (m.STORE_DROPPED_RECORDS, "counter"),
    (m.STUDY_FLOW_LATENCY_SECONDS, "histogram"),
    (m.STUDY_FLOW_IN_FLIGHT, "gauge"),
)


class SloCollector(Collector):
    def describe(self) -> Iterator[Metric]:
        """The fixed families, without samples: a registry that already holds one of these
        names refuses this collector at ``register`` (as client_python's own metrics do).
        Kind-specific gauges are left out: their names come from the checks' results."""
        for name, kind in FIXED_FAMILIES:
            yield Metric(name, "", kind)

    def __init__(self, view: DaemonView) -> None:
        self.view = view
        # Settled history is kept between scrapes (see monai_slo.history.timeline); scrapes take
        # turns.
        self._timelines = TimelineCache()
        self._timelines_lock = threading.Lock()

    def reports(
        self, now: float, *, checks: bool = True, config: Config | None = None
    ) -> list[ServiceReport]:
        """Every service evaluated at ``now`` with the timelines kept between scrapes (what
        the daemon's status API answers with ``checks``)."""
        config = self.view.config if config is None else config
        with self._timelines_lock:
            self._timelines.forget({service.key for service in config.services()})
            return evaluate(config, self.view.store, now, cache=self._timelines, checks=checks)

    def collect(self) -> Iterator[Metric]:
        view = self.view
        config = view.config
        now = view.clock()
        yield from self._checks(config)
        yield from self._services(config, now)
        yield from _study_flow(view, config)
        build = Gauge(m.BUILD_INFO, "monai-slo build", labels=[m.VERSION])
        build.add_metric([__version__], 1)
        yield build
        yield Gauge(
            m.CONFIG_LAST_RELOAD_SUCCESSFUL,
            "1 if the last config (re)load succeeded",
            value=1 if view.reload_successful else 0,
        )
        yield Gauge(
            m.CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
            "When the config in use was loaded",
            value=view.reload_timestamp,
        )
        if view.lateness is not None:
            buckets, total = view.lateness.snapshot()
            yield HistogramMetricFamily(
                m.SCHEDULER_START_LATENESS_SECONDS,
                "How late check runs started against their schedule",
                buckets=buckets,
                sum_value=total,
            )
        yield Counter(
            m.SCHEDULER_MISSED_RUNS,
            "Check runs APScheduler could not start in time (skipped, not queued)",
            value=sum(view.missed().values()),
        )
        store_errors = Counter(
            m.STORE_ERRORS,
            "Failed history database operations since start (results stay in memory meanwhile)",
            labels=[m.OPERATION],
        )
        for operation, count in sorted(view.store.error_counts().items()):
            store_errors.add_metric([operation], count)
        yield store_errors
        yield Gauge(
            m.STORE_HEALTHY,
            "1 while the history database is written normally (0: failing or damaged)",
            value=1 if view.store.healthy() else 0,
        )
        yield Gauge(
            m.STORE_BUFFERED_RECORDS,
            "Changed segments and hourly run counters waiting for a history write",
            value=view.store.buffered(),
        )
        yield Counter(
            m.STORE_DROPPED_RECORDS,
            "Buffered records never written because the buffer was full",
            value=view.store.dropped,
        )

    def _checks(self, config: Config) -> Iterator[Metric]:
        up = Gauge(m.CHECK_UP, "1 if the last run succeeded", labels=CHECK_LABELS)
        duration = Gauge(m.CHECK_DURATION_SECONDS, "Duration of the last run", labels=CHECK_LABELS)
        last_ts = Gauge(
            m.CHECK_LAST_RUN_TIMESTAMP_SECONDS,
            "Start of the last run",
            labels=CHECK_LABELS,
        )
        runs = Counter(m.CHECK_RUNS, "Runs since start", labels=CHECK_LABELS)
        failures = Counter(
            m.CHECK_FAILURES,
            "Failed runs since start by reason",
            labels=[*CHECK_LABELS, m.REASON],
        )
        skipped = Counter(
            m.CHECK_SKIPPED_RUNS,
            "Runs not started because the previous run was still going",
            labels=CHECK_LABELS,
        )
        extra: dict[str, Gauge] = {}
        counters = self.view.counters
        skipped_counts = self.view.skipped()
        _kept_families(up, duration, last_ts, runs, skipped)
        kept_lines = counters.lines
        with counters.lock:
            for ref in config.checks():
                key = ref.key
                last = counters.last.get(key)
                run_count = counters.runs.get(key, 0)
                failed = counters.failures.get(key) or None
                labels_t = check_label_values(ref)
                kept = kept_lines.get(key)
                if (
                    kept is None
                    or kept.last is not last
                    or kept.runs != run_count
                    or kept.failures != failed
                    or kept.labels != labels_t
                ):  # not recorded through record(), or relabelled by a reload
                    kept = kept_lines[key] = _check_lines(labels_t, last, run_count, failed, kept)
                runs.keep(kept)
                count = skipped_counts.get(key, 0)
                if kept.skipped is None or kept.skipped[0][1] != count:
                    row = (kept.labels, count)
                    kept.skipped = row, sample_line(_SKIPPED_SAMPLE, kept.label_set, count)
                skipped.keep(kept.skipped)
                for line in kept.failure_lines:
                    failures.add_line(*line)
                if last is None:
                    continue
                up.keep(kept)
                duration.keep(kept)
                last_ts.keep(kept)
                if not last.values and not last.series:
                    continue
                labels = list(kept.labels)
                for suffix, value in last.values.items():
                    _extra_family(extra, suffix, ()).add_metric(labels, value)
                for series in last.series:
                    names = tuple(series.labels)
                    family = _extra_family(extra, series.name, names)
                    family.add_metric([*labels, *series.labels.values()], series.value)
        families: tuple[Metric, ...] = (up, duration, last_ts, runs, failures, skipped)
        yield from (*families, *extra.values())

    def _services(self, config: Config, now: float) -> Iterator[Metric]:
        service_up = Gauge(
            m.SERVICE_UP,
            "1 up, 0 down (any check down); absent with no data",
            labels=SERVICE_LABELS,
        )
        availability = Gauge(
            m.AVAILABILITY_RATIO,
            "Time-weighted availability over the window",
            labels=[*SERVICE_LABELS, m.WINDOW],
        )
        coverage = Gauge(
            m.DATA_COVERAGE_RATIO,
            "Share of the window with data",
            labels=[*SERVICE_LABELS, m.WINDOW],
        )
        objective = Gauge(
            m.OBJECTIVE_RATIO,
            "Availability objective (absent for best-effort tiers)",
            labels=SERVICE_LABELS,
        )
        window_seconds = Gauge(
            m.SLO_WINDOW_SECONDS,
            "Length of the SLO window (a calendar window: its current period)",
            labels=SERVICE_LABELS,
        )
        budget = Gauge(
            m.ERROR_BUDGET_REMAINING_RATIO,
            "Share of the SLO window's error budget left (negative when overspent)",
            labels=SERVICE_LABELS,
        )
        burn = Gauge(
            m.BURN_RATE,
            "Error budget burn rate over the window (1 = exactly on budget)",
            labels=[*SERVICE_LABELS, m.WINDOW],
        )
        maintenance = Gauge(
            m.MAINTENANCE_ACTIVE,
            "1 while the service is in planned maintenance",
            labels=SERVICE_LABELS,
        )
        latency_ratio = Gauge(
            m.LATENCY_RATIO,
            "Share of the window's runs that succeeded within the latency threshold",
            labels=[*CHECK_LABELS, m.WINDOW],
        )
        latency_objective = Gauge(
            m.LATENCY_OBJECTIVE_RATIO,
            "Latency objective: share of runs to succeed within the threshold",
            labels=CHECK_LABELS,
        )
        latency_threshold = Gauge(
            m.LATENCY_THRESHOLD_SECONDS,
            "A run slower than this misses the latency objective",
            labels=CHECK_LABELS,
        )
        latency_burn = Gauge(
            m.LATENCY_BURN_RATE,
            "Latency error budget burn rate over the window (1 = exactly on budget)",
            labels=[*CHECK_LABELS, m.WINDOW],
        )
        latency_budget = Gauge(
            m.LATENCY_ERROR_BUDGET_REMAINING_RATIO,
            "Share of the SLO window's budget of slow runs left (negative when overspent)",
            labels=CHECK_LABELS,
        )
        for report in self.reports(now, checks=False, config=config):
            service = report.service
            labels = [service.environment, service.tier, service.name]
            if report.state is not State.NO_DATA:
                service_up.add_metric(labels, 1 if report.state is State.UP else 0)
            maintenance.add_metric(labels, 1 if report.maintenance_active else 0)
            window_seconds.add_metric(labels, report.slo_window.seconds)
            for window in report.windows:
                coverage.add_metric([*labels, window.label], window.stats.coverage)
                if window.stats.availability is not None:
                    availability.add_metric([*labels, window.label], window.stats.availability)
                if window.burn_rate is not None:
                    burn.add_metric([*labels, window.label], window.burn_rate)
            if report.objective_ratio is not None:
                objective.add_metric(labels, report.objective_ratio)
            if report.budget_remaining is not None:
                budget.add_metric(labels, report.budget_remaining)
            for latency in report.latency:
                check = _check_labels(latency.ref)
                latency_objective.add_metric(check, latency.objective_ratio)
                latency_threshold.add_metric(check, latency.threshold)
                for lw in latency.windows:
                    if lw.stats.ratio is not None:
                        latency_ratio.add_metric([*check, lw.label], lw.stats.ratio)
                    if lw.burn_rate is not None:
                        latency_burn.add_metric([*check, lw.label], lw.burn_rate)
                if latency.budget_remaining is not None:
                    latency_budget.add_metric(check, latency.budget_remaining)
        yield from (
            service_up,
            availability,
            coverage,
            objective,
            window_seconds,
            budget,
            burn,
            maintenance,
            latency_ratio,
            latency_objective,
            latency_threshold,
            latency_burn,
            latency_budget,
        )


# --- study_flow: canary latencies per stage, canaries in flight -------------------------------

STUDY_FLOW_KIND = "study_flow"
STUDY_FLOW_SERIES = m.STUDY_FLOW_LAST_LATENCY_SECONDS.removeprefix(m.PREFIX)
# From a router forwarding in well under a second to an AI round trip of many minutes.
STUDY_FLOW_BUCKETS = (
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    900.0,
    1800.0,
    3600.0,
)


class StudyFlowLatencies:
    """Canary latencies per check and stage since start, folded from each study_flow
    result's last-latency series: what the latency histogram exposes."""

    def __init__(self) -> None:
        self._histograms: dict[tuple[CheckKey, str], Lateness] = {}
        self._lock = threading.Lock()

    def record(self, ref: CheckRef, result: CheckResult) -> None:
        for series in result.series:
            if series.name != STUDY_FLOW_SERIES or m.STAGE not in series.labels:
                continue
            slot = (ref.key, series.labels[m.STAGE])
            with self._lock:
                histogram = self._histograms.get(slot)
                if histogram is None:
                    histogram = self._histograms[slot] = Lateness(STUDY_FLOW_BUCKETS)
            histogram.observe(series.value)

    def snapshot(self, key: CheckKey) -> list[tuple[str, Lateness]]:
        with self._lock:
            return sorted(
                (stage, histogram)
                for (owner, stage), histogram in self._histograms.items()
                if owner == key
            )


def _study_flow(view: DaemonView, config: Config) -> Iterator[Metric]:
    latency = HistogramMetricFamily(
        m.STUDY_FLOW_LATENCY_SECONDS,
        "Canary latency from the C-STORE's success to first sight, per stage (and end_to_end)",
        labels=[*CHECK_LABELS, m.STAGE],
    )
    in_flight = Gauge(
        m.STUDY_FLOW_IN_FLIGHT, "Canaries sent and not yet seen everywhere", labels=CHECK_LABELS
    )
    pending = view.in_flight()
    for ref in config.checks():
        if ref.config.kind != STUDY_FLOW_KIND:
            continue
        labels = _check_labels(ref)
        in_flight.add_metric(labels, pending.get(ref.key, 0))
        if view.study_flow is None:
            continue
        for stage, histogram in view.study_flow.snapshot(ref.key):
            buckets, total = histogram.snapshot()
            latency.add_metric([*labels, stage], buckets, total)
    yield from (latency, in_flight)
