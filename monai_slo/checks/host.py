"""The ``host`` kind: does this host meet the hardware requirements the spec sets for its tier?

Requirements come from the MONAI Deploy Operating Environments spec (section Environment
Details) and each carries the sentence it comes from (``monai-slo conformance`` prints them):

* memory >= 8 GB and >= 8 logical cores, every tier (the Desktop/Laptop and Workstation
  minimums; the server tiers are "larger" than the Workstation);
* an x86-family CPU, every tier (the spec's only architecture sentence; ``require_x86: false``
  reports it without failing, for ARM platforms such as NVIDIA IGX);
* at least one GPU with CUDA, from workstation up;
* Kubernetes, staging and production: reported, failing only with ``require_kubernetes: true``
  (the spec asks that *applications* be managed by Kubernetes, and monai-slo itself may well
  run outside the cluster, e.g. as a systemd service on a monitoring host);
* configured extras: ``min_memory`` and ``min_cores`` (raise the minimum, never lower it) and
  ``disk_free`` per path.

The check fails with reason ``nonconformant`` when any enforced requirement fails, and
exposes ``conformance_ok{requirement, path}`` (1/0) per enforced requirement,
``host_memory_bytes``, ``host_logical_cores``, ``host_gpus`` (tiers needing a GPU),
``host_in_kubernetes`` and ``host_disk_free_bytes{path}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, FailureReason, Series
from monai_slo.checks.hostinfo import GIB, GpuInfo, HostProbe, MeasurementTimeout, bounded
from monai_slo.tiers import TierName

GB = 10**9
# "8GB RAM" read as 8 x 10^9 bytes of memory the OS reports: a machine with 8 GiB installed
# shows about 7.6-7.8 GiB (8.2e9 bytes) after firmware and kernel reservations and passes.
SPEC_MIN_MEMORY = 8 * GB
SPEC_MIN_CORES = 8
X86_MACHINES = frozenset({"x86_64", "amd64", "x64", "i386", "i486", "i586", "i686", "x86"})

# Words quoted verbatim from the spec (whitespace folded); a test holds every quote to the file.
MINIMUM = {
    TierName.DESKTOP: "System with minimum of 8GB RAM, 8 logical core",
    TierName.WORKSTATION: "Workstation with minimum of 8GB RAM, 8 logical core",
}
ONE_GPU = "1 GPU in the minimum environment. CUDA support."
CUDA_SUPPORT = "CUDA support."
DESKTOP_X86 = "CPU SHOULD be from the x86 family."
LARGER_THAN = {
    TierName.DEVELOPMENT: "Larger HW configurations (GPU, CPU and memory) compared to the "
    "Workstation environment.",
    TierName.STAGING: "Larger HW configurations (GPU, CPU and memory) compared to the "
    "Integration environment.",
    TierName.PRODUCTION: "Larger HW configurations (GPU, CPU and memory) compared to the "
    "Staging environment.",
}
KUBERNETES_MANAGED = (
    "Application versions and deployment in this environment SHALL be managed by Kubernetes."
)
SECTION = {
    TierName.DESKTOP: "Desktop/Laptop",
    TierName.WORKSTATION: "Workstation",
    TierName.DEVELOPMENT: "Development/Integration Server",
    TierName.STAGING: "Staging Server",
    TierName.PRODUCTION: "Production Server",
}
GPU_TIERS = frozenset(
    {TierName.WORKSTATION, TierName.DEVELOPMENT, TierName.STAGING, TierName.PRODUCTION}
)
KUBERNETES_TIERS = frozenset({TierName.STAGING, TierName.PRODUCTION})
# One stuck statvfs or NVML call per key at most (see hostinfo.bounded).
_GPU_KEY = "gpus"


def parse_size(value: object) -> int:
    """Bytes from ``10GB`` (decimal), ``512MiB`` (binary) or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as 10GB or 512MiB; got {value!r}")
    try:
        size = int(TypeAdapter(ByteSize).validate_python(value))
    except ValidationError:
        raise ValueError(f"expected a size such as 10GB or 512MiB; got {value!r}") from None
    if size <= 0:
        raise ValueError(f"expected a positive size; got {value!r}")
    return size


Size = Annotated[int, BeforeValidator(parse_size)]


def format_bytes(size: float) -> str:
    """Both units, as administrators compare either: ``16.0 GiB (17.2 GB)``."""
    return f"{size / GIB:.1f} GiB ({size / GB:.1f} GB)"


