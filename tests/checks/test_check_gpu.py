"""The gpu check: every rule against the scriptable FakeNvml, and the real NVML boundary here.

No NVIDIA GPU exists on this machine or on CI, so the GPU is faked at the NVML boundary
(monai_slo.checks.nvml.Nvml); the real pynvml boundary is exercised for what it does without one.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from monai_slo.checks import gpu, nvml
from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.nvml import NvmlError, NvmlErrorCode, PynvmlNvml, RemappedRows
from monai_slo.checks.registry import KINDS
from monai_slo.config.model import load_config
from monai_slo.testing.nvml import FakeGpu, FakeNvml, use_nvml
from tests.fixtures_net import free_port

E = NvmlErrorCode
R = FailureReason


def config(**keys: Any) -> gpu.Config:
    data: dict[str, Any] = {"name": "gpus", "kind": "gpu", "interval": 10, "timeout": 2}
    data.update(keys)
    return gpu.Config.model_validate(data)


def check(cfg: gpu.Config | None = None, seconds: float = 2.0) -> CheckOutcome:
    return gpu.run(cfg or config(), Deadline(seconds))


def gauges(outcome: CheckOutcome, name: str) -> dict[str, float]:
    """``{gpu index: value}`` of one per-GPU series."""
    return {s.labels["gpu"]: s.value for s in outcome.series if s.name == name}


class Clock:
    """The gpu kind's clock, moved on by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(gpu, "_clock", moved)
    return moved


@pytest.fixture
def fake() -> Iterator[FakeNvml]:
    """Two healthy fake GPUs, in use for the test; the check's NVML session closed after."""
    backend = FakeNvml(gpus=2)
    with use_nvml(backend):
        yield backend


# --- config ------------------------------------------------------------------------------


def test_config_defaults() -> None:
    """Defaults: at least one GPU, every GPU watched, the core critical XID set, no
    warning turned into a failure."""
    cfg = config()
    assert cfg.expected_count is None and cfg.gpus is None
    assert cfg.critical_xids == [48, 62, 64, 74, 79, 95, 119, 120, 140]
    assert cfg.fail_on_throttle is False and cfg.max_temperature_celsius is None
    assert KINDS["gpu"].config_type is gpu.Config and KINDS["gpu"].run is gpu.run


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"expected_count": 0}, "expected_count"),
        ({"gpus": []}, "gpus"),
        ({"gpus": [0, 0]}, "gpus"),
        ({"gpus": [-1]}, "gpus"),
        ({"critical_xids": [0]}, "critical_xids"),
        ({"max_temperature_celsius": 0}, "max_temperature_celsius"),
        ({"fail_on_throttle": "sometimes"}, "fail_on_throttle"),
        ({"expected": 2}, "expected"),
    ],
)
def test_bad_config_names_the_field(keys: dict[str, Any], field: str) -> None:
    """Each bad key is rejected by pydantic with the field in the error."""
    with pytest.raises(ValidationError) as info:
        config(**keys)
    assert field in {str(error["loc"][0]) for error in info.value.errors()}


