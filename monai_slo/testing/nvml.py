"""A scriptable NVML for tests (ours and users'): GPUs, readings, XID events and errors.

::

    fake = FakeNvml(gpus=2)
    fake.gpus[1].temperature = 88
    fake.fail("device_get_remapped_rows", NvmlErrorCode.NOT_SUPPORTED)   # every GPU
    fake.fail("device_get_handle_by_index", NvmlErrorCode.GPU_IS_LOST, gpu=0)
    with use_nvml(fake):
        outcome = gpu.run(config, Deadline(2))
        fake.xid(1, 79)          # delivered to the open event set, seen by the next run

It behaves like NVML where the check can tell: calls before ``init`` (or after the last
``shutdown``) raise UNINITIALIZED, ``event_set_wait`` raises TIMEOUT when nothing is
pending, and it counts inits, shutdowns and event sets so tests can prove nothing leaks.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from monai_slo.checks import nvml
from monai_slo.checks.nvml import (
    MemoryInfo,
    NvmlError,
    NvmlErrorCode,
    PcieLink,
    RemappedRows,
    XidEvent,
)

GIB = 1024**3

# Protocol method -> the NVML function it stands for, for error messages.
NVML_NAMES = {
    "init": "nvmlInit",
    "shutdown": "nvmlShutdown",
    "system_get_driver_version": "nvmlSystemGetDriverVersion",
    "system_get_cuda_driver_version": "nvmlSystemGetCudaDriverVersion",
    "device_get_count": "nvmlDeviceGetCount",
    "device_get_handle_by_index": "nvmlDeviceGetHandleByIndex",
    "device_get_index": "nvmlDeviceGetIndex",
    "device_get_name": "nvmlDeviceGetName",
    "device_get_temperature": "nvmlDeviceGetTemperature",
    "device_get_temperature_threshold_slowdown": "nvmlDeviceGetTemperatureThreshold",
    "device_get_current_clocks_event_reasons": "nvmlDeviceGetCurrentClocksEventReasons",
    "device_get_power_usage": "nvmlDeviceGetPowerUsage",
    "device_get_memory_info": "nvmlDeviceGetMemoryInfo",
    "device_get_utilization_rates": "nvmlDeviceGetUtilizationRates",
    "device_get_total_ecc_errors_uncorrected_volatile": "nvmlDeviceGetTotalEccErrors",
    "device_get_remapped_rows": "nvmlDeviceGetRemappedRows",
    "device_get_recovery_action": "nvmlDeviceGetFieldValues",
    "device_get_pcie_link": "nvmlDeviceGetCurrPcieLinkGeneration",
    "device_get_pcie_replay_counter": "nvmlDeviceGetPcieReplayCounter",
    "device_get_nvlink_states": "nvmlDeviceGetNvLinkState",
    "event_set_create": "nvmlEventSetCreate",
    "device_register_xid_events": "nvmlDeviceRegisterEvents",
    "event_set_wait": "nvmlEventSetWait",
    "event_set_free": "nvmlEventSetFree",
}


@dataclass
class FakeGpu:
    """One GPU's readings; change any attribute between runs."""

    name: str = "NVIDIA Fake GPU 80GB"
    temperature: int = 45
    slowdown_temperature: int = 90
    throttle_reasons: int = 0  # nvmlClocksEventReason* bits, see monai_slo.checks.nvml.THROTTLE_*
    power_mw: int = 75_000
    memory_used: int = 2 * GIB
    memory_total: int = 80 * GIB
    utilization: int = 10  # percent
    ecc_uncorrected_volatile: int = 0
    remapped_rows: RemappedRows = field(default_factory=lambda: RemappedRows(0, 0, False, False))
    recovery_action: int = 0  # nvmlGpuRecoveryAction_t, see monai_slo.checks.nvml.RECOVERY_ACTIONS
    pcie_link: PcieLink = field(default_factory=lambda: PcieLink(4, 4, 16, 16))
    pcie_replays: int = 0  # nvmlDeviceGetPcieReplayCounter, since the driver loaded
    nvlinks: tuple[bool, ...] = ()  # active state per NVLink; () = no NVLink (NOT_SUPPORTED)
    lost: bool = False  # every call on it raises GPU_IS_LOST, its handle included


@dataclass(slots=True)
class _Scripted:
    code: int
    times: int | None


