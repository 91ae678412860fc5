"""The kinds by name: the ``kind`` key of a check looks its module up here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monai_slo.checks import dicomweb, gpu, host, http, ssh, tcp
from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, Pending
from monai_slo.checks.dicom import echo as dicom_echo
from monai_slo.checks.dicom import find as dicom_find
from monai_slo.checks.dicom import store_context as dicom_store_context
from monai_slo.checks.dicom import study_flow


@dataclass(frozen=True, slots=True)
class CheckKind:
    name: str
    config_type: type[CheckConfig]
    run: Callable[[Any, Deadline], CheckOutcome | Pending]


KINDS: dict[str, CheckKind] = {
    kind.name: kind
    for kind in (
        CheckKind("dicom_echo", dicom_echo.Config, dicom_echo.run),
        CheckKind("dicom_find", dicom_find.Config, dicom_find.run),
        CheckKind("dicom_store_context", dicom_store_context.Config, dicom_store_context.run),
        CheckKind("dicomweb", dicomweb.Config, dicomweb.run),
        CheckKind("gpu", gpu.Config, gpu.run),
        CheckKind("host", host.Config, host.run),
        CheckKind("http", http.Config, http.run),
        CheckKind("ssh", ssh.Config, ssh.run),
        CheckKind("study_flow", study_flow.Config, study_flow.run),
        CheckKind("tcp", tcp.Config, tcp.run),
    )
}
