"""The dicom_find check against real peers: Orthanc, dcmqrscp, pynetdicom C-FIND SCPs."""

from __future__ import annotations

import http.client
import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.dicom import find as dicom_find
from tests.fixtures_dicom import DcmqrscpPeer, OrthancPeer, PynetdicomPeer, open_fd_count

PENDING, SUCCESS = 0xFF00, 0x0000


def make_config(port: int, **overrides: Any) -> dicom_find.Config:
    values: dict[str, Any] = {
        "name": "pacs-find",
        "kind": "dicom_find",
        "host": "127.0.0.1",
        "port": port,
        "timeout": "2s",
    }
    values.update(overrides)
    return dicom_find.Config.model_validate(values)


def find(config: dicom_find.Config, seconds: float | None = None) -> CheckOutcome:
    return dicom_find.run(config, Deadline(config.timeout if seconds is None else seconds))


def assert_failed(outcome: CheckOutcome, reason: FailureReason) -> None:
    assert not outcome.success, outcome
    assert outcome.reason is reason, outcome


def store_ct_study(peer: OrthancPeer, study_date: str) -> str:
    """Upload one small CT instance (with a patient name) to Orthanc; its study UID."""
    study_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Confidential^Patient"
    ds.PatientID = "PID-4711"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate = study_date
    ds.Modality = "CT"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    conn = http.client.HTTPConnection(peer.host, peer.http_port, timeout=5)
    try:
        conn.request("POST", "/instances", body=buffer.getvalue())
        response = conn.getresponse()
        assert response.status == 200, response.read()
    finally:
        conn.close()
    return study_uid


# --- Orthanc -------------------------------------------------------------------------------


def test_default_query_succeeds_with_no_matches_on_orthanc(orthanc: OrthancPeer) -> None:
    """The default query (a study date in 2999) ends with Success and zero matches."""
    outcome = find(make_config(orthanc.dicom_port, called_aet=orthanc.aet))

    assert outcome.success, outcome
    assert (
        outcome.detail == f"C-FIND answered by ORTHANC at 127.0.0.1:{orthanc.dicom_port}: 0 matches"
    )
    assert outcome.values == {"dicom_find_matches": 0.0}


def test_matches_are_counted_and_never_shown(orthanc: OrthancPeer) -> None:
    """A query matching a stored study counts it; neither the patient's name nor the
    study's UID appears anywhere in the outcome."""
    study_uid = store_ct_study(orthanc, "19991231")

    outcome = find(
        make_config(
            orthanc.dicom_port,
            called_aet=orthanc.aet,
            query={"StudyDate": "19991231", "ModalitiesInStudy": "CT"},
        )
    )

    assert outcome.success, outcome
    assert outcome.values == {"dicom_find_matches": 1.0}
    assert outcome.detail.endswith(": 1 match")
    shown = repr(outcome)
    assert "Confidential" not in shown and "PID-4711" not in shown and study_uid not in shown


def test_wrong_called_ae_is_rejected_by_orthanc(orthanc: OrthancPeer) -> None:
    """The association path is the echo's: a wrong called AE is REJECTED_CALLED_AE."""
    outcome = find(make_config(orthanc.dicom_port, called_aet="NOT-ORTHANC"))

    assert_failed(outcome, FailureReason.REJECTED_CALLED_AE)
    assert "NOT-ORTHANC" in outcome.detail


def test_orthanc_refusing_find_from_unknown_ae_aborts(tmp_path: Path) -> None:
    """Orthanc 1.10 with DicomAlwaysAllowFind false accepts the association from an
    unknown calling AE, then answers the C-FIND with an A-ABORT: ABORTED, said so."""
    with OrthancPeer(tmp_path, extra_config={"DicomAlwaysAllowFind": False}) as peer:
        outcome = find(make_config(peer.dicom_port, called_aet=peer.aet))
        peer.stop(kill=True)

    assert_failed(outcome, FailureReason.ABORTED)
    assert outcome.detail == ("association aborted by peer (service user) after the C-FIND request")


# --- dcmqrscp --------------------------------------------------------------------------------


def test_empty_dcmqrscp_answers_success(tmp_path: Path) -> None:
    """DCMTK's dcmqrscp, a second independent implementation, answers the same query."""
    with DcmqrscpPeer(tmp_path) as peer:
        outcome = find(make_config(peer.port, called_aet=peer.aet))

    assert outcome.success, outcome
    assert outcome.values == {"dicom_find_matches": 0.0}


# --- Chosen answers from a pynetdicom SCP ------------------------------------------------------


