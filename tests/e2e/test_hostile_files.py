"""Hostile files: config files built to exhaust the parser, and history files that cannot be
used. Real `monai-slo` processes; each run is bounded in time and in memory (a guard kills a
process past RSS_LIMIT, so a regression fails the test instead of exhausting the machine).

* A config nested 1,000 levels deep, a "billion laughs" alias bomb, a recursive alias, a
  huge or non-UTF-8 file: `validate` exits 2 with one message naming the file, quickly and in
  bounded memory; a running daemon sent SIGHUP with any of them keeps its config and serves.
* A history file that is garbage or truncated, in a directory that cannot be created or
  written, read-only or immutable: `run` exits 2 with one line naming the path, never a
  traceback, and the file's bytes are unchanged; `validate` warns about each beforehand.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monai_slo.checks.base import CheckResult
from monai_slo.history.store import HistoryStore
from tests.fixtures_dicom import free_port
from tests.fixtures_env import missing_peer
from tests.fixtures_http import HttpPeer

MONAI_SLO = str(Path(sys.executable).parent / "monai-slo")
# Far above what `validate` (~60 MB) or an idle daemon (~80 MB) needs.
RSS_LIMIT = 1024 * 1024 * 1024
# `validate` of a refused file, interpreter start-up included (~1.3 s measured).
VALIDATE_SECONDS = 10.0
# Peak RSS of `validate` refusing a hostile file (~60 MB measured).
VALIDATE_MAX_RSS = 150 * 1024 * 1024

BILLION_LAUGHS = "".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(
            f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]\n"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)

HOSTILE: dict[str, bytes] = {
    "nested_flow": b"[" * 1000,
    "nested_closed": b"[" * 999 + b"]" * 999,
    "nested_block": "".join(" " * i + f"k{i}:\n" for i in range(200)).encode() + b" " * 200 + b"v",
    "billion_laughs": BILLION_LAUGHS.encode(),
    "recursive_alias": b"environments: &a [*a]\n",
    # libyaml rescans every open flow level at each token: 10 s for this 1.2 MB file.
    "deep_then_long": b"[" * 999 + b"a," * (600 * 1024),
    "huge": b"# " + b"x" * (17 * 1024 * 1024) + b"\n",
    "not_utf8": b"environments: \xff\xfe\n",
}


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss: int
    """Peak resident set size in bytes (VmHWM, read while it runs). Not wait4's ru_maxrss:
    a child started by vfork inherits the test process's own peak into that figure."""


def _memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in bytes; zeros once the process is gone."""
    found = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(maxsplit=1)[0] if line else ""
            if key in found:
                found[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found["VmRSS:"], found["VmHWM:"]


def run_bounded(args: list[str], tmp: Path, timeout: float = 30.0) -> Outcome:
    """Run a command to completion, killing it past ``timeout`` or RSS_LIMIT."""
    out, err = tmp / "stdout", tmp / "stderr"
    started = time.monotonic()
    peak = 0
    with out.open("wb") as out_file, err.open("wb") as err_file:
        process = subprocess.Popen(args, stdout=out_file, stderr=err_file)
    try:
        while True:
            rss, high_water = _memory(process.pid)  # before wait4 reaps it
            peak = max(peak, high_water)
            pid, status, _ = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                break
            assert rss < RSS_LIMIT, f"{args} grew past {RSS_LIMIT} bytes"
            assert time.monotonic() - started < timeout, f"{args} ran past {timeout}s"
            time.sleep(0.01)  # poll interval
    finally:
        if process.returncode is None:
            process.kill()
            os.wait4(process.pid, 0)
            process.returncode = -9
    return Outcome(
        process.returncode,
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
        time.monotonic() - started,
        peak,
    )


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_validate_refuses_hostile_config(name: str, tmp_path: Path) -> None:
    """Exit 2, "config error:" and one line naming the file; no traceback; fast and small."""
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(HOSTILE[name])
    outcome = run_bounded([MONAI_SLO, "validate", "-c", str(path)], tmp_path)
    assert outcome.returncode == 2, outcome.stderr[-2000:]
    lines = outcome.stderr.splitlines()
    assert lines[0] == "config error:", lines[:5]
    assert len(lines) == 2 and lines[1].startswith(str(path)), lines[:5]
    assert "Traceback" not in outcome.stderr
    assert outcome.seconds < VALIDATE_SECONDS
    assert outcome.max_rss < VALIDATE_MAX_RSS, outcome.max_rss


# -- SIGHUP of a running daemon ------------------------------------------------------------


def _good_config(path: Path, port: int, target: int, storage: Path) -> bytes:
    text = (
        f"listen: 127.0.0.1:{port}\nstorage: {storage}\nflush_interval: 1s\n"
        "workers: 4\n"
        "environments:\n  - name: radiology\n    tier: production\n    services:\n"
        "      - name: web\n        checks:\n"
        f"          - {{name: a, kind: tcp, host: 127.0.0.1, port: {target}, "
        "interval: 0.5s, timeout: 0.4s}\n"
    ).encode()
    path.write_bytes(text)
    return text


def scrape(port: int) -> dict[str, float]:
    """Unlabelled view of /metrics: sample name (labels dropped) -> value of its last series."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        conn.close()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_for(condition: object, what: str, timeout: float = 20.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # poll interval; the loop re-checks the condition