@dataclass(frozen=True, slots=True)
class FakeHandle:
    index: int


class FakeEventSet:
    def __init__(self, number: int) -> None:
        self.number = number
        self.registered: set[int] = set()
        self.pending: deque[XidEvent] = deque()
        self.freed = False


class FakeNvml:
    """Implements :class:`monai_slo.checks.nvml.Nvml` from in-memory state."""

    def __init__(
        self,
        gpus: int | Sequence[FakeGpu] = 1,
        *,
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
    ) -> None:
        self.gpus: list[FakeGpu] = (
            [FakeGpu() for _ in range(gpus)] if isinstance(gpus, int) else list(gpus)
        )
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.visible: int | None = None  # device count override (a GPU gone from the bus)
        self.calls: Counter[str] = Counter()
        self.init_calls = 0
        self.shutdown_calls = 0
        self.event_sets: list[FakeEventSet] = []
        # Called with the method name before every call: block, count, raise.
        self.on_call: Callable[[str], None] | None = None
        self._refcount = 0
        self._errors: dict[tuple[str, int | None], _Scripted] = {}
        self._lock = threading.RLock()

    # -- scripting ------------------------------------------------------------------------

    def fail(
        self, call: str, code: int, *, gpu: int | None = None, times: int | None = None
    ) -> None:
        """Make ``call`` (a Protocol method name) raise ``code``: for one GPU or all, for
        ``times`` calls or until :meth:`clear`."""
        if call not in NVML_NAMES:
            raise ValueError(f"unknown NVML call {call!r}; one of {sorted(NVML_NAMES)}")
        with self._lock:
            self._errors[(call, gpu)] = _Scripted(int(code), times)

    def clear(self, call: str | None = None) -> None:
        """Stop raising for ``call`` (every call when None)."""
        with self._lock:
            for key in [k for k in self._errors if call is None or k[0] == call]:
                del self._errors[key]

    def xid(self, gpu: int, xid: int) -> int:
        """Deliver XID ``xid`` on ``gpu`` to every open event set registered for it;
        returns how many sets received it."""
        delivered = 0
        with self._lock:
            for event_set in self.event_sets:
                if not event_set.freed and gpu in event_set.registered:
                    event_set.pending.append(XidEvent(FakeHandle(gpu), xid))
                    delivered += 1
        return delivered

    @property
    def initialised(self) -> bool:
        return self._refcount > 0

    @property
    def open_event_sets(self) -> int:
        with self._lock:
            return sum(1 for s in self.event_sets if not s.freed)

    # -- plumbing -------------------------------------------------------------------------

    def _enter(self, call: str, gpu: int | None = None, *, needs_init: bool = True) -> None:
        hook = self.on_call
        if hook is not None:
            hook(call)
        with self._lock:
            self.calls[call] += 1
            for key in ((call, gpu), (call, None)):
                entry = self._errors.get(key)
                if entry is None:
                    continue
                if entry.times is not None:
                    entry.times -= 1
                    if entry.times <= 0:
                        del self._errors[key]
                raise NvmlError(entry.code, NVML_NAMES[call])
            if needs_init and self._refcount == 0:
                raise NvmlError(NvmlErrorCode.UNINITIALIZED, NVML_NAMES[call])
            if gpu is not None:
                if gpu >= len(self.gpus) or gpu >= self._count():
                    raise NvmlError(NvmlErrorCode.INVALID_ARGUMENT, NVML_NAMES[call])
                if self.gpus[gpu].lost:
                    raise NvmlError(NvmlErrorCode.GPU_IS_LOST, NVML_NAMES[call])

    def _count(self) -> int:
        return len(self.gpus) if self.visible is None else self.visible

    def _gpu(self, call: str, handle: object) -> FakeGpu:
        assert isinstance(handle, FakeHandle), handle
        self._enter(call, handle.index)
        return self.gpus[handle.index]

    def _set(self, event_set: object) -> FakeEventSet:
        assert isinstance(event_set, FakeEventSet), event_set
        if event_set.freed:
            raise NvmlError(NvmlErrorCode.INVALID_ARGUMENT, "event set already freed")
        return event_set

    # -- the Protocol ---------------------------------------------------------------------

    def init(self) -> None:
        self._enter("init", needs_init=False)
        with self._lock:
            self.init_calls += 1
            self._refcount += 1

    def shutdown(self) -> None:
        self._enter("shutdown")
        with self._lock:
            self.shutdown_calls += 1
            self._refcount -= 1

    def system_get_driver_version(self) -> str:
        self._enter("system_get_driver_version")
        return self.driver_version

    def system_get_cuda_driver_version(self) -> int:
        self._enter("system_get_cuda_driver_version")
        return self.cuda_driver_version

    def device_get_count(self) -> int:
        self._enter("device_get_count")
        return self._count()

    def device_get_handle_by_index(self, index: int) -> object:
        self._enter("device_get_handle_by_index", index)
        return FakeHandle(index)

    def device_get_index(self, handle: object) -> int:
        assert isinstance(handle, FakeHandle), handle
        self._enter("device_get_index")
        return handle.index

    def device_get_name(self, handle: object) -> str:
        return self._gpu("device_get_name", handle).name

    def device_get_temperature(self, handle: object) -> int:
        return self._gpu("device_get_temperature", handle).temperature

    def device_get_temperature_threshold_slowdown(self, handle: object) -> int:
        return self._gpu("device_get_temperature_threshold_slowdown", handle).slowdown_temperature

    def device_get_current_clocks_event_reasons(self, handle: object) -> int:
        return self._gpu("device_get_current_clocks_event_reasons", handle).throttle_reasons

    def device_get_power_usage(self, handle: object) -> int:
        return self._gpu("device_get_power_usage", handle).power_mw

    def device_get_memory_info(self, handle: object) -> MemoryInfo:
        gpu = self._gpu("device_get_memory_info", handle)
        return MemoryInfo(used=gpu.memory_used, total=gpu.memory_total)

    def device_get_utilization_rates(self, handle: object) -> int:
        return self._gpu("device_get_utilization_rates", handle).utilization

    def device_get_total_ecc_errors_uncorrected_volatile(self, handle: object) -> int:
        call = "device_get_total_ecc_errors_uncorrected_volatile"
        return self._gpu(call, handle).ecc_uncorrected_volatile

    def device_get_remapped_rows(self, handle: object) -> RemappedRows:
        return self._gpu("device_get_remapped_rows", handle).remapped_rows

    def device_get_recovery_action(self, handle: object) -> int:
        return self._gpu("device_get_recovery_action", handle).recovery_action

    def device_get_pcie_link(self, handle: object) -> PcieLink:
        return self._gpu("device_get_pcie_link", handle).pcie_link

    def device_get_pcie_replay_counter(self, handle: object) -> int:
        return self._gpu("device_get_pcie_replay_counter", handle).pcie_replays

    def device_get_nvlink_states(self, handle: object) -> tuple[bool, ...]:
        links = self._gpu("device_get_nvlink_states", handle).nvlinks
        if not links:
            raise NvmlError(NvmlErrorCode.NOT_SUPPORTED, NVML_NAMES["device_get_nvlink_states"])
        return links

    def event_set_create(self) -> object:
        self._enter("event_set_create")
        with self._lock:
            event_set = FakeEventSet(len(self.event_sets))
            self.event_sets.append(event_set)
        return event_set

    def device_register_xid_events(self, handle: object, event_set: object) -> None:
        assert isinstance(handle, FakeHandle), handle
        self._enter("device_register_xid_events", handle.index)
        with self._lock:
            self._set(event_set).registered.add(handle.index)

    def event_set_wait(self, event_set: object, timeout_ms: int) -> XidEvent:
        self._enter("event_set_wait")
        with self._lock:
            pending = self._set(event_set).pending
            if pending:
                return pending.popleft()
        # The check only ever polls (timeout 0); a blocking wait is not simulated.
        raise NvmlError(NvmlErrorCode.TIMEOUT, NVML_NAMES["event_set_wait"])

    def event_set_free(self, event_set: object) -> None:
        self._enter("event_set_free")
        with self._lock:
            self._set(event_set).freed = True


@contextmanager
def use_nvml(backend: nvml.Nvml) -> Iterator[nvml.Nvml]:
    """Run ``gpu`` checks against ``backend`` inside the block; the NVML session the check
    keeps (init, event set) is closed on entry and on exit, so each block starts fresh."""
    from monai_slo.checks import gpu

    gpu.reset_state()
    with nvml.override(backend):
        try:
            yield backend
        finally:
            gpu.reset_state()
