"""The ``gpu`` kind: are this host's NVIDIA GPUs all there and fit to run inference?

Everything is read through :mod:`monai_slo.checks.nvml` (``nvml.current()``), so tests run the
same rules against :class:`monai_slo.testing.nvml.FakeNvml`.

Each GPU gets a verdict (healthy / degraded / unhealthy) and a suggested action from the
rules in :mod:`monai_slo.checks.gpu.verdict` (gauges ``gpu_health`` and
``gpu_suggested_action``, state sets); the check fails on an unhealthy GPU (and on a degraded
one with ``fail_on: degraded``), on fewer GPUs than expected and when NVML is not usable.
Temperature, throttling, power, memory and utilisation are gauges (``CheckOutcome.series``,
one ``gpu`` label per index) and only fail the check when ``max_temperature_celsius`` /
``fail_on_throttle`` ask for it.

NVML is initialised once per process and an XID event set is kept open between runs in a
module-level session (one per NVML implementation, guarded by a lock); each check keeps
only a cursor into the session's event log, so reloads and extra checks open no new
handles. ``python -m monai_slo.checks.gpu`` prints what the real NVML says, as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, field_validator

from monai_slo.checks import nvml
from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, FailureReason, Series
from monai_slo.checks.gpu import verdict as rules
from monai_slo.checks.gpu.verdict import Readings, Verdict
from monai_slo.checks.nvml import NvmlError, NvmlErrorCode
from monai_slo.durations import Duration

T = TypeVar("T")

# XIDs that mean the GPU (not the application) is in trouble: DCGM / device plugin / gpud.
CORE_CRITICAL_XIDS = (48, 62, 64, 74, 79, 95, 119, 120, 140)
# Raised by a faulty CUDA program; the GPU itself is fine (the device plugin ignores them).
APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68, 109})

# Codes that mean "this reading does not exist here" (consumer GPU, old driver, container).
SKIPPED_CODES = frozenset(
    {NvmlErrorCode.NOT_SUPPORTED, NvmlErrorCode.FUNCTION_NOT_FOUND, NvmlErrorCode.NO_PERMISSION}
)
LOST_CODES = frozenset({NvmlErrorCode.GPU_IS_LOST, NvmlErrorCode.RESET_REQUIRED})
# NVML itself is not usable; the session is dropped and NVML re-initialised next run.
UNAVAILABLE_CODES = frozenset(
    {
        NvmlErrorCode.UNINITIALIZED,
        NvmlErrorCode.DRIVER_NOT_LOADED,
        NvmlErrorCode.LIBRARY_NOT_FOUND,
        NvmlErrorCode.LIB_RM_VERSION_MISMATCH,
    }
)

THROTTLE_REASONS = {
    "hw_slowdown": nvml.THROTTLE_HW_SLOWDOWN,
    "hw_thermal": nvml.THROTTLE_HW_THERMAL,
    "hw_power_brake": nvml.THROTTLE_HW_POWER_BRAKE,
    "sw_thermal": nvml.THROTTLE_SW_THERMAL,
    "sw_power_cap": nvml.THROTTLE_SW_POWER_CAP,
}
# sw_power_cap is how a fully loaded GPU normally runs: a gauge, never a warning.
ABNORMAL_THROTTLE = tuple(rules.ABNORMAL_THROTTLE)
DEFAULT_XID_WINDOW = 900.0
NEAR_SLOWDOWN_CELSIUS = 5
MAX_EVENTS_PER_RUN = 256
EVENT_LOG_SIZE = 4096
MAX_CURSORS = 256
_LABEL_MAX = 64
# PCIe replays are counted over at least this long before a rate is judged.
REPLAY_RATE_SPAN_SECONDS = 60.0
_clock = time.monotonic  # replaced by tests that move time on

# The failure reason of each verdict rule's findings.
_RULE_REASONS = {
    "lost": FailureReason.GPU_LOST,
    "recovery_action": FailureReason.GPU_RECOVERY,
    "row_remap_failure": FailureReason.GPU_ROW_REMAP,
    "row_remap_pending": FailureReason.GPU_ROW_REMAP,
    "ecc_uncorrected": FailureReason.GPU_ECC,
    "critical_xid": FailureReason.GPU_XID,
    "nvlink_inactive": FailureReason.GPU_NVLINK,
    "pcie_replays": FailureReason.GPU_PCIE,
    "pcie_link_width": FailureReason.GPU_PCIE,
    "pcie_link_speed": FailureReason.GPU_PCIE,
    "clocks_throttled": FailureReason.GPU_THROTTLE,
}

_UNAVAILABLE_HINTS: dict[int, str] = {
    NvmlErrorCode.LIBRARY_NOT_FOUND: "libnvidia-ml not found: no NVIDIA driver installed here?",
    NvmlErrorCode.DRIVER_NOT_LOADED: "the NVIDIA kernel driver is not loaded",
    NvmlErrorCode.LIB_RM_VERSION_MISMATCH: "driver and NVML versions differ "
    "(driver upgraded without reboot?)",
    NvmlErrorCode.NO_PERMISSION: "no permission to open /dev/nvidia*",
    NvmlErrorCode.UNINITIALIZED: "NVML was shut down underneath the check",
}

# Most severe first: the reason of a run with several problems is the first one here.
_SEVERITY = (
    FailureReason.GPU_UNAVAILABLE,
    FailureReason.GPU_LOST,
    FailureReason.GPU_COUNT,
    FailureReason.GPU_RECOVERY,
    FailureReason.GPU_ROW_REMAP,
    FailureReason.GPU_ECC,
    FailureReason.GPU_XID,
    FailureReason.GPU_NVLINK,
    FailureReason.GPU_NVML_ERROR,
    FailureReason.GPU_PCIE,
    FailureReason.GPU_THERMAL,
    FailureReason.GPU_THROTTLE,
    FailureReason.TIMEOUT,
)

GpuIndex = Annotated[int, Field(ge=0, le=1023)]
Xid = Annotated[int, Field(ge=1, le=65535)]


class Config(CheckConfig):
    """Watch the local NVIDIA GPUs through NVML."""

    kind: Literal["gpu"]
    expected_count: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="GPUs that must be visible (default: at least one)."
    )
    gpus: Annotated[list[GpuIndex], Field(min_length=1)] | None = Field(
        default=None, description="NVML indices to watch (default: every visible GPU)."
    )
    critical_xids: list[Xid] = Field(
        default_factory=lambda: list(CORE_CRITICAL_XIDS),
        description="XIDs that fail the check when seen since the last run.",
    )
    fail_on_throttle: bool = Field(
        default=False,
        description="Fail (gpu_throttle) on hw_slowdown, hw_thermal, hw_power_brake or "
        "sw_thermal clock throttling instead of only reporting it.",
    )
    max_temperature_celsius: Annotated[float, Field(gt=0, le=150)] | None = Field(
        default=None, description="Fail (gpu_thermal) above this GPU temperature."
    )
    fail_on: Literal["unhealthy", "degraded"] = Field(
        default="unhealthy",
        description="The GPU verdict that fails the check: unhealthy only, or degraded too.",
    )
    xid_window: Duration = Field(
        default=DEFAULT_XID_WINDOW,
        gt=0,
        description="How long a critical XID keeps its GPU unhealthy after it was seen.",
    )

    @field_validator("gpus")
    @classmethod
    def _distinct_gpus(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"GPU indices must be distinct, got {value}")
        return value

    @field_validator("critical_xids")
    @classmethod
    def _distinct_xids(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @property
    def identity(self) -> tuple[str, tuple[int, ...] | None]:
        """What the XID cursor is kept under: stable across reloads of the same check."""
        return (self.name, tuple(self.gpus) if self.gpus is not None else None)


# ---------------------------------------------------------------------------------------
# Process-wide NVML session: one nvmlInit, one event set, a bounded log of XID events.


@dataclass(slots=True)
class _XidRecord:
    seq: int
    gpu: int  # -1 when the event's device could not be mapped to an index
    xid: int
    at: float  # time.monotonic() when the check drained it


class _Unavailable(Exception):
    def __init__(self, error: NvmlError) -> None:
        super().__init__(error.describe())
        self.error = error


class _GpuLost(Exception):
    def __init__(self, error: NvmlError) -> None:
        super().__init__(error.describe())
        self.error = error


_generations = itertools.count(1)
CursorKey = tuple[str, tuple[int, ...] | None]


class _Session:
    """NVML initialised once, plus the XID event set kept open between runs."""

    def __init__(self, backend: nvml.Nvml) -> None:
        self.nvml = backend
        self.generation = next(_generations)
        self.event_set: object | None = None
        self.events_unsupported = ""  # why XIDs cannot be watched at all, once known
        self.registered: set[int] = set()
        self.unregistrable: dict[int, str] = {}
        self.log: deque[_XidRecord] = deque(maxlen=EVENT_LOG_SIZE)
        self.seq = 0
        self.totals: dict[int, int] = {}
        # (check identity, GPU) -> (time, PCIe replay counter) the rate is counted from,
        # and the last rate (replays per minute) judged.
        self.replays: dict[tuple[CursorKey, int], tuple[float, int, float | None]] = {}
        backend.init()

    def close(self) -> None:
        """Free the event set and drop our NVML reference; errors here change nothing."""
        if self.event_set is not None:
            with contextlib.suppress(NvmlError):
                self.nvml.event_set_free(self.event_set)
            self.event_set = None
        with contextlib.suppress(NvmlError):
            self.nvml.shutdown()


class _Registry:
    """The process-wide session and each check's XID cursor, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: _Session | None = None
        # identity -> (session generation, last seq seen); insertion-ordered for eviction.
        self.cursors: dict[CursorKey, tuple[int, int]] = {}

    def session_for(self, backend: nvml.Nvml) -> _Session:
        """The open session for ``backend``, initialising NVML if needed. Hold ``lock``."""
        if self.session is not None and self.session.nvml is backend:
            return self.session
        self.drop_session()
        try:
            self.session = _Session(backend)
        except NvmlError as exc:
            raise _Unavailable(exc) from None
        return self.session

    def drop_session(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def advance(self, key: CursorKey, session: _Session) -> int:
        """The last event seq this check has seen; moves its cursor to the log's end."""
        generation, seen = self.cursors.pop(key, (session.generation, session.seq))
        if generation != session.generation:
            seen = 0  # a new session: everything in its log is new to this check
        self.cursors[key] = (session.generation, session.seq)
        while len(self.cursors) > MAX_CURSORS:
            del self.cursors[next(iter(self.cursors))]
        return seen


_REGISTRY = _Registry()


def reset_state() -> None:
    """Free the event set, shut NVML down, forget every cursor (tests, clean exit)."""
    with _REGISTRY.lock:
        _REGISTRY.drop_session()
        _REGISTRY.cursors.clear()


# ---------------------------------------------------------------------------------------
# One run.


def _gpu_prefix(gpu: int | None) -> str:
    return f"GPU {gpu}: " if gpu is not None else ""


def _label(text: str) -> str:
    """A bounded, printable label value."""
    clean = "".join(ch for ch in text if ch.isprintable()).strip()
    return clean[:_LABEL_MAX] or "unknown"


def _cuda_version(raw: int) -> str:
    return f"{raw // 1000}.{raw % 1000 // 10}"


def _classify(error: NvmlError) -> None:
    """Raise the run-level exception for a lost GPU or an unusable NVML."""
    if error.code in LOST_CODES:
        raise _GpuLost(error) from None
    if error.code in UNAVAILABLE_CODES:
        raise _Unavailable(error) from None


@dataclass(slots=True)
class _Findings:
    problems: list[tuple[FailureReason, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)
    verdicts: dict[int, Verdict] = field(default_factory=dict)

    def problem(self, reason: FailureReason, detail: str) -> None:
        self.problems.append((reason, detail))

    def gauge(self, metric: str, gpu: int, value: float, **labels: str) -> None:
        self.series.append(Series(metric, float(value), {"gpu": str(gpu), **labels}))

    def read(
        self, gpu: int | None, what: str, fn: Callable[[], T], *, absent_ok: bool = False
    ) -> T | None:
        """One NVML reading: skipped when absent here, fatal when the GPU is lost.
        ``absent_ok``: NOT_SUPPORTED means the hardware has no such thing (no NVLink), and
        is not listed as a missing reading."""
        try:
            return fn()
        except NvmlError as exc:
            if absent_ok and exc.code == NvmlErrorCode.NOT_SUPPORTED:
                return None
            if exc.code in SKIPPED_CODES:
                self.skipped.append(what)
                return None
            _classify(exc)
            self.problem(FailureReason.GPU_NVML_ERROR, f"{_gpu_prefix(gpu)}{what}: {exc.name}")
            return None

    def outcome(self, summary: str) -> CheckOutcome:
        series = tuple(self.series)
        if self.problems:
            rank = {reason: i for i, reason in enumerate(_SEVERITY)}
            reason = min((r for r, _ in self.problems), key=lambda r: rank.get(r, len(rank)))
            parts = [detail for _, detail in self.problems] + self.warnings
            return CheckOutcome.fail(reason, "; ".join(parts), self.values, series)
        parts = [summary, *self.warnings]
        if self.skipped:
            parts.append(f"not available here: {', '.join(dict.fromkeys(self.skipped))}")
        return CheckOutcome.ok("; ".join(p for p in parts if p), self.values, series)


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Read every watched GPU once; fail on the fatal rules, gauge the rest."""
    backend = nvml.current()
    # Another GPU check stuck inside an NVML call must not hold this one past its deadline.
    if not _REGISTRY.lock.acquire(timeout=max(deadline.remaining(), 0.0)):
        return CheckOutcome.fail(
            FailureReason.TIMEOUT, "another GPU check is still inside NVML; gave up waiting"
        )
    try:
        return _run_locked(config, deadline, backend)
    finally:
        _REGISTRY.lock.release()


def _unavailable(error: NvmlError) -> CheckOutcome:
    hint = _UNAVAILABLE_HINTS.get(error.code)
    detail = f"NVML unavailable: {error.describe()}" + (f" ({hint})" if hint else "")
    return CheckOutcome.fail(FailureReason.GPU_UNAVAILABLE, detail)


def _run_locked(config: Config, deadline: Deadline, backend: nvml.Nvml) -> CheckOutcome:
    findings = _Findings()
    try:
        session = _REGISTRY.session_for(backend)
    except _Unavailable as exc:
        return _unavailable(exc.error)
    try:
        summary = _inspect(config, deadline, session, findings)
    except _Unavailable as exc:
        # NVML went away mid-run (driver unloaded, shut down): start afresh next run.
        _REGISTRY.drop_session()
        return _unavailable(exc.error)
    except _GpuLost as exc:
        # A lost GPU outside any one device's readings (the device count).
        findings.problem(FailureReason.GPU_LOST, f"a GPU is lost: {exc.error.describe()}")
        summary = ""
    return findings.outcome(summary)


def _inspect(config: Config, deadline: Deadline, session: _Session, found: _Findings) -> str:
    backend = session.nvml
    driver = _label(found.read(None, "driver version", backend.system_get_driver_version) or "")
    cuda_raw = found.read(None, "CUDA version", backend.system_get_cuda_driver_version)
    cuda = _cuda_version(cuda_raw) if cuda_raw is not None else "unknown"

    count = found.read(None, "device count", backend.device_get_count)
    if count is None:
        if not found.problems:
            found.problem(FailureReason.GPU_NVML_ERROR, "NVML cannot count the GPUs")
        return ""
    found.values["gpu_count"] = count
    expected = config.expected_count or 1
    if count < expected:
        found.problem(
            FailureReason.GPU_COUNT,
            f"{count} GPU(s) visible, {expected} expected"
            if config.expected_count
            else "no GPU visible",
        )
    watched = list(config.gpus) if config.gpus is not None else list(range(count))
    for index in watched:
        if index >= count:
            found.problem(FailureReason.GPU_COUNT, f"GPU {index}: not visible (NVML sees {count})")
    present = [index for index in watched if index < count]

    _drain_events(session, deadline, found)
    windowed = _windowed_xids(config, session, present)

    names: list[str] = []
    for done, index in enumerate(present):
        if deadline.expired:
            found.problem(
                FailureReason.TIMEOUT, f"deadline reached after {done} of {len(present)} GPUs"
            )
            break
        try:
            gpu = _GpuReader(config, session, index, found, windowed.get(index, ()))
            names.append(gpu.inspect(driver, cuda))
        except _GpuLost as exc:
            session.registered.discard(index)
            lost = Readings(lost=exc.error.code, critical_xids=windowed.get(index, ()))
            _emit_verdict(config, found, index, lost, f" ({exc.error.describe()})")

    _judge_xids(config, session, present, found)
    kinds = ", ".join(sorted(set(names))) or "no GPU"
    where = f"{kinds}; driver {driver}, CUDA {cuda}"
    tally = list(found.verdicts.values())
    if all(v == Verdict.HEALTHY for v in tally):
        return f"{len(present)} GPU(s) healthy ({where})"
    counts = ", ".join(
        f"{sum(1 for v in tally if v == verdict)} {verdict.value}"
        for verdict in rules.VERDICTS
        if verdict in tally
    )
    return f"{len(present)} GPU(s): {counts} ({where})"


def _emit_verdict(
    config: Config, found: _Findings, index: int, readings: Readings, note: str = ""
) -> None:
    """Judge one GPU: its health and suggested-action state sets, and each finding as a
    problem (its verdict reaches ``fail_on``) or a warning."""
    result = rules.judge(readings)
    found.verdicts[index] = result.verdict
    for verdict in rules.VERDICTS:
        found.gauge("gpu_health", index, verdict == result.verdict, verdict=verdict.value)
    for action in rules.ACTIONS:
        found.gauge("gpu_suggested_action", index, action == result.action, action=action.value)
    fail_on = Verdict(config.fail_on)
    for finding in result.findings:
        text = (
            f"GPU {index}: {finding.detail}{note} ({finding.verdict.value}, suggested action "
            f"{finding.action.value}; rule {finding.rule})"
        )
        throttle_fails = finding.rule == "clocks_throttled" and config.fail_on_throttle
        if rules.fails(finding.verdict, fail_on) or throttle_fails:
            found.problem(_RULE_REASONS[finding.rule], text)
        else:
            found.warnings.append(text)


def _windowed_xids(
    config: Config, session: _Session, present: Sequence[int]
) -> dict[int, tuple[int, ...]]:
    """Critical XIDs per watched GPU seen within ``xid_window``: older ones have cleared."""
    horizon = _clock() - config.xid_window
    critical = set(config.critical_xids)
    watched = set(present)
    found: dict[int, list[int]] = {}
    for record in session.log:
        if record.at >= horizon and record.xid in critical and record.gpu in watched:
            found.setdefault(record.gpu, []).append(record.xid)
    return {gpu: tuple(xids) for gpu, xids in found.items()}


class _GpuReader:
    """The readings and rules of one GPU in one run."""

    def __init__(
        self,
        config: Config,
        session: _Session,
        index: int,
        found: _Findings,
        xids: tuple[int, ...] = (),
    ) -> None:
        self.config = config
        self.session = session
        self.nvml = session.nvml
        self.index = index
        self.found = found
        self.handle: object = None
        self.facts: dict[str, Any] = {"critical_xids": xids}

    def read(self, what: str, fn: Callable[[object], T], *, absent_ok: bool = False) -> T | None:
        return self.found.read(self.index, what, lambda: fn(self.handle), absent_ok=absent_ok)

    def gauge(self, metric: str, value: float, **labels: str) -> None:
        self.found.gauge(metric, self.index, value, **labels)

    def problem(self, reason: FailureReason, detail: str) -> None:
        self.found.problem(reason, f"GPU {self.index}: {detail}")

    def inspect(self, driver: str, cuda: str) -> str:
        """All rules for this GPU; returns its name. Raises _GpuLost."""
        try:
            self.handle = self.nvml.device_get_handle_by_index(self.index)
        except NvmlError as exc:
            _classify(exc)
            self.problem(FailureReason.GPU_NVML_ERROR, f"no handle: {exc.name}")
            return "unknown"
        self.register_events()
        name = _label(self.read("name", self.nvml.device_get_name) or "")
        self.gauge("gpu_info", 1, name=name, driver_version=driver, cuda_version=cuda)
        self.temperature()
        self.throttling()
        self.usage()
        self.memory_health()
        self.facts["recovery_action"] = self.read(
            "recovery action", self.nvml.device_get_recovery_action
        )
        self.pcie()
        self.facts["nvlinks"] = self.read(
            "NVLink state", self.nvml.device_get_nvlink_states, absent_ok=True
        )
        _emit_verdict(self.config, self.found, self.index, Readings(**self.facts))
        return name

    def register_events(self) -> None:
        """Add this GPU to the XID event set once per session."""
        session = self.session
        if session.event_set is None or self.index in session.registered:
            return
        try:
            self.nvml.device_register_xid_events(self.handle, session.event_set)
        except NvmlError as exc:
            _classify(exc)
            if exc.code not in SKIPPED_CODES:
                self.problem(FailureReason.GPU_NVML_ERROR, f"cannot watch XIDs: {exc.name}")
                return  # try again next run
            session.unregistrable[self.index] = exc.name
        session.registered.add(self.index)

    def temperature(self) -> None:
        temperature = self.read("temperature", self.nvml.device_get_temperature)
        slowdown = self.read(
            "slowdown temperature", self.nvml.device_get_temperature_threshold_slowdown
        )
        if slowdown is not None:
            self.gauge("gpu_temperature_slowdown_celsius", slowdown)
        if temperature is None:
            return
        self.gauge("gpu_temperature_celsius", temperature)
        limit = self.config.max_temperature_celsius
        if limit is not None and temperature > limit:
            self.problem(
                FailureReason.GPU_THERMAL,
                f"{temperature} °C above max_temperature_celsius {limit:g}",
            )
        elif slowdown is not None and temperature >= slowdown - NEAR_SLOWDOWN_CELSIUS:
            self.found.warnings.append(
                f"GPU {self.index}: {temperature} °C, slowdown at {slowdown} °C"
            )

    def throttling(self) -> None:
        reasons = self.read("throttle reasons", self.nvml.device_get_current_clocks_event_reasons)
        if reasons is None:
            return
        for reason, bit in THROTTLE_REASONS.items():
            self.gauge("gpu_throttle_active", 1 if reasons & bit else 0, reason=reason)
        self.facts["throttle_reasons"] = reasons

    def usage(self) -> None:
        power = self.read("power", self.nvml.device_get_power_usage)
        if power is not None:
            self.gauge("gpu_power_watts", power / 1000)
        memory = self.read("memory", self.nvml.device_get_memory_info)
        if memory is not None:
            self.gauge("gpu_memory_used_bytes", memory.used)
            self.gauge("gpu_memory_total_bytes", memory.total)
        utilisation = self.read("utilisation", self.nvml.device_get_utilization_rates)
        if utilisation is not None:
            self.gauge("gpu_utilization_ratio", utilisation / 100)
        self.facts["utilization_percent"] = utilisation

    def pcie(self) -> None:
        self.facts["pcie_link"] = self.read("PCIe link", self.nvml.device_get_pcie_link)
        count = self.read("PCIe replays", self.nvml.device_get_pcie_replay_counter)
        if count is None:
            return
        replays = self.session.replays
        key = (self.config.identity, self.index)
        now = _clock()
        since, base, rate = replays.pop(key, (now, count, None))
        if count < base or now < since:
            since, base, rate = now, count, None  # the driver reloaded: count afresh
        elif now - since >= REPLAY_RATE_SPAN_SECONDS:
            rate = (count - base) * 60.0 / (now - since)
            since, base = now, count
        replays[key] = (since, base, rate)
        while len(replays) > MAX_CURSORS * 8:
            del replays[next(iter(replays))]
        self.facts["pcie_replays_per_minute"] = rate

    def memory_health(self) -> None:
        ecc = self.read(
            "uncorrected ECC errors", self.nvml.device_get_total_ecc_errors_uncorrected_volatile
        )
        if ecc is not None:
            self.gauge("gpu_ecc_uncorrected_volatile_errors", ecc)
        self.facts["ecc_uncorrected_volatile"] = ecc
        self.facts["remapped_rows"] = self.read("remapped rows", self.nvml.device_get_remapped_rows)


def _open_event_set(session: _Session, found: _Findings) -> None:
    try:
        session.event_set = session.nvml.event_set_create()
    except NvmlError as exc:
        if exc.code in UNAVAILABLE_CODES:
            raise _Unavailable(exc) from None
        if exc.code in SKIPPED_CODES:
            session.events_unsupported = exc.name
        else:
            found.problem(FailureReason.GPU_NVML_ERROR, f"cannot create XID event set: {exc.name}")


def _drain_events(session: _Session, deadline: Deadline, found: _Findings) -> None:
    """Move pending XID events into the session log; bounded in count and by the deadline."""
    if session.event_set is None and not session.events_unsupported:
        _open_event_set(session, found)
    if session.event_set is None:
        return
    backend = session.nvml
    for _ in range(MAX_EVENTS_PER_RUN):
        if deadline.expired:
            return
        try:
            event = backend.event_set_wait(session.event_set, 0)
        except NvmlError as exc:
            if exc.code == NvmlErrorCode.TIMEOUT:
                return  # drained
            if exc.code in UNAVAILABLE_CODES:
                raise _Unavailable(exc) from None
            # GPU_IS_LOST here is reported per GPU by the readings that follow.
            if exc.code not in LOST_CODES:
                found.problem(FailureReason.GPU_NVML_ERROR, f"waiting for XID events: {exc.name}")
            return
        try:
            gpu = backend.device_get_index(event.handle)
        except NvmlError:
            gpu = -1
        session.seq += 1
        session.log.append(_XidRecord(session.seq, gpu, event.xid, _clock()))
        session.totals[gpu] = session.totals.get(gpu, 0) + 1
    found.warnings.append(f"more than {MAX_EVENTS_PER_RUN} XID events pending; the rest next run")


def _judge_xids(
    config: Config, session: _Session, present: Sequence[int], found: _Findings
) -> None:
    """XIDs logged since this check last looked, on its GPUs, as warnings (critical ones on
    a known GPU count in that GPU's verdict); then move its cursor."""
    seen = _REGISTRY.advance(config.identity, session)
    watched = set(present)
    if session.events_unsupported or watched & session.unregistrable.keys():
        found.skipped.append("XID events")
    critical = set(config.critical_xids)
    if session.log and session.log[0].seq > seen + 1:
        found.warnings.append(f"{session.log[0].seq - seen - 1} XID event(s) not examined")
    for record in session.log:
        if record.seq <= seen or (record.gpu not in watched and record.gpu != -1):
            continue
        where = f"GPU {record.gpu}" if record.gpu >= 0 else "a GPU"
        if record.xid in critical:
            if record.gpu == -1:  # no GPU's verdict can hold it
                found.problem(FailureReason.GPU_XID, f"{where}: critical XID {record.xid}")
        elif record.xid not in APPLICATION_XIDS:
            found.warnings.append(f"{where}: XID {record.xid}")
    for index in present:
        if session.event_set is not None and index not in session.unregistrable:
            found.gauge("gpu_xid_events_since_start", index, session.totals.get(index, 0))


# ---------------------------------------------------------------------------------------
# python -m monai_slo.checks.gpu: what the real NVML says, for a person at a GPU host.


def probe(backend: nvml.Nvml) -> dict[str, Any]:
    """Every reading the check uses, raw, per GPU; an error is shown by its NVML name."""

    def attempt(fn: Callable[[], Any]) -> Any:
        try:
            value = fn()
        except NvmlError as exc:
            return {"error": exc.name}
        if hasattr(value, "__dataclass_fields__"):
            return {name: getattr(value, name) for name in value.__dataclass_fields__}
        return value

    report: dict[str, Any] = {}
    try:
        backend.init()
    except NvmlError as exc:
        report["init"] = {"error": exc.name}
        return report
    try:
        report["driver_version"] = attempt(backend.system_get_driver_version)
        report["cuda_driver_version"] = attempt(backend.system_get_cuda_driver_version)
        count = attempt(backend.device_get_count)
        report["device_count"] = count
        gpus: list[dict[str, Any]] = []
        for index in range(count if isinstance(count, int) else 0):
            try:
                handle = backend.device_get_handle_by_index(index)
            except NvmlError as exc:
                gpus.append({"index": index, "handle": {"error": exc.name}})
                continue
            readings: dict[str, Any] = {"index": index}
            for call in (
                "device_get_name",
                "device_get_temperature",
                "device_get_temperature_threshold_slowdown",
                "device_get_current_clocks_event_reasons",
                "device_get_power_usage",
                "device_get_memory_info",
                "device_get_utilization_rates",
                "device_get_total_ecc_errors_uncorrected_volatile",
                "device_get_remapped_rows",
                "device_get_recovery_action",
                "device_get_pcie_link",
                "device_get_pcie_replay_counter",
                "device_get_nvlink_states",
            ):
                readings[call] = attempt(functools.partial(getattr(backend, call), handle))
            gpus.append(readings)
        report["gpus"] = gpus
    finally:
        try:
            backend.shutdown()
        except NvmlError as exc:
            report["shutdown"] = {"error": exc.name}
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Print the raw NVML readings and one run of the check as JSON; exit 0 ok / 1 failed."""
    parser = argparse.ArgumentParser(
        prog="python -m monai_slo.checks.gpu", description="One-shot NVML report."
    )
    parser.add_argument("--expected-count", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args(argv)
    config = Config(
        name="gpu",
        kind="gpu",
        expected_count=args.expected_count,
        timeout=args.timeout,
        interval=max(30.0, args.timeout * 2),
    )
    started = time.monotonic()
    outcome = run(config, Deadline(config.timeout))
    elapsed = time.monotonic() - started
    reset_state()
    report = {
        "probe": probe(nvml.current()),
        "check": {
            "success": outcome.success,
            "reason": outcome.reason.value if outcome.reason else None,
            "detail": outcome.detail,
            "duration_seconds": round(elapsed, 6),
            "values": dict(outcome.values),
            "series": [
                {"name": s.name, "labels": dict(s.labels), "value": s.value} for s in outcome.series
            ],
        },
    }
    json.dump(report, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0 if outcome.success else 1