def test_config_file_with_gpu_check_loads(tmp_path: Path) -> None:
    """A config file with a gpu check loads through the kind registry."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "environments:\n  - name: ws\n    tier: workstation\n    services:\n"
        "      - name: inference\n        checks:\n"
        "          - {name: gpus, kind: gpu, expected_count: 2, critical_xids: [79, 48]}\n"
    )
    (ref,) = load_config(path).checks()
    assert isinstance(ref.config, gpu.Config)
    assert ref.config.expected_count == 2 and ref.config.critical_xids == [48, 79]


# --- healthy GPUs and their gauges -------------------------------------------------------


def test_healthy_gpus_report_every_gauge(fake: FakeNvml) -> None:
    """Healthy GPUs succeed and expose temperature, slowdown, throttle, power, memory,
    utilisation, ECC, XID and info series labelled by GPU index, and the count."""
    fake.gpus[1] = FakeGpu(
        name="NVIDIA H100 80GB HBM3", temperature=61, power_mw=312_500, utilization=87
    )
    outcome = check()
    assert outcome.success, outcome
    assert outcome.values == {"gpu_count": 2}
    assert "2 GPU(s) healthy" in outcome.detail and "CUDA 12.4" in outcome.detail
    assert gauges(outcome, "gpu_temperature_celsius") == {"0": 45, "1": 61}
    assert gauges(outcome, "gpu_temperature_slowdown_celsius") == {"0": 90, "1": 90}
    assert gauges(outcome, "gpu_power_watts") == {"0": 75.0, "1": 312.5}
    assert gauges(outcome, "gpu_memory_used_bytes")["1"] == 2 * 1024**3
    assert gauges(outcome, "gpu_memory_total_bytes")["1"] == 80 * 1024**3
    assert gauges(outcome, "gpu_utilization_ratio") == {"0": 0.1, "1": 0.87}
    assert gauges(outcome, "gpu_ecc_uncorrected_volatile_errors") == {"0": 0, "1": 0}
    assert gauges(outcome, "gpu_xid_events_since_start") == {"0": 0, "1": 0}
    throttle = [s for s in outcome.series if s.name == "gpu_throttle_active"]
    assert {(s.labels["gpu"], s.labels["reason"]) for s in throttle} == {
        (g, r)
        for g in "01"
        for r in ("hw_slowdown", "hw_thermal", "hw_power_brake", "sw_thermal", "sw_power_cap")
    }
    assert all(s.value == 0 for s in throttle)
    info = {s.labels["gpu"]: dict(s.labels) for s in outcome.series if s.name == "gpu_info"}
    assert info["1"] == {
        "gpu": "1",
        "name": "NVIDIA H100 80GB HBM3",
        "driver_version": "550.54.15",
        "cuda_version": "12.4",
    }
    # Every series of one name has the same label names (the collector requires it).
    by_name: dict[str, set[tuple[str, ...]]] = {}
    for s in outcome.series:
        by_name.setdefault(s.name, set()).add(tuple(s.labels))
    assert all(len(keys) == 1 for keys in by_name.values())


def test_info_label_is_bounded(fake: FakeNvml) -> None:
    """A GPU name with control characters or absurd length becomes a short printable label."""
    fake.gpus[0].name = "Weird\x00GPU\n" + "x" * 500
    outcome = check()
    name = next(s.labels["name"] for s in outcome.series if s.name == "gpu_info")
    assert name.isprintable() and len(name) <= 64 and name.startswith("WeirdGPU")


def test_watch_only_listed_gpus(fake: FakeNvml) -> None:
    """With `gpus`, only those indices are read and reported; problems elsewhere are not ours."""
    fake.gpus[0].ecc_uncorrected_volatile = 3
    outcome = check(config(gpus=[1]))
    assert outcome.success, outcome
    assert set(gauges(outcome, "gpu_temperature_celsius")) == {"1"}


# --- count -------------------------------------------------------------------------------


def test_no_gpu_fails_by_default() -> None:
    """Without expected_count, zero visible GPUs fails with gpu_count."""
    with use_nvml(FakeNvml(gpus=0)):
        outcome = check()
    assert outcome.reason is R.GPU_COUNT and "no GPU visible" in outcome.detail
    assert outcome.values == {"gpu_count": 0}


def test_fewer_gpus_than_expected(fake: FakeNvml) -> None:
    """One GPU gone from the bus while two are expected fails with gpu_count."""
    assert check(config(expected_count=2)).success
    fake.visible = 1
    outcome = check(config(expected_count=2))
    assert outcome.reason is R.GPU_COUNT
    assert "1 GPU(s) visible, 2 expected" in outcome.detail


def test_watched_index_not_visible(fake: FakeNvml) -> None:
    """A listed GPU index beyond the visible count fails with gpu_count naming it."""
    outcome = check(config(gpus=[0, 3]))
    assert outcome.reason is R.GPU_COUNT and "GPU 3: not visible" in outcome.detail
    assert set(gauges(outcome, "gpu_temperature_celsius")) == {"0"}


# --- lost GPU ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "words"), [(E.GPU_IS_LOST, "lost"), (E.RESET_REQUIRED, "reset required")]
)
def test_lost_gpu_handle(fake: FakeNvml, code: NvmlErrorCode, words: str) -> None:
    """nvmlDeviceGetHandleByIndex failing with GPU_IS_LOST / RESET_REQUIRED is fatal
    (gpu_lost) and names the GPU; the other GPU is still read."""
    fake.fail("device_get_handle_by_index", code, gpu=1)
    outcome = check()
    assert outcome.reason is R.GPU_LOST
    assert f"GPU 1: {words}" in outcome.detail and f"NVML_ERROR_{code.name}" in outcome.detail
    assert set(gauges(outcome, "gpu_temperature_celsius")) == {"0"}


def test_gpu_lost_during_readings(fake: FakeNvml) -> None:
    """GPU_IS_LOST from any reading (not only the handle) fails with gpu_lost."""
    fake.fail("device_get_power_usage", E.GPU_IS_LOST, gpu=0)
    outcome = check()
    assert outcome.reason is R.GPU_LOST and "GPU 0: lost" in outcome.detail


def test_lost_gpu_recovers(fake: FakeNvml) -> None:
    """A GPU that fell off the bus fails the check; once back (after a reset) it passes and
    its XIDs are watched again."""
    fake.gpus[0].lost = True
    assert check().reason is R.GPU_LOST
    fake.gpus[0].lost = False
    assert check().success
    fake.xid(0, 79)
    outcome = check()
    assert outcome.reason is R.GPU_LOST and "GPU 0: XID 79: fell off the bus" in outcome.detail


def test_lost_gpu_in_device_count(fake: FakeNvml) -> None:
    """GPU_IS_LOST from the device count itself is still gpu_lost, not a crash."""
    fake.fail("device_get_count", E.GPU_IS_LOST)
    assert check().reason is R.GPU_LOST


def test_severity_picks_the_reason_and_detail_keeps_all(fake: FakeNvml) -> None:
    """Several problems: the most severe gives the reason, the detail lists them all."""
    fake.gpus[0].ecc_uncorrected_volatile = 2
    fake.gpus[1].lost = True
    outcome = check()
    assert outcome.reason is R.GPU_LOST
    assert "GPU 0: 2 uncorrected ECC error(s)" in outcome.detail
    assert "GPU 1: lost" in outcome.detail


# --- XIDs --------------------------------------------------------------------------------


@pytest.mark.parametrize("xid", [48, 62, 74, 95, 119, 120, 140])
def test_core_critical_xid_fails_within_the_window(fake: FakeNvml, clock: Clock, xid: int) -> None:
    """A core critical XID makes its GPU unhealthy (gpu_xid, naming GPU and XID) for
    xid_window, on every run in it, and clears once older than the window."""
    cfg = config(xid_window="10m")
    assert check(cfg).success  # opens the event set and registers both GPUs
    assert fake.xid(1, xid) == 1
    outcome = check(cfg)
    assert outcome.reason is R.GPU_XID
    assert outcome.detail == (
        f"GPU 1: critical XID {xid} (unhealthy, suggested action reset; rule critical_xid)"
    )
    assert gauges(outcome, "gpu_xid_events_since_start") == {"0": 0, "1": 1}
    clock.now += 599
    assert check(cfg).reason is R.GPU_XID  # still within the window: not forgotten
    clock.now += 2
    outcome = check(cfg)
    assert outcome.success, outcome.detail
    assert {s.labels["verdict"]: s.value for s in outcome.series if s.name == "gpu_health"} == {
        "healthy": 1,
        "degraded": 0,
        "unhealthy": 0,
    }


def test_xid_79_is_a_lost_gpu_until_the_window_passes(fake: FakeNvml, clock: Clock) -> None:
    """XID 79 (fell off the bus) on a GPU that still answers: unhealthy, reboot."""
    check()
    fake.xid(0, 79)
    outcome = check()
    assert outcome.reason is R.GPU_LOST and "suggested action reboot" in outcome.detail
    clock.now += gpu.DEFAULT_XID_WINDOW + 1
    assert check().success


def test_xid_64_is_read_through_the_remap_state(fake: FakeNvml) -> None:
    """XID 64 with a readable, clean remap state is not unhealthy; with remap state not
    readable here it is a critical XID."""
    check()
    fake.xid(0, 64)
    assert check().success
    fake.fail("device_get_remapped_rows", E.NOT_SUPPORTED)
    outcome = check()
    assert outcome.reason is R.GPU_XID and "GPU 0: critical XID 64" in outcome.detail


@pytest.mark.parametrize("xid", [13, 31, 43, 45, 68, 109])
def test_application_xids_are_ignored(fake: FakeNvml, xid: int) -> None:
    """Application XIDs (a faulty CUDA program) neither fail nor warn; they are counted."""
    check()
    fake.xid(0, xid)
    outcome = check()
    assert outcome.success and "XID" not in outcome.detail
    assert gauges(outcome, "gpu_xid_events_since_start")["0"] == 1


def test_xid_94_is_a_warning(fake: FakeNvml) -> None:
    """XID 94 (contained ECC error) is a warning in the detail, not a failure."""
    check()
    fake.xid(0, 94)
    outcome = check()
    assert outcome.success and "GPU 0: XID 94" in outcome.detail


def test_critical_xids_are_configurable(fake: FakeNvml, clock: Clock) -> None:
    """critical_xids replaces the core set: 13 fails, 79 (no longer listed) only warns."""
    cfg = config(critical_xids=[13])
    check(cfg)
    fake.xid(0, 13)
    assert check(cfg).reason is R.GPU_XID
    clock.now += cfg.xid_window + 1
    fake.xid(0, 79)
    outcome = check(cfg)
    assert outcome.success and "GPU 0: XID 79" in outcome.detail


def test_xid_on_unwatched_gpu_is_not_ours(fake: FakeNvml) -> None:
    """A check watching GPU 0 does not fail on an XID of GPU 1."""
    cfg = config(gpus=[0])
    check(config())  # registers both GPUs
    check(cfg)
    fake.xid(1, 79)
    assert check(cfg).success


def test_every_check_sees_each_xid_through_one_event_set(fake: FakeNvml) -> None:
    """Two gpu checks both report the same XID; NVML holds one event set for both."""
    first, second = config(name="a"), config(name="b")
    check(first), check(second)
    fake.xid(0, 48)
    assert check(first).reason is R.GPU_XID
    assert check(second).reason is R.GPU_XID
    assert fake.open_event_sets == 1 and fake.init_calls == 1


def test_xid_drain_is_bounded(fake: FakeNvml) -> None:
    """A flood of XID events is drained at most MAX_EVENTS_PER_RUN per run; the rest
    waits for the next run and is still counted."""
    check()
    for _ in range(gpu.MAX_EVENTS_PER_RUN + 44):
        fake.xid(0, 13)
    outcome = check()
    assert outcome.success and "XID events pending" in outcome.detail
    assert gauges(outcome, "gpu_xid_events_since_start")["0"] == gpu.MAX_EVENTS_PER_RUN
    outcome = check()
    assert "pending" not in outcome.detail
    assert gauges(outcome, "gpu_xid_events_since_start")["0"] == gpu.MAX_EVENTS_PER_RUN + 44


@pytest.mark.parametrize("call", ["event_set_create", "device_register_xid_events"])
def test_xid_events_not_supported_is_skipped(fake: FakeNvml, call: str) -> None:
    """A driver or GPU that cannot deliver XID events (NOT_SUPPORTED) is not a failure: the
    check passes, says XIDs are not available, and publishes no XID gauge."""
    fake.fail(call, E.NOT_SUPPORTED)
    outcome = check()
    assert outcome.success, outcome
    assert "not available here" in outcome.detail and "XID events" in outcome.detail
    assert gauges(outcome, "gpu_xid_events_since_start") == {}
    assert check().success


def test_event_wait_error_is_reported(fake: FakeNvml) -> None:
    """An unexpected error while draining events (not the TIMEOUT that means 'none')
    fails with gpu_nvml_error."""
    check()
    fake.fail("event_set_wait", E.UNKNOWN, times=1)
    outcome = check()
    assert outcome.reason is R.GPU_NVML_ERROR and "XID events" in outcome.detail
    assert check().success


# --- memory health -----------------------------------------------------------------------


def test_uncorrected_ecc_fails(fake: FakeNvml) -> None:
    """Uncorrected volatile ECC errors > 0 fail with gpu_ecc naming the GPU and count."""
    fake.gpus[1].ecc_uncorrected_volatile = 4
    outcome = check()
    assert outcome.reason is R.GPU_ECC
    assert "GPU 1: 4 uncorrected ECC error(s)" in outcome.detail
    assert gauges(outcome, "gpu_ecc_uncorrected_volatile_errors")["1"] == 4


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        (RemappedRows(0, 3, pending=False, failure=True), "row remapping failed"),
        (RemappedRows(1, 0, pending=True, failure=False), "row remap pending"),
    ],
)
def test_row_remap_failure_or_pending_fails(fake: FakeNvml, rows: RemappedRows, words: str) -> None:
    """Row remapping failed, or pending until a reset, fails with gpu_row_remap."""
    fake.gpus[0].remapped_rows = rows
    outcome = check()
    assert outcome.reason is R.GPU_ROW_REMAP and f"GPU 0: {words}" in outcome.detail


def test_remapped_rows_without_flags_pass(fake: FakeNvml) -> None:
    """Rows already remapped successfully (no pending, no failure) are healthy."""
    fake.gpus[0].remapped_rows = RemappedRows(5, 2, pending=False, failure=False)
    assert check().success


@pytest.mark.parametrize(("action", "words"), [(1, "gpu_reset"), (2, "node_reboot"), (9, "9")])
def test_recovery_action_fails(fake: FakeNvml, action: int, words: str) -> None:
    """A recovery action requested by the driver fails with gpu_recovery naming it."""
    fake.gpus[1].recovery_action = action
    outcome = check()
    assert outcome.reason is R.GPU_RECOVERY
    assert "GPU 1: driver requests" in outcome.detail and words in outcome.detail


# --- warnings and the options that make them failures ------------------------------------


def test_temperature_near_slowdown_warns(fake: FakeNvml) -> None:
    """Within 5 °C of the slowdown threshold is a warning, not a failure."""
    fake.gpus[0].temperature = 86
    outcome = check()
    assert outcome.success and "GPU 0: 86 °C, slowdown at 90 °C" in outcome.detail


def test_max_temperature_fails(fake: FakeNvml) -> None:
    """max_temperature_celsius turns a hot GPU into gpu_thermal; at the limit it passes."""
    fake.gpus[1].temperature = 80
    assert check(config(max_temperature_celsius=80)).success
    outcome = check(config(max_temperature_celsius=79.5))
    assert outcome.reason is R.GPU_THERMAL and "GPU 1: 80 °C" in outcome.detail


@pytest.mark.parametrize(
    ("bit", "reason"),
    [
        (nvml.THROTTLE_HW_SLOWDOWN, "hw_slowdown"),
        (nvml.THROTTLE_HW_THERMAL, "hw_thermal"),
        (nvml.THROTTLE_HW_POWER_BRAKE, "hw_power_brake"),
        (nvml.THROTTLE_SW_THERMAL, "sw_thermal"),
    ],
)
def test_throttling_warns_or_fails(fake: FakeNvml, bit: int, reason: str) -> None:
    """Thermal/hardware throttling is a gauge and a warning; fail_on_throttle makes it
    gpu_throttle."""
    fake.gpus[0].throttle_reasons = bit
    outcome = check()
    assert outcome.success and f"clocks throttled ({reason})" in outcome.detail
    active = {
        (s.labels["gpu"], s.labels["reason"])
        for s in outcome.series
        if s.name == "gpu_throttle_active" and s.value == 1
    }
    assert active == {("0", reason)}
    failed = check(config(fail_on_throttle=True))
    assert failed.reason is R.GPU_THROTTLE and reason in failed.detail


def test_power_cap_throttling_is_only_a_gauge(fake: FakeNvml) -> None:
    """sw_power_cap (a GPU at full load) is shown as a gauge but never warns or fails."""
    fake.gpus[0].throttle_reasons = nvml.THROTTLE_SW_POWER_CAP
    outcome = check(config(fail_on_throttle=True))
    assert outcome.success and "throttled" not in outcome.detail
    active = [s for s in outcome.series if s.name == "gpu_throttle_active" and s.value == 1]
    assert [s.labels["reason"] for s in active] == ["sw_power_cap"]


# --- NVML error classes ------------------------------------------------------------------

SKIPPED = {E.NOT_SUPPORTED, E.FUNCTION_NOT_FOUND, E.NO_PERMISSION}
LOST = {E.GPU_IS_LOST, E.RESET_REQUIRED}
UNAVAILABLE = {E.UNINITIALIZED, E.DRIVER_NOT_LOADED, E.LIBRARY_NOT_FOUND, E.LIB_RM_VERSION_MISMATCH}


def _expected_for_reading(code: NvmlErrorCode) -> FailureReason | None:
    if code in SKIPPED:
        return None
    if code in LOST:
        return R.GPU_LOST
    if code in UNAVAILABLE:
        return R.GPU_UNAVAILABLE
    return R.GPU_NVML_ERROR


READINGS = [
    ("device_get_temperature", "gpu_temperature_celsius"),
    ("device_get_temperature_threshold_slowdown", "gpu_temperature_slowdown_celsius"),
    ("device_get_current_clocks_event_reasons", "gpu_throttle_active"),
    ("device_get_power_usage", "gpu_power_watts"),
    ("device_get_memory_info", "gpu_memory_used_bytes"),
    ("device_get_utilization_rates", "gpu_utilization_ratio"),
    ("device_get_total_ecc_errors_uncorrected_volatile", "gpu_ecc_uncorrected_volatile_errors"),
    ("device_get_remapped_rows", None),
    ("device_get_recovery_action", None),
]


@pytest.mark.parametrize(("call", "series"), READINGS, ids=[c for c, _ in READINGS])
def test_not_supported_readings_are_skipped(fake: FakeNvml, call: str, series: str | None) -> None:
    """NOT_SUPPORTED on any reading (consumer GPU, old driver) skips it: success, the
    gauge is absent, the detail says what is not available."""
    fake.fail(call, E.NOT_SUPPORTED)
    outcome = check()
    assert outcome.success, outcome
    assert "not available here" in outcome.detail
    if series is not None:
        assert gauges(outcome, series) == {}


@pytest.mark.parametrize("code", list(NvmlErrorCode), ids=[c.name for c in NvmlErrorCode])
def test_every_error_class_on_a_reading(fake: FakeNvml, code: NvmlErrorCode) -> None:
    """Every NVML error on a reading (temperature of GPU 1): NOT_SUPPORTED,
    FUNCTION_NOT_FOUND and NO_PERMISSION skip it; GPU_IS_LOST and RESET_REQUIRED are
    gpu_lost; UNINITIALIZED, DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND and
    LIB_RM_VERSION_MISMATCH are gpu_unavailable; anything else (UNKNOWN, TIMEOUT ...) is
    gpu_nvml_error naming the GPU, the reading and the code. Never an exception."""
    fake.fail("device_get_temperature", code, gpu=1)
    outcome = check()
    expected = _expected_for_reading(code)
    assert outcome.reason is expected, outcome
    if expected is R.GPU_NVML_ERROR:
        assert outcome.detail == f"GPU 1: temperature: NVML_ERROR_{code.name}"
    if expected is None:
        assert gauges(outcome, "gpu_temperature_celsius") == {"0": 45}


@pytest.mark.parametrize("code", list(NvmlErrorCode), ids=[c.name for c in NvmlErrorCode])
def test_every_error_class_on_init_is_unavailable(code: NvmlErrorCode) -> None:
    """Whatever nvmlInit fails with, the check fails with gpu_unavailable and says why;
    nothing stays open."""
    backend = FakeNvml()
    backend.fail("init", code)
    with use_nvml(backend):
        outcome = check()
    assert outcome.reason is R.GPU_UNAVAILABLE
    assert f"NVML unavailable: nvmlInit: NVML_ERROR_{code.name}" in outcome.detail
    assert backend.open_event_sets == 0 and not backend.initialised


def test_unknown_error_code_is_named() -> None:
    """An error code newer than this module still gets a name and fails cleanly."""
    backend = FakeNvml()
    backend.fail("device_get_count", 777)
    with use_nvml(backend):
        outcome = check()
    assert outcome.reason is R.GPU_NVML_ERROR and "NVML error 777" in outcome.detail


@pytest.mark.parametrize(
    ("code", "reason"),
    [(E.UNKNOWN, R.GPU_NVML_ERROR), (E.TIMEOUT, R.GPU_NVML_ERROR), (E.GPU_IS_LOST, R.GPU_LOST)],
)
def test_handle_errors(fake: FakeNvml, code: NvmlErrorCode, reason: FailureReason) -> None:
    """Failing to get a GPU's handle is never skipped: lost, or an NVML error."""
    fake.fail("device_get_handle_by_index", code, gpu=0)
    outcome = check()
    assert outcome.reason is reason and "GPU 0" in outcome.detail