class DiskFree(BaseModel):
    """At least ``min`` bytes free on the file system holding ``path``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The path becomes a label value: bounded by the config, kept short.
    path: Annotated[str, Field(min_length=1, max_length=200)]
    min: Size

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not PurePath(value).is_absolute():
            raise ValueError(f"expected an absolute path; got {value!r}")
        return value


class Config(CheckConfig):
    """This host against its tier's hardware requirements, plus configured extras."""

    kind: Literal["host"]
    tier: TierName | None = Field(
        default=None,
        description="Tier whose requirements apply; default: the environment's tier.",
    )
    min_memory: Size | None = Field(
        default=None, description="Raise the memory minimum (e.g. 64GB); never below 8GB."
    )
    min_cores: int | None = Field(default=None, description="Raise the logical-core minimum.")
    require_x86: bool = True
    require_kubernetes: bool = False
    disk_free: list[DiskFree] = Field(default_factory=list, max_length=32)

    @field_validator("min_memory")
    @classmethod
    def _memory_not_below_spec(cls, value: int | None) -> int | None:
        if value is not None and value < SPEC_MIN_MEMORY:
            raise ValueError(
                f"expected at least the spec's 8GB ({SPEC_MIN_MEMORY} bytes): it can only "
                f"raise the minimum; got {value}"
            )
        return value

    @field_validator("min_cores")
    @classmethod
    def _cores_not_below_spec(cls, value: int | None) -> int | None:
        if value is not None and value < SPEC_MIN_CORES:
            raise ValueError(
                f"expected at least the spec's {SPEC_MIN_CORES} logical cores: it can only "
                f"raise the minimum; got {value}"
            )
        return value

    @model_validator(mode="after")
    def _unique_disk_paths(self) -> Self:
        paths = [disk.path for disk in self.disk_free]
        if len(set(paths)) != len(paths):
            raise ValueError("disk_free lists a path twice; give each path once")
        return self


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement, what it comes from, and how this host measured up."""

    name: str
    """memory, cores, architecture, gpu, kubernetes or disk_free: a bounded label value."""
    source: str
    """The spec sentence (with its section) or the config key it comes from."""
    expected: str
    measured: str
    ok: bool
    enforced: bool = True
    """False: reported only (e.g. Kubernetes without require_kubernetes)."""
    path: str = ""
    """The disk_free path; empty for the others."""
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class Assessment:
    """Every requirement for one tier, and the numbers measured on the way."""

    tier: TierName
    requirements: tuple[Requirement, ...]
    values: dict[str, float]
    series: tuple[Series, ...]

    @property
    def failed(self) -> tuple[Requirement, ...]:
        return tuple(r for r in self.requirements if r.enforced and not r.ok)

    @property
    def conformant(self) -> bool:
        return not self.failed


def _quote(tier: TierName, *sentences: str) -> str:
    return f"{SECTION[tier]}: " + " ".join(f'"{sentence}"' for sentence in sentences)


# Server tiers are "larger" than the tier below, so the Workstation's minimum applies to them.
def _minimum_source(tier: TierName) -> str:
    if tier in MINIMUM:
        return _quote(tier, MINIMUM[tier])
    workstation = _quote(TierName.WORKSTATION, MINIMUM[TierName.WORKSTATION])
    return f"{_quote(tier, LARGER_THAN[tier])} >= {workstation}"


def _gpu_source(tier: TierName) -> str:
    if tier is TierName.WORKSTATION:
        return _quote(tier, ONE_GPU)
    workstation = _quote(TierName.WORKSTATION, ONE_GPU)
    return f"{_quote(tier, CUDA_SUPPORT, LARGER_THAN[tier])} >= {workstation}"


def assess(
    config: Config, tier: TierName, deadline: Deadline, probe: HostProbe | None = None
) -> Assessment:
    """Measure this host (through ``probe``) and judge every requirement of ``tier``."""
    probe = probe or HostProbe()
    requirements: list[Requirement] = []
    series: list[Series] = []
    memory = probe.memory_bytes()
    cores = probe.logical_cores()
    machine = probe.architecture()
    values: dict[str, float] = {"host_memory_bytes": memory, "host_logical_cores": cores}

    min_memory = max(SPEC_MIN_MEMORY, config.min_memory or 0)
    requirements.append(
        Requirement(
            "memory",
            _minimum_source(tier)
            + (
                f"; raised by min_memory ({config.min_memory / GB:g} GB)"
                if config.min_memory
                else ""
            ),
            f">= {min_memory / GB:g} GB",
            format_bytes(memory),
            memory >= min_memory,
        )
    )
    min_cores = max(SPEC_MIN_CORES, config.min_cores or 0)
    requirements.append(
        Requirement(
            "cores",
            _minimum_source(tier)
            + (f"; raised by min_cores ({config.min_cores})" if config.min_cores else ""),
            f">= {min_cores} logical cores",
            f"{cores} logical cores",
            cores >= min_cores,
        )
    )
    requirements.append(
        Requirement(
            "architecture",
            _quote(TierName.DESKTOP, DESKTOP_X86),
            "x86 family (x86_64, AMD64)",
            machine or "unknown",
            machine.lower() in X86_MACHINES,
            enforced=config.require_x86,
        )
    )
    if tier in GPU_TIERS:
        requirements.append(_gpu_requirement(tier, probe, deadline, values))
    kubernetes = probe.kubernetes()
    values["host_in_kubernetes"] = 1.0 if kubernetes else 0.0
    if tier in KUBERNETES_TIERS or config.require_kubernetes:
        requirements.append(
            Requirement(
                "kubernetes",
                _quote(tier, KUBERNETES_MANAGED)
                if tier in KUBERNETES_TIERS
                else "configured: require_kubernetes",
                "running inside a Kubernetes cluster",
                kubernetes or "not inside a Kubernetes cluster",
                kubernetes is not None,
                enforced=config.require_kubernetes,
            )
        )
    for index, disk in enumerate(config.disk_free):
        requirement, free = _disk_requirement(index, disk, probe, deadline)
        requirements.append(requirement)
        if free is not None:
            series.append(Series("host_disk_free_bytes", free, {"path": disk.path}))
    series.extend(
        Series("conformance_ok", 1.0 if r.ok else 0.0, {"requirement": r.name, "path": r.path})
        for r in requirements
        if r.enforced and not r.timed_out
    )
    return Assessment(tier, tuple(requirements), values, tuple(series))


def _gpu_requirement(
    tier: TierName, probe: HostProbe, deadline: Deadline, values: dict[str, float]
) -> Requirement:
    source = _gpu_source(tier)
    expected = ">= 1 GPU with CUDA"
    try:
        gpus: GpuInfo = bounded(_GPU_KEY, probe.gpus, deadline.remaining())
    except MeasurementTimeout as exc:
        return Requirement("gpu", source, expected, str(exc), ok=False, timed_out=True)
    values["host_gpus"] = gpus.count
    return Requirement("gpu", source, expected, gpus.describe(), gpus.cuda)


def _disk_requirement(
    index: int, disk: DiskFree, probe: HostProbe, deadline: Deadline
) -> tuple[Requirement, int | None]:
    source = f"configured: disk_free[{index}]"
    expected = f">= {format_bytes(disk.min)} free"
    try:
        free = bounded(
            f"disk:{disk.path}",
            lambda: probe.disk_free_bytes(Path(disk.path)),
            deadline.remaining(),
        )
    except MeasurementTimeout as exc:
        return Requirement(
            "disk_free", source, expected, str(exc), ok=False, path=disk.path, timed_out=True
        ), None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return Requirement(
            "disk_free", source, expected, f"cannot measure: {reason}", ok=False, path=disk.path
        ), None
    return Requirement(
        "disk_free",
        source,
        expected,
        f"{format_bytes(free)} free",
        free >= disk.min,
        path=disk.path,
    ), free


def _bounded(detail: str, limit: int = 300) -> str:
    # Several failed requirements with long NVML errors add up; `monai-slo conformance`
    # shows everything.
    return detail if len(detail) <= limit else detail[: limit - 1] + "…"


def run(config: Config, deadline: Deadline, probe: HostProbe | None = None) -> CheckOutcome:
    """Judge this host against its tier; ``probe`` replaces the real measurements in tests."""
    if config.tier is None:
        return CheckOutcome.fail(
            FailureReason.ERROR, "no tier to check against: set tier on the host check"
        )
    result = assess(config, config.tier, deadline, probe)
    summary = "; ".join(
        f"{r.name}{f' {r.path}' if r.path else ''}: {r.measured} (expected {r.expected})"
        for r in result.failed
    )
    if result.failed:
        # A definite finding outranks a measurement that did not finish.
        definite = any(not r.timed_out for r in result.failed)
        return CheckOutcome.fail(
            FailureReason.NONCONFORMANT if definite else FailureReason.TIMEOUT,
            _bounded(f"not conformant to {config.tier}: {summary}"),
            result.values,
            result.series,
        )
    measured = ", ".join(
        r.measured
        for r in result.requirements
        if r.name in {"memory", "cores", "architecture", "gpu"}
    )
    return CheckOutcome.ok(
        _bounded(f"conformant to {config.tier}: {measured}"), result.values, result.series
    )
