"""Hostile DICOM peers cost a check its deadline and a bounded read, never more.

The peers (:class:`tests.fixtures_dicom.HostileDicomPeers`, in a child process on
loopback) answer the association request with an A-ASSOCIATE-AC that dribbles one byte
per 100 ms, one announcing a 4 GB PDU, a valid acceptance followed by an endless stream
of P-DATA-TF command fragments (fast and slow), or an A-ASSOCIATE-AC without its
mandatory items; the TLS variants do the same after a TLS handshake.
"""

from __future__ import annotations

import gc
import http.client
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.dicom import echo as dicom_echo
from monai_slo.checks.dicom import find as dicom_find
from monai_slo.checks.dicom import store_context as dicom_store_context
from tests.fixtures_dicom import HOSTILE_MODES, HostileDicomPeers, PynetdicomPeer, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TIMEOUT = 1.0
# The deadline plus what ending pynetdicom's threads may take (measured: under 0.15 s).
MAX_SECONDS = 1.5
# The bytes one association may read: C-FIND 4 MiB, the others 64 KiB.
FIND_READ_LIMIT = 4 * 1024 * 1024
READ_LIMIT = 64 * 1024


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    directory = tmp_path_factory.mktemp("hostile-pki")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    leaf.cert_chain_pems[0].write_to_path(str(files.cert))
    leaf.private_key_pem.write_to_path(str(files.key))
    return files


@pytest.fixture(scope="module")
def hostile(tls_files: TlsFiles) -> Iterator[HostileDicomPeers]:
    """Every hostile mode, plain and over TLS, for the whole module."""
    with HostileDicomPeers(tls_files.cert, tls_files.key) as peers:
        yield peers


# kind as named in tests -> (module, kind, over TLS)
KINDS: dict[str, tuple[Any, str, bool]] = {
    "dicom_find": (dicom_find, "dicom_find", False),
    "dicom_store_context": (dicom_store_context, "dicom_store_context", False),
    "dicom_echo": (dicom_echo, "dicom_echo", False),  # the lean path
    "dicom_echo+tls": (dicom_echo, "dicom_echo", True),  # pynetdicom's association
}


def _limit(kind: str) -> int:
    return FIND_READ_LIMIT if kind == "dicom_find" else READ_LIMIT


def expected(mode: str, kind: str) -> tuple[FailureReason | None, str]:
    """The reason (None: success) and a part of the detail a run against ``mode`` gives."""
    if mode == "silent_after_ac":
        if kind == "dicom_store_context":
            return None, "(release not confirmed)"
        operation = "C-FIND" if kind == "dicom_find" else "C-ECHO"
        return FailureReason.TIMEOUT, f"no {operation} response within"
    if mode == "garbled_command":
        if kind == "dicom_store_context":
            # It sends no request: the garbage arrives while it releases an accepted context.
            return None, "(release not confirmed)"
        operation = "C-FIND" if kind == "dicom_find" else "C-ECHO"
        return FailureReason.PROTOCOL, f"invalid {operation} response from peer"
    too_much = f"peer sent more than {_limit(kind)} bytes"
    if mode == "dribble":
        return FailureReason.TIMEOUT, "peer still sending in its association answer"
    if mode == "slow_flood" and kind == "dicom_find":
        # 160 KB/s stays under the C-FIND bound: the response never completes in time.
        return FailureReason.TIMEOUT, "C-FIND response still incomplete"
    if mode in ("huge_pdu", "flood", "slow_flood"):
        return FailureReason.PROTOCOL, too_much
    missing = "application context" if mode == "truncated_ac" else "presentation context"
    return FailureReason.PROTOCOL, f"malformed A-ASSOCIATE-AC from peer: no {missing} item"


def config(kind: str, port: int, tls_files: TlsFiles) -> Any:
    module, name, tls = KINDS[kind]
    values: dict[str, Any] = {
        "name": "hostile",
        "kind": name,
        "host": "127.0.0.1",
        "port": port,
        "timeout": f"{TIMEOUT}s",
    }
    if tls:
        values.update(tls=True, ca_file=str(tls_files.ca))
    return module.Config.model_validate(values)


