"""Peer and operator text is data: markup, terminal control and backtracking patterns in what
a peer or an operator sends never crash an output, reach the terminal or freeze the daemon."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monai_slo.checks import dicomweb, http
from monai_slo.checks.base import CheckResult, Deadline, FailureReason
from monai_slo.config.model import load_config
from monai_slo.history.store import HistoryStore
from monai_slo.safe_text import CleanFormatter, clean
from tests.fixtures_net import ScriptedPeer

# Markup that rich would parse (and choke on), an ANSI colour and screen-clear, an OSC
# title change ending in BEL, a forged log line and a right-to-left override.
HOSTILE = "[/][bold]x[/bold] \x1b[31mred\x1b[2J \x1b]0;pwned\x07 \nFORGED line \u202eevil"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monai_slo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _assert_inert(output: str) -> None:
    assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
    assert "Traceback" not in output
    assert "\nFORGED" not in output


@pytest.fixture
def hostile_http() -> Iterator[ScriptedPeer]:
    reason = HOSTILE.replace("\n", " ").encode()
    peer = ScriptedPeer(b"HTTP/1.1 503 " + reason + b"\r\nContent-Length: 0\r\n\r\n")
    yield peer
    peer.close()


def _config(tmp_path: Path, checks: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage: {tmp_path / 'history.sqlite'}\n"
        "environments:\n  - name: radiology\n    tier: staging\n    services:\n"
        "      - name: pacs\n        checks:\n" + checks
    )
    return path


def test_check_table_shows_a_hostile_reason_phrase_literally(
    tmp_path: Path, hostile_http: ScriptedPeer
) -> None:
    """A DICOMweb reason phrase full of markup and escape sequences fails its check (exit 1)
    and is shown escaped: no crash, no control character reaches the terminal."""
    path = _config(
        tmp_path,
        "          - {name: qido, kind: dicomweb, "
        f"base_url: 'http://127.0.0.1:{hostile_http.port}/dicom-web'}}\n",
    )
    done = _cli("--log-level", "debug", "check", "-c", str(path))
    assert done.returncode == 1, done.stderr
    assert "[/][bold]x[/bold]" in done.stdout
    assert "\\x1b[31mred" in done.stdout
    _assert_inert(done.stdout)
    _assert_inert(done.stderr)


def test_status_survives_a_hostile_detail_already_in_history(tmp_path: Path) -> None:
    """A detail recorded by an earlier version (unescaped) cannot crash `status`."""
    path = _config(
        tmp_path, "          - {name: echo, kind: tcp, host: 127.0.0.1, port: 9, interval: 10s}\n"
    )
    store = HistoryStore(tmp_path / "history.sqlite")
    result = CheckResult(False, 0.01, FailureReason.PROTOCOL, HOSTILE, time.time())
    store.record(("radiology", "pacs", "echo"), "tcp", result, staleness=30.0)
    assert store.flush()
    store.close()

    done = _cli("status", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert "[/][bold]x[/bold]" in done.stdout
    _assert_inert(done.stdout)


def test_maintenance_reason_is_data(tmp_path: Path) -> None:
    """A maintenance reason with markup and escapes is listed literally."""
    path = _config(
        tmp_path, "          - {name: echo, kind: tcp, host: 127.0.0.1, port: 9, interval: 10s}\n"
    )
    started = _cli(
        "maintenance", "-c", str(path), "start", "--service", "pacs", "--for", "1h",
        "--reason", HOSTILE,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    listed = _cli("maintenance", "-c", str(path), "list")
    assert listed.returncode == 0, listed.stderr
    assert "[/][bold]x[/bold]" in listed.stdout
    _assert_inert(listed.stdout)


def test_log_records_stay_one_line() -> None:
    """A peer's newline or escape in a log message is escaped: one record, one line."""
    formatter = CleanFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "peer said %s", (HOSTILE,), None)
    line = formatter.format(record)
    assert "\n" not in line
    _assert_inert(line)


def test_clean_bounds_length() -> None:
    """Escaping never lets a string grow past its bound."""
    assert len(clean("\x1b" * 10_000, 300)) == 300
    assert clean("plain text") == "plain text"


@pytest.mark.parametrize("copies", [28, 4096])
def test_backtracking_pattern_cannot_freeze_the_interpreter(tmp_path: Path, copies: int) -> None:
    """``(a+)+$`` against a body of a's and one b takes seconds in a backtracking engine;
    here it is a body_mismatch within milliseconds, and the interpreter stays free."""
    body = b"a" * copies + b"b"
    peer = ScriptedPeer(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    try:
        config = http.Config(
            name="w", kind="http", url=f"http://127.0.0.1:{peer.port}/", body_regex="(a+)+$"
        )
        ticks = 0
        stop = threading.Event()

        def tick() -> None:  # another thread that must keep running meanwhile
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                time.sleep(0.001)

        ticker = threading.Thread(target=tick)
        ticker.start()
        started = time.monotonic()
        outcome = http.run(config, Deadline(5))
        took = time.monotonic() - started
        stop.set()
        ticker.join()
    finally:
        peer.close()
    assert outcome.reason is FailureReason.BODY_MISMATCH, outcome
    assert took < 0.5, f"matching took {took:.2f}s"
    assert ticks > 0


def test_patterns_that_need_backtracking_are_refused_at_load(tmp_path: Path) -> None:
    """A backreference cannot be matched in linear time: validate names the field and exits 2."""
    path = _config(
        tmp_path,
        "          - {name: web, kind: http, url: 'http://127.0.0.1:9/', body_regex: '(a)\\1'}\n",
    )
    done = _cli("validate", "-c", str(path))
    assert done.returncode == 2
    assert "body_regex" in done.stdout + done.stderr
    assert "RE2" in done.stdout + done.stderr
    with pytest.raises(Exception, match="expect_banner_regex"):
        load_config(
            _config(
                tmp_path,
                "          - {name: s, kind: ssh, host: 127.0.0.1, expect_banner_regex: '(?=x)'}\n",
            )
        )


def test_deeply_nested_dicomweb_json_is_protocol() -> None:
    """A QIDO-RS body nested beyond what the JSON parser reads is a malformed answer
    (protocol), not an internal error."""
    body = b"[" * 100_000 + b"]" * 100_000
    peer = ScriptedPeer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    try:
        config = dicomweb.Config(
            name="q", kind="dicomweb", base_url=f"http://127.0.0.1:{peer.port}/dicom-web"
        )
        outcome = dicomweb.run(config, Deadline(5))
    finally:
        peer.close()
    assert outcome.reason is FailureReason.PROTOCOL, outcome
    assert "nested" in outcome.detail
    json.dumps(outcome.detail)  # the detail is plain text
