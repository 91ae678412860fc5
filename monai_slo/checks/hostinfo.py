"""What this host has: memory, logical cores, CPU architecture, GPUs with CUDA, free disk
space, Kubernetes. The measurement boundary of the ``host`` check and ``monai-slo conformance``.

Every measurement is a field of :class:`HostProbe`; tests (and users' own tests) substitute
fixed values with :meth:`HostProbe.fixed` and nothing else needs faking. psutil keeps the
measurements the same on Linux, macOS and Windows.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

from monai_slo.checks import nvml
from monai_slo.checks.nvml import Nvml

GIB = 2**30
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """NVIDIA GPUs as NVML sees them; ``error`` says why NVML could not answer (no driver ...)."""

    count: int
    cuda_version: str | None = None
    """The CUDA version the driver supports, e.g. ``12.4``."""
    driver_version: str | None = None
    error: str | None = None

    @property
    def cuda(self) -> bool:
        return self.count > 0 and self.cuda_version is not None

    def describe(self) -> str:
        if self.count == 0:
            return f"no GPU ({self.error})" if self.error else "no GPU"
        text = f"{self.count} GPU{'s' if self.count != 1 else ''}"
        text += f", CUDA {self.cuda_version}" if self.cuda_version else ", no CUDA driver"
        if self.driver_version:
            text += f" (driver {self.driver_version})"
        return text


def _memory_bytes() -> int:
    return int(psutil.virtual_memory().total)


def _logical_cores() -> int:
    return int(psutil.cpu_count(logical=True) or os.cpu_count() or 0)


def _architecture() -> str:
    # x86_64 on Linux and macOS, AMD64 on Windows, arm64/aarch64 on ARM.
    return platform.machine()


def _disk_free_bytes(path: Path) -> int:
    # Space available to unprivileged users (statvfs f_bavail), which is what a service has.
    return int(psutil.disk_usage(str(path)).free)


def _kubernetes() -> str | None:
    """How we know we run inside a Kubernetes cluster, or None."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "in a pod (KUBERNETES_SERVICE_HOST is set)"
    if SERVICE_ACCOUNT_DIR.is_dir():
        return f"in a pod ({SERVICE_ACCOUNT_DIR} exists)"
    return None


def _cuda_version(raw: int) -> str:
    # NVML encodes 12.4 as 12040.
    return f"{raw // 1000}.{raw % 1000 // 10}"


def gpu_info(nvml: Nvml) -> GpuInfo:
    """Count GPUs and read the driver's CUDA version through the NVML boundary.

    Any failure reads as 0 GPUs with the reason: no driver, no library and a broken driver
    all mean no usable GPU here. nvmlInit/nvmlShutdown are reference-counted, so this does
    not disturb the ``gpu`` check's own use of NVML in the same process.
    """
    try:
        nvml.init()
    except Exception as exc:  # NvmlError(LIBRARY_NOT_FOUND, DRIVER_NOT_LOADED ...) and worse
        return GpuInfo(0, error=f"NVML unavailable: {exc}")
    try:
        count = nvml.device_get_count()
        try:
            cuda: str | None = _cuda_version(nvml.system_get_cuda_driver_version())
        except Exception:  # a driver without the call: CUDA support unknown, so not shown
            cuda = None
        try:
            driver: str | None = nvml.system_get_driver_version()
        except Exception:  # informational only
            driver = None
        return GpuInfo(count, cuda, driver)
    except Exception as exc:
        return GpuInfo(0, error=f"NVML failed: {exc}")
    finally:
        with contextlib.suppress(Exception):  # nothing more to release if shutdown fails
            nvml.shutdown()


def nvml_gpus() -> GpuInfo:
    """GPUs of this host through the NVML the ``gpu`` check uses too: the real one (pynvml,
    loaded on first use) unless :func:`monai_slo.checks.nvml.override` put a fake in its place."""
    return gpu_info(nvml.current())


@dataclass(frozen=True, slots=True)
class HostProbe:
    """The measurements, each a plain function; the defaults measure this host."""

    memory_bytes: Callable[[], int] = _memory_bytes
    """Total memory the operating system reports."""
    logical_cores: Callable[[], int] = _logical_cores
    architecture: Callable[[], str] = _architecture
    gpus: Callable[[], GpuInfo] = nvml_gpus
    disk_free_bytes: Callable[[Path], int] = _disk_free_bytes
    """Bytes available on the file system holding the path; OSError when it is missing."""
    kubernetes: Callable[[], str | None] = _kubernetes
    """Evidence of running inside a Kubernetes cluster, or None."""

    @classmethod
    def fixed(
        cls,
        *,
        memory_bytes: int = 16 * GIB,
        logical_cores: int = 16,
        architecture: str = "x86_64",
        gpus: GpuInfo | None = None,
        disk_free: Mapping[str, int] | None = None,
        kubernetes: str | None = None,
    ) -> HostProbe:
        """A probe answering fixed values: a conformant production host unless told otherwise.

        ``disk_free`` maps paths to free bytes; other paths raise FileNotFoundError.
        """
        free = dict(disk_free or {})
        gpu_info = GpuInfo(1, "12.4", "550.54.15") if gpus is None else gpus

        def disk_free_bytes(path: Path) -> int:
            try:
                return free[str(path)]
            except KeyError:
                raise FileNotFoundError(2, "No such file or directory", str(path)) from None

        return cls(
            memory_bytes=lambda: memory_bytes,
            logical_cores=lambda: logical_cores,
            architecture=lambda: architecture,
            gpus=lambda: gpu_info,
            disk_free_bytes=disk_free_bytes,
            kubernetes=lambda: kubernetes,
        )

    def cached(self) -> HostProbe:
        """The same probe measuring each thing once (``monai-slo conformance`` asks repeatedly)."""
        return HostProbe(
            memory_bytes=functools.cache(self.memory_bytes),
            logical_cores=functools.cache(self.logical_cores),
            architecture=functools.cache(self.architecture),
            gpus=functools.cache(self.gpus),
            disk_free_bytes=functools.cache(self.disk_free_bytes),
            kubernetes=functools.cache(self.kubernetes),
        )


class MeasurementTimeout(Exception):
    """A measurement did not finish in time (or an earlier one with the same key still hangs)."""


_IN_FLIGHT: dict[str, threading.Thread] = {}
_IN_FLIGHT_LOCK = threading.Lock()


def bounded(key: str, measure: Callable[[], T], timeout: float) -> T:
    """``measure()`` in a daemon thread, waiting at most ``timeout`` seconds.

    statvfs on a hung NFS mount, or NVML on a GPU that fell off the bus, blocks in the kernel
    and cannot be cancelled. Such a call is left to finish on its own; while it hangs, later
    calls with the same ``key`` fail at once instead of piling up one stuck thread per run.
    """
    box: list[T | BaseException] = []

    def target() -> None:
        try:
            box.append(measure())
        except BaseException as exc:
            box.append(exc)

    with _IN_FLIGHT_LOCK:
        earlier = _IN_FLIGHT.get(key)
        if earlier is not None and earlier.is_alive():
            raise MeasurementTimeout(f"an earlier measurement of {key} has not returned yet")
        thread = threading.Thread(target=target, name=f"measure-{key}", daemon=True)
        _IN_FLIGHT[key] = thread
        thread.start()
    thread.join(max(0.0, timeout))
    if not box:
        raise MeasurementTimeout(f"measuring {key} did not finish within {timeout:.3g}s")
    with _IN_FLIGHT_LOCK:
        if _IN_FLIGHT.get(key) is thread:
            del _IN_FLIGHT[key]
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result