def timed_run(kind: str, port: int, tls_files: TlsFiles) -> tuple[CheckOutcome | None, float]:
    """One run with a 1 s timeout; (outcome, seconds), outcome None if still held after 5 s.

    On its own thread, so a run that holds on does not hold the test with it.
    """
    module = KINDS[kind][0]
    cfg = config(kind, port, tls_files)
    outcomes: list[CheckOutcome] = []
    start = time.monotonic()
    thread = threading.Thread(
        target=lambda: outcomes.append(module.run(cfg, Deadline(TIMEOUT))), daemon=True
    )
    thread.start()
    thread.join(5.0)
    return (outcomes[0] if outcomes else None), time.monotonic() - start


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)  # poll interval; the loop re-checks the condition


def _port(hostile: HostileDicomPeers, mode: str, kind: str) -> int:
    return hostile.port(mode, tls=KINDS[kind][2])


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("mode", HOSTILE_MODES)
def test_hostile_peer_costs_at_most_the_deadline(
    mode: str, kind: str, hostile: HostileDicomPeers, tls_files: TlsFiles
) -> None:
    """A 1 s check against each hostile peer returns within 1.5 s (every read gives up at
    the deadline, not per recv; cleanup waits at most a short grace), fails with the reason
    that says what the peer did (timeout for a dribbled answer or an endless slow response,
    protocol for more bytes than the check's bound, announced or sent, and for an
    A-ASSOCIATE-AC without its mandatory items or a garbled command set), no exception
    escapes pynetdicom's threads (Python would print it on stderr) and no thread is left
    behind."""
    threads = threading.active_count()
    outcome, seconds = timed_run(kind, _port(hostile, mode, kind), tls_files)
    assert outcome is not None, f"run still held after {seconds:.1f}s"
    assert seconds <= MAX_SECONDS, f"took {seconds:.2f}s: {outcome.detail}"
    reason, words = expected(mode, kind)
    assert (outcome.reason, words in outcome.detail) == (reason, True), outcome.detail
    wait_until(lambda: threading.active_count() <= threads, 2.0, "pynetdicom's threads to end")


RUNS = 50


@pytest.mark.parametrize("kind", ["dicom_find", "dicom_echo", "dicom_echo+tls"])
def test_flooded_runs_leave_no_garbage(
    kind: str, hostile: HostileDicomPeers, tls_files: TlsFiles
) -> None:
    """50 failed runs against a flooding peer grow this process's RSS by under 50 MiB with
    the cyclic garbage collector off: each run reads at most its bound and what it read is
    freed when the run ends, not when a full collection finds pynetdicom's cycles."""
    process = psutil.Process()
    port = hostile.port("flood", tls=KINDS[kind][2])
    for _ in range(3):  # warm up: imports, caches, the allocator's first arenas
        timed_run(kind, port, tls_files)
    gc.collect()
    threads = threading.active_count()
    before = process.memory_info().rss
    gc.disable()
    try:
        for _ in range(RUNS):
            outcome, _seconds = timed_run(kind, port, tls_files)
            assert outcome is not None and outcome.reason is FailureReason.PROTOCOL
        growth = process.memory_info().rss - before
    finally:
        gc.enable()
    assert growth < 50 * 2**20, f"RSS grew {growth / 2**20:.0f} MiB over {RUNS} runs"
    wait_until(lambda: threading.active_count() <= threads, 2.0, "threads back to baseline")


# --- The daemon -------------------------------------------------------------------------------


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        conn.close()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and set(labels.items()) <= sample_labels
    )


HOSTILE_CHECKS = [
    ("find-flood", "dicom_find", "flood", False),
    ("find-dribble", "dicom_find", "dribble", False),
    ("find-slow", "dicom_find", "slow_flood", False),
    ("store-huge", "dicom_store_context", "huge_pdu", False),
    ("store-flood", "dicom_store_context", "flood", False),
    ("echo-flood", "dicom_echo", "flood", False),
    ("echo-tls-flood", "dicom_echo", "flood", True),
    ("echo-tls-dribble", "dicom_echo", "dribble", True),
    ("echo-truncated", "dicom_echo", "truncated_ac", False),
    ("find-garbled", "dicom_find", "garbled_command", False),
]


