"""The MONAI Deploy presets in config/example.yaml against loopback stand-ins of the real APIs.

Each preset is taken from the shipped example config as written there, pointed at a local
HTTP server that answers as the product does (healthy and broken), and run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from monai_slo.checks import http
from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.config.model import load_config
from tests.fixtures_http import HttpPeer, Route

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"

GATEWAY_STATUS = {
    "ActiveDimseConnections": 0,
    "ActiveHl7Connections": 0,
    "Services": {
        "Space Reclaimer Service": "Running",
        "DICOMweb Export Service": "Running",
        "DICOM SCU Export Service": "Running",
        "DICOM SCP Service": "Running",
        "HL7 Service": "Running",
        "Data Retrieval Service": "Running",
    },
}
MONAI_LABEL_INFO = {
    "name": "radiology",
    "description": "MONAI Label app",
    "version": "0.8.5",
    "labels": ["spleen"],
    "models": {"segmentation_spleen": {"type": "segmentation", "labels": {"spleen": 1}}},
    "trainers": {},
    "strategies": {"random": {"description": "Random"}},
}
ORTHANC_SYSTEM = {
    "ApiVersion": 24,
    "DicomAet": "ORTHANC",
    "DicomPort": 4242,
    "Name": "MyOrthanc",
    "Version": "1.12.4",
}
OHIF_INDEX = (
    b"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
    b"<title>OHIF Viewer</title></head><body><div id='root'></div></body></html>"
)


def preset(service: str, name: str) -> http.Config:
    config = load_config(EXAMPLE)
    for env in config.environments:
        for svc in env.services:
            if svc.name != service:
                continue
            for check in svc.checks:
                if check.config.name == name:
                    assert isinstance(check.config, http.Config)
                    return check.config
    raise AssertionError(f"no check {service}/{name} in {EXAMPLE}")


def run_against(check: http.Config, peer: HttpPeer) -> CheckOutcome:
    """The preset with its URL's scheme and host:port replaced by the stand-in's."""
    parts = urlsplit(check.url)
    url = urlunsplit(("http", f"127.0.0.1:{peer.port}", parts.path, parts.query, ""))
    local = check.model_copy(update={"url": url, "ca_file": None})
    return http.run(local, Deadline(local.timeout))


def answer(peer: HttpPeer, path: str, status: int, body: bytes | object, json_type: bool) -> None:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    kind = "application/json; charset=utf-8" if json_type else "text/html; charset=utf-8"
    peer.routes[path] = Route(status=status, body=payload, headers={"Content-Type": kind})


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    with HttpPeer(status=404, body=b"not found") as server:
        yield server


# --- Informatics Gateway ----------------------------------------------------------------------


def test_gateway_status_with_every_service_running_passes(peer: HttpPeer) -> None:
    answer(peer, "/health/status", 200, GATEWAY_STATUS, True)
    outcome = run_against(preset("informatics-gateway", "health"), peer)
    assert outcome.success, outcome
    assert peer.last_request.path == "/health/status"


def test_gateway_status_with_a_stopped_service_names_it(peer: HttpPeer) -> None:
    """The gateway answers 200 even when an internal service stopped: only the body tells."""
    services = {**GATEWAY_STATUS["Services"], "HL7 Service": "Stopped"}  # type: ignore[dict-item]
    answer(peer, "/health/status", 200, {**GATEWAY_STATUS, "Services": services}, True)
    outcome = run_against(preset("informatics-gateway", "health"), peer)
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert "$['Services']['HL7 Service'] = \"Stopped\"" in outcome.detail


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (200, b'"Healthy"', None),
        (200, b"Healthy", None),
        (503, b'"Unhealthy"', FailureReason.HTTP_STATUS),
        (200, b'"Unhealthy"', FailureReason.BODY_MISMATCH),
    ],
)
def test_gateway_ready(peer: HttpPeer, status: int, body: bytes, reason: Any) -> None:
    answer(peer, "/health/ready", status, body, True)
    outcome = run_against(preset("informatics-gateway", "ready"), peer)
    assert outcome.reason is reason, outcome


# --- Triton -----------------------------------------------------------------------------------


def test_triton_server_and_model_ready(peer: HttpPeer) -> None:
    answer(peer, "/v2/health/ready", 200, b"", True)
    answer(peer, "/v2/models/spleen_ct/ready", 200, b"", True)
    assert run_against(preset("triton", "ready"), peer).success
    assert run_against(preset("triton", "model-ready"), peer).success
    assert peer.last_request.path == "/v2/models/spleen_ct/ready"


def test_triton_model_not_loaded_fails(peer: HttpPeer) -> None:
    """Triton answers 400 for a model that is not ready while the server itself is ready."""
    answer(peer, "/v2/health/ready", 200, b"", True)
    answer(peer, "/v2/models/spleen_ct/ready", 400, {"error": "model not ready"}, True)
    assert run_against(preset("triton", "ready"), peer).success
    outcome = run_against(preset("triton", "model-ready"), peer)
    assert outcome.reason is FailureReason.HTTP_STATUS


# --- MONAI Label ------------------------------------------------------------------------------


def test_monai_label_info_with_models_passes(peer: HttpPeer) -> None:
    answer(peer, "/info/", 200, MONAI_LABEL_INFO, True)
    assert run_against(preset("monai-label", "info"), peer).success


def test_monai_label_without_models_fails(peer: HttpPeer) -> None:
    answer(peer, "/info/", 200, {**MONAI_LABEL_INFO, "models": {}}, True)
    outcome = run_against(preset("monai-label", "info"), peer)
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert outcome.detail == "$.models.*: expected a value, found none"


def test_monai_label_answering_html_fails(peer: HttpPeer) -> None:
    """A proxy's error page with status 200 is not MONAI Label."""
    answer(peer, "/info/", 200, b"<html>maintenance</html>", False)
    outcome = run_against(preset("monai-label", "info"), peer)
    assert (outcome.reason, outcome.detail) == (
        FailureReason.BODY_MISMATCH,
        "body is not JSON (24 bytes)",
    )


# --- OHIF -------------------------------------------------------------------------------------


def test_ohif_index_passes_and_another_page_fails(peer: HttpPeer) -> None:
    answer(peer, "/", 200, OHIF_INDEX, False)
    assert run_against(preset("ohif-viewer", "index"), peer).success
    answer(peer, "/", 200, b"<html><head><title>Welcome to nginx!</title></head></html>", False)
    outcome = run_against(preset("ohif-viewer", "index"), peer)
    assert outcome.reason is FailureReason.BODY_MISMATCH


# --- Orthanc ----------------------------------------------------------------------------------


def test_orthanc_system_passes_and_another_aet_fails(peer: HttpPeer) -> None:
    answer(peer, "/system", 200, ORTHANC_SYSTEM, True)
    assert run_against(preset("orthanc", "system"), peer).success
    answer(peer, "/system", 200, {**ORTHANC_SYSTEM, "DicomAet": "OTHER"}, True)
    outcome = run_against(preset("orthanc", "system"), peer)
    assert (outcome.reason, outcome.detail) == (
        FailureReason.BODY_MISMATCH,
        '$.DicomAet: expected "ORTHANC", got "OTHER"',
    )
