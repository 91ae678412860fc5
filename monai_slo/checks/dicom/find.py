"""The ``dicom_find`` kind: a harmless STUDY-level C-FIND, answered to the end in time.

Proves more than C-ECHO: that the peer's query service and its database answer. The
query is Study Root at STUDY level and may only use keys that identify no one (dates,
times, modalities, UIDs); the default asks for studies dated 2999-12-31, which match
nothing. The only return key is StudyInstanceUID. Matches (Pending responses) are
counted and their identifiers dropped unread: never kept, never logged.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator, Sequence
from typing import Literal, cast

from pydantic import Field, field_validator
from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
)
from pynetdicom.status import QR_FIND_SERVICE_CLASS_STATUS, STATUS_PENDING, code_to_category

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.dicom.association import DicomExchange, run_service
from monai_slo.checks.dicom.common import DicomConfig
from monai_slo.checks.dicom.outcomes import dimse_failure

MATCHES = "dicom_find_matches"

_DATE = r"\d{8}"
_TIME = r"\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?"
_CODE = r"[A-Z0-9 _*?]{1,16}"
_UID = r"(?=[0-9.]{1,64}(?:\\|$))[0-9]+(?:\.[0-9]+)*"


def _range(single: str) -> re.Pattern[str]:
    # A value, an open or closed range (PS3.4 C.2.2.2.5), or empty (a return key).
    return re.compile(rf"^(?:{single}|{single}-|-{single}|{single}-{single})?$")


# Keys allowed in a query: none of them names a patient, an order or a person.
# (AccessionNumber, PatientID, StudyID and the like can identify someone, so they stay out.)
QUERY_KEYS: dict[str, re.Pattern[str]] = {
    "StudyDate": _range(_DATE),
    "StudyTime": _range(_TIME),
    "ModalitiesInStudy": re.compile(rf"^(?:{_CODE}(?:\\{_CODE})*)?$"),
    "StudyInstanceUID": re.compile(rf"^(?:{_UID}(?:\\{_UID})*)?$"),
}


class Config(DicomConfig):
    """A STUDY-level C-FIND against ``host:port`` that must end with Success in time."""

    kind: Literal["dicom_find"]
    query: dict[str, str] = Field(
        default_factory=lambda: {"StudyDate": "29991231"},
        description="Matching keys (StudyDate, StudyTime, ModalitiesInStudy, "
        "StudyInstanceUID); default: a date no study has.",
    )

    @field_validator("query")
    @classmethod
    def _harmless(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = ", ".join(QUERY_KEYS)
        for key, text in value.items():
            pattern = QUERY_KEYS.get(key)
            if pattern is None:
                raise ValueError(
                    f"key {key!r} is not allowed in a query (it may identify a patient); "
                    f"use {allowed}"
                )
            if not pattern.match(text):
                raise ValueError(f"{key} value {text!r} is not a valid DICOM {key} match")
        if not any(text.strip("*") for text in value.values()):
            # An empty query matches every study in the archive: a load, not a probe.
            raise ValueError(f"give at least one key a value to match ({allowed})")
        return value


class _Find(DicomExchange):
    operation = "C-FIND"
    # A match is a Pending response of ~300 bytes (command set, StudyInstanceUID, whatever
    # else a peer adds): 4 MiB is some 13,000 matches, far past a probe's query, and caps
    # what a flooding peer can make one run hold.
    read_limit = 4 * 1024 * 1024

    def __init__(self, config: Config) -> None:
        self.config = config

    def contexts(self) -> Sequence[tuple[str, Sequence[str]]]:
        return [(str(StudyRootQueryRetrieveInformationModelFind), ())]

    def _identifier(self) -> Dataset:
        identifier = Dataset()
        identifier.QueryRetrieveLevel = "STUDY"
        for keyword, value in self.config.query.items():
            setattr(identifier, keyword, value)
        if "StudyInstanceUID" not in identifier:
            identifier.StudyInstanceUID = ""  # the one return key
        return identifier

    def exchange(self, assoc: Association, deadline: Deadline) -> CheckOutcome | None:
        matches = 0
        # A generator (typed as an Iterator): closed below when left early.
        responses = cast(
            Generator[tuple[Dataset, Dataset | None], None, None],
            assoc.send_c_find(self._identifier(), StudyRootQueryRetrieveInformationModelFind),
        )
        limit: float = assoc.dimse_timeout or self.config.effective_dimse_timeout
        waiting_since = time.monotonic()
        try:
            for status, _identifier in responses:  # identifiers are dropped unread
                if "Status" not in status:
                    # Aborted, dropped, timed out or garbled: the shared trace tells all but
                    # a timeout after some matches (it saw data, so would call it garbled).
                    if matches and time.monotonic() - waiting_since >= limit - 0.01:
                        return CheckOutcome.fail(
                            FailureReason.TIMEOUT,
                            f"no further C-FIND response within {limit:.3g}s "
                            f"after {matches} matches",
                        )
                    return None
                code = int(status.Status)
                if code_to_category(code) != STATUS_PENDING:
                    return self._final(code, matches)
                matches += 1
                remaining = deadline.remaining()
                if remaining <= 0:
                    return CheckOutcome.fail(
                        FailureReason.TIMEOUT,
                        f"C-FIND not finished within the deadline ({matches} matches so far)",
                    )
                # Each further response waits only for what is left of the deadline.
                limit = min(self.config.effective_dimse_timeout, remaining)
                assoc.dimse_timeout = limit
                waiting_since = time.monotonic()
        finally:
            responses.close()
        return None

    def _final(self, code: int, matches: int) -> CheckOutcome:
        if code != 0x0000:
            return dimse_failure(self.operation, code, QR_FIND_SERVICE_CLASS_STATUS)
        noun = "match" if matches == 1 else "matches"
        return CheckOutcome.ok(
            f"C-FIND answered by {self.config.called_aet} at {self.config.target}: "
            f"{matches} {noun}",
            {MATCHES: float(matches)},
        )


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Associate, C-FIND at STUDY level to the final status, release."""
    return run_service(config, deadline, _Find(config))