def test_system_readings_not_supported(fake: FakeNvml) -> None:
    """Driver/CUDA version not readable: the check passes with "unknown" info labels."""
    fake.fail("system_get_driver_version", E.NOT_SUPPORTED)
    fake.fail("system_get_cuda_driver_version", E.FUNCTION_NOT_FOUND)
    outcome = check()
    assert outcome.success
    info = next(s for s in outcome.series if s.name == "gpu_info")
    assert info.labels["driver_version"] == "unknown" and info.labels["cuda_version"] == "unknown"


# --- the NVML session: init once, one event set, re-init, no leaks ------------------------


def test_repeated_runs_reuse_one_session(fake: FakeNvml) -> None:
    """Fifty runs of two checks: NVML initialised once, one event set, each GPU registered
    once; reset_state frees the set and balances init with shutdown."""
    for _ in range(25):
        assert check(config(name="a")).success
        assert check(config(name="b", gpus=[1])).success
    assert fake.init_calls == 1 and len(fake.event_sets) == 1
    assert fake.calls["device_register_xid_events"] == 2
    gpu.reset_state()
    assert fake.open_event_sets == 0
    assert fake.shutdown_calls == fake.init_calls and not fake.initialised


def test_reinitialises_after_nvml_goes_away(fake: FakeNvml) -> None:
    """UNINITIALIZED mid-run (NVML shut down, driver reloaded) gives gpu_unavailable and
    drops the session; the next run initialises again with a fresh event set that sees
    new XIDs."""
    check()
    fake.fail("device_get_power_usage", E.UNINITIALIZED, times=1)
    outcome = check()
    assert outcome.reason is R.GPU_UNAVAILABLE and "NVML_ERROR_UNINITIALIZED" in outcome.detail
    assert fake.open_event_sets == 0 and fake.shutdown_calls == 1
    assert check().success
    assert fake.init_calls == 2 and fake.open_event_sets == 1 and len(fake.event_sets) == 2
    fake.xid(0, 74)
    assert check().reason is R.GPU_XID


