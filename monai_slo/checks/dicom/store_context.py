"""The ``dicom_store_context`` kind: would the peer accept images of this kind?

Proposes one storage presentation context (a SOP class with the transfer syntaxes we
could send) and succeeds when the peer accepts it; then releases without sending a byte
of data. A router or PACS that answers C-ECHO but no longer takes CT (a changed
configuration, a full licence) fails with ``context_rejected``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

import pydicom.uid
from pydantic import BeforeValidator, Field
from pynetdicom import sop_class
from pynetdicom.association import Association

from monai_slo.checks.base import CheckOutcome, Deadline
from monai_slo.checks.dicom.association import DicomExchange, run_service
from monai_slo.checks.dicom.common import DicomConfig
from monai_slo.checks.dicom.outcomes import sop_name

_UID = re.compile(r"^[0-9]+(?:\.[0-9]+)*$")


def _uid_or_keyword(value: object, *, transfer_syntax: bool) -> object:
    """A UID as given, or the UID for a pydicom/pynetdicom keyword (``CTImageStorage``)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _UID.match(text):
        if len(text) > 64:
            raise ValueError(f"UID {text!r} is longer than 64 characters")
        return text
    found = getattr(pydicom.uid if transfer_syntax else sop_class, text, None)
    if isinstance(found, pydicom.uid.UID) and (
        found.is_transfer_syntax if transfer_syntax else not found.is_transfer_syntax
    ):
        return str(found)
    what = "transfer syntax" if transfer_syntax else "SOP class"
    raise ValueError(f"{text!r} is neither a UID nor a known {what} keyword")


SopClass = Annotated[str, BeforeValidator(lambda v: _uid_or_keyword(v, transfer_syntax=False))]
TransferSyntax = Annotated[str, BeforeValidator(lambda v: _uid_or_keyword(v, transfer_syntax=True))]


class Config(DicomConfig):
    """Propose ``sop_class`` with ``transfer_syntaxes`` and expect the peer to accept it."""

    kind: Literal["dicom_store_context"]
    sop_class: SopClass = Field(
        default=str(pydicom.uid.UID("1.2.840.10008.5.1.4.1.1.2")),
        description="Storage SOP class UID or keyword (default: CT Image Storage).",
    )
    transfer_syntaxes: Annotated[list[TransferSyntax], Field(min_length=1)] = Field(
        default_factory=lambda: [
            str(pydicom.uid.ExplicitVRLittleEndian),
            str(pydicom.uid.ImplicitVRLittleEndian),
        ],
        description="Transfer syntax UIDs or keywords, in order of preference.",
    )


class _StorageContext(DicomExchange):
    operation = "storage negotiation"

    def __init__(self, config: Config) -> None:
        self.config = config

    def contexts(self) -> Sequence[tuple[str, Sequence[str]]]:
        return [(self.config.sop_class, self.config.transfer_syntaxes)]

    def exchange(self, assoc: Association, deadline: Deadline) -> CheckOutcome | None:
        # Nothing is sent: an accepted context (the association only stands with one)
        # is the answer.
        accepted = assoc.accepted_contexts[0]
        return CheckOutcome.ok(
            f"{sop_name(self.config.sop_class)} accepted by {self.config.called_aet} at "
            f"{self.config.target} with {sop_name(str(accepted.transfer_syntax[0]))}"
        )


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Associate proposing the storage context; success when accepted; release."""
    return run_service(config, deadline, _StorageContext(config))
