"""The NVML boundary the ``gpu`` check reads through: a Protocol and the real ``pynvml`` one.

The Protocol lists exactly the NVML calls the check makes, in NVML's own terms (handles,
event sets, error codes), so the check's rules can be tested against
:class:`monai_slo.testing.nvml.FakeNvml` and run unchanged against a real driver. Every
failure is an :class:`NvmlError` carrying NVML's numeric return code; ``pynvml``'s own
exception classes never cross the boundary.

``pynvml`` (from the ``nvidia-ml-py`` distribution) is imported on first use, so a machine
without it, without ``libnvidia-ml`` or without a driver imports this module fine and sees
``NvmlError(LIBRARY_NOT_FOUND)`` / ``DRIVER_NOT_LOADED`` from :meth:`Nvml.init`.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from types import ModuleType
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class NvmlErrorCode(IntEnum):
    """NVML's return codes (``nvmlReturn_t``), same numbers as ``NVML_ERROR_*``."""

    UNINITIALIZED = 1
    INVALID_ARGUMENT = 2
    NOT_SUPPORTED = 3
    NO_PERMISSION = 4
    ALREADY_INITIALIZED = 5
    NOT_FOUND = 6
    INSUFFICIENT_SIZE = 7
    INSUFFICIENT_POWER = 8
    DRIVER_NOT_LOADED = 9
    TIMEOUT = 10
    IRQ_ISSUE = 11
    LIBRARY_NOT_FOUND = 12
    FUNCTION_NOT_FOUND = 13
    CORRUPTED_INFOROM = 14
    GPU_IS_LOST = 15
    RESET_REQUIRED = 16
    OPERATING_SYSTEM = 17
    LIB_RM_VERSION_MISMATCH = 18
    IN_USE = 19
    MEMORY = 20
    NO_DATA = 21
    VGPU_ECC_NOT_SUPPORTED = 22
    INSUFFICIENT_RESOURCES = 23
    FREQ_NOT_SUPPORTED = 24
    ARGUMENT_VERSION_MISMATCH = 25
    DEPRECATED = 26
    NOT_READY = 27
    GPU_NOT_FOUND = 28
    INVALID_STATE = 29
    RESET_TYPE_NOT_SUPPORTED = 30
    UNKNOWN = 999


class NvmlError(Exception):
    """An NVML call returned something other than success.

    ``code`` is the raw ``nvmlReturn_t`` (an int, so codes newer than this module still
    arrive); ``call`` names the NVML function for the detail shown to people.
    """

    def __init__(self, code: int, call: str = "", message: str = "") -> None:
        self.code = int(code)
        self.call = call
        self.message = message
        super().__init__(self.describe())

    @property
    def name(self) -> str:
        try:
            return f"NVML_ERROR_{NvmlErrorCode(self.code).name}"
        except ValueError:
            return f"NVML error {self.code}"

    def describe(self) -> str:
        where = f"{self.call}: " if self.call else ""
        extra = f" ({self.message})" if self.message else ""
        return f"{where}{self.name}{extra}"


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    used: int  # bytes
    total: int  # bytes


@dataclass(frozen=True, slots=True)
class RemappedRows:
    """``nvmlDeviceGetRemappedRows``: rows remapped per cause, and the two health flags."""

    correctable: int
    uncorrectable: int
    pending: bool
    failure: bool


@dataclass(frozen=True, slots=True)
class PcieLink:
    """The PCIe link now and the most this GPU *in this system* can train to."""

    generation: int
    max_generation: int
    width: int
    max_width: int


@dataclass(frozen=True, slots=True)
class XidEvent:
    """One ``nvmlEventTypeXidCriticalError`` event: the device handle and its XID number."""

    handle: object
    xid: int


# nvmlClocksEventReason* bits (same values as the older nvmlClocksThrottleReason* names).
THROTTLE_SW_POWER_CAP = 0x04
THROTTLE_HW_SLOWDOWN = 0x08
THROTTLE_SW_THERMAL = 0x20
THROTTLE_HW_THERMAL = 0x40
THROTTLE_HW_POWER_BRAKE = 0x80

# nvmlGpuRecoveryAction_t
RECOVERY_ACTIONS = {
    0: "none",
    1: "gpu_reset",
    2: "node_reboot",
    3: "drain_p2p",
    4: "drain_and_reset",
    5: "recover_imex_domain",
    6: "bus_reset",
    7: "system_reboot",
}
# NVML_NVLINK_MAX_LINKS (18 from Hopper on), for bindings too old to name it.
_NVLINK_MAX_LINKS = 18
# NVML_FI_DEV_GET_GPU_RECOVERY_ACTION, for bindings too old to name it.
_FI_DEV_GET_GPU_RECOVERY_ACTION = 230


