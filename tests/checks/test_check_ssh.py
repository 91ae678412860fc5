"""The ssh check against a real OpenSSH sshd and scripted listeners on loopback."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest
from pydantic import ValidationError

from monai_slo.checks import ssh
from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.registry import KINDS
from tests.fixtures_dicom import (
    LOOPBACK,
    SilentListener,
    _ProcessPeer,
    free_port,
    open_fd_count,
    require_binary,
    wait_for_port,
)
from tests.fixtures_http import HttpPeer

GRACE = 0.3  # scheduling slack on a loaded CI machine


def config(port: int, **keys: Any) -> ssh.Config:
    data: dict[str, Any] = {
        "name": "ssh",
        "kind": "ssh",
        "host": LOOPBACK,
        "port": port,
        "interval": 10,
        "timeout": 2,
    }
    data.update(keys)
    return ssh.Config.model_validate(data)


def probe(cfg: ssh.Config) -> tuple[CheckOutcome, float]:
    started = time.monotonic()
    outcome = ssh.run(cfg, Deadline(cfg.timeout))
    return outcome, time.monotonic() - started


class SshdPeer(_ProcessPeer):
    """OpenSSH's sshd in the foreground on a loopback port, with a throwaway host key and an
    empty config (so the machine's /etc/ssh settings play no part), logging to ``log_path``.
    """

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.port = free_port()
        self.binary = require_binary("sshd", "/usr/sbin/sshd")
        keygen = require_binary("ssh-keygen")
        self.host_key = self.workdir / "ssh_host_ed25519_key"
        if not self.host_key.exists():
            subprocess.run(
                [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)], check=True
            )
        self.config_file = self.workdir / "sshd_config"
        self.config_file.write_text("")
        if os.geteuid() == 0:
            # Run as root, sshd insists on its privilege-separation directory, which Debian's
            # ssh.service creates (RuntimeDirectory=sshd) and a bare container lacks.
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    def _command(self) -> list[str]:
        return [
            self.binary,
            "-D",  # foreground
            "-e",  # log to stderr (our log file)
            "-f",
            str(self.config_file),
            "-h",
            str(self.host_key),
            "-p",
            str(self.port),
            "-o",
            f"ListenAddress={LOOPBACK}",
            "-o",
            "PidFile=none",
        ]

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        wait_for_port(self.port, process=process, log=self.log_path, timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdPeer]:
    """A real OpenSSH server shared by the module's tests."""
    with SshdPeer(tmp_path_factory.mktemp("sshd")) as peer:
        yield peer


class BannerServer:
    """Accepts connections on 127.0.0.1, sends ``banner``, then reads until the client
    closes (as a real server does) and closes too. Records what each client sent.
    With ``hang_up`` it closes once it has read the client's first line instead; with
    ``reset`` it resets the connection right after the banner.
    """

    def __init__(self, banner: bytes, *, hang_up: bool = False, reset: bool = False) -> None:
        self.banner = banner
        self.hang_up = hang_up
        self.reset = reset
        self.received: list[bytes] = []
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.05)  # lets the accept loop notice stop()
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="banner-server", daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(self.banner)
                if self.reset:
                    # Linger 0: close() sends RST instead of FIN.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                conn.settimeout(0.05)
                data = b""
                while not self._stop.is_set():
                    try:
                        chunk = conn.recv(4096)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    data += chunk
                    if self.hang_up and b"\n" in data:
                        break
                self.received.append(data)
            except OSError:
                pass

    def __enter__(self) -> Self:
        self._accepter.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._accepter.join()
        for thread in self._threads:
            thread.join()
        self._listener.close()


# --- a real OpenSSH server ------------------------------------------------------------------


def test_real_sshd_identifies(sshd: SshdPeer) -> None:
    """A running OpenSSH sshd is a success whose detail names its software version."""
    outcome, elapsed = probe(config(sshd.port))
    assert outcome.success, outcome
    assert re.match(r"SSH-2\.0 OpenSSH_\S+", outcome.detail), outcome.detail
    assert outcome.values == {}
    assert elapsed < 1.0


def test_real_sshd_banner_regex(sshd: SshdPeer) -> None:
    """expect_banner_regex is searched in the identification line: a match passes, a
    different server software fails as body_mismatch."""
    ok, _ = probe(config(sshd.port, expect_banner_regex=r"^SSH-2\.0-OpenSSH_\d"))
    assert ok.success, ok
    wrong, _ = probe(config(sshd.port, expect_banner_regex=r"^SSH-2\.0-dropbear"))
    assert wrong.reason is FailureReason.BODY_MISMATCH
    assert "OpenSSH" in wrong.detail and "dropbear" in wrong.detail


