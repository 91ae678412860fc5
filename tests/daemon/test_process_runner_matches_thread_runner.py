"""Worker processes (``worker_processes: N``) against the daemon's own threads: the same
checks against the same real peers record the same outcomes; a worker process that dies
costs only the checks it was running and is replaced; stopping leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import CheckRef, load_config
from monai_slo.daemon.process_pool import WorkerProcesses
from monai_slo.daemon.runner import CheckRunner
from tests.fixtures_daemon import DaemonProcess, until
from tests.fixtures_dicom import StorescpPeer, free_port
from tests.fixtures_http import HttpPeer, Route

pytestmark = pytest.mark.timeout(90)


class _Results:
    def __init__(self) -> None:
        self.by_name: dict[str, list[CheckResult]] = {}
        self._changed = threading.Condition()

    def __call__(self, ref: CheckRef, result: CheckResult) -> None:
        with self._changed:
            self.by_name.setdefault(ref.config.name, []).append(result)
            self._changed.notify_all()

    def wait_for(self, names: list[str], timeout: float = 20.0) -> dict[str, CheckResult]:
        with self._changed:
            self._changed.wait_for(lambda: all(n in self.by_name for n in names), timeout)
            return {n: self.by_name[n][0] for n in names if n in self.by_name}


def _refs(tmp_path: Path, checks: list[dict[str, object]]) -> list[CheckRef]:
    path = tmp_path / "c.yaml"
    document = {
        "environments": [
            {"name": "e", "tier": "production", "services": [{"name": "s", "checks": checks}]}
        ]
    }
    path.write_text(yaml.safe_dump(document))
    return list(load_config(path).checks())


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def _run_all(refs: list[CheckRef], processes: int) -> dict[str, CheckResult]:
    results = _Results()
    pool = WorkerProcesses(processes, 8) if processes else None
    runner = CheckRunner(4, results, processes=pool)
    try:
        for ref in refs:
            assert runner.submit(ref)
        found = results.wait_for([ref.config.name for ref in refs])
    finally:
        runner.shutdown(wait=True)
    assert len(found) == len(refs), sorted(found)
    return found


@pytest.mark.slow
def test_outcomes_in_worker_processes_match_threads(
    tmp_path: Path, http_peer: HttpPeer, listener: int
) -> None:
    http_peer.routes["/broken"] = Route(503, b"down for maintenance")
    closed = free_port()
    with StorescpPeer(tmp_path / "scp") as scp, StorescpPeer(tmp_path / "no", refuse=True) as no:
        refs = _refs(
            tmp_path,
            [
                {"name": "web", "kind": "http", "url": http_peer.url},
                {"name": "web-down", "kind": "http", "url": f"{http_peer.url}/broken"},
                {"name": "web-body", "kind": "http", "url": http_peer.url, "body_regex": "nope"},
                {"name": "port", "kind": "tcp", "host": "127.0.0.1", "port": listener},
                {"name": "port-closed", "kind": "tcp", "host": "127.0.0.1", "port": closed},
                {"name": "echo", "kind": "dicom_echo", "host": "127.0.0.1", "port": scp.port,
                 "called_aet": scp.aet},
                {"name": "echo-refused", "kind": "dicom_echo", "host": "127.0.0.1",
                 "port": no.port, "called_aet": no.aet},
            ],
        )  # fmt: skip
        threads = _run_all(refs, processes=0)
        processes = _run_all(refs, processes=2)
    seen = {name: _recorded(r) for name, r in threads.items()}
    assert {name: _recorded(r) for name, r in processes.items()} == seen
    # Both kinds of answer are in the comparison, not only successes.
    assert {ok for ok, _, _ in seen.values()} == {True, False}


def _recorded(result: CheckResult) -> tuple[bool, str | None, str]:
    """What history keeps of a run, its timings aside (they differ run to run)."""
    return result.success, result.reason, re.sub(r"\d+(\.\d+)? ?m?s\b", "<t>", result.detail)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().split(b") ")[1][:1] != b"Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_a_killed_worker_process_fails_its_checks_and_is_replaced(
    tmp_path: Path, http_peer: HttpPeer
) -> None:
    """The check in flight on a killed process fails (before its deadline) saying why; a
    fresh process takes over and the next run of the same check succeeds there."""
    http_peer.delay = 8.0
    [ref] = _refs(
        tmp_path,
        [{"name": "slow", "kind": "http", "url": http_peer.url, "timeout": "6s",
          "interval": "10s"}],
    )  # fmt: skip
    results = _Results()
    runner = CheckRunner(2, results, processes=WorkerProcesses(1, 4, preload=["http"]))
    assert runner.processes is not None
    try:
        [pid] = until(runner.processes.pids, what="a worker process")
        started = time.monotonic()
        assert runner.submit(ref)
        http_peer.wait_for_request(10)  # the check is inside the process now
        os.kill(pid, signal.SIGKILL)
        result = results.wait_for(["slow"])["slow"]
        assert time.monotonic() - started < 6.0  # no wait for its deadline
        assert not result.success
        assert result.reason == FailureReason.ERROR
        assert f"worker process was killed by signal {signal.SIGKILL}" in result.detail
        [fresh] = until(runner.processes.pids, what="a replacement process")
        assert fresh != pid
        assert runner.processes.replaced == 1
        http_peer.delay = 0.0
        until(lambda: runner.in_flight() == 0, what="the first run to end")
        assert runner.submit(ref)
        until(lambda: len(results.by_name["slow"]) == 2, what="a second result")
        assert results.by_name["slow"][1].success, results.by_name["slow"][1].detail
    finally:
        runner.shutdown(wait=True)
    assert not _alive(fresh)


def _children(pid: int) -> list[int]:
    """Every child process (the worker processes and multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _workers(pid: int) -> list[int]:
    return [c for c in _children(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


@pytest.mark.slow
def test_the_daemon_stops_its_worker_processes(tmp_path: Path, listener: int) -> None:
    daemon = DaemonProcess(
        tmp_path,
        checks=[{"name": "port", "kind": "tcp", "host": "127.0.0.1", "port": listener,
                 "interval": "2s", "timeout": "1s"}],
        extra={"worker_processes": 2},
    )  # fmt: skip
    try:
        until(daemon.ready, 30, "the daemon ready")
        until(lambda: len(_workers(daemon.process.pid)) == 2, what="two worker processes")
        until(lambda: "monai_slo_check_runs_total{" in daemon.metrics(), what="a run")
        children = _children(daemon.process.pid)
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(20) == 0
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait()
    until(lambda: not any(_alive(pid) for pid in children), timeout=5, what="no orphans")


@pytest.mark.slow
def test_a_worker_process_that_stops_answering_is_killed_and_replaced(
    tmp_path: Path, listener: int
) -> None:
    """A stopped (SIGSTOP) process: its check times out at its deadline like any other, the
    process is killed ``hang_after`` later and a fresh one runs the next run."""
    [ref] = _refs(
        tmp_path,
        [{"name": "port", "kind": "tcp", "host": "127.0.0.1", "port": listener,
          "timeout": "1s", "interval": "10s"}],
    )  # fmt: skip
    results = _Results()
    pool = WorkerProcesses(1, 4, preload=["tcp"], hang_after=0.5)
    runner = CheckRunner(2, results, processes=pool, grace=0.2)
    try:
        assert pool.wait_ready(30)
        [pid] = pool.pids()
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        assert runner.submit(ref)
        result = results.wait_for(["port"])["port"]
        assert not result.success
        assert result.reason == FailureReason.TIMEOUT
        assert time.monotonic() - started < 1.0 + 0.2 + 0.5
        [fresh] = until(lambda: [p for p in pool.pids() if p != pid], what="a replacement")
        assert pool.replaced == 1
        assert not _alive(pid)
        until(lambda: runner.in_flight() == 0, what="the first run to end")
        assert runner.submit(ref)
        until(lambda: len(results.by_name["port"]) == 2, what="a second result")
        assert results.by_name["port"][1].success, results.by_name["port"][1].detail
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        runner.shutdown(wait=True)
    assert not _alive(fresh)