@dataclass
class RunningDaemon:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def metrics(self) -> dict[str, float]:
        assert self.alive(), self.log.read_text()[-3000:]
        assert _memory(self.process.pid)[0] < RSS_LIMIT, "daemon grew past the RSS limit"
        try:
            return scrape(self.port)
        except OSError:
            return {}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[RunningDaemon, Path, bytes]]:
    with HttpPeer() as peer:
        port = free_port()
        config = tmp_path / "config.yaml"
        good = _good_config(config, port, peer.port, tmp_path / "history.sqlite")
        log = tmp_path / "daemon.log"
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [MONAI_SLO, "--log-level", "warning", "run", "-c", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        running = RunningDaemon(process, port, log)
        try:
            wait_for(lambda: running.metrics().get("monai_slo_check_up") == 1, "check a up")
            yield running, config, good
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


@pytest.mark.slow
def test_sighup_with_hostile_config_keeps_the_running_one(
    daemon: tuple[RunningDaemon, Path, bytes],
) -> None:
    """Each hostile file: reload fails (metric 0), the process lives within RSS_LIMIT, the old
    check keeps running and /metrics is served; one log line says why, no traceback."""
    running, config, good = daemon
    for name, content in HOSTILE.items():
        config.write_bytes(content)
        running.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: running.metrics().get("monai_slo_config_last_reload_successful") == 0,
            f"failed reload of {name} reported",
        )
        runs = running.metrics()["monai_slo_check_runs_total"]
        wait_for(
            lambda runs=runs: running.metrics().get("monai_slo_check_runs_total", 0) > runs + 1,
            f"old config still running after {name}",
        )
        assert running.alive()
        config.write_bytes(good)
        running.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: running.metrics().get("monai_slo_config_last_reload_successful") == 1,
            f"good reload after {name}",
        )
    log = running.log.read_text(errors="replace")
    failures = [line for line in log.splitlines() if "config reload failed" in line]
    assert len(failures) == len(HOSTILE), log[-3000:]
    assert all(str(config) in line for line in failures), failures
    assert "Traceback" not in log


# -- history files that cannot be used --------------------------------------------------------


def _history(path: Path) -> None:
    """A real history: 200 checks, a few hundred segments, flushed and closed."""
    store = HistoryStore(path)
    for index in range(200):
        for at in range(0, 300, 10):
            result = CheckResult(at % 30 != 0, 0.01, None, "", 1_000_000.0 + at)
            store.record(("radiology", "web", f"c{index}"), "tcp", result, staleness=60)
    store.close()