def test_real_sshd_logs_a_clean_close(tmp_path: Path) -> None:
    """sshd logs each check as a client that identified and closed before authentication,
    never as a reset or a failed identification exchange (what fail2ban bans for)."""
    with SshdPeer(tmp_path) as sshd:  # its own, so no other test's lines are in the log
        for _ in range(3):
            outcome, _ = probe(config(sshd.port))
            assert outcome.success, outcome
        deadline = time.monotonic() + 5
        while sshd.log().count("[preauth]") < 3 and time.monotonic() < deadline:
            time.sleep(0.02)  # poll interval: the loop re-reads the log
        log = sshd.log()
    lines = [line for line in log.splitlines() if "[preauth]" in line]
    assert len(lines) == 3, log
    assert all(
        re.match(r"Connection closed by 127\.0\.0\.1 port \d+ \[preauth\]", x) for x in lines
    )
    assert "reset" not in log.lower()


# --- scripted servers -----------------------------------------------------------------------


def test_lines_before_identification_are_skipped() -> None:
    """Lines a server sends before its identification (RFC 4253 4.2) are skipped, and the
    check sends its own identification first."""
    banner = (
        b"Welcome to the radiology gateway\r\nAuthorised use only\r\nSSH-2.0-OpenSSH_8.7 RHEL-8\r\n"
    )
    with BannerServer(banner) as server:
        outcome, elapsed = probe(config(server.port))
    assert outcome.success, outcome
    assert outcome.detail.startswith("SSH-2.0 OpenSSH_8.7 RHEL-8 at 127.0.0.1:")
    assert server.received == [ssh.IDENTIFICATION]
    assert re.fullmatch(rb"SSH-2\.0-monai_slo_[\x21-\x2c\x2e-\x7e]+\r\n", ssh.IDENTIFICATION)
    assert elapsed < 1.0  # of a 2 s deadline: it did not wait for it


def test_bare_lf_and_ssh_1_99_accepted() -> None:
    """A line ended by LF alone is accepted, and 1.99 (SSH-2 with SSH-1 fallback) is SSH-2."""
    with BannerServer(b"SSH-1.99-Cisco-1.25\n") as server:
        outcome, _ = probe(config(server.port))
    assert outcome.success, outcome
    assert outcome.detail.startswith("SSH-1.99 Cisco-1.25")


def test_ssh1_only_is_protocol() -> None:
    """A server speaking only SSH-1 fails as protocol."""
    with BannerServer(b"SSH-1.5-OldServer\r\n") as server:
        outcome, _ = probe(config(server.port))
    assert outcome.reason is FailureReason.PROTOCOL
    assert "only SSH-1" in outcome.detail


def test_binary_garbage_is_protocol_at_once() -> None:
    """Binary bytes (here a TLS alert) fail as protocol as soon as they arrive, not at the
    deadline."""
    with BannerServer(b"\x15\x03\x01\x00\x02\x02\x50") as server:
        outcome, elapsed = probe(config(server.port, timeout=2))
    assert outcome.reason is FailureReason.PROTOCOL, outcome
    assert "\\x15" in outcome.detail
    assert elapsed < 1.0  # of a 2 s deadline: it did not wait for it


def test_http_server_is_protocol(http_peer: HttpPeer) -> None:
    """A web server on the port answers our identification with an error page and closes:
    protocol, with the first line it sent in the detail. (Python's server takes the one-word
    line for HTTP/0.9 and answers with a bare HTML body.)"""
    outcome, _ = probe(config(http_peer.port))
    assert outcome.reason is FailureReason.PROTOCOL, outcome
    assert "it sent '<!DOCTYPE HTML>'" in outcome.detail


def test_malformed_and_too_long_identification() -> None:
    """An identification without a software version, or longer than 255 characters, fails
    as protocol; so does a line longer than 8192 bytes."""
    with BannerServer(b"SSH-2.0\r\n") as server:
        malformed, _ = probe(config(server.port))
    assert malformed.reason is FailureReason.PROTOCOL
    assert "malformed" in malformed.detail
    with BannerServer(b"SSH-2.0-" + b"x" * 250 + b"\r\n") as server:
        long_ident, _ = probe(config(server.port))
    assert long_ident.reason is FailureReason.PROTOCOL
    assert "longer than 255" in long_ident.detail
    with BannerServer(b"y" * 9000) as server:
        long_line, _ = probe(config(server.port))
    assert long_line.reason is FailureReason.PROTOCOL
    assert "longer than 8192" in long_line.detail
    assert len(long_line.detail) < 300