def test_init_failure_is_retried(fake: FakeNvml) -> None:
    """A driver that is not loaded yet fails the runs until it is; then the check passes,
    with exactly one session open."""
    fake.fail("init", E.DRIVER_NOT_LOADED, times=2)
    first = check()
    assert first.reason is R.GPU_UNAVAILABLE and "driver is not loaded" in first.detail
    assert check().reason is R.GPU_UNAVAILABLE
    assert check().success
    assert fake.init_calls == 1 and fake.open_event_sets == 1


def test_switching_backend_closes_the_old_session() -> None:
    """Running against another NVML closes the first one's event set and NVML reference."""
    first, second = FakeNvml(), FakeNvml()
    with use_nvml(first):
        check()
        with nvml.override(second):
            assert check().success
        assert first.open_event_sets == 0 and not first.initialised
        assert second.open_event_sets == 1
    assert second.open_event_sets == 0 and not second.initialised


def test_xid_since_last_run_survives_a_reload(fake: FakeNvml) -> None:
    """A reloaded check (same name, new interval) keeps its XID cursor: a warning XID seen
    before the reload is not reported again, one after it is."""
    check(config(interval=10))
    fake.xid(0, 94)
    assert "GPU 0: XID 94" in check(config(interval=10)).detail
    assert "XID 94" not in check(config(interval=20)).detail
    fake.xid(0, 94)
    assert "GPU 0: XID 94" in check(config(interval=20)).detail