def _storage_config(tmp_path: Path, storage: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{free_port()}\nstorage: {storage}\n"
        "environments:\n  - name: radiology\n    tier: development\n    services:\n"
        "      - name: web\n        checks:\n"
        "          - {name: a, kind: tcp, host: 127.0.0.1, port: 9, interval: 10s}\n"
    )
    return config


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    path.write_bytes(os.urandom(8192))
    return path


def _truncated(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    _history(path)
    data = path.read_bytes()
    assert len(data) > 8192
    path.write_bytes(data[: len(data) // 2])
    return path


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "state").write_text("a file where a directory is expected\n")
    return tmp_path / "state" / "history.sqlite"


def _directory_in_its_place(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    path.mkdir()
    return path


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory bind-mounted read-only (root ignores file modes, not a read-only mount)."""
    directory = tmp_path / "ro"
    directory.mkdir()
    _history(directory / "history.sqlite")
    if os.geteuid() != 0:
        (directory / "history.sqlite").chmod(0o444)
        directory.chmod(0o555)
        yield directory
        directory.chmod(0o755)
        return
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(directory), str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture
def immutable_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "history.sqlite"
    _history(path)
    if shutil.which("chattr") is None:
        missing_peer("chattr is not installed (Debian e2fsprogs)")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i does not work here: {made.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _assert_refused(tmp_path: Path, storage: Path, warning: str) -> None:
    config = _storage_config(tmp_path, storage)
    before = _digest(storage)
    validated = run_bounded([MONAI_SLO, "validate", "-c", str(config)], tmp_path)
    assert validated.returncode == 0, validated.stderr
    warnings = [
        line
        for line in validated.stderr.splitlines()
        if line.startswith(f"warning: history database {storage}: ")
    ]
    assert len(warnings) == 1 and warning in warnings[0], validated.stderr
    outcome = run_bounded([MONAI_SLO, "run", "-c", str(config)], tmp_path)
    assert outcome.returncode == 2, outcome.stderr[-2000:]
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines[:10]
    assert lines[0].startswith(f"history database {storage}: "), lines[0]
    assert "Traceback" not in outcome.stderr
    assert _digest(storage) == before, "the history file was changed"


@pytest.mark.parametrize(
    ("make", "warning"),
    [
        (_garbage, "is not a SQLite database"),
        (_under_a_file, "is not a directory"),
        (_directory_in_its_place, "is a directory"),
    ],
    ids=["garbage", "under_a_file", "directory_in_its_place"],
)
def test_run_refuses_an_unusable_history_file(tmp_path: Path, make: object, warning: str) -> None:
    assert callable(make)
    storage = make(tmp_path)
    _assert_refused(tmp_path, storage, warning)


def test_run_refuses_a_truncated_history_file(tmp_path: Path) -> None:
    """`validate` cannot see damage without reading the whole file; `run` refuses it."""
    storage = _truncated(tmp_path)
    config = _storage_config(tmp_path, storage)
    before = _digest(storage)
    outcome = run_bounded([MONAI_SLO, "run", "-c", str(config)], tmp_path)
    assert outcome.returncode == 2, outcome.stderr[-2000:]
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"history database {storage}: is damaged")
    assert "sqlite3 FILE .recover" in lines[0]
    assert _digest(storage) == before


def test_run_refuses_a_read_only_history_file(tmp_path: Path, read_only_dir: Path) -> None:
    _assert_refused(tmp_path, read_only_dir / "history.sqlite", "cannot be opened for writing")


def test_run_refuses_to_create_history_in_a_read_only_directory(
    tmp_path: Path, read_only_dir: Path
) -> None:
    _assert_refused(tmp_path, read_only_dir / "new" / "history.sqlite", "directory")


def test_run_refuses_an_immutable_history_file(tmp_path: Path, immutable_file: Path) -> None:
    _assert_refused(tmp_path, immutable_file, "cannot be opened for writing")
