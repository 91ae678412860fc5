"""The ``study_flow`` kind: a synthetic canary study sent to a router and followed to the PACS.

Each run makes a new canary (pydicom: a Secondary Capture of 8x8 pixels, new UIDs under
``uid_root``, a fixed synthetic patient identity, a study description saying what it is),
C-STOREs it to ``send``, and then looks for it at each ``arrive`` stage in turn: a DICOM
stage by a C-FIND that asks for nothing but the canary's StudyInstanceUID (at SERIES
level with the Modality when ``series_modality`` waits for an AI result in the canary's
study), a DICOMweb stage by QIDO-RS (``/studies?StudyInstanceUID=`` or
``/studies/{uid}/series?Modality=``). Nothing about real patients is ever asked for, and
what a peer answers is matched against the canary's UID and dropped.

Between look-ups the run is :class:`~monai_slo.checks.base.Pending`: it holds no thread,
and the runner polls it again when due. Look-ups come soon after the send and spread out
to the stage's ``poll``, so a fast flow's latency is measured to within a quarter of
itself. Latency per stage runs from the C-STORE's success to the first look-up that saw
the canary there; end to end is the last stage's. A canary not seen at every stage by the
check's ``timeout`` is ``not_arrived``, naming the first stage that never saw it (or, when
that stage's look-ups themselves failed, their reason: ``refused``, ``tls`` ...). A send
the router rejects (association, context, C-STORE status) is ``store_failed``; a router not
there at all keeps the usual reason (``refused``, ``timeout``, ``tls`` ...).

``cleanup`` deletes the canary study from the last stage once it was seen there, through
the Orthanc REST API at that stage's ``orthanc_url`` (``POST /tools/lookup``, then
``DELETE /studies/{id}``); a failed cleanup is said in the detail and fails nothing.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import time
from collections.abc import Generator, Sequence
from typing import Annotated, Literal, Self, cast
from urllib.parse import quote

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_ROOT_UID, ExplicitVRLittleEndian, generate_uid
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
)
from pynetdicom.status import (
    QR_FIND_SERVICE_CLASS_STATUS,
    STATUS_PENDING,
    STATUS_WARNING,
    STORAGE_SERVICE_CLASS_STATUS,
    code_to_category,
)

from monai_slo.checks.base import (
    CheckConfig,
    CheckOutcome,
    Deadline,
    FailureReason,
    Name,
    Pending,
    Series,
)
from monai_slo.checks.dicom.association import DicomExchange, run_service
from monai_slo.checks.dicom.common import AETitle, DicomConfig
from monai_slo.checks.dicom.outcomes import dimse_failure
from monai_slo.checks.http_client import (
    ClientSettings,
    Headers,
    Response,
    Url,
    request,
    resolve_headers,
)
from monai_slo.checks.net import DirectTlsOptions, Host, Port, ProbeFailure
from monai_slo.durations import Duration

LAST_LATENCY = "study_flow_last_latency_seconds"
"""Series suffix: seconds from the C-STORE's success to first sight, label ``stage``."""
END_TO_END = "end_to_end"
"""The ``stage`` label value of the whole flow's latency (a reserved stage name)."""
STAGE_LABEL = "stage"

DEFAULT_PATIENT_ID = "MONAI-SLO-CANARY"
DEFAULT_PATIENT_NAME = "MONAI-SLO^CANARY"
STUDY_DESCRIPTION = "MONAI-SLO SYNTHETIC CANARY - NOT A PATIENT"
SERIES_DESCRIPTION = "monai-slo study_flow canary (synthetic, no patient data)"
DICOM_JSON = "application/dicom+json"

# Look-ups come at a quarter of the time since the send (so the latency is known to within
# a quarter of itself), never sooner than this, never later than the stage's poll.
_FIRST_POLL = 0.25
_POLL_SHARE = 0.25
_DEFAULT_STEP_TIMEOUT = 10.0
# A poll this close to the run's deadline is its last: no look-up could finish in time.
_LAST_POLL_MARGIN = 0.01