# --- deadline ----------------------------------------------------------------------------


def test_expired_deadline_is_a_timeout(fake: FakeNvml) -> None:
    """A run with no time left reads no GPU and fails with timeout."""
    outcome = gpu.run(config(), Deadline(0))
    assert outcome.reason is R.TIMEOUT and "0 of 2 GPUs" in outcome.detail


def test_check_stuck_in_nvml_costs_others_only_their_deadline(fake: FakeNvml) -> None:
    """While one check hangs inside an NVML call, another gpu check gives up at its own
    deadline with timeout instead of waiting; once NVML answers, both finish."""
    entered, release = threading.Event(), threading.Event()

    def hang(call: str) -> None:
        if call == "device_get_temperature" and not release.is_set():
            entered.set()
            release.wait(10)

    fake.on_call = hang
    results: list[CheckOutcome] = []
    stuck = threading.Thread(target=lambda: results.append(check(config(name="a"), 10)))
    stuck.start()
    try:
        assert entered.wait(5)
        started = time.monotonic()
        outcome = check(config(name="b"), 0.3)
        elapsed = time.monotonic() - started
        assert outcome.reason is R.TIMEOUT and "still inside NVML" in outcome.detail
        assert 0.25 <= elapsed < 1.5
    finally:
        release.set()
        stuck.join(5)
    assert not stuck.is_alive() and results[0].success
    assert check(config(name="b")).success


