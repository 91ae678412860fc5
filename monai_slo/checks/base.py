"""What every check kind shares: its config base, the deadline it honours, the result it returns.

A kind is one module exposing ``Config`` (a subclass of :class:`CheckConfig`) and
``run(config, deadline) -> CheckOutcome``. The framework measures duration, enforces the
overall deadline and turns exceptions into ``FailureReason.ERROR``; a kind only says what
it saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monai_slo.durations import Duration

# Names become Prometheus label values and SQLite keys: keep them boring.
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class FailureReason(StrEnum):
    """The bounded set of reasons a check fails; a label value, so never free text."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    DNS = "dns"
    CONNECTION = "connection"
    TLS = "tls"
    REJECTED_CALLING_AE = "rejected_calling_ae"
    REJECTED_CALLED_AE = "rejected_called_ae"
    REJECTED_TRANSIENT = "rejected_transient"
    REJECTED = "rejected"
    ABORTED = "aborted"
    DIMSE_STATUS = "dimse_status"
    CONTEXT_REJECTED = "context_rejected"
    PROTOCOL = "protocol"
    HTTP_STATUS = "http_status"
    BODY_MISMATCH = "body_mismatch"
    SECRET_UNAVAILABLE = "secret_unavailable"  # noqa: S105 -- a reason name, not a secret
    NONCONFORMANT = "nonconformant"
    GPU_UNAVAILABLE = "gpu_unavailable"
    GPU_LOST = "gpu_lost"
    GPU_COUNT = "gpu_count"
    GPU_XID = "gpu_xid"
    GPU_ECC = "gpu_ecc"
    GPU_ROW_REMAP = "gpu_row_remap"
    GPU_RECOVERY = "gpu_recovery"
    GPU_NVML_ERROR = "gpu_nvml_error"
    GPU_THERMAL = "gpu_thermal"
    GPU_THROTTLE = "gpu_throttle"
    GPU_NVLINK = "gpu_nvlink"
    GPU_PCIE = "gpu_pcie"
    STORE_FAILED = "store_failed"  # study_flow: the canary's C-STORE failed
    NOT_ARRIVED = "not_arrived"  # study_flow: a stage never saw the canary in time
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Series:
    """One extra sample with labels of its own beside the check's (e.g. ``gpu="0"``).

    Exposed as ``monai_slo_<name>{<check labels>, <labels>}``. Label values must be bounded
    (an index, a version), never free text or a secret.
    """

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """What a kind reports: success, a bounded reason when not, human detail, extra gauges.

    ``detail`` is shown to people (status, logs) and must never contain a secret.
    ``values`` maps a metric suffix (``tls_cert_expiry_timestamp_seconds``) to a number;
    the collector exposes it as ``monai_slo_<suffix>`` with the check's labels.
    ``series`` carries samples that need labels of their own (one per GPU, say).
    """

    success: bool
    reason: FailureReason | None = None
    detail: str = ""
    values: Mapping[str, float] = field(default_factory=dict)
    series: tuple[Series, ...] = ()

    @classmethod
    def ok(
        cls,
        detail: str = "",
        values: Mapping[str, float] | None = None,
        series: tuple[Series, ...] = (),
    ) -> CheckOutcome:
        return cls(True, None, detail, values or {}, series)

    @classmethod
    def fail(
        cls,
        reason: FailureReason,
        detail: str,
        values: Mapping[str, float] | None = None,
        series: tuple[Series, ...] = (),
    ) -> CheckOutcome:
        return cls(False, reason, detail, values or {}, series)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One run of one check as recorded: outcome plus when and how long (monotonic)."""

    success: bool
    duration: float
    reason: FailureReason | None
    detail: str
    timestamp: float
    values: Mapping[str, float] = field(default_factory=dict)
    series: tuple[Series, ...] = ()

    @classmethod
    def from_outcome(cls, outcome: CheckOutcome, duration: float, timestamp: float) -> CheckResult:
        return cls(
            outcome.success,
            duration,
            outcome.reason,
            outcome.detail,
            timestamp,
            outcome.values,
            outcome.series,
        )


@dataclass(frozen=True, slots=True)
class Pending:
    """A run whose verdict comes later, such as a canary study on its way through a router.

    A kind's ``run`` may return this instead of an outcome. The runner then frees the worker
    and calls ``poll`` again at ``at`` (monotonic seconds) on a worker, under a deadline of
    ``step_timeout``; ``poll`` answers with the verdict or another Pending. No thread is
    held between polls. The result keeps the run's start as its timestamp; a run still
    pending past its check's timeout is recorded as a timeout.
    """

    poll: Callable[[Deadline], CheckOutcome | Pending]
    at: float
    step_timeout: float = 5.0


class Deadline:
    """A point on the monotonic clock a check must finish by; socket timeouts come from it."""

    __slots__ = ("_at",)

    def __init__(self, seconds: float, *, clock: float | None = None) -> None:
        self._at = (time.monotonic() if clock is None else clock) + seconds

    @property
    def at(self) -> float:
        return self._at

    def remaining(self) -> float:
        """Seconds left, never negative (0.0 once expired)."""
        return max(0.0, self._at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._at


class LatencyObjective(BaseModel):
    """``latency: {threshold: 500ms, objective: 99}``: at least ``objective`` percent of the
    check's runs should succeed within ``threshold`` (a failed run is never fast)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: Duration = Field(gt=0)
    objective: float = Field(gt=0, lt=100, description="percent of runs")


class CheckConfig(BaseModel):
    """Keys every check has. Kinds subclass it and add their own with ``kind: Literal[...]``.

    Values from the config's ``defaults`` block are merged in before validation for every
    key the kind declares, so ``calling_aet`` in defaults reaches only DICOM kinds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    kind: str
    interval: Duration = 30.0
    timeout: Duration = 5.0
    stale_after: Duration | None = Field(
        default=None,
        description="How long a result stands before the time counts as no data "
        "(default: 2 x interval + timeout).",
    )
    latency: LatencyObjective | None = None

    @model_validator(mode="after")
    def _latency_threshold_within_timeout(self) -> Self:
        if self.latency is not None and self.latency.threshold > self.timeout:
            raise ValueError(
                f"latency threshold ({self.latency.threshold:g}s) must not exceed the timeout "
                f"({self.timeout:g}s): a run that slow has already failed"
            )
        return self

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> Self:
        if self.timeout >= self.interval:
            raise ValueError(
                f"timeout ({self.timeout:g}s) must be shorter than interval ({self.interval:g}s)"
            )
        return self

    @property
    def staleness(self) -> float:
        """Seconds one result stands for at most."""
        if self.stale_after is not None:
            return self.stale_after
        return 2 * self.interval + self.timeout
