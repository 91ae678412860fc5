"""JSON conditions (``json:``) on http and dicomweb bodies, against real servers on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monai_slo.checks import dicomweb, http
from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.config.model import load_config
from monai_slo.yaml_source import SourceError
from tests.fixtures_dicom import OrthancPeer
from tests.fixtures_http import HttpPeer, Route

SERVICES = {
    "DICOMweb Export Service": "Running",
    "DICOM SCP Service": "Running",
    "DICOM SCU Export Service": "Running",
    "HL7 Service": "Running",
}
GATEWAY = {"ActiveDimseConnections": 0, "ActiveHl7Connections": 0, "Services": SERVICES}


def probe(url: str, conditions: list[dict[str, Any]], **keys: Any) -> CheckOutcome:
    config = http.Config.model_validate(
        {"name": "j", "kind": "http", "url": url, "json": conditions, **keys}
    )
    return http.run(config, Deadline(config.timeout))


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    with HttpPeer() as server:
        yield server


def serve(peer: HttpPeer, document: object) -> None:
    peer.body = json.dumps(document).encode()
    peer.response_headers = {"Content-Type": "application/json"}


def test_conditions_that_hold_pass(peer: HttpPeer) -> None:
    serve(peer, {"status": "Healthy", "services": [{"status": "Running"}] * 3, "n": 1.0})
    outcome = probe(
        peer.url,
        [
            {"path": "$.status", "equals": "Healthy"},
            {"path": "$.services[*].status", "all": "Running"},
            {"path": "$.services[*].status", "any": "Running"},
            {"path": "$.error", "exists": False},
            {"path": "$.n", "equals": 1},
            {"path": "$.status", "matches": "^Heal"},
        ],
    )
    assert outcome.success, outcome
    assert outcome.detail == "HTTP 200 OK"


def test_equals_names_path_expected_and_seen(peer: HttpPeer) -> None:
    serve(peer, {"status": "Degraded"})
    outcome = probe(peer.url, [{"path": "$.status", "equals": "Healthy"}])
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert outcome.detail == '$.status: expected "Healthy", got "Degraded"'


def test_all_names_the_value_that_is_not_running(peer: HttpPeer) -> None:
    """The gateway's Services map: the one stopped service is named by its path."""
    stopped = {**GATEWAY, "Services": {**SERVICES, "HL7 Service": "Stopped"}}
    serve(peer, stopped)
    outcome = probe(peer.url, [{"path": "$.Services.*", "all": "Running"}])
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert outcome.detail == (
        "$.Services.*: 1 of 4 values not \"Running\"; $['Services']['HL7 Service'] = \"Stopped\""
    )


@pytest.mark.parametrize(
    ("condition", "detail"),
    [
        ({"path": "$.missing", "equals": 1}, "$.missing: no value (expected equals 1)"),
        ({"path": "$.a", "exists": False}, "$.a: expected no value, found $['a'] = true"),
        ({"path": "$.b", "exists": True}, "$.b: expected a value, found none"),
        ({"path": "$.a", "equals": 1}, "$.a: expected 1, got true"),
        (
            {"path": "$.l[*]", "equals": 1},
            "$.l[*]: 2 values, `equals` expects one (use `all` or `any`)",
        ),
        ({"path": "$.l[*]", "any": 3}, "$.l[*]: none of 2 values is 3; $['l'][0] = 1"),
        (
            {"path": "$.v", "matches": "^2\\."},
            "$.v: 1 of 1 values not matching '^2\\\\.'; $['v'] = \"1.12.4\"",
        ),
    ],
)
def test_each_operator_fails_with_its_detail(
    peer: HttpPeer, condition: dict[str, Any], detail: str
) -> None:
    serve(peer, {"a": True, "l": [1, 2], "v": "1.12.4"})
    outcome = probe(peer.url, [condition])
    assert (outcome.reason, outcome.detail) == (FailureReason.BODY_MISMATCH, detail)


def test_peer_text_in_the_detail_is_escaped_and_bounded(peer: HttpPeer) -> None:
    serve(peer, {"status": "\x1b[2J\u202e" + "x" * 5000})
    outcome = probe(peer.url, [{"path": "$.status", "equals": "Healthy"}])
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert "\x1b" not in outcome.detail and "\u202e" not in outcome.detail
    assert len(outcome.detail) < 200
    assert outcome.detail.startswith('$.status: expected "Healthy", got "\\u001b[2J')


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"<html>OK</html>", "body is not JSON (15 bytes)"),
        (b"[" * 100_000 + b"]" * 100_000, "body is JSON nested too deeply to read (200000 bytes)"),
    ],
)
def test_a_body_that_is_not_json_is_body_mismatch(peer: HttpPeer, body: bytes, detail: str) -> None:
    peer.body = body
    outcome = probe(peer.url, [{"path": "$.status", "exists": True}])
    assert (outcome.reason, outcome.detail) == (FailureReason.BODY_MISMATCH, detail)


