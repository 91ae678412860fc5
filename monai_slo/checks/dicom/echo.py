"""The ``dicom_echo`` kind: associate with a DICOM peer, send C-ECHO, release.

The association, its timeouts, TLS and the decoding of what went wrong are shared with
the other DICOM kinds (:mod:`monai_slo.checks.dicom.association`); this module is the
C-ECHO.
Without TLS it runs on the lean path (:mod:`monai_slo.checks.dicom.lean`: the same PDUs
and outcomes at a fraction of the CPU and without delayed-ACK stalls); over TLS, on
pynetdicom's association.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Literal

from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.status import VERIFICATION_SERVICE_CLASS_STATUS

from monai_slo.checks.base import CheckOutcome, Deadline
from monai_slo.checks.dicom import lean as dicom_lean
from monai_slo.checks.dicom.association import DicomExchange, run_service
from monai_slo.checks.dicom.common import DicomConfig
from monai_slo.checks.dicom.outcomes import dimse_failure, echo_accepted, verification_not_accepted

log = logging.getLogger(__name__)


class Config(DicomConfig):
    """A C-ECHO against ``host:port`` from ``calling_aet`` to ``called_aet``."""

    kind: Literal["dicom_echo"]


class _Echo(DicomExchange):
    operation = "C-ECHO"

    def __init__(self, config: Config) -> None:
        self.config = config

    def contexts(self) -> Sequence[tuple[str, Sequence[str]]]:
        return [(str(Verification), ())]

    def exchange(self, assoc: Association, deadline: Deadline) -> CheckOutcome | None:
        response = assoc.send_c_echo()
        if "Status" not in response:
            return None
        status = int(response.Status)
        if status != 0x0000:
            return dimse_failure(self.operation, status, VERIFICATION_SERVICE_CLASS_STATUS)
        return echo_accepted(self.config)

    def unaccepted(self, assoc: Association, config: DicomConfig) -> CheckOutcome:
        return verification_not_accepted()


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Associate, C-ECHO, release; say what went wrong in the terms of FailureReason."""
    if config.tls or not _lean_path_works(config.calling_aet, config.called_aet):
        return run_pynetdicom(config, deadline)
    return dicom_lean.echo(config, deadline)


@functools.lru_cache(maxsize=512)
def _lean_path_works(calling_aet: str, called_aet: str) -> bool:
    """Whether pynetdicom's codecs still build the lean path's requests (once per pair).

    The lean path leans on pynetdicom's PDU and DIMSE classes; should a release change
    them, checks go on over the association path instead of failing.
    """
    try:
        dicom_lean.requests(calling_aet, called_aet)
    except Exception:
        log.exception("lean C-ECHO path unavailable, using pynetdicom's association")
        return False
    return True


def run_pynetdicom(config: Config, deadline: Deadline) -> CheckOutcome:
    """The same over pynetdicom's association machinery (what TLS uses)."""
    return run_service(config, deadline, _Echo(config))