class Nvml(Protocol):
    """The NVML calls the ``gpu`` check makes. Every method raises :class:`NvmlError`.

    Handles and event sets are opaque objects handed back to the same implementation.
    """

    def init(self) -> None:
        """``nvmlInit_v2``: reference-counted; pair each success with :meth:`shutdown`."""

    def shutdown(self) -> None:
        """``nvmlShutdown``."""

    def system_get_driver_version(self) -> str:
        """``nvmlSystemGetDriverVersion``, e.g. ``"550.54.15"``."""
        ...

    def system_get_cuda_driver_version(self) -> int:
        """``nvmlSystemGetCudaDriverVersion_v2``: 1000 * major + 10 * minor (12040 = 12.4)."""
        ...

    def device_get_count(self) -> int:
        """``nvmlDeviceGetCount_v2``."""
        ...

    def device_get_handle_by_index(self, index: int) -> object:
        """``nvmlDeviceGetHandleByIndex_v2``; GPU_IS_LOST / RESET_REQUIRED for a dead GPU."""
        ...

    def device_get_index(self, handle: object) -> int:
        """``nvmlDeviceGetIndex``: maps an event's handle back to its index."""
        ...

    def device_get_name(self, handle: object) -> str:
        """``nvmlDeviceGetName``."""
        ...

    def device_get_temperature(self, handle: object) -> int:
        """``nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU)`` in °C."""
        ...

    def device_get_temperature_threshold_slowdown(self, handle: object) -> int:
        """``nvmlDeviceGetTemperatureThreshold(NVML_TEMPERATURE_THRESHOLD_SLOWDOWN)`` in °C."""
        ...

    def device_get_current_clocks_event_reasons(self, handle: object) -> int:
        """``nvmlDeviceGetCurrentClocksEventReasons`` (formerly ...ThrottleReasons): a bitmask."""
        ...

    def device_get_power_usage(self, handle: object) -> int:
        """``nvmlDeviceGetPowerUsage`` in milliwatts."""
        ...

    def device_get_memory_info(self, handle: object) -> MemoryInfo:
        """``nvmlDeviceGetMemoryInfo``."""
        ...

    def device_get_utilization_rates(self, handle: object) -> int:
        """``nvmlDeviceGetUtilizationRates().gpu``: percent of the last sample period."""
        ...

    def device_get_total_ecc_errors_uncorrected_volatile(self, handle: object) -> int:
        """``nvmlDeviceGetTotalEccErrors(UNCORRECTED, VOLATILE)``: since the last driver load."""
        ...

    def device_get_remapped_rows(self, handle: object) -> RemappedRows:
        """``nvmlDeviceGetRemappedRows`` (Ampere and later)."""
        ...

    def device_get_recovery_action(self, handle: object) -> int:
        """``NVML_FI_DEV_GET_GPU_RECOVERY_ACTION`` via ``nvmlDeviceGetFieldValues``;
        NOT_SUPPORTED when the binding or the driver does not know the field."""
        ...

    def device_get_pcie_link(self, handle: object) -> PcieLink:
        """``nvmlDeviceGetCurrPcieLinkGeneration`` / ``...Width`` and
        ``nvmlDeviceGetMaxPcieLinkGeneration`` / ``...Width`` (device and system maximum)."""
        ...

    def device_get_pcie_replay_counter(self, handle: object) -> int:
        """``nvmlDeviceGetPcieReplayCounter``: PCIe replays since the driver loaded."""
        ...

    def device_get_nvlink_states(self, handle: object) -> tuple[bool, ...]:
        """``nvmlDeviceGetNvLinkState`` for every link this GPU has: True = active.
        NOT_SUPPORTED when the GPU has no NVLink at all."""
        ...

    def event_set_create(self) -> object:
        """``nvmlEventSetCreate``."""
        ...

    def device_register_xid_events(self, handle: object, event_set: object) -> None:
        """``nvmlDeviceRegisterEvents(handle, nvmlEventTypeXidCriticalError, set)``."""

    def event_set_wait(self, event_set: object, timeout_ms: int) -> XidEvent:
        """``nvmlEventSetWait_v2``; raises TIMEOUT when no event arrived in ``timeout_ms``."""
        ...

    def event_set_free(self, event_set: object) -> None:
        """``nvmlEventSetFree``."""


def _load_pynvml() -> ModuleType:
    try:
        with warnings.catch_warnings():
            # The deprecated `pynvml` shim package warns on import; nvidia-ml-py does not.
            warnings.simplefilter("ignore", FutureWarning)
            module = importlib.import_module("pynvml")
    except ImportError as exc:
        raise NvmlError(
            NvmlErrorCode.LIBRARY_NOT_FOUND, "import pynvml", f"nvidia-ml-py not installed: {exc}"
        ) from None
    return module


