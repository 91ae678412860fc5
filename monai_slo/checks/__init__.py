"""Check kinds: one module each, looked up by the ``kind`` key of a check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monai_slo.checks import (
    dicom_echo,
    dicom_find,
    dicom_store_context,
    dicomweb,
    gpu,
    host,
    http,
    ssh,
    tcp,
)
from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline


@dataclass(frozen=True, slots=True)
class CheckKind:
    name: str
    config_type: type[CheckConfig]
    run: Callable[[Any, Deadline], CheckOutcome]


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
        CheckKind("tcp", tcp.Config, tcp.run),
    )
}
