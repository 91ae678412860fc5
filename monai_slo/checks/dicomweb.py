"""The ``dicomweb`` kind: a QIDO-RS study search that must answer with DICOM JSON.

``GET {base_url}/studies?limit=1`` with ``Accept: application/dicom+json``: a 200 with
a JSON array (empty or not) or a 204 (no studies) means the DICOMweb service and the
archive behind it answer. The connection, TLS and deadline handling are the HTTP
client's (:func:`monai_slo.checks.http_client.request`), shared with the ``http`` kind.
The body is parsed only to check its shape and the ``json`` conditions; what it lists is
never kept or logged (a failed condition names the kind of value seen, never the value).
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, field_validator

from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, FailureReason
from monai_slo.checks.http_client import (
    ClientSettings,
    Headers,
    Response,
    Url,
    request,
    resolve_headers,
)
from monai_slo.checks.json_conditions import JsonConditions, evaluate
from monai_slo.checks.net import ProbeFailure

MEDIA_TYPE = "application/dicom+json"


class Config(ClientSettings, CheckConfig):
    """Search ``base_url`` (the DICOMweb root, e.g. ``https://pacs/dicom-web``) for a study."""

    kind: Literal["dicomweb"]
    base_url: Url = Field(description="DICOMweb root; /studies?limit=1 is appended.")
    headers: Headers = Field(
        default_factory=dict,
        description="Request headers (e.g. Authorization); a value may be {env: VAR} "
        "or {file: PATH}.",
    )
    json_conditions: JsonConditions = Field(alias="json")

    @field_validator("base_url")
    @classmethod
    def _no_query(cls, value: str) -> str:
        if "?" in value or "#" in value:
            raise ValueError("base_url must not have a query or fragment; /studies is appended")
        return value

    @property
    def search_url(self) -> str:
        return f"{self.base_url.rstrip('/')}/studies?limit=1"


def _studies(response: Response) -> list[object] | str:
    """The parsed array of datasets, or what is wrong with the body."""
    if not response.complete:
        return f"QIDO-RS response larger than max_body_bytes ({len(response.body)} bytes read)"
    try:
        studies = json.loads(response.body)
    except (ValueError, UnicodeDecodeError):
        return f"QIDO-RS response is not JSON ({len(response.body)} bytes)"
    except RecursionError:  # a peer's nesting is a malformed answer, not our error
        return f"QIDO-RS response is JSON nested too deeply to read ({len(response.body)} bytes)"
    if not isinstance(studies, list):
        return f"QIDO-RS response is JSON but not an array (a {type(studies).__name__})"
    if not all(isinstance(study, dict) for study in studies):
        return "QIDO-RS response is an array but not of datasets"
    return studies


def _judge(config: Config, response: Response, values: dict[str, float]) -> CheckOutcome:
    if response.status == 204:
        return CheckOutcome.ok("QIDO-RS 204 No Content (no studies)", values)
    if response.status != 200:
        got = f"{response.status} {response.reason}".rstrip()
        return CheckOutcome.fail(
            FailureReason.HTTP_STATUS, f"QIDO-RS got {got}, expected 200 or 204", values
        )
    studies = _studies(response)
    if isinstance(studies, str):
        return CheckOutcome.fail(FailureReason.PROTOCOL, studies, values)
    # Values are withheld from the detail: a dataset may identify a patient.
    mismatch = evaluate(config.json_conditions, studies, show_values=False)
    if mismatch is not None:
        return CheckOutcome.fail(FailureReason.BODY_MISMATCH, mismatch, values)
    noun = "study" if len(studies) == 1 else "studies"
    return CheckOutcome.ok(f"QIDO-RS 200 OK, {len(studies)} {noun}", values)


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Search for one study; judge the answer's status and shape."""
    values: dict[str, float] = {}
    try:
        headers = {name: value for name, (value, _) in resolve_headers(config.headers).items()}
        if not any(name.lower() == "accept" for name in headers):
            headers["Accept"] = MEDIA_TYPE
        response = request(
            config, config.search_url, headers=headers, deadline=deadline, values=values
        )
    except ProbeFailure as failure:
        return failure.outcome(values)
    return _judge(config, response, values)