# Send failures that keep their own reason (nothing DICOM was said); every other one (an
# association rejected or aborted, the context or the C-STORE refused) is store_failed.
_TRANSPORT = frozenset(
    {
        FailureReason.TIMEOUT,
        FailureReason.REFUSED,
        FailureReason.UNREACHABLE,
        FailureReason.DNS,
        FailureReason.CONNECTION,
        FailureReason.TLS,
        FailureReason.PROTOCOL,
    }
)

_UID_ROOT = re.compile(r"^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*\.$")
_MODALITY = re.compile(r"^[A-Z0-9_]{1,16}$")
_ORTHANC_ID = re.compile(r"^[0-9a-f-]{1,64}$")
_PERSON_NAME = re.compile(r"^[A-Za-z0-9 ^_.-]{1,64}$")
_LO = re.compile(r"^[A-Za-z0-9 _.-]{1,64}$")


def _uid_root(value: str) -> str:
    if not _UID_ROOT.match(value) or len(value) > 40:
        raise ValueError(
            "uid_root must be digits and dots ending in a dot (e.g. '1.2.826.0.1.3680043.8.498.'), "
            "at most 40 characters so a generated UID stays within 64"
        )
    return value


def _modality(value: str) -> str:
    value = value.strip().upper()
    if not _MODALITY.match(value):
        raise ValueError("series_modality must be a DICOM modality code such as SR, SEG or OT")
    return value


