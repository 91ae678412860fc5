"""The dicomweb check against Orthanc's DICOMweb plugin and chosen HTTP answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monai_slo.checks import dicomweb
from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from tests.fixtures_dicom import ORTHANC_PLUGINS, OrthancPeer
from tests.fixtures_env import missing_peer
from tests.fixtures_http import HttpPeer
from tests.fixtures_net import free_port

TOKEN_VAR = "MONAI_SLO_TEST_DICOMWEB_TOKEN"
TOKEN = "Bearer qido-S3cret-0815"


def make_config(base_url: str, **keys: Any) -> dicomweb.Config:
    data: dict[str, Any] = {"name": "qido", "kind": "dicomweb", "base_url": base_url}
    data.update(keys)
    return dicomweb.Config.model_validate(data)


def search(config: dicomweb.Config) -> CheckOutcome:
    return dicomweb.run(config, Deadline(config.timeout))


@pytest.fixture(scope="module")
def orthanc_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    """An empty Orthanc with its DICOMweb plugin loaded (root /dicom-web/)."""
    if not Path(ORTHANC_PLUGINS, "libOrthancDicomWeb.so").exists():
        missing_peer("orthanc-dicomweb is not installed (scripts/install-test-deps.sh installs it)")
    with OrthancPeer(tmp_path_factory.mktemp("orthanc-web"), plugins=True) as peer:
        yield peer


# --- Orthanc ---------------------------------------------------------------------------------


def test_empty_orthanc_answers_an_empty_array(orthanc_web: OrthancPeer) -> None:
    """Orthanc's DICOMweb plugin answers QIDO-RS on an empty archive with 200 and []:
    a success, with the HTTP status as a value."""
    outcome = search(make_config(f"{orthanc_web.url}/dicom-web/"))

    assert outcome.success, outcome
    assert outcome.detail == "QIDO-RS 200 OK, 0 studies"
    assert outcome.values == {"http_status_code": 200.0}


def test_wrong_root_on_orthanc_is_http_status(orthanc_web: OrthancPeer) -> None:
    """A base_url that is not a DICOMweb root gets Orthanc's 404: HTTP_STATUS."""
    outcome = search(make_config(f"{orthanc_web.url}/no-such-root"))

    assert outcome.reason is FailureReason.HTTP_STATUS
    assert outcome.detail == "QIDO-RS got 404 Not Found, expected 200 or 204"
    assert outcome.values == {"http_status_code": 404.0}


# --- Chosen answers --------------------------------------------------------------------------


def test_request_shape_and_secret_header(
    http_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The request is GET {base_url}/studies?limit=1 asking for application/dicom+json,
    with a header from the environment that never shows in the outcome."""
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    http_peer.body = json.dumps([{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}]).encode()
    outcome = search(
        make_config(f"{http_peer.url}pacs/dicom-web", headers={"Authorization": {"env": TOKEN_VAR}})
    )

    assert outcome.success, outcome
    assert outcome.detail == "QIDO-RS 200 OK, 1 study"
    request = http_peer.last_request
    assert (request.method, request.path) == ("GET", "/pacs/dicom-web/studies?limit=1")
    assert request.headers["Accept"] == "application/dicom+json"
    assert request.headers["Authorization"] == TOKEN
    assert TOKEN not in repr(outcome)


def test_no_content_is_success(http_peer: HttpPeer) -> None:
    """204 No Content is how some servers say "no studies": a success."""
    http_peer.status, http_peer.body = 204, b""
    outcome = search(make_config(http_peer.url))

    assert outcome.success, outcome
    assert outcome.detail == "QIDO-RS 204 No Content (no studies)"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"<!DOCTYPE html><html><body>PACS login</body></html>", "is not JSON"),
        (b'{"studies": []}', "is JSON but not an array (a dict)"),
        (b"[1, 2]", "is an array but not of datasets"),
    ],
)
def test_wrong_body_is_protocol(http_peer: HttpPeer, body: bytes, detail: str) -> None:
    """A 200 whose body is HTML (a login page, a UI) or JSON of the wrong shape is
    PROTOCOL: the service behind the URL is not answering DICOMweb."""
    http_peer.body = body
    outcome = search(make_config(http_peer.url))

    assert outcome.reason is FailureReason.PROTOCOL
    assert detail in outcome.detail


def test_body_over_the_limit_is_protocol(http_peer: HttpPeer) -> None:
    """A body larger than max_body_bytes is not parsed: PROTOCOL, saying so."""
    http_peer.body = json.dumps([{"00100010": {"vr": "PN"}}] * 100).encode()
    outcome = search(make_config(http_peer.url, max_body_bytes=64))

    assert outcome.reason is FailureReason.PROTOCOL
    assert "larger than max_body_bytes" in outcome.detail


def test_server_error_is_http_status(http_peer: HttpPeer) -> None:
    """A 503 from a DICOMweb server whose archive is down is HTTP_STATUS."""
    http_peer.status = 503
    outcome = search(make_config(http_peer.url))

    assert outcome.reason is FailureReason.HTTP_STATUS
    assert outcome.values["http_status_code"] == 503


def test_refused_is_refused() -> None:
    """Nothing listening: REFUSED, from the shared connection code."""
    outcome = search(make_config(f"http://127.0.0.1:{free_port()}/dicom-web"))

    assert outcome.reason is FailureReason.REFUSED


def test_https_reports_expiry_and_checks_min_days_valid(https_peer: HttpPeer) -> None:
    """Over HTTPS the certificate's expiry is a value; a 90-day certificate passes
    min_days_valid 30 and fails 120 with TLS (no request sent)."""
    https_peer.body = b"[]"
    ok = search(make_config(https_peer.url, ca_file=str(https_peer.ca_file), min_days_valid=30))
    sent = len(https_peer.requests)
    short = search(make_config(https_peer.url, ca_file=str(https_peer.ca_file), min_days_valid=120))

    assert ok.success, ok
    assert https_peer.cert_not_after is not None
    assert ok.values["tls_cert_expiry_timestamp_seconds"] == https_peer.cert_not_after
    assert short.reason is FailureReason.TLS
    assert "sooner than min_days_valid 120" in short.detail
    assert short.values["tls_cert_expiry_timestamp_seconds"] == https_peer.cert_not_after
    assert len(https_peer.requests) == sent


# --- Configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"base_url": "ftp://127.0.0.1/dicom-web"}, "base_url"),
        ({"base_url": "http://127.0.0.1/dicom-web?x=1"}, "base_url"),
        ({"base_url": "http://user:pw@127.0.0.1/"}, "base_url"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"client_key": __file__}, "client_key needs client_cert"),
        ({"min_days_valid": -1}, "min_days_valid"),
    ],
)
def test_bad_config_names_the_field(keys: dict[str, Any], field: str) -> None:
    """Invalid configs fail validation with an error naming the key."""
    data = {"base_url": "http://127.0.0.1/dicom-web"} | keys
    with pytest.raises(ValidationError) as info:
        make_config(**data)
    assert field in str(info.value)
