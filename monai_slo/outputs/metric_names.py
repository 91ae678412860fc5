"""The metric names monai-slo exposes, in one place: the collector, the dashboards and the
tests read them from here. They are public interface (dashboards and alert rules depend on
them): add names, never rename. Label names and the rule file's recorded series live here
too; nothing else in the package spells a ``monai_slo_`` name.

Counters are named as their family (``monai_slo_check_runs``); the exposition, and so every
PromQL query, adds ``_total`` (:func:`total`). Histograms likewise add ``_bucket``,
``_sum`` and ``_count``.
"""

from __future__ import annotations

PREFIX = "monai_slo_"

SERVICE_LABELS = ("environment", "tier", "service")
CHECK_LABELS = (*SERVICE_LABELS, "check", "kind")
# Labels a family adds to those above.
WINDOW = "window"
REASON = "reason"
VERSION = "version"
OPERATION = "operation"

# Per check (labels CHECK_LABELS).
CHECK_UP = "monai_slo_check_up"
CHECK_DURATION_SECONDS = "monai_slo_check_duration_seconds"
CHECK_LAST_RUN_TIMESTAMP_SECONDS = "monai_slo_check_last_run_timestamp_seconds"
CHECK_RUNS = "monai_slo_check_runs"  # counter
CHECK_FAILURES = "monai_slo_check_failures"  # counter, + reason
CHECK_SKIPPED_RUNS = "monai_slo_check_skipped_runs"  # counter

# Per service (labels SERVICE_LABELS).
SERVICE_UP = "monai_slo_service_up"
AVAILABILITY_RATIO = "monai_slo_availability_ratio"  # + window
DATA_COVERAGE_RATIO = "monai_slo_data_coverage_ratio"  # + window
OBJECTIVE_RATIO = "monai_slo_objective_ratio"
SLO_WINDOW_SECONDS = "monai_slo_slo_window_seconds"
ERROR_BUDGET_REMAINING_RATIO = "monai_slo_error_budget_remaining_ratio"
BURN_RATE = "monai_slo_burn_rate"  # + window
MAINTENANCE_ACTIVE = "monai_slo_maintenance_active"

# Per check with a latency objective (labels CHECK_LABELS).
LATENCY_RATIO = "monai_slo_latency_ratio"  # + window
LATENCY_OBJECTIVE_RATIO = "monai_slo_latency_objective_ratio"
LATENCY_THRESHOLD_SECONDS = "monai_slo_latency_threshold_seconds"
LATENCY_BURN_RATE = "monai_slo_latency_burn_rate"  # + window
LATENCY_ERROR_BUDGET_REMAINING_RATIO = "monai_slo_latency_error_budget_remaining_ratio"

# The study_flow kind (CHECK_LABELS + stage; checks.dicom.study_flow emits the last
# latency without PREFIX, the daemon folds it into the histogram).
STUDY_FLOW_LATENCY_SECONDS = "monai_slo_study_flow_latency_seconds"  # histogram, + stage
STUDY_FLOW_LAST_LATENCY_SECONDS = "monai_slo_study_flow_last_latency_seconds"  # + stage
STUDY_FLOW_IN_FLIGHT = "monai_slo_study_flow_in_flight"  # no stage label
STAGE = "stage"

# The daemon itself.
BUILD_INFO = "monai_slo_build_info"  # version
CONFIG_LAST_RELOAD_SUCCESSFUL = "monai_slo_config_last_reload_successful"
CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS = (
    "monai_slo_config_last_reload_success_timestamp_seconds"
)
SCHEDULER_START_LATENESS_SECONDS = "monai_slo_scheduler_start_lateness_seconds"  # histogram
SCHEDULER_MISSED_RUNS = "monai_slo_scheduler_missed_runs"  # counter
STORE_ERRORS = "monai_slo_store_errors"  # counter, + operation
STORE_HEALTHY = "monai_slo_store_healthy"  # 1 while history writes work
STORE_BUFFERED_RECORDS = "monai_slo_store_buffered_records"  # waiting for a write
STORE_DROPPED_RECORDS = "monai_slo_store_dropped_records"  # counter: buffer full