def test_longest_identification_accepted_with_bounded_detail() -> None:
    """A 255-character identification is accepted; the detail stays within 300 characters
    even with control characters escaped."""
    ident = b"SSH-2.0-" + b"\x1b" * 245  # 8 + 245 + CR LF = 255
    with BannerServer(ident + b"\r\n") as server:
        outcome, _ = probe(config(server.port))
    assert outcome.success, outcome
    assert "\x1b" not in outcome.detail and "\\x1b" in outcome.detail
    assert len(outcome.detail) <= 300


def test_closed_without_identification() -> None:
    """A server that hangs up after non-SSH text fails as protocol; one that hangs up
    without a byte (MaxStartups, TCP wrappers) or resets fails as connection."""
    with BannerServer(b"go away\r\n", hang_up=True) as server:
        text, _ = probe(config(server.port))
    assert text.reason is FailureReason.PROTOCOL, text
    assert "it sent 'go away'" in text.detail
    with BannerServer(b"", hang_up=True) as server:
        silent_close, _ = probe(config(server.port))
    assert silent_close.reason is FailureReason.CONNECTION, silent_close
    assert "without a word" in silent_close.detail
    with BannerServer(b"", reset=True) as server:
        reset, _ = probe(config(server.port))
    assert reset.reason is FailureReason.CONNECTION, reset
    assert "reset" in reset.detail.lower()


def test_silent_server_times_out_within_deadline(silent_listener: SilentListener) -> None:
    """A listener that accepts and never speaks fails as timeout within the deadline."""
    outcome, elapsed = probe(config(silent_listener.port, timeout=0.5))
    assert outcome.reason is FailureReason.TIMEOUT, outcome
    assert 0.45 < elapsed < 0.5 + GRACE


def test_partial_line_then_silence_times_out() -> None:
    """Text without a line end followed by silence is a timeout, showing what came."""
    with SilentListener(reply=b"SSH-2.0-Open") as listener:
        outcome, elapsed = probe(config(listener.port, timeout=0.5))
    assert outcome.reason is FailureReason.TIMEOUT
    assert "'SSH-2.0-Open'" in outcome.detail
    assert elapsed < 0.5 + GRACE


def test_server_that_never_closes_costs_at_most_the_deadline() -> None:
    """A server that identifies and then ignores our close still gives a success within the
    deadline (the drain is bounded)."""
    with SilentListener(reply=b"SSH-2.0-Stubborn_1.0\r\n") as listener:
        outcome, elapsed = probe(config(listener.port, timeout=0.3))
    assert outcome.success, outcome
    assert elapsed < 0.3 + GRACE


def test_refused() -> None:
    """A port nobody listens on fails as refused."""
    outcome, _ = probe(config(free_port()))
    assert outcome.reason is FailureReason.REFUSED


def test_no_socket_leaks() -> None:
    """Successful, timed-out and refused runs leave no file descriptor open."""
    with BannerServer(b"SSH-2.0-OpenSSH_9.6\r\n") as server:
        probe(config(server.port))  # warm-up: lazy imports may open files once
    before = open_fd_count()
    with BannerServer(b"SSH-2.0-OpenSSH_9.6\r\n") as server, SilentListener() as silent:
        for _ in range(5):
            assert probe(config(server.port))[0].success
            assert probe(config(silent.port, timeout=0.05))[0].reason is FailureReason.TIMEOUT
            assert probe(config(free_port()))[0].reason is FailureReason.REFUSED
    # Both servers have closed their ends and joined their threads: what is left is ours.
    assert open_fd_count() == before


# --- config -----------------------------------------------------------------------------------


def test_registered_with_default_port() -> None:
    """The kind is registered as ssh and the port defaults to 22."""
    assert KINDS["ssh"].config_type is ssh.Config
    cfg = ssh.Config.model_validate({"name": "s", "kind": "ssh", "host": "[::1]"})
    assert cfg.port == 22 and cfg.host == "::1"


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"host": "two words"}, "host"),
        ({"expect_banner_regex": "OpenSSH_(9"}, "expect_banner_regex"),
        ({"user": "root"}, "user"),
    ],
)
def test_config_errors_name_the_field(keys: dict[str, Any], field: str) -> None:
    """Invalid configs fail validation naming the key."""
    with pytest.raises(ValidationError) as excinfo:
        config(**({"port": 22} | keys))
    assert field in str(excinfo.value)
