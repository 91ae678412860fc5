"""The study_flow kind against real peers on loopback: canaries sent to a router (Orthanc
with a Lua forwarder, DCMTK storescp + storescu) reach the PACS (Orthanc), an AI
application's SR comes back into the canary's study, broken forwarding is not_arrived, and
a daemon following 100 canaries keeps its other checks on schedule."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from monai_slo.checks.base import CheckResult, Deadline, FailureReason
from monai_slo.checks.dicom import study_flow
from monai_slo.checks.dicom.association import run_service
from monai_slo.config.model import CheckRef, load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.daemon.runner import execute
from monai_slo.outputs import metric_names
from tests.fixtures_dicom import LOOPBACK, OrthancPeer, PynetdicomPeer, free_port, wait_for_port
from tests.fixtures_http import HttpPeer
from tests.fixtures_study_flow import (
    AiApplication,
    OrthancRouter,
    StorescpRouter,
    orthanc_get,
)

pytestmark = pytest.mark.timeout(60)

UID = re.compile(r"canary ([0-9.]+) ")


@dataclass(frozen=True)
class Spot:
    """Where a peer would be, for configs that are only validated."""

    aet: str = "PACS"
    dicom_port: int = 11112


def _ref(tmp_path: Path, check: dict[str, Any], name: str = "config.yaml") -> CheckRef:
    path = tmp_path / name
    path.write_text(
        yaml.safe_dump(
            {
                "storage": str(tmp_path / "h.sqlite"),
                "environments": [
                    {
                        "name": "radiology",
                        "tier": "staging",
                        "services": [{"name": "flow", "checks": [check]}],
                    }
                ],
            }
        )
    )
    [ref] = load_config(path).checks()
    return ref


def _flow(send: Any, *stages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "roundtrip",
        "kind": "study_flow",
        "interval": "10s",
        "timeout": "8s",
        "poll": "0.2s",
        "send": {"host": LOOPBACK, "port": send.dicom_port, "called_aet": send.aet},
        "arrive": list(stages),
        **extra,
    }


def _dicom_stage(peer: Any, name: str = "pacs", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "host": LOOPBACK,
        "port": peer.dicom_port,
        "called_aet": peer.aet,
        **extra,
    }


def _latencies(result: CheckResult) -> dict[str, float]:
    return {s.labels["stage"]: s.value for s in result.series if s.name == study_flow.LAST_LATENCY}


def _study_uid(result: CheckResult) -> str:
    found = UID.search(result.detail)
    assert found, result.detail
    return found.group(1)


@pytest.fixture(scope="module")
def ai_app(orthanc_pacs: OrthancPeer) -> Iterator[AiApplication]:
    with AiApplication(result_to=("PACS", LOOPBACK, orthanc_pacs.dicom_port), delay=1.0) as app:
        yield app


@pytest.fixture(scope="module")
def router(
    tmp_path_factory: pytest.TempPathFactory, orthanc_pacs: OrthancPeer, ai_app: AiApplication
) -> Iterator[OrthancRouter]:
    targets = {
        "pacs": ("PACS", LOOPBACK, orthanc_pacs.dicom_port),
        "ai": (ai_app.aet, LOOPBACK, ai_app.dicom_port),
    }
    with OrthancRouter(tmp_path_factory.mktemp("router"), targets=targets) as peer:
        yield peer


# --- config ---------------------------------------------------------------------------------


def test_config_defaults_and_refusals(tmp_path: Path) -> None:
    peer = Spot()
    ref = _ref(tmp_path, {**_flow(peer, _dicom_stage(peer)), "interval": "5m", "timeout": "15m"})
    config = ref.config
    assert isinstance(config, study_flow.Config)
    assert config.max_in_flight == 4  # timeout/interval + 1
    assert config.patient_id == study_flow.DEFAULT_PATIENT_ID
    assert config.effective_step_timeout == 10.0
    base = _flow(peer, _dicom_stage(peer))
    for bad in (
        {"arrive": [{"name": "x", "host": LOOPBACK}]},  # DICOM stage without port/AE
        {"arrive": [{"name": "x", "base_url": "http://h/", "host": LOOPBACK}]},
        {"arrive": [_dicom_stage(peer, "end_to_end")]},
        {"arrive": [_dicom_stage(peer), _dicom_stage(peer)]},
        {"cleanup": True},  # no orthanc_url on the last stage
        {"uid_root": "1.2.3"},  # must end with a dot
        {"patient_id": "Jane\\Doe"},
        {"arrive": [_dicom_stage(peer, series_modality="S R")]},
    ):
        with pytest.raises(ValidationError):
            study_flow.Config.model_validate({**base, **bad})


def test_canary_is_synthetic_with_new_uids(tmp_path: Path) -> None:
    peer = Spot()
    config = _ref(
        tmp_path, _flow(peer, _dicom_stage(peer), uid_root="1.2.826.0.1.3680043.10.1.")
    ).config
    assert isinstance(config, study_flow.Config)
    first, second = study_flow.make_canary(config), study_flow.make_canary(config)
    assert first.StudyInstanceUID != second.StudyInstanceUID
    assert str(first.StudyInstanceUID).startswith("1.2.826.0.1.3680043.10.1.")
    assert first.PatientID == "MONAI-SLO-CANARY"
    assert "CANARY" in first.StudyDescription
    assert first.PatientBirthDate == ""
    assert (first.Rows, first.Columns, len(first.PixelData)) == (8, 8, 64)


# --- Orthanc router -> Orthanc PACS -------------------------------------------------------


def test_orthanc_router_to_pacs_arrives_with_latency(
    tmp_path: Path, router: OrthancRouter, orthanc_pacs: OrthancPeer
) -> None:
    ref = _ref(tmp_path, _flow(router, _dicom_stage(orthanc_pacs)))
    started = time.monotonic()
    result = execute(ref)
    assert result.success, result.detail
    latencies = _latencies(result)
    assert set(latencies) == {"pacs", "end_to_end"}
    assert 0 < latencies["pacs"] == latencies["end_to_end"] < time.monotonic() - started
    uid = _study_uid(result)
    [study] = orthanc_get(orthanc_pacs, "/tools/lookup", method="POST", body=uid)
    assert study["Type"] == "Study"
    tags = orthanc_get(orthanc_pacs, f"/studies/{study['ID']}")["PatientMainDicomTags"]
    assert tags["PatientID"] == "MONAI-SLO-CANARY"


def test_stage_look_up_asks_only_for_the_canary(tmp_path: Path, orthanc_pacs: OrthancPeer) -> None:
    """The C-FIND carries the canary's StudyInstanceUID and nothing else that could match
    a patient; against a PACS holding other studies it finds exactly the canary."""
    with PynetdicomPeer(aet="PACS", find_statuses=[0x0000]) as spy:
        config = _ref(tmp_path, _flow(spy, _dicom_stage(spy), timeout="1s", interval="2s")).config
        assert isinstance(config, study_flow.Config)
        outcome = run_service(
            study_flow._dicom_config(config, config.arrive[0], 2.0),
            Deadline(2.0),
            study_flow._Lookup("1.2.3.4", None),
        )
        assert outcome.success, outcome.detail
        [query] = spy.find_queries
        assert {e.keyword for e in query} == {"QueryRetrieveLevel", "StudyInstanceUID"}
        assert query.StudyInstanceUID == "1.2.3.4"
    # The real PACS by now holds several canaries (earlier tests): one answer for one UID.
    studies = orthanc_get(orthanc_pacs, "/studies")
    assert studies, "earlier tests left canaries in the PACS"
    uid = orthanc_get(orthanc_pacs, f"/studies/{studies[0]}")["MainDicomTags"]["StudyInstanceUID"]
    lookup = study_flow._Lookup(uid, None)
    pacs_config = _ref(tmp_path, _flow(orthanc_pacs, _dicom_stage(orthanc_pacs)), "p.yaml").config
    assert isinstance(pacs_config, study_flow.Config)
    outcome = run_service(
        study_flow._dicom_config(pacs_config, pacs_config.arrive[0], 5.0), Deadline(5.0), lookup
    )
    assert outcome.success and outcome.values["found"] == 1, outcome


def test_cleanup_deletes_the_canary_from_the_last_stage(
    tmp_path: Path, router: OrthancRouter, orthanc_pacs: OrthancPeer
) -> None:
    stage = _dicom_stage(orthanc_pacs, orthanc_url=orthanc_pacs.url)
    result = execute(_ref(tmp_path, _flow(router, stage, cleanup=True)))
    assert result.success, result.detail
    assert "deleted from pacs" in result.detail
    uid = _study_uid(result)
    assert orthanc_get(orthanc_pacs, "/tools/lookup", method="POST", body=uid) == []


def test_dicomweb_stage_sees_the_canary(
    tmp_path: Path, router: OrthancRouter, orthanc_pacs: OrthancPeer
) -> None:
    stage = {"name": "pacs-web", "base_url": f"{orthanc_pacs.url}/dicom-web"}
    result = execute(_ref(tmp_path, _flow(router, stage)))
    assert result.success, result.detail
    assert "pacs-web" in _latencies(result)


# --- the AI application's result -------------------------------------------------------------


def test_series_modality_waits_for_the_ai_result(
    tmp_path: Path, router: OrthancRouter, orthanc_pacs: OrthancPeer, ai_app: AiApplication
) -> None:
    stages = (
        _dicom_stage(orthanc_pacs),
        {"name": "ai-result", "base_url": f"{orthanc_pacs.url}/dicom-web", "series_modality": "SR"},
        _dicom_stage(orthanc_pacs, "ai-result-dimse", series_modality="SR"),
    )
    result = execute(_ref(tmp_path, _flow(router, *stages)))
    assert result.success, result.detail
    latencies = _latencies(result)
    # The AI application answers a second after it received the canary.
    assert latencies["pacs"] < 1.0 <= latencies["ai-result"] <= latencies["ai-result-dimse"]
    assert latencies["end_to_end"] == latencies["ai-result-dimse"]
    assert ai_app.results_sent >= 1


# --- DCMTK router ---------------------------------------------------------------------------


def test_storescp_router_forwards_to_pacs(tmp_path: Path, orthanc_pacs: OrthancPeer) -> None:
    target = ("PACS", LOOPBACK, orthanc_pacs.dicom_port)
    with StorescpRouter(tmp_path / "dcm", target=target) as dcm_router:
        result = execute(_ref(tmp_path, _flow(dcm_router, _dicom_stage(orthanc_pacs))))
    assert result.success, result.detail
    assert _latencies(result)["pacs"] > 0


# --- failures -------------------------------------------------------------------------------


def test_broken_forwarding_is_not_arrived_naming_the_stage(
    tmp_path: Path, router: OrthancRouter, orthanc_pacs: OrthancPeer
) -> None:
    router.set_forwarding(False)
    try:
        ref = _ref(tmp_path, _flow(router, _dicom_stage(orthanc_pacs), timeout="2s", interval="3s"))
        started = time.monotonic()
        result = execute(ref)
        took = time.monotonic() - started
    finally:
        router.set_forwarding(True)
    assert not result.success
    assert result.reason is FailureReason.NOT_ARRIVED, result.detail
    assert "not seen at pacs" in result.detail
    assert 2.0 - 0.05 <= took < 2.5  # the last look-up may end just short of the deadline


def test_send_rejected_is_store_failed(tmp_path: Path, orthanc_pacs: OrthancPeer) -> None:
    with PynetdicomPeer(aet="ROUTER") as no_storage:  # Verification only: SC not accepted
        check = _flow(no_storage, _dicom_stage(orthanc_pacs), timeout="2s", interval="3s")
        result = execute(_ref(tmp_path, check))
    assert result.reason is FailureReason.STORE_FAILED, result.detail
    assert "C-STORE of the canary to ROUTER@" in result.detail
    assert "context_rejected" in result.detail


def test_router_not_listening_is_refused(tmp_path: Path, orthanc_pacs: OrthancPeer) -> None:
    check = _flow(
        Spot("ROUTER", free_port()), _dicom_stage(orthanc_pacs), timeout="2s", interval="3s"
    )
    result = execute(_ref(tmp_path, check))
    assert result.reason is FailureReason.REFUSED, result.detail


def test_stage_look_up_failure_says_its_reason(tmp_path: Path, router: OrthancRouter) -> None:
    with PynetdicomPeer(aet="PACS") as no_find:  # Verification only: C-FIND not accepted
        check = _flow(router, _dicom_stage(no_find), timeout="1s", interval="3s")
        result = execute(_ref(tmp_path, check))
    assert result.reason is FailureReason.CONTEXT_REJECTED, result.detail
    assert "not seen at pacs" in result.detail


# --- a real daemon --------------------------------------------------------------------------


def _until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)  # poll interval, not synchronisation: the loop re-checks


def _daemon_config(tmp_path: Path, checks: list[dict[str, Any]], **top: Any) -> Path:
    path = tmp_path / "daemon.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{free_port()}",
                "storage": str(tmp_path / "history.sqlite"),
                **top,
                "environments": [
                    {
                        "name": "radiology",
                        "tier": "staging",
                        "services": [{"name": "flow", "checks": checks}],
                    }
                ],
            }
        )
    )
    return path


@pytest.mark.slow
def test_daemon_records_the_outage_of_a_broken_flow(
    tmp_path: Path, router: OrthancRouter, orthanc_pacs: OrthancPeer
) -> None:
    """Forwarding off for a few seconds: canaries sent meanwhile are not_arrived, and the
    history's downtime matches the outage within one interval."""
    interval = 1.0
    check = _flow(router, _dicom_stage(orthanc_pacs), interval="1s", timeout="2.5s")
    daemon = Daemon(load_config(_daemon_config(tmp_path, [check])))
    [ref] = daemon.config.checks()
    daemon.start()
    try:

        def last() -> CheckResult | None:
            with daemon.counters.lock:
                return daemon.counters.last.get(ref.key)

        _until(lambda: (r := last()) is not None and r.success, 15, "a canary arrived")
        router.set_forwarding(False)
        broken = time.time()
        try:
            _until(
                lambda: (r := last()) is not None and r.reason is FailureReason.NOT_ARRIVED,
                15,
                "a canary lost",
            )
            _until(lambda: time.time() - broken >= 5.0, 10, "five seconds of outage")
        finally:
            router.set_forwarding(True)
        mended = time.time()
        _until(
            lambda: (r := last()) is not None and r.success and r.timestamp > mended,
            15,
            "canaries arriving again",
        )
        check_id = daemon.store.known_id(ref.key)
        assert check_id is not None
        now = time.time()
        [segments] = daemon.store.segments([check_id], broken - 30, now).values()
        down = sum(s.end - s.start for s in segments if not s.up)
        assert abs(down - (mended - broken)) <= interval + 0.3, (down, mended - broken)
        in_flight = daemon.view.in_flight()
        assert in_flight.get(ref.key, 0) <= ref.config.max_in_flight  # type: ignore[attr-defined]
        port = int(daemon.config.listen.rsplit(":", 1)[1])
        scraped = _scrape(port)
        histogram = f"{metric_names.STUDY_FLOW_LATENCY_SECONDS}_count"
        assert _total(scraped, histogram, stage="pacs") >= 2
        assert _total(scraped, histogram, stage="end_to_end") >= 2
        assert 0 < _total(scraped, metric_names.STUDY_FLOW_LAST_LATENCY_SECONDS, stage="pacs") < 2.5
        assert (metric_names.STUDY_FLOW_IN_FLIGHT, frozenset(_labels(ref).items())) in scraped
        failures = metric_names.total(metric_names.CHECK_FAILURES)
        assert _total(scraped, failures, reason="not_arrived") >= 1
    finally:
        daemon.stop()