class PynvmlNvml:
    """The real NVML, through ``pynvml`` (nvidia-ml-py), imported on first use."""

    def __init__(self) -> None:
        self._module: ModuleType | None = None

    @property
    def pynvml(self) -> ModuleType:
        if self._module is None:
            self._module = _load_pynvml()
        return self._module

    def _call(self, call: str, fn: Callable[..., T], *args: Any) -> T:
        module = self.pynvml
        try:
            return fn(*args)
        except module.NVMLError as exc:
            raise NvmlError(exc.value, call) from None

    def init(self) -> None:
        module = self.pynvml
        self._call("nvmlInit", module.nvmlInit)

    def shutdown(self) -> None:
        self._call("nvmlShutdown", self.pynvml.nvmlShutdown)

    def system_get_driver_version(self) -> str:
        version = self._call("nvmlSystemGetDriverVersion", self.pynvml.nvmlSystemGetDriverVersion)
        return _text(version)

    def system_get_cuda_driver_version(self) -> int:
        module = self.pynvml
        return int(
            self._call("nvmlSystemGetCudaDriverVersion", module.nvmlSystemGetCudaDriverVersion_v2)
        )

    def device_get_count(self) -> int:
        return int(self._call("nvmlDeviceGetCount", self.pynvml.nvmlDeviceGetCount))

    def device_get_handle_by_index(self, index: int) -> object:
        module = self.pynvml
        handle: object = self._call(
            "nvmlDeviceGetHandleByIndex", module.nvmlDeviceGetHandleByIndex, index
        )
        return handle

    def device_get_index(self, handle: object) -> int:
        return int(self._call("nvmlDeviceGetIndex", self.pynvml.nvmlDeviceGetIndex, handle))

    def device_get_name(self, handle: object) -> str:
        return _text(self._call("nvmlDeviceGetName", self.pynvml.nvmlDeviceGetName, handle))

    def device_get_temperature(self, handle: object) -> int:
        module = self.pynvml
        return int(
            self._call(
                "nvmlDeviceGetTemperature",
                module.nvmlDeviceGetTemperature,
                handle,
                module.NVML_TEMPERATURE_GPU,
            )
        )

    def device_get_temperature_threshold_slowdown(self, handle: object) -> int:
        module = self.pynvml
        return int(
            self._call(
                "nvmlDeviceGetTemperatureThreshold",
                module.nvmlDeviceGetTemperatureThreshold,
                handle,
                module.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
            )
        )

    def device_get_current_clocks_event_reasons(self, handle: object) -> int:
        module = self.pynvml
        fn = getattr(module, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if fn is not None:
            try:
                return int(self._call("nvmlDeviceGetCurrentClocksEventReasons", fn, handle))
            except NvmlError as exc:
                # Drivers before 535 only export the older name.
                if exc.code != NvmlErrorCode.FUNCTION_NOT_FOUND:
                    raise
        return int(
            self._call(
                "nvmlDeviceGetCurrentClocksThrottleReasons",
                module.nvmlDeviceGetCurrentClocksThrottleReasons,
                handle,
            )
        )

    def device_get_power_usage(self, handle: object) -> int:
        return int(
            self._call("nvmlDeviceGetPowerUsage", self.pynvml.nvmlDeviceGetPowerUsage, handle)
        )

    def device_get_memory_info(self, handle: object) -> MemoryInfo:
        info = self._call("nvmlDeviceGetMemoryInfo", self.pynvml.nvmlDeviceGetMemoryInfo, handle)
        return MemoryInfo(used=int(info.used), total=int(info.total))

    def device_get_utilization_rates(self, handle: object) -> int:
        module = self.pynvml
        rates = self._call(
            "nvmlDeviceGetUtilizationRates", module.nvmlDeviceGetUtilizationRates, handle
        )
        return int(rates.gpu)

    def device_get_total_ecc_errors_uncorrected_volatile(self, handle: object) -> int:
        module = self.pynvml
        return int(
            self._call(
                "nvmlDeviceGetTotalEccErrors",
                module.nvmlDeviceGetTotalEccErrors,
                handle,
                module.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                module.NVML_VOLATILE_ECC,
            )
        )

    def device_get_remapped_rows(self, handle: object) -> RemappedRows:
        module = self.pynvml
        corr, unc, pending, failure = self._call(
            "nvmlDeviceGetRemappedRows", module.nvmlDeviceGetRemappedRows, handle
        )
        return RemappedRows(int(corr), int(unc), bool(pending), bool(failure))

    def device_get_recovery_action(self, handle: object) -> int:
        module = self.pynvml
        call = "nvmlDeviceGetFieldValues(NVML_FI_DEV_GET_GPU_RECOVERY_ACTION)"
        field_id = getattr(
            module, "NVML_FI_DEV_GET_GPU_RECOVERY_ACTION", _FI_DEV_GET_GPU_RECOVERY_ACTION
        )
        if not hasattr(module, "nvmlDeviceGetFieldValues"):
            raise NvmlError(NvmlErrorCode.NOT_SUPPORTED, call)
        (value,) = self._call(call, module.nvmlDeviceGetFieldValues, handle, [field_id])
        code = int(value.nvmlReturn)
        if code == NvmlErrorCode.INVALID_ARGUMENT:
            # A driver older than the field rejects its id: the driver does not support it.
            code = NvmlErrorCode.NOT_SUPPORTED
        if code != 0:
            raise NvmlError(code, call)
        return _field_value(module, value)

    def device_get_pcie_link(self, handle: object) -> PcieLink:
        module = self.pynvml
        calls = (
            "nvmlDeviceGetCurrPcieLinkGeneration",
            "nvmlDeviceGetMaxPcieLinkGeneration",
            "nvmlDeviceGetCurrPcieLinkWidth",
            "nvmlDeviceGetMaxPcieLinkWidth",
        )
        gen, max_gen, width, max_width = (
            int(self._call(call, getattr(module, call), handle)) for call in calls
        )
        return PcieLink(gen, max_gen, width, max_width)

    def device_get_pcie_replay_counter(self, handle: object) -> int:
        module = self.pynvml
        call = "nvmlDeviceGetPcieReplayCounter"
        return int(self._call(call, getattr(module, call), handle))

    def device_get_nvlink_states(self, handle: object) -> tuple[bool, ...]:
        module = self.pynvml
        links = int(getattr(module, "NVML_NVLINK_MAX_LINKS", _NVLINK_MAX_LINKS))
        states: list[bool] = []
        for link in range(links):
            try:
                state = self._call(
                    "nvmlDeviceGetNvLinkState", module.nvmlDeviceGetNvLinkState, handle, link
                )
            except NvmlError as exc:
                # A link this GPU does not have answers NOT_SUPPORTED or INVALID_ARGUMENT.
                if exc.code in (NvmlErrorCode.NOT_SUPPORTED, NvmlErrorCode.INVALID_ARGUMENT):
                    continue
                raise
            states.append(bool(state))
        if not states:
            raise NvmlError(NvmlErrorCode.NOT_SUPPORTED, "nvmlDeviceGetNvLinkState")
        return tuple(states)

    def event_set_create(self) -> object:
        event_set: object = self._call("nvmlEventSetCreate", self.pynvml.nvmlEventSetCreate)
        return event_set

    def device_register_xid_events(self, handle: object, event_set: object) -> None:
        module = self.pynvml
        self._call(
            "nvmlDeviceRegisterEvents",
            module.nvmlDeviceRegisterEvents,
            handle,
            module.nvmlEventTypeXidCriticalError,
            event_set,
        )

    def event_set_wait(self, event_set: object, timeout_ms: int) -> XidEvent:
        module = self.pynvml
        data = self._call("nvmlEventSetWait", module.nvmlEventSetWait_v2, event_set, timeout_ms)
        return XidEvent(handle=data.device, xid=int(data.eventData))

    def event_set_free(self, event_set: object) -> None:
        self._call("nvmlEventSetFree", self.pynvml.nvmlEventSetFree, event_set)


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _field_value(module: ModuleType, value: Any) -> int:
    """The integer in an ``nvmlFieldValue_t`` union, read by its declared type."""
    by_type = {
        getattr(module, "NVML_VALUE_TYPE_UNSIGNED_INT", 1): "uiVal",
        getattr(module, "NVML_VALUE_TYPE_UNSIGNED_LONG", 2): "ulVal",
        getattr(module, "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG", 3): "ullVal",
        getattr(module, "NVML_VALUE_TYPE_SIGNED_LONG_LONG", 4): "sllVal",
        getattr(module, "NVML_VALUE_TYPE_SIGNED_INT", 5): "siVal",
        getattr(module, "NVML_VALUE_TYPE_UNSIGNED_SHORT", 6): "usVal",
    }
    member = by_type.get(int(value.valueType), "uiVal")
    return int(getattr(value.value, member))


class _Current:
    """Which NVML :func:`current` returns; process-wide, as checks run on worker threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.real = PynvmlNvml()
        self.override: Nvml | None = None


_CURRENT = _Current()


def current() -> Nvml:
    """The NVML the ``gpu`` check uses now: the real one unless :func:`override` is active."""
    with _CURRENT.lock:
        return _CURRENT.override if _CURRENT.override is not None else _CURRENT.real


@contextmanager
def override(backend: Nvml) -> Iterator[Nvml]:
    """Make :func:`current` return ``backend`` until the block ends."""
    with _CURRENT.lock:
        previous, _CURRENT.override = _CURRENT.override, backend
    try:
        yield backend
    finally:
        with _CURRENT.lock:
            _CURRENT.override = previous