def test_daemon_against_hostile_peers(
    tmp_path: Path, hostile: HostileDicomPeers, tls_files: TlsFiles
) -> None:
    """`monai-slo run` with ten checks (2 s interval, 1 s timeout) against hostile peers and
    two against a healthy pynetdicom SCP: the healthy checks stay up on every scrape, the
    hostile ones fail with timeout or protocol, the daemon's RSS grows by under 50 MiB and
    its thread count stays bounded once warmed up, and nothing is written to stderr (no
    pynetdicom traceback, no pydicom warning)."""
    with PynetdicomPeer(find_statuses=[0x0000]) as healthy:
        lines = []
        for name, kind, mode, tls in HOSTILE_CHECKS:
            extra = f", tls: true, ca_file: '{tls_files.ca}'" if tls else ""
            lines.append(
                f"          - {{name: {name}, kind: {kind}, host: 127.0.0.1, "
                f"port: {hostile.port(mode, tls=tls)}{extra}}}\n"
            )
        lines.append(
            f"          - {{name: healthy-echo, kind: dicom_echo, host: 127.0.0.1, "
            f"port: {healthy.port}, called_aet: PYNETDICOM}}\n"
        )
        lines.append(
            f"          - {{name: healthy-find, kind: dicom_find, host: 127.0.0.1, "
            f"port: {healthy.port}, called_aet: PYNETDICOM}}\n"
        )
        listen = free_port()
        path = tmp_path / "hostile.yaml"
        path.write_text(
            f"listen: 127.0.0.1:{listen}\n"
            "storage: history.sqlite\n"
            "defaults: {interval: 2s, timeout: 1s}\n"
            "environments:\n"
            "  - name: radiology\n    tier: production\n    window: 1d\n    services:\n"
            "      - name: pacs\n        checks:\n" + "".join(lines)
        )
        stderr_path = tmp_path / "stderr.log"
        with stderr_path.open("wb") as stderr:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "monai_slo", "run", "-c", str(path)],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        try:
            _watch_daemon(daemon, listen, stderr_path)
        finally:
            daemon.terminate()
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(5)
    errors = stderr_path.read_text(errors="replace")
    assert "Traceback" not in errors, errors[-3000:]
    # The daemon logs to stderr; neither library may add a line of its own.
    assert not re.search(r" (pynetdicom|pydicom)[.:]", errors), errors[-3000:]


def _watch_daemon(daemon: subprocess.Popen[bytes], listen: int, stderr: Path) -> None:
    process = psutil.Process(daemon.pid)

    seen: list[object] = [None]  # the last scrape's runs or error, for the failure message

    def scraped() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        try:
            return scrape(listen)
        except OSError as exc:
            seen[0] = exc
            return None

    def hostile_runs(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        return min(
            sample(samples, "monai_slo_check_runs_total", check=c[0]) for c in HOSTILE_CHECKS
        )

    def warmed() -> bool:
        assert daemon.poll() is None, stderr.read_text(errors="replace")[-3000:]
        samples = scraped()
        if samples is None:
            return False
        seen[0] = {
            c[0]: sample(samples, "monai_slo_check_runs_total", check=c[0]) for c in HOSTILE_CHECKS
        }
        return hostile_runs(samples) >= 3

    wait_until(warmed, 30.0, f"three runs of every hostile check: {seen}")
    rss, threads = process.memory_info().rss, process.num_threads()
    peak_threads = threads
    until = time.monotonic() + 15.0
    scrapes = 0
    while time.monotonic() < until:
        samples = scrape(listen)
        scrapes += 1
        for check in ("healthy-echo", "healthy-find"):
            assert sample(samples, "monai_slo_check_up", check=check) == 1, check
        peak_threads = max(peak_threads, process.num_threads())
        time.sleep(0.25)  # scrape interval; each pass asserts on what it reads
    samples = scrape(listen)
    for name, kind, mode, _tls in HOSTILE_CHECKS:
        reason = expected(mode, "dicom_find" if kind == "dicom_find" else "dicom_echo")[0]
        assert reason is not None
        failures = sample(
            samples, "monai_slo_check_failures_total", check=name, reason=reason.value
        )
        runs = sample(samples, "monai_slo_check_runs_total", check=name)
        assert failures >= runs - 1 >= 7, (name, reason, failures, runs)
    assert sample(samples, "monai_slo_check_skipped_runs_total", check="healthy-echo") == 0
    growth = process.memory_info().rss - rss
    assert growth < 50 * 2**20, f"daemon RSS grew {growth / 2**20:.0f} MiB"
    assert peak_threads <= threads + 12, (threads, peak_threads)
