"""The dicom_store_context check against real peers: Orthanc, storescp, pynetdicom."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

import pytest
from pydantic import ValidationError

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.dicom import store_context as dicom_store_context
from tests.fixtures_dicom import OrthancPeer, PynetdicomPeer, SilentListener, StorescpPeer

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE, IMPLICIT_LE = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"


def make_config(port: int, **overrides: Any) -> dicom_store_context.Config:
    values: dict[str, Any] = {
        "name": "pacs-store",
        "kind": "dicom_store_context",
        "host": "127.0.0.1",
        "port": port,
        "timeout": "2s",
    }
    values.update(overrides)
    return dicom_store_context.Config.model_validate(values)


def negotiate(config: dicom_store_context.Config) -> CheckOutcome:
    return dicom_store_context.run(config, Deadline(config.timeout))


def orthanc_instances(peer: OrthancPeer) -> int:
    conn = http.client.HTTPConnection(peer.host, peer.http_port, timeout=5)
    try:
        conn.request("GET", "/statistics")
        return int(json.loads(conn.getresponse().read())["CountInstances"])
    finally:
        conn.close()


def test_orthanc_accepts_ct_and_nothing_is_stored(orthanc: OrthancPeer) -> None:
    """Orthanc accepts the CT Image Storage context; the check succeeds, names the
    transfer syntax agreed, and stores nothing (no data is sent)."""
    before = orthanc_instances(orthanc)
    outcome = negotiate(make_config(orthanc.dicom_port, called_aet=orthanc.aet))

    assert outcome.success, outcome
    assert outcome.detail == (
        f"CT Image Storage accepted by ORTHANC at 127.0.0.1:{orthanc.dicom_port} "
        "with Explicit VR Little Endian"
    )
    assert orthanc_instances(orthanc) == before


def test_storescp_accepts_ct(storescp: StorescpPeer) -> None:
    """DCMTK storescp accepts every storage SOP class, CT with Implicit VR included."""
    config = make_config(storescp.port, called_aet=storescp.aet, transfer_syntaxes=[IMPLICIT_LE])
    outcome = negotiate(config)

    assert outcome.success, outcome
    assert outcome.detail.endswith("with Implicit VR Little Endian")
    assert not any(storescp.workdir.joinpath("received").iterdir())


def test_verification_only_peer_rejects_the_storage_context() -> None:
    """A peer that supports only Verification accepts the association but not CT:
    CONTEXT_REJECTED, with the SOP class and the peer's reason."""
    with PynetdicomPeer() as peer:
        outcome = negotiate(make_config(peer.port, called_aet=peer.aet))

    assert not outcome.success
    assert outcome.reason is FailureReason.CONTEXT_REJECTED
    assert outcome.detail == (
        "CT Image Storage not accepted by PYNETDICOM: abstract syntax not supported"
    )


def test_unsupported_transfer_syntaxes_are_context_rejected() -> None:
    """A known SOP class offered only in transfer syntaxes the peer lacks is
    CONTEXT_REJECTED with that reason."""
    with PynetdicomPeer() as peer:
        config = make_config(
            peer.port,
            called_aet=peer.aet,
            sop_class="1.2.840.10008.1.1",  # Verification: the one class this peer has
            transfer_syntaxes=["JPEGBaseline8Bit"],
        )
        outcome = negotiate(config)

    assert outcome.reason is FailureReason.CONTEXT_REJECTED
    assert outcome.detail.endswith(": none of the proposed transfer syntaxes supported")


def test_silent_peer_times_out(silent_listener: SilentListener) -> None:
    """A peer that never answers the association request fails with TIMEOUT in time."""
    config = make_config(silent_listener.port, timeout="500ms")
    start = time.monotonic()
    outcome = negotiate(config)

    assert outcome.reason is FailureReason.TIMEOUT
    assert time.monotonic() - start < 0.5 + 0.5


def test_defaults_and_keywords() -> None:
    """Defaults are CT Image Storage in Explicit then Implicit VR Little Endian; keywords
    from pydicom/pynetdicom are turned into UIDs."""
    default = make_config(104)
    assert (default.sop_class, default.transfer_syntaxes) == (
        CT_IMAGE_STORAGE,
        [EXPLICIT_LE, IMPLICIT_LE],
    )
    named = make_config(
        104, sop_class="MRImageStorage", transfer_syntaxes=["ExplicitVRLittleEndian"]
    )
    assert (named.sop_class, named.transfer_syntaxes) == (
        "1.2.840.10008.5.1.4.1.1.4",
        [EXPLICIT_LE],
    )


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"sop_class": "NoSuchStorage"}, "sop_class"),
        ({"sop_class": "ExplicitVRLittleEndian"}, "sop_class"),
        ({"sop_class": "1." + "2" * 70}, "sop_class"),
        ({"transfer_syntaxes": []}, "transfer_syntaxes"),
        ({"transfer_syntaxes": ["CTImageStorage"]}, "transfer_syntaxes"),
        ({"client_key": __file__}, "client_key needs client_cert"),
    ],
)
def test_bad_config_names_the_field(keys: dict[str, Any], field: str) -> None:
    """Unknown keywords, non-UIDs, an empty syntax list fail validation naming the key."""
    with pytest.raises(ValidationError) as info:
        make_config(104, **keys)
    assert field in str(info.value)