def _pattern(pattern: re.Pattern[str], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{what} may only use letters, digits, spaces and ^ _ . -")
        return value

    return AfterValidator(check)


UidRoot = Annotated[str, AfterValidator(_uid_root)]
Modality = Annotated[str, AfterValidator(_modality)]
PersonName = Annotated[str, _pattern(_PERSON_NAME, "patient_name")]
LongString = Annotated[str, _pattern(_LO, "patient_id")]
PositiveDuration = Annotated[Duration, Field(gt=0)]


class Send(DirectTlsOptions):
    """Where the canary is C-STOREd: the router (or gateway) the flow starts at."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Host
    port: Port
    called_aet: AETitle
    calling_aet: AETitle | None = Field(
        default=None, description="Default: the check's calling_aet."
    )


class Stage(DirectTlsOptions, ClientSettings):
    """One place the canary (or its AI result) must show up: DICOM or DICOMweb."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    # DICOM: C-FIND by StudyInstanceUID.
    host: Host | None = None
    port: Port | None = None
    called_aet: AETitle | None = None
    calling_aet: AETitle | None = None
    # DICOMweb: QIDO-RS.
    base_url: Url | None = Field(default=None, description="DICOMweb root, e.g. .../dicom-web.")
    headers: Headers = Field(
        default_factory=dict,
        description="QIDO-RS (and Orthanc cleanup) request headers; a value may be "
        "{env: VAR} or {file: PATH}.",
    )
    series_modality: Modality | None = Field(
        default=None,
        description="Wait for a series of this modality in the canary's study (the AI "
        "result) instead of the canary itself.",
    )
    poll: PositiveDuration | None = Field(
        default=None, description="Longest wait between look-ups (default: the check's poll)."
    )
    orthanc_url: Url | None = Field(
        default=None,
        description="Orthanc REST root serving this stage, for cleanup (uses headers and "
        "the TLS client options).",
    )

    @model_validator(mode="after")
    def _one_protocol(self) -> Self:
        dicom = self.host is not None or self.port is not None or self.called_aet is not None
        if dicom and self.base_url is not None:
            raise ValueError(
                f"stage {self.name}: give host, port and called_aet (DICOM) or base_url "
                "(DICOMweb), not both"
            )
        if self.base_url is None and (
            self.host is None or self.port is None or self.called_aet is None
        ):
            raise ValueError(
                f"stage {self.name}: give host, port and called_aet (DICOM) or base_url (DICOMweb)"
            )
        if self.base_url is not None and ("?" in self.base_url or "#" in self.base_url):
            raise ValueError(f"stage {self.name}: base_url must not have a query or fragment")
        if self.name == END_TO_END:
            raise ValueError(f"{END_TO_END!r} is reserved for the whole flow's latency")
        return self

    @property
    def is_dicom(self) -> bool:
        return self.base_url is None

    @property
    def where(self) -> str:
        if self.base_url is not None:
            return self.base_url
        return f"{self.called_aet}@{self.host}:{self.port}"


class Config(CheckConfig):
    """C-STORE a canary to ``send``; expect it at every ``arrive`` stage within ``timeout``."""

    kind: Literal["study_flow"]
    send: Send
    arrive: Annotated[list[Stage], Field(min_length=1, max_length=16)]
    calling_aet: AETitle = "MONAI_SLO"
    poll: PositiveDuration = Field(
        default=5.0, description="Longest wait between look-ups at a stage."
    )
    step_timeout: PositiveDuration | None = Field(
        default=None,
        description="Limit on the C-STORE and on each look-up (default: 10s, at most timeout).",
    )
    uid_root: UidRoot = Field(
        default=PYDICOM_ROOT_UID,
        description="Root of the canaries' UIDs (your organisation's, ideally).",
    )
    patient_id: LongString = DEFAULT_PATIENT_ID
    patient_name: PersonName = DEFAULT_PATIENT_NAME
    cleanup: bool = Field(
        default=False,
        description="Delete the canary study from the last stage once seen "
        "(needs its orthanc_url).",
    )
    max_in_flight: Annotated[int, Field(ge=1, le=10_000)] | None = Field(
        default=None, description="Canaries followed at once (default: timeout/interval + 1)."
    )

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> Self:
        # Replaces the base rule: a canary may take longer than the interval (runs overlap).
        if self.step_timeout is not None and self.step_timeout > self.timeout:
            raise ValueError(
                f"step_timeout ({self.step_timeout:g}s) must not exceed timeout ({self.timeout:g}s)"
            )
        names = [stage.name for stage in self.arrive]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique: {', '.join(names)}")
        if self.cleanup and self.arrive[-1].orthanc_url is None:
            raise ValueError(
                f"cleanup needs orthanc_url on the last stage ({self.arrive[-1].name}): "
                "the Orthanc REST root the canary is deleted through"
            )
        if self.max_in_flight is None:
            # Frozen model: the computed default is set once, here.
            object.__setattr__(self, "max_in_flight", math.ceil(self.timeout / self.interval) + 1)
        return self

    @property
    def effective_step_timeout(self) -> float:
        if self.step_timeout is not None:
            return self.step_timeout
        return min(_DEFAULT_STEP_TIMEOUT, self.timeout)

    def stage_poll(self, stage: Stage) -> float:
        return self.poll if stage.poll is None else stage.poll


# --- The canary -----------------------------------------------------------------------------


def make_canary(config: Config) -> Dataset:
    """A new synthetic study: one 8x8 Secondary Capture, new UIDs, no patient data."""
    now = datetime.datetime.now()  # DICOM dates are local time
    study_uid = generate_uid(config.uid_root)
    sop_uid = generate_uid(config.uid_root)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid(config.uid_root)
    ds.PatientID = config.patient_id
    ds.PatientName = config.patient_name
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.StudyID = "CANARY"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = STUDY_DESCRIPTION
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.Modality = "OT"
    ds.ConversionType = "SYN"  # synthetic image
    ds.Manufacturer = "monai-slo"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((x * 32 + y * 4) % 256 for x in range(8) for y in range(8))
    return ds


def _dicom_config(
    config: Config,
    endpoint: Send | Stage,
    timeout: float,
) -> DicomConfig:
    """The shared association path's config for one endpoint, under ``timeout``."""
    return DicomConfig.model_validate(
        {
            "name": config.name,
            "kind": config.kind,
            "interval": max(config.interval, timeout + 1.0),
            "timeout": timeout,
            "host": endpoint.host,
            "port": endpoint.port,
            "called_aet": endpoint.called_aet,
            "calling_aet": endpoint.calling_aet or config.calling_aet,
            "tls": endpoint.tls,
            "server_name": endpoint.server_name,
            "ca_file": endpoint.ca_file,
            "tls_verify": endpoint.tls_verify,
            "client_cert": endpoint.client_cert,
            "client_key": endpoint.client_key,
            "min_days_valid": endpoint.min_days_valid,
        }
    )


class _Store(DicomExchange):
    operation = "C-STORE"

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.stored_at: float | None = None  # monotonic: when the peer said stored

    def contexts(self) -> Sequence[tuple[str, Sequence[str]]]:
        return [(str(SecondaryCaptureImageStorage), ())]

    def exchange(self, assoc: Association, deadline: Deadline) -> CheckOutcome | None:
        status = assoc.send_c_store(self.dataset)
        if "Status" not in status:
            return None  # no usable answer: the shared code says why
        code = int(status.Status)
        if code == 0x0000 or code_to_category(code) == STATUS_WARNING:
            self.stored_at = time.monotonic()
            words = "stored" if code == 0 else f"stored with warning 0x{code:04X}"
            return CheckOutcome.ok(words)
        return dimse_failure(self.operation, code, STORAGE_SERVICE_CLASS_STATUS)


class _Lookup(DicomExchange):
    """C-FIND for the canary's study (or a series of a modality in it), nothing else."""

    operation = "C-FIND"
    read_limit = 256 * 1024  # a few matches at most: the query names one study

    def __init__(self, study_uid: str, modality: str | None) -> None:
        self.study_uid = study_uid
        self.modality = modality

    def contexts(self) -> Sequence[tuple[str, Sequence[str]]]:
        return [(str(StudyRootQueryRetrieveInformationModelFind), ())]

    def _identifier(self) -> Dataset:
        identifier = Dataset()
        identifier.StudyInstanceUID = self.study_uid
        if self.modality is None:
            identifier.QueryRetrieveLevel = "STUDY"
        else:
            identifier.QueryRetrieveLevel = "SERIES"
            identifier.Modality = self.modality
            identifier.SeriesInstanceUID = ""
        return identifier

    def _matches(self, identifier: Dataset | None) -> bool:
        if identifier is None:
            return False
        try:  # a peer's garbled identifier is no sight of the canary
            if str(identifier.get("StudyInstanceUID", "")) != self.study_uid:
                return False
            return self.modality is None or str(identifier.get("Modality", "")) == self.modality
        except Exception:  # pydicom raises many kinds on bad data
            return False

    def exchange(self, assoc: Association, deadline: Deadline) -> CheckOutcome | None:
        found = 0
        responses = cast(
            Generator[tuple[Dataset, Dataset | None], None, None],
            assoc.send_c_find(self._identifier(), StudyRootQueryRetrieveInformationModelFind),
        )
        try:
            for status, identifier in responses:
                if "Status" not in status:
                    return None
                code = int(status.Status)
                if code_to_category(code) != STATUS_PENDING:
                    if code != 0x0000:
                        return dimse_failure(self.operation, code, QR_FIND_SERVICE_CLASS_STATUS)
                    return CheckOutcome.ok("answered", {"found": float(found)})
                found += self._matches(identifier)
                remaining = deadline.remaining()
                if remaining <= 0:
                    return CheckOutcome.fail(
                        FailureReason.TIMEOUT, "C-FIND not finished within the look-up's deadline"
                    )
                assoc.dimse_timeout = remaining
        finally:
            responses.close()
        return None


def _dicom_json_has(item: object, tag: str, wanted: str) -> bool:
    if not isinstance(item, dict):
        return False
    element = item.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    return isinstance(values, list) and wanted in values


class _Canary:
    """One canary on its way: what was sent, where it has been seen, when."""

    def __init__(self, config: Config, deadline: Deadline) -> None:
        self.config = config
        self.deadline_at = deadline.at
        self.dataset = make_canary(config)
        self.study_uid = str(self.dataset.StudyInstanceUID)
        self.stored_at = 0.0
        self.index = 0  # the first stage not yet seen
        self.latencies: list[tuple[str, float]] = []
        self.last_failure: CheckOutcome | None = None  # of the current stage's last look-up

    # -- the send ------------------------------------------------------------------------

    def send(self, deadline: Deadline) -> CheckOutcome | None:
        """C-STORE the canary; None when stored, else the ``store_failed`` outcome."""
        send = self.config.send
        step = min(self.config.effective_step_timeout, deadline.remaining())
        if step <= 0:  # a run queued or started past its deadline sends nothing
            return CheckOutcome.fail(
                FailureReason.TIMEOUT, "check deadline reached before the canary was sent"
            )
        store = _Store(self.dataset)
        outcome = run_service(_dicom_config(self.config, send, step), Deadline(step), store)
        if outcome.success and store.stored_at is not None:
            self.stored_at = store.stored_at
            return None
        where = f"{send.called_aet}@{send.host}:{send.port}"
        if outcome.reason in _TRANSPORT:  # the router is not there: said as every kind says it
            return CheckOutcome.fail(
                outcome.reason,
                f"C-STORE of the canary to {where}: {outcome.detail}",
                outcome.values,
            )
        reason = outcome.reason.value if outcome.reason is not None else "no answer"
        return CheckOutcome.fail(
            FailureReason.STORE_FAILED,
            f"C-STORE of the canary to {where} failed ({reason}): {outcome.detail}",
            outcome.values,
        )

    # -- the look-ups ----------------------------------------------------------------------

    def _look(self, stage: Stage, deadline: Deadline) -> CheckOutcome:
        """Success with ``found`` in the values, or why the look-up itself failed."""
        if stage.is_dicom:
            lookup = _Lookup(self.study_uid, stage.series_modality)
            return run_service(
                _dicom_config(self.config, stage, max(deadline.remaining(), 0.001)),
                deadline,
                lookup,
            )
        return self._qido(stage, deadline)

    def _qido(self, stage: Stage, deadline: Deadline) -> CheckOutcome:
        assert stage.base_url is not None
        base = stage.base_url.rstrip("/")
        uid = quote(self.study_uid, safe=".")
        if stage.series_modality is None:
            url, tag, wanted = f"{base}/studies?StudyInstanceUID={uid}", "0020000D", self.study_uid
        else:
            modality = quote(stage.series_modality)
            url, tag, wanted = (
                f"{base}/studies/{uid}/series?Modality={modality}",
                "00080060",
                (stage.series_modality),
            )
        try:
            headers = _headers(stage, DICOM_JSON)
            response = request(stage, url, headers=headers, deadline=deadline, values={})
        except ProbeFailure as failure:
            return failure.outcome()
        return _qido_found(stage, response, tag, wanted)

    def poll(self, step: Deadline) -> CheckOutcome | Pending:
        stages = self.config.arrive
        while self.index < len(stages):
            left = min(step.remaining(), self.deadline_at - time.monotonic())
            if left <= _LAST_POLL_MARGIN:
                break
            stage = stages[self.index]
            outcome = self._look(stage, Deadline(left))
            if not (outcome.success and outcome.values.get("found", 0) > 0):
                self.last_failure = None if outcome.success else outcome
                break
            self.latencies.append((stage.name, time.monotonic() - self.stored_at))
            self.index += 1
            self.last_failure = None
        if self.index == len(stages):
            return self._arrived(step)
        if time.monotonic() >= self.deadline_at - _LAST_POLL_MARGIN:
            return self._lost()
        return Pending(self.poll, self.next_poll(), self.config.effective_step_timeout)

    def next_poll(self) -> float:
        now = time.monotonic()
        longest = self.config.stage_poll(self.config.arrive[self.index])
        wait = min(longest, max(min(_FIRST_POLL, longest), (now - self.stored_at) * _POLL_SHARE))
        return min(now + wait, self.deadline_at)

    # -- the verdict -----------------------------------------------------------------------

    def _series(self, *, end_to_end: bool) -> tuple[Series, ...]:
        series = [
            Series(LAST_LATENCY, value, {STAGE_LABEL: name}) for name, value in self.latencies
        ]
        if end_to_end and self.latencies:
            series.append(Series(LAST_LATENCY, self.latencies[-1][1], {STAGE_LABEL: END_TO_END}))
        return tuple(series)

    def _seen(self) -> str:
        return ", ".join(f"{name} after {value:.2f}s" for name, value in self.latencies)

    def _arrived(self, step: Deadline) -> CheckOutcome:
        end_to_end = self.latencies[-1][1]
        detail = f"canary {self.study_uid} seen at {self._seen()}; end to end {end_to_end:.2f}s"
        if self.config.cleanup:
            detail += f"; {self._cleanup(step)}"
        return CheckOutcome.ok(detail, series=self._series(end_to_end=True))

    def _lost(self) -> CheckOutcome:
        stage = self.config.arrive[self.index]
        seen = f" (seen at {self._seen()})" if self.latencies else ""
        series = self._series(end_to_end=False)
        failure = self.last_failure
        if failure is not None and failure.reason is not None:
            return CheckOutcome.fail(
                failure.reason,
                f"canary not seen at {stage.name} within {self.config.timeout:g}s: its "
                f"look-up failed: {failure.detail}{seen}",
                series=series,
            )
        return CheckOutcome.fail(
            FailureReason.NOT_ARRIVED,
            f"canary {self.study_uid} not seen at {stage.name} ({stage.where}) within "
            f"{self.config.timeout:g}s{seen}",
            series=series,
        )

    def _cleanup(self, step: Deadline) -> str:
        """Delete the canary study through the last stage's Orthanc REST API."""
        stage = self.config.arrive[-1]
        assert stage.orthanc_url is not None
        root = stage.orthanc_url.rstrip("/")
        if step.remaining() <= 0:
            return "cleanup skipped: no time left in this step"
        try:
            headers = _headers(stage, "application/json")
            found = request(
                stage,
                f"{root}/tools/lookup",
                method="POST",
                body=self.study_uid.encode(),
                headers=headers,
                deadline=step,
                values={},
            )
            if found.status != 200 or not found.complete:
                return f"cleanup failed: /tools/lookup answered {found.status}"
            ids = [
                str(entry.get("ID"))
                for entry in json.loads(found.body)
                if isinstance(entry, dict) and entry.get("Type") == "Study"
            ]
            deleted = 0
            for orthanc_id in ids:
                if not _ORTHANC_ID.match(orthanc_id):
                    continue
                answer = request(
                    stage,
                    f"{root}/studies/{orthanc_id}",
                    method="DELETE",
                    headers=headers,
                    deadline=step,
                    values={},
                )
                if answer.status != 200:
                    return f"cleanup failed: DELETE answered {answer.status}"
                deleted += 1
        except ProbeFailure as failure:
            return f"cleanup failed ({failure.reason.value}): {failure.detail}"
        except (ValueError, RecursionError, AttributeError):
            return "cleanup failed: /tools/lookup answer is not the expected JSON"
        return f"deleted from {stage.name}" if deleted else f"cleanup: not found at {stage.name}"


def _qido_found(stage: Stage, response: Response, tag: str, wanted: str) -> CheckOutcome:
    """Success with ``found``: how many datasets of the answer carry ``wanted`` at ``tag``."""
    if response.status in {204, 404}:  # nothing (yet) in that study
        return CheckOutcome.ok("answered", {"found": 0.0})
    if response.status != 200:
        return CheckOutcome.fail(
            FailureReason.HTTP_STATUS,
            f"QIDO-RS at {stage.name} answered {response.status} {response.reason}".rstrip(),
        )
    if not response.complete:
        return CheckOutcome.fail(
            FailureReason.PROTOCOL, f"QIDO-RS answer at {stage.name} larger than max_body_bytes"
        )
    try:
        items = json.loads(response.body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return CheckOutcome.fail(
            FailureReason.PROTOCOL, f"QIDO-RS answer at {stage.name} is not DICOM JSON"
        )
    if not isinstance(items, list):
        return CheckOutcome.fail(
            FailureReason.PROTOCOL, f"QIDO-RS answer at {stage.name} is not a JSON array"
        )
    found = sum(1 for item in items if _dicom_json_has(item, tag, wanted))
    return CheckOutcome.ok("answered", {"found": float(found)})


def _headers(stage: Stage, accept: str) -> dict[str, str]:
    headers = {name: value for name, (value, _) in resolve_headers(stage.headers).items()}
    if not any(name.lower() == "accept" for name in headers):
        headers["Accept"] = accept
    return headers


def run(config: Config, deadline: Deadline) -> CheckOutcome | Pending:
    """Send a new canary; then follow it (Pending) until seen everywhere or lost."""
    canary = _Canary(config, deadline)
    failed = canary.send(deadline)
    if failed is not None:
        return failed
    return Pending(canary.poll, canary.next_poll(), config.effective_step_timeout)