# --- the daemon exposes the gauges -------------------------------------------------------


def _scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _poll(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)  # poll interval; the condition is re-checked


@pytest.mark.slow
def test_daemon_exposes_gpu_gauges_and_xid_failures(tmp_path: Path, fake: FakeNvml) -> None:
    """The daemon runs the gpu check on its workers: /metrics carries the per-GPU gauges
    with a gpu label, and a critical XID shows up as a gpu_xid failure."""
    from monai_slo.daemon.daemon import Daemon

    port = free_port()
    path = tmp_path / "c.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{port}\nstorage: history.sqlite\n"
        "defaults: {interval: 0.3s, timeout: 0.25s}\n"
        "environments:\n  - name: ws\n    tier: workstation\n    services:\n"
        "      - name: inference\n        checks:\n"
        "          - {name: gpus, kind: gpu, expected_count: 2}\n"
    )
    daemon = Daemon(load_config(path))
    daemon.start()
    try:

        def has(name: str, value: float | None = None, **labels: str) -> bool:
            return any(
                n == name and labels.items() <= got.items() and (value is None or v == value)
                for n, got, v in _scrape(port)
            )

        _poll(lambda: has("monai_slo_gpu_temperature_celsius", 45, gpu="1", check="gpus"))
        assert has("monai_slo_check_up", 1, check="gpus", kind="gpu")
        assert has("monai_slo_gpu_count", 2, check="gpus")
        assert has("monai_slo_gpu_info", 1, gpu="0", cuda_version="12.4")
        assert has("monai_slo_gpu_throttle_active", 0, gpu="0", reason="hw_thermal")
        assert has("monai_slo_gpu_health", 1, gpu="1", verdict="healthy")
        assert has("monai_slo_gpu_suggested_action", 1, gpu="1", action="none")
        fake.xid(1, 48)
        _poll(lambda: has("monai_slo_check_failures_total", 1, check="gpus", reason="gpu_xid"))
        assert has("monai_slo_gpu_health", 1, gpu="1", verdict="unhealthy")
        assert has("monai_slo_gpu_health", 0, gpu="1", verdict="healthy")
        assert has("monai_slo_gpu_suggested_action", 1, gpu="1", action="reset")
    finally:
        daemon.stop()


