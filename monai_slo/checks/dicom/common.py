"""What the DICOM kinds share: their config keys and the first steps of a run.

``dicom_echo``, ``dicom_find`` and ``dicom_store_context`` (and any later DICOM kind) take
:class:`DicomConfig`; the pynetdicom association path
(:mod:`monai_slo.checks.dicom.association`) and the lean C-ECHO path
(:mod:`monai_slo.checks.dicom.lean`) both start a run with :func:`lookup` and bound each
wait with :func:`bounded`, and both word failures from
:mod:`monai_slo.checks.dicom.outcomes`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from monai_slo.checks.base import CheckConfig, Deadline, FailureReason
from monai_slo.checks.net import (
    DirectTlsOptions,
    Host,
    Port,
    ProbeFailure,
    preferred_address,
    resolve,
)
from monai_slo.durations import Duration

# pynetdicom logs every PDU at INFO/DEBUG, and every failed connect or TLS error at ERROR
# (with a traceback); the check's outcome already says what went wrong, and a check every
# 30 s must not flood the daemon's log with it.
logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
# pydicom warns (with warnings and its log) about what it cannot make of a peer's garbled
# data set; the check's outcome already says the peer's answer was invalid.
warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
logging.getLogger("pydicom").setLevel(logging.ERROR)

# The most one association may read from a peer, whatever it announces. An A-ASSOCIATE-AC
# for the contexts we propose is under 1 KiB and a C-ECHO response under 200 bytes, so
# 64 KiB leaves room for any legitimate peer's extra items yet keeps a flood to nothing.
DEFAULT_READ_LIMIT = 64 * 1024


def _check_ae_title(value: str) -> str:
    # Leading and trailing spaces are not significant in an AE title (PS3.5 6.2).
    title = value.strip(" ")
    if not title:
        raise ValueError("AE title must not be empty or only spaces")
    if len(title) > 16:
        raise ValueError(f"AE title {title!r} is longer than 16 characters")
    if not title.isascii() or not title.isprintable() or "\\" in title:
        raise ValueError(
            f"AE title {title!r} may only contain printable ASCII characters, no backslash"
        )
    return title


AETitle = Annotated[str, AfterValidator(_check_ae_title)]

_PHASE_TIMEOUTS = ("connect_timeout", "acse_timeout", "dimse_timeout")


class DicomConfig(DirectTlsOptions, CheckConfig):
    """Keys every DICOM kind has: where, who, how long each phase may take, and TLS."""

    host: Host
    port: Port
    called_aet: AETitle = "ANY-SCP"
    calling_aet: AETitle = "MONAI_SLO"
    connect_timeout: Duration | None = Field(
        default=None,
        description="TCP connect (and TLS handshake) limit (default: the check's timeout).",
    )
    acse_timeout: Duration | None = Field(
        default=None,
        description="Limit on the association and release replies (default: timeout).",
    )
    dimse_timeout: Duration | None = Field(
        default=None, description="Limit on each DIMSE response (default: timeout)."
    )
    tls: bool = Field(default=False, description="DICOM over TLS (PS3.15 Annex B).")

    @model_validator(mode="after")
    def _phase_timeouts_within_timeout(self) -> Self:
        for name in _PHASE_TIMEOUTS:
            value: float | None = getattr(self, name)
            if value is not None and value > self.timeout:
                raise ValueError(
                    f"{name} ({value:g}s) must not exceed the check's timeout ({self.timeout:g}s)"
                )
        return self

    @property
    def effective_connect_timeout(self) -> float:
        return self.timeout if self.connect_timeout is None else self.connect_timeout

    @property
    def effective_acse_timeout(self) -> float:
        return self.timeout if self.acse_timeout is None else self.acse_timeout

    @property
    def effective_dimse_timeout(self) -> float:
        return self.timeout if self.dimse_timeout is None else self.dimse_timeout

    @property
    def target(self) -> str:
        """``host:port`` for messages, IPv6 literals bracketed."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def bounded(limit: float, deadline: Deadline, what: str) -> float:
    """The wait for one step: ``limit``, or less when the deadline is nearer; raises
    ProbeFailure (timeout) when the deadline has passed."""
    wait = min(limit, deadline.remaining())
    if wait <= 0:
        raise ProbeFailure(FailureReason.TIMEOUT, f"check deadline reached before {what}")
    return wait


def lookup(config: DicomConfig, deadline: Deadline) -> str:
    """An address for ``config.host``, IPv4 first like pynetdicom, looked up within the
    connect timeout and the deadline; raises ProbeFailure (dns, or timeout when the
    deadline has already passed)."""
    bounded(config.effective_connect_timeout, deadline, "the name lookup")
    found = resolve(config.host, config.port, deadline, limit=config.effective_connect_timeout)
    return preferred_address(found)