# The gpu kind (CHECK_LABELS + gpu; checks.gpu emits them without PREFIX).
GPU_COUNT = "monai_slo_gpu_count"  # no gpu label
GPU_INFO = "monai_slo_gpu_info"  # + name, driver_version, cuda_version
GPU_TEMPERATURE_CELSIUS = "monai_slo_gpu_temperature_celsius"
GPU_TEMPERATURE_SLOWDOWN_CELSIUS = "monai_slo_gpu_temperature_slowdown_celsius"
GPU_THROTTLE_ACTIVE = "monai_slo_gpu_throttle_active"  # + reason
GPU_POWER_WATTS = "monai_slo_gpu_power_watts"
GPU_MEMORY_USED_BYTES = "monai_slo_gpu_memory_used_bytes"
GPU_MEMORY_TOTAL_BYTES = "monai_slo_gpu_memory_total_bytes"
GPU_UTILIZATION_RATIO = "monai_slo_gpu_utilization_ratio"
GPU_ECC_UNCORRECTED_VOLATILE_ERRORS = "monai_slo_gpu_ecc_uncorrected_volatile_errors"
GPU_XID_EVENTS_SINCE_START = "monai_slo_gpu_xid_events_since_start"
GPU_HEALTH = "monai_slo_gpu_health"  # + verdict (state set: healthy, degraded, unhealthy)
GPU_SUGGESTED_ACTION = "monai_slo_gpu_suggested_action"  # + action (state set)

# Series the generated rule file records: each folds the probers of one job into one series.
RECORDED_SERVICE_UP = "monai_slo:service_up:max_over_probers"
RECORDED_CHECK_UP = "monai_slo:check_up:max_over_probers"
RECORDED_BURN_RATE = "monai_slo:burn_rate:min_over_probers"
RECORDED_AVAILABILITY_RATIO = "monai_slo:availability_ratio:max_over_probers"
RECORDED_ERROR_BUDGET_REMAINING_RATIO = "monai_slo:error_budget_remaining_ratio:max_over_probers"
RECORDED_MAINTENANCE_ACTIVE = "monai_slo:maintenance_active:max_over_probers"
RECORDED_LATENCY_BURN_RATE = "monai_slo:latency_burn_rate:min_over_probers"
RECORDED_LATENCY_ERROR_BUDGET_REMAINING_RATIO = (
    "monai_slo:latency_error_budget_remaining_ratio:max_over_probers"
)

# The fleet SLI: probers folded at each evaluation instant (the quorum of ``alerting``), then
# windowed from that recorded instant state, so a prober's own link loss is not downtime.
# Per service; the windowed ones carry ``window``.
RECORDED_FLEET_SERVICE_REPORTING = "monai_slo:service_reporting:fleet"  # probers reporting
RECORDED_FLEET_SERVICE_DOWN_PROBERS = "monai_slo:service_down_probers:fleet"  # of those, down
RECORDED_FLEET_SERVICE_DOWN = "monai_slo:service_down:fleet"  # 0/1: the quorum sees it down
# 1 up, 0 down, absent while no prober reports or the service is in maintenance.
RECORDED_FLEET_SERVICE_SLI = "monai_slo:service_sli:fleet"
RECORDED_FLEET_GOOD_SAMPLES = "monai_slo:sli_good_samples:fleet"  # + window: up instants
RECORDED_FLEET_SAMPLES = "monai_slo:sli_samples:fleet"  # + window: counted instants
RECORDED_FLEET_AVAILABILITY_RATIO = "monai_slo:availability_ratio:fleet"  # + window
RECORDED_FLEET_BURN_RATE = "monai_slo:burn_rate:fleet"  # + window
RECORDED_FLEET_ERROR_BUDGET_REMAINING_RATIO = "monai_slo:error_budget_remaining_ratio:fleet"
# The latency SLI of a check folded over the probers per window with the same quorum: the
# burn rate (budget left) that at least the quorum of the reporting probers reach.
RECORDED_FLEET_LATENCY_BURN_RATE = "monai_slo:latency_burn_rate:fleet"  # + window
RECORDED_FLEET_LATENCY_ERROR_BUDGET_REMAINING_RATIO = (
    "monai_slo:latency_error_budget_remaining_ratio:fleet"
)

COUNTERS = (
    CHECK_RUNS,
    CHECK_FAILURES,
    CHECK_SKIPPED_RUNS,
    SCHEDULER_MISSED_RUNS,
    STORE_ERRORS,
    STORE_DROPPED_RECORDS,
)


def total(counter: str) -> str:
    """The sample name of a counter family, as PromQL sees it."""
    assert counter in COUNTERS, f"{counter} is not a counter"
    return f"{counter}_total"


def kind_family(suffix: str) -> str:
    """The family of a kind-specific gauge a check reports by suffix (``CheckOutcome.values``)."""
    return f"{PREFIX}{suffix}"


def bucket(histogram: str) -> str:
    """The bucket series of a histogram family, for ``histogram_quantile``."""
    return f"{histogram}_bucket"