# --- the real NVML boundary on this machine ----------------------------------------------


def _real_nvml_present() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def test_real_nvml_boundary_without_gpu() -> None:
    """The real pynvml boundary on a machine without an NVIDIA driver fails cleanly with
    gpu_unavailable (library not found), every run, without raising; with a driver it
    gives a result of the gpu kind instead."""
    with use_nvml(PynvmlNvml()):
        outcomes = [check(), check()]
    for outcome in outcomes:
        if _real_nvml_present():
            assert outcome.success or (outcome.reason or "").startswith("gpu_"), outcome
        else:
            assert outcome.reason is R.GPU_UNAVAILABLE
            assert "NVML_ERROR_LIBRARY_NOT_FOUND" in outcome.detail


def test_real_boundary_translates_pynvml_errors() -> None:
    """pynvml's exception classes become NvmlError with NVML's code: a call before init is
    UNINITIALIZED, init without libnvidia-ml is LIBRARY_NOT_FOUND."""
    if _real_nvml_present():
        pytest.skip("libnvidia-ml is present: init would succeed")
    backend = PynvmlNvml()
    with pytest.raises(NvmlError) as before_init:
        backend.device_get_count()
    assert before_init.value.code == E.UNINITIALIZED
    assert before_init.value.describe() == "nvmlDeviceGetCount: NVML_ERROR_UNINITIALIZED"
    with pytest.raises(NvmlError) as init:
        backend.init()
    assert init.value.code == E.LIBRARY_NOT_FOUND


