"""The daemon's JSON API (/api/v1/status, /api/v1/maintenance) on real daemon processes and a
real listener, with real HTTP clients on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from prometheus_client import CollectorRegistry

from monai_slo.daemon import server as server_module
from monai_slo.daemon.api import ApiAnswer, ApiRequest, changes_refused
from monai_slo.daemon.server import MAX_BODY, MetricsServer
from tests.fixtures_daemon import DaemonProcess, basic_auth, until
from tests.fixtures_dicom import LOOPBACK
from tests.fixtures_http import HttpPeer
from tests.fixtures_study_flow import AiApplication

pytestmark = pytest.mark.timeout(90)

MAINTENANCE = "/api/v1/maintenance"
USER, PASSWORD = "oncall", "s3cret horse"


def _http_check(peer: HttpPeer) -> dict[str, Any]:
    return {"name": "web", "kind": "http", "url": peer.url, "interval": "0.5s", "timeout": "0.4s"}


def _maintenance_active(daemon: DaemonProcess) -> float | None:
    for line in daemon.metrics().splitlines():
        if line.startswith("monai_slo_maintenance_active{"):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    with HttpPeer() as running:
        yield running


@pytest.mark.slow
def test_status_api_is_the_history_status_from_memory(tmp_path: Path, peer: HttpPeer) -> None:
    """After an outage, the API's figures bracket those `status -o json` reads from the file
    between two API calls (time only adds up-time and coverage while the check stays up)."""
    with DaemonProcess(tmp_path, checks=[_http_check(peer)]) as daemon:
        peer.status = 503
        until(lambda: daemon.api("GET", "/api/v1/status")[1]["services"][0]["state"] == "down")
        time.sleep(1.5)  # an outage of known length (not a synchronisation)
        peer.status = 200
        until(lambda: daemon.api("GET", "/api/v1/status")[1]["services"][0]["state"] == "up")
        time.sleep(1.5)  # a flush (every second) has written the recovery to the file
        _, before = daemon.api("GET", "/api/v1/status")
        cli = daemon.cli("status", "--source", "history", "-o", "json")
        _, after = daemon.api("GET", "/api/v1/status")
    assert cli.returncode == 0, cli.stderr
    history = json.loads(cli.stdout)
    assert (before["source"], history["source"]) == ("daemon", "history")
    [low], [mid], [high] = before["services"], history["services"], after["services"]
    assert low["state"] == mid["state"] == high["state"] == "up"
    assert low["windows"].keys() == mid["windows"].keys()
    for label, window in mid["windows"].items():
        for figure in ("availability_ratio", "data_coverage_ratio"):
            value = window[figure]
            assert value is not None
            assert low["windows"][label][figure] - 1e-9 <= value, (label, figure)
            assert value <= high["windows"][label][figure] + 1e-9, (label, figure)
    availability = mid["windows"]["5m"]["availability_ratio"]
    assert 0.2 < availability < 0.95  # the outage is in the figures
    [check] = history["checks"]
    [api_check] = before["checks"]
    assert check["in_flight"] is None and api_check["in_flight"] == 0
    assert abs(check["runs"] - api_check["runs"]) <= 4  # the file lags by one flush at most


@pytest.mark.slow
def test_a_canary_in_flight_is_pending_not_up(tmp_path: Path) -> None:
    """A real study_flow check whose stage never sees the canary (a DICOMweb stage answering
    no studies): the API shows the check and its service pending with canaries in flight;
    the history file knows no verdict yet."""
    with AiApplication(aet="ROUTER") as router, HttpPeer(status=200, body=b"[]") as stage:
        flow = {
            "name": "roundtrip",
            "kind": "study_flow",
            "interval": "1s",
            "timeout": "30s",
            "poll": "0.5s",
            "send": {"host": LOOPBACK, "port": router.dicom_port, "called_aet": "ROUTER"},
            "arrive": [{"name": "pacs", "base_url": f"http://127.0.0.1:{stage.port}/dicom-web"}],
        }
        with DaemonProcess(tmp_path, checks=[flow]) as daemon:

            def two_in_flight() -> dict[str, Any] | None:
                document = daemon.api("GET", "/api/v1/status")[1]
                return document if document["checks"][0]["in_flight"] >= 2 else None

            document = until(two_in_flight, 20, "two canaries in flight")
            history = daemon.cli("status", "--source", "history", "-o", "json")
            table = daemon.cli("status")  # asks the daemon: the only one that knows
    [check], [service] = document["checks"], document["services"]
    assert check["state"] == "pending" and check["kind"] == "study_flow"
    assert service["state"] == "pending"
    assert router.received >= 2
    assert history.returncode == 0, history.stderr
    [stored] = json.loads(history.stdout)["checks"]
    assert stored["state"] != "pending" and stored["in_flight"] is None
    assert table.returncode == 0, table.stderr
    assert "PENDING" in table.stdout and "in flight)" in table.stdout
    assert table.stderr.startswith(f"source: daemon at 127.0.0.1:{daemon.port}")


@pytest.mark.slow
def test_maintenance_through_the_api_is_audited_and_ends(tmp_path: Path, peer: HttpPeer) -> None:
    with DaemonProcess(tmp_path, checks=[_http_check(peer)]) as daemon:
        status, started = daemon.api(
            "POST", MAINTENANCE, {"service": "pacs", "duration": "2h", "reason": "PACS upgrade"}
        )
        assert status == 201, started
        assert started["created_by"] == "api@127.0.0.1"
        assert started["end_timestamp"] - started["start_timestamp"] == pytest.approx(7200)
        assert _maintenance_active(daemon) == 1
        listed = daemon.cli("maintenance", "list", "-o", "json")
        [row] = [r for r in json.loads(listed.stdout) if r["id"] == started["id"]]
        assert row["created_by"] == "api@127.0.0.1" and row["reason"] == "PACS upgrade"
        assert row["source"] == "api"  # the path that started it, beside who
        assert daemon.api("GET", MAINTENANCE)[1]["windows"][0]["state"] == "active"
        assert daemon.api("DELETE", f"{MAINTENANCE}/{started['id']}") == (200, {"ended": 1})
        assert _maintenance_active(daemon) == 0
        status, again = daemon.api("DELETE", f"{MAINTENANCE}/{started['id']}")
        assert status == 404 and f"#{started['id']}" in again["error"]
        # By target, as `maintenance stop --service` does.
        assert daemon.api("POST", MAINTENANCE, {"service": "pacs", "duration": 60})[0] == 201
        assert daemon.api("DELETE", f"{MAINTENANCE}?service=pacs") == (200, {"ended": 1})
        listed = daemon.cli("maintenance", "list", "-o", "json")
    ended = [r for r in json.loads(listed.stdout) if r["id"] == started["id"]]
    assert ended[0]["ended_by"] == "api@127.0.0.1"


def test_bad_requests_are_refused_naming_the_problem(tmp_path: Path, peer: HttpPeer) -> None:
    with DaemonProcess(tmp_path, checks=[_http_check(peer)]) as daemon:
        status, body = daemon.request("POST", MAINTENANCE, b"x" * (MAX_BODY + 1))
        assert status == 413 and b"larger than" in body
        status, body = daemon.request("POST", MAINTENANCE, b"{garbage")
        assert status == 400 and json.loads(body)["error"].startswith("request body is not JSON")
        cases = [
            ({"service": "pacs", "duration": "2 fortnights"}, "duration"),
            ({"service": "pacs", "duration": "1h", "until": "tomorrow"}, "until"),
            ({"service": "pacs", "end": "2026-12-01T10:00"}, "end"),
            ({"service": 7, "duration": "1h"}, "service"),
            ({"service": "pacs", "duration": "1h", "reason": "x" * 5000}, "reason"),
        ]
        for document, field in cases:
            status, answer = daemon.api("POST", MAINTENANCE, document)
            assert (status, answer["field"]) == (400, field), answer
            assert answer["error"].startswith(f"{field}: ")
        status, answer = daemon.api("POST", MAINTENANCE, {"service": "pacs"})
        assert status == 400 and "duration or end" in answer["error"]
        status, answer = daemon.api("POST", MAINTENANCE, [1, 2])
        assert status == 400 and "JSON object" in answer["error"]
        status, answer = daemon.api("POST", MAINTENANCE, {"service": "nope", "duration": "1h"})
        assert status == 404 and "no service matches --service nope" in answer["error"]
        assert daemon.api("PUT", MAINTENANCE, {})[0] == 405
        assert daemon.api("GET", "/api/v1/nothing")[0] == 404
        assert _maintenance_active(daemon) == 0  # nothing was stored


def test_changes_need_auth_unless_on_loopback() -> None:
    refused = changes_refused(False, "0.0.0.0")
    assert refused is not None and "basic_auth_users" in refused
    assert changes_refused(False, "::") is not None
    assert changes_refused(False, "monai-slo.hospital.org") is not None
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert changes_refused(False, host) is None, host
    assert changes_refused(True, "0.0.0.0") is None


@pytest.mark.slow
def test_basic_auth_names_the_author_and_refuses_wrong_credentials(
    tmp_path: Path, peer: HttpPeer
) -> None:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web = f"basic_auth_users:\n  {USER}: '{hashed}'\n"
    right = basic_auth(USER, PASSWORD)
    with DaemonProcess(tmp_path, checks=[_http_check(peer)], web=web, auth=right) as daemon:
        window = {"service": "pacs", "duration": "1h"}
        wrong = basic_auth(USER, "guess")
        status, _ = daemon.request("POST", MAINTENANCE, json.dumps(window).encode(), auth=wrong)
        assert status == 401
        status, started = daemon.api("POST", MAINTENANCE, window)
        assert status == 201 and started["created_by"] == USER
        assert daemon.api("GET", "/api/v1/status", auth=right)[0] == 200
        # `status` cannot log in: it reads the history file and says why.
        until((daemon.config.parent / "history.sqlite").exists)
        fallback = daemon.cli("status")
        assert fallback.returncode == 0, fallback.stderr
        assert "source: history file" in fallback.stderr and "needs basic auth" in fallback.stderr


@pytest.fixture
def listener(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MetricsServer, list[ApiRequest]]]:
    """A real listener on loopback whose API records what reaches it; bodies get 1 s."""
    monkeypatch.setattr(server_module, "BODY_DEADLINE", 1.0)
    seen: list[ApiRequest] = []

    def api(request: ApiRequest) -> ApiAnswer:
        seen.append(request)
        return ApiAnswer(200, {"ok": True})

    listening = MetricsServer(LOOPBACK, 0, CollectorRegistry(), ready=lambda: True, api=api)
    listening.start()
    try:
        yield listening, seen
    finally:
        listening.stop()


def _get_metrics(port: int) -> float:
    started = time.monotonic()
    with socket.create_connection((LOOPBACK, port), timeout=5) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 200")
    return time.monotonic() - started


def test_a_slow_body_is_dropped_at_its_deadline_while_metrics_answer(
    listener: tuple[MetricsServer, list[ApiRequest]],
) -> None:
    server, seen = listener
    slow = socket.create_connection((LOOPBACK, server.port), timeout=5)
    started = time.monotonic()
    slow.sendall(b'POST /api/v1/maintenance HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"a')
    closed = threading.Event()
    metrics_times: list[float] = []

    def dribble() -> None:
        try:
            for _ in range(40):  # a byte every 0.1 s: the body would take 10 s
                slow.sendall(b" ")
                if closed.wait(0.1):
                    return
        except OSError:
            return

    sender = threading.Thread(target=dribble)
    sender.start()
    try:
        while not closed.is_set() and time.monotonic() - started < 4:
            metrics_times.append(_get_metrics(server.port))
            slow.settimeout(0.1)
            try:
                if slow.recv(100) == b"":
                    closed.set()
            except TimeoutError:
                pass
            except OSError:
                closed.set()
    finally:
        closed.set()
        sender.join(5)
        slow.close()
    dropped_after = time.monotonic() - started
    assert 0.9 <= dropped_after < 2.5, dropped_after
    assert metrics_times and max(metrics_times) < 0.5, metrics_times
    assert seen == []  # the partial body never reached the API


def test_the_whole_body_reaches_the_api_and_chunked_is_refused(
    listener: tuple[MetricsServer, list[ApiRequest]],
) -> None:
    server, seen = listener
    body = json.dumps({"service": "pacs", "reason": "é" * 100}).encode()
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as sock:
        head = f"POST /api/v1/maintenance?x=1 HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body[:10])
        time.sleep(0.2)  # the body in two pieces, as a slow network delivers it
        sock.sendall(body[10:])
        assert sock.recv(100).startswith(b"HTTP/1.0 200")
    [request] = seen
    assert (request.method, request.path, request.query) == ("POST", "/api/v1/maintenance", "x=1")
    assert request.body == body and request.client == LOOPBACK and request.user is None
    with socket.create_connection((LOOPBACK, server.port), timeout=5) as sock:
        sock.sendall(b"POST /api/v1/maintenance HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 411")
    assert len(seen) == 1