def test_a_body_past_max_body_bytes_is_not_judged(peer: HttpPeer) -> None:
    serve(peer, {"status": "Healthy", "pad": "x" * 4096})
    outcome = probe(peer.url, [{"path": "$.status", "equals": "Healthy"}], max_body_bytes=1024)
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert outcome.detail.startswith("body larger than max_body_bytes (1024 bytes read)")


def test_without_conditions_a_non_json_body_still_passes(peer: HttpPeer) -> None:
    peer.body = b"not json"
    assert probe(peer.url, []).success


# --- config -----------------------------------------------------------------------------------


def _config_with(tmp_path: Path, condition: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        "environments:\n"
        "  - name: dev\n"
        "    tier: development\n"
        "    services:\n"
        "      - name: gw\n"
        "        checks:\n"
        "          - name: status\n"
        "            kind: http\n"
        "            url: http://127.0.0.1:5000/health/status\n"
        f"            json: [{condition}]\n"
    )
    return path


@pytest.mark.parametrize(
    ("condition", "field", "words"),
    [
        ('{path: "$.[", equals: 1}', "json[0].path", "invalid JSONPath '$.['"),
        ('{path: "$[?@.a =~ /x+/]", exists: true}', "json[0].path", "use `matches:` (RE2)"),
        ('{path: "$.a"}', "json[0]", "exactly one of equals, all, any, exists, matches"),
        ('{path: "$.a", equals: 1, all: 1}', "json[0]", "(got equals, all)"),
        ('{path: "$.a", matches: "(a)\\\\1"}', "json[0].matches", "invalid regular expression"),
    ],
)
def test_a_bad_condition_is_a_config_error_naming_the_field(
    tmp_path: Path, condition: str, field: str, words: str
) -> None:
    with pytest.raises(SourceError) as info:
        load_config(_config_with(tmp_path, condition))
    [issue] = info.value.issues
    assert issue.field == f"environments[0].services[0].checks[0].{field}"
    assert words in issue.message
    assert issue.line == 10


def test_a_good_condition_loads(tmp_path: Path) -> None:
    config = load_config(_config_with(tmp_path, '{path: "$.Services.*", all: Running}'))
    check = config.environments[0].services[0].checks[0].config
    assert isinstance(check, http.Config)
    assert [c.path for c in check.json_conditions] == ["$.Services.*"]


# --- Orthanc ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancPeer]:
    with OrthancPeer(tmp_path_factory.mktemp("orthanc-json")) as server:
        yield server


def test_orthanc_system_holds_its_name_and_aet(orthanc: OrthancPeer) -> None:
    outcome = probe(
        f"{orthanc.url}/system",
        [
            {"path": "$.Name", "equals": "monai-slo-test"},
            {"path": "$.DicomAet", "equals": "ORTHANC"},
            {"path": "$.Version", "matches": r"^\d+\.\d+\.\d+"},
        ],
    )
    assert outcome.success, outcome


def test_orthanc_system_with_another_aet_fails_naming_it(orthanc: OrthancPeer) -> None:
    outcome = probe(f"{orthanc.url}/system", [{"path": "$.DicomAet", "equals": "PACS"}])
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert outcome.detail == '$.DicomAet: expected "PACS", got "ORTHANC"'


# --- dicomweb ---------------------------------------------------------------------------------


def search(base_url: str, conditions: list[dict[str, Any]]) -> CheckOutcome:
    config = dicomweb.Config.model_validate(
        {"name": "q", "kind": "dicomweb", "base_url": base_url, "json": conditions}
    )
    return dicomweb.run(config, Deadline(config.timeout))


def test_dicomweb_conditions_withhold_values_seen(peer: HttpPeer) -> None:
    """A failed condition on a QIDO-RS answer names the path and the kind of value, never the
    value: a dataset may identify a patient."""
    study = {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}}
    peer.routes["/dicom-web/studies"] = Route(body=json.dumps([study]).encode())
    ok = search(f"{peer.url}dicom-web", [{"path": "$[0]['00100010']", "exists": True}])
    assert ok.success, ok
    outcome = search(
        f"{peer.url}dicom-web", [{"path": "$[0]['00100010'].Value[0].Alphabetic", "equals": "X"}]
    )
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert "Doe" not in outcome.detail
    assert outcome.detail.endswith('expected "X", got a string (value withheld)')


def test_dicomweb_non_json_stays_protocol(peer: HttpPeer) -> None:
    peer.routes["/dicom-web/studies"] = Route(body=b"<html/>")
    outcome = search(f"{peer.url}dicom-web", [{"path": "$[0]", "exists": True}])
    assert outcome.reason is FailureReason.PROTOCOL


def test_unknown_key_errors_name_the_key_administrators_write(tmp_path: Path) -> None:
    """An unknown key beside `json:` lists `json`, not the field's internal name."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "environments:\n  - name: e\n    tier: staging\n    services:\n      - name: s\n"
        "        checks:\n"
        '          - {name: x, kind: http, url: "http://127.0.0.1:9/", jsn: 1}\n'
    )
    with pytest.raises(SourceError) as raised:
        load_config(path)
    assert "json," in str(raised.value) and "json_conditions" not in str(raised.value)