def test_real_boundary_without_nvidia_ml_py(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the nvidia-ml-py package the check fails with gpu_unavailable saying so."""
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    with use_nvml(PynvmlNvml()):
        outcome = check()
    assert outcome.reason is R.GPU_UNAVAILABLE and "nvidia-ml-py not installed" in outcome.detail


def _binding_with(**functions: Callable[..., Any]) -> types.ModuleType:
    """The real pynvml module's constants, structures and errors, with some C calls
    replaced (the GPU is what is missing here, not the binding)."""
    import pynvml

    module = types.ModuleType("pynvml_without_gpu")
    module.__dict__.update(vars(pynvml))
    module.__dict__.update(functions)
    return module


def _field_values(return_code: int, value_type: int, **value: int) -> Any:
    import pynvml

    values = (pynvml.c_nvmlFieldValue_t * 1)()
    values[0].fieldId = pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION
    values[0].nvmlReturn = return_code
    values[0].valueType = value_type
    for member, number in value.items():
        setattr(values[0].value, member, number)
    return values


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (_field_values(0, 1, uiVal=2), 2),
        (_field_values(0, 3, ullVal=1), 1),
        (_field_values(3, 1), E.NOT_SUPPORTED),
        (_field_values(2, 1), E.NOT_SUPPORTED),  # field id unknown to an older driver
        (_field_values(15, 1), E.GPU_IS_LOST),
    ],
)
def test_real_boundary_reads_recovery_action_field(values: Any, expected: int) -> None:
    """The recovery action comes from nvmlDeviceGetFieldValues: the value is read by its
    declared type, a per-field error becomes NvmlError, and an unknown field id (an older
    driver) counts as NOT_SUPPORTED."""
    backend = PynvmlNvml()
    backend._module = _binding_with(nvmlDeviceGetFieldValues=lambda handle, ids: values)
    if isinstance(expected, NvmlErrorCode):
        with pytest.raises(NvmlError) as info:
            backend.device_get_recovery_action(object())
        assert info.value.code == expected
    else:
        assert backend.device_get_recovery_action(object()) == expected


def test_real_boundary_falls_back_to_throttle_reasons() -> None:
    """A driver without nvmlDeviceGetCurrentClocksEventReasons (before 535) is asked with
    the older ...ThrottleReasons name."""
    import pynvml

    def missing(handle: object) -> int:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    backend = PynvmlNvml()
    backend._module = _binding_with(
        nvmlDeviceGetCurrentClocksEventReasons=missing,
        nvmlDeviceGetCurrentClocksThrottleReasons=lambda handle: nvml.THROTTLE_HW_SLOWDOWN,
    )
    assert backend.device_get_current_clocks_event_reasons(object()) == nvml.THROTTLE_HW_SLOWDOWN


def test_real_boundary_reads_nvlink_states_and_pcie() -> None:
    """NVLink state is asked per link up to NVML_NVLINK_MAX_LINKS; links the GPU does not
    have (NOT_SUPPORTED / INVALID_ARGUMENT) are left out, none at all is NOT_SUPPORTED;
    the PCIe link and replay counter come from their five NVML calls."""
    import pynvml

    def link_state(links: dict[int, int]) -> Callable[[object, int], int]:
        def state(handle: object, link: int) -> int:
            if link not in links:
                raise pynvml.NVMLError(
                    pynvml.NVML_ERROR_NOT_SUPPORTED
                    if link % 2
                    else pynvml.NVML_ERROR_INVALID_ARGUMENT
                )
            return links[link]

        return state

    backend = PynvmlNvml()
    backend._module = _binding_with(nvmlDeviceGetNvLinkState=link_state({0: 1, 3: 0, 17: 0}))
    assert backend.device_get_nvlink_states(object()) == (True, False, False)
    backend._module = _binding_with(nvmlDeviceGetNvLinkState=link_state({}))
    with pytest.raises(NvmlError) as info:
        backend.device_get_nvlink_states(object())
    assert info.value.code == E.NOT_SUPPORTED
    backend._module = _binding_with(
        nvmlDeviceGetCurrPcieLinkGeneration=lambda h: 3,
        nvmlDeviceGetMaxPcieLinkGeneration=lambda h: 4,
        nvmlDeviceGetCurrPcieLinkWidth=lambda h: 8,
        nvmlDeviceGetMaxPcieLinkWidth=lambda h: 16,
        nvmlDeviceGetPcieReplayCounter=lambda h: 12,
    )
    assert backend.device_get_pcie_link(object()) == nvml.PcieLink(3, 4, 8, 16)
    assert backend.device_get_pcie_replay_counter(object()) == 12


def test_module_main_prints_json_report() -> None:
    """`python -m monai_slo.checks.gpu` prints the NVML probe and one check run as JSON,
    without warnings, and exits 1 when the check fails (no GPU here)."""
    done = subprocess.run(
        [sys.executable, "-m", "monai_slo.checks.gpu"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stdout)
    assert done.stderr == ""
    if _real_nvml_present():
        assert done.returncode == (0 if report["check"]["success"] else 1)
        return
    assert done.returncode == 1
    assert report["check"]["reason"] == "gpu_unavailable"
    assert report["probe"] == {"init": {"error": "NVML_ERROR_LIBRARY_NOT_FOUND"}}


def test_probe_reports_each_reading_or_its_error() -> None:
    """probe() lists every reading per GPU, an error by its NVML name, and leaves NVML
    balanced (init/shutdown)."""
    backend = FakeNvml(gpus=2)
    backend.fail("device_get_remapped_rows", E.NOT_SUPPORTED)
    backend.fail("device_get_handle_by_index", E.GPU_IS_LOST, gpu=1)
    report = gpu.probe(backend)
    assert report["device_count"] == 2 and report["driver_version"] == "550.54.15"
    first, second = report["gpus"]
    assert first["device_get_temperature"] == 45
    assert first["device_get_memory_info"] == {"used": 2 * 1024**3, "total": 80 * 1024**3}
    assert first["device_get_remapped_rows"] == {"error": "NVML_ERROR_NOT_SUPPORTED"}
    assert second == {"index": 1, "handle": {"error": "NVML_ERROR_GPU_IS_LOST"}}
    assert backend.init_calls == backend.shutdown_calls == 1