def test_pending_responses_are_counted_and_query_carries_no_patient_keys() -> None:
    """Three Pending responses then Success: three matches. The peer receives only the
    query level, the configured keys and StudyInstanceUID as return key."""
    with PynetdicomPeer(find_statuses=[PENDING, PENDING, 0xFF01, SUCCESS]) as peer:
        outcome = find(make_config(peer.port, called_aet=peer.aet))

    assert outcome.success, outcome
    assert outcome.values == {"dicom_find_matches": 3.0}
    (query,) = peer.find_queries
    assert sorted(element.keyword for element in query) == [
        "QueryRetrieveLevel",
        "StudyDate",
        "StudyInstanceUID",
    ]
    assert (query.QueryRetrieveLevel, query.StudyDate, query.StudyInstanceUID) == (
        "STUDY",
        "29991231",
        "",
    )


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (0xC001, "0xC001 (unable to process)"),
        (0xA700, "0xA700 (refused: out of resources)"),
        (0xFE00, "0xFE00 (cancel)"),
    ],
)
def test_failure_and_cancel_statuses_are_dimse_status(status: int, words: str) -> None:
    """A final Failure or Cancel status is DIMSE_STATUS with the code in hex and words."""
    with PynetdicomPeer(find_statuses=[PENDING, status]) as peer:
        outcome = find(make_config(peer.port, called_aet=peer.aet))

    assert_failed(outcome, FailureReason.DIMSE_STATUS)
    assert outcome.detail == f"C-FIND failed: status {words}"
    assert "dicom_find_matches" not in outcome.values


def test_slow_stream_of_matches_is_cut_at_the_deadline() -> None:
    """A peer that keeps sending Pending responses slowly costs the check its deadline,
    not more: TIMEOUT within timeout + 0.5 s."""
    with PynetdicomPeer(find_statuses=[PENDING] * 50 + [SUCCESS], find_delay=0.1) as peer:
        config = make_config(peer.port, called_aet=peer.aet, timeout="1s")
        start = time.monotonic()
        outcome = find(config)
        elapsed = time.monotonic() - start

    assert_failed(outcome, FailureReason.TIMEOUT)
    assert "C-FIND" in outcome.detail and "matches" in outcome.detail
    assert elapsed < 1.0 + 0.5


def test_peer_without_find_rejects_the_context() -> None:
    """A Verification-only SCP accepts the association but not Study Root FIND:
    CONTEXT_REJECTED, naming the SOP class and why."""
    with PynetdicomPeer() as peer:
        outcome = find(make_config(peer.port, called_aet=peer.aet))

    assert_failed(outcome, FailureReason.CONTEXT_REJECTED)
    assert outcome.detail == (
        "Study Root Query/Retrieve Information Model - FIND not accepted by PYNETDICOM: "
        "abstract syntax not supported"
    )


def test_no_thread_or_socket_leak(orthanc: OrthancPeer) -> None:
    """Repeated runs (success and failure) leave no thread or descriptor behind."""
    good = make_config(orthanc.dicom_port, called_aet=orthanc.aet)
    bad = make_config(orthanc.dicom_port, called_aet="WRONG")
    assert find(good).success  # warm-up
    threads, fds = threading.active_count(), open_fd_count()
    for run in range(6):
        find(good if run % 2 else bad)
        assert threading.active_count() == threads
        assert open_fd_count() == fds


# --- Configuration ---------------------------------------------------------------------------


def test_default_query_is_a_far_future_date() -> None:
    """Without a query the check asks for StudyDate 29991231, which matches nothing."""
    assert make_config(104).query == {"StudyDate": "29991231"}


def test_allowed_query_keys_and_ranges_validate() -> None:
    """Dates, date ranges, times, modalities and UID lists are accepted."""
    query = {
        "StudyDate": "20240101-20240131",
        "StudyTime": "0800-1700",
        "ModalitiesInStudy": "CT\\MR",
        "StudyInstanceUID": "1.2.3\\1.2.4",
    }
    assert make_config(104, query=query).query == query


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"PatientName": "DOE^JOHN"}, "'PatientName' is not allowed"),
        ({"PatientID": "4711"}, "'PatientID' is not allowed"),
        ({"AccessionNumber": "A1"}, "'AccessionNumber' is not allowed"),
        ({"StudyDate": "2024-01-01"}, "not a valid DICOM StudyDate"),
        ({"StudyDate": "20240101", "ModalitiesInStudy": "ct"}, "ModalitiesInStudy"),
        ({"StudyInstanceUID": "1." + "2" * 70}, "StudyInstanceUID"),
        ({}, "at least one key"),
        ({"StudyDate": "", "ModalitiesInStudy": "*"}, "at least one key"),
    ],
)
def test_identifying_or_bad_query_is_rejected(query: dict[str, str], message: str) -> None:
    """Only non-identifying keys with well-formed values, at least one narrowing, are
    allowed; the error names the query field."""
    with pytest.raises(ValidationError, match="query") as info:
        make_config(104, query=query)
    assert message in str(info.value)