def _labels(ref: CheckRef) -> dict[str, str]:
    return {
        "environment": ref.environment,
        "tier": ref.tier,
        "service": ref.service,
        "check": ref.config.name,
        "kind": ref.config.kind,
    }


def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _total(
    scraped: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in scraped.items() if n == name and want <= ls)


@pytest.mark.slow
def test_a_hundred_canaries_in_flight_keep_other_checks_on_schedule(tmp_path: Path) -> None:
    """Ten flows, each sending a canary every second that a stage never sees (until their
    11 s timeout): over 100 canaries in flight hold no threads, and the daemon's other
    check starts on time (p99 start lateness under 1 s); threads and descriptors stay
    bounded."""
    with AiApplication(aet="ROUTER") as sink, HttpPeer(status=200, body=b"[]") as stage:
        flows = [
            {
                "name": f"flow-{n}",
                "kind": "study_flow",
                "interval": "1s",
                "timeout": "11s",
                "poll": "3s",
                "send": {"host": LOOPBACK, "port": sink.dicom_port, "called_aet": "ROUTER"},
                "arrive": [
                    {"name": "slow", "base_url": f"http://127.0.0.1:{stage.port}/dicom-web"}
                ],
            }
            for n in range(10)
        ]
        other = {
            "name": "tcp",
            "kind": "tcp",
            "host": LOOPBACK,
            "port": stage.port,
            "interval": "1s",
            "timeout": "0.5s",
        }
        path = _daemon_config(tmp_path, [*flows, other], workers=8)
        port = int(yaml.safe_load(path.read_text())["listen"].rsplit(":", 1)[1])
        monai_slo = Path(sys.executable).with_name("monai-slo")
        process = subprocess.Popen(
            [str(monai_slo), "run", "-c", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            daemon = psutil.Process(process.pid)
            wait_for_port(port, process=process)  # type: ignore[arg-type]
            peak = {"threads": 0, "fds": 0, "in_flight": 0.0}

            def hundred_in_flight() -> bool:
                scraped = _scrape(port)
                in_flight = _total(scraped, metric_names.STUDY_FLOW_IN_FLIGHT)
                peak["in_flight"] = max(peak["in_flight"], in_flight)
                peak["threads"] = max(peak["threads"], daemon.num_threads())
                peak["fds"] = max(peak["fds"], daemon.num_fds())
                return in_flight >= 100

            _until(hundred_in_flight, 30, "100 canaries in flight")
            cpu = daemon.cpu_times()
            scraped = _scrape(port)
            lateness = metric_names.SCHEDULER_START_LATENESS_SECONDS
            starts = _total(scraped, f"{lateness}_count")
            on_time = sum(
                value
                for (name, labels), value in scraped.items()
                if name == f"{lateness}_bucket" and float(dict(labels)["le"]) == 1.0
            )
            assert starts >= 100
            assert on_time >= 0.99 * starts, (on_time, starts)
            tcp_runs = _total(scraped, metric_names.total(metric_names.CHECK_RUNS), check="tcp")
            assert tcp_runs >= 10  # one a second all along
            assert peak["threads"] <= 40, peak
            assert peak["fds"] <= 80, peak
            sent = sink.received
            print(f"peak {peak}; {sent} canaries sent; daemon CPU {cpu.user + cpu.system:.2f}s")
        finally:
            process.terminate()
            process.wait(10)


@pytest.mark.slow
def test_bench_row_for_one_canary(orthanc_pacs: OrthancPeer) -> None:
    """bench/canary.py's row: a few canaries to a real Orthanc beside the plain pynetdicom
    floor of the same C-STORE + C-FIND, both measured, the look-ups counted (the bench runs
    100; this keeps its code working)."""
    from bench.canary import measure

    notes: list[str] = []
    there = (orthanc_pacs.aet, orthanc_pacs.dicom_port)
    row = measure("Orthanc", there, there, 3, notes, store_baseline=True)
    assert row.unit == "ms" and row.value > 0 and row.met is not None
    names = [b.name for b in row.baselines]
    assert names == ["pynetdicom C-STORE + C-FIND (floor)", "pynetdicom C-STORE alone"]
    assert all(b.value > 0 for b in row.baselines)
    assert notes == ["study_flow, Orthanc: 1.00 look-ups per canary (3 canaries)"]
