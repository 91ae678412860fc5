"""The ``ssh`` kind: does an SSH server send an SSH-2 identification line in time?

RFC 4253 section 4.2: once connected, the server sends ``SSH-protoversion-softwareversion
[SP comments] CR LF`` (at most 255 characters with the CR LF), possibly after other lines
that do not start with ``SSH-``. The check sends its own identification first, as OpenSSH's
client does, reads the server's, then closes before key exchange: no login, no credentials.

Sending ours matters to the server's logs: a client that sends nothing is logged as a failed
identification exchange ("Did not receive identification string" on older OpenSSH), which
fail2ban's ddos/aggressive modes ban; a client that identifies and leaves is logged as a
plain pre-auth close. Likewise the connection is half-closed and drained before the socket
closes, so the server sees a clean close rather than a reset.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Literal

from pydantic import Field

from monai_slo import __version__
from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, FailureReason
from monai_slo.checks.net import Host, Port, ProbeFailure, connect, format_host
from monai_slo.checks.patterns import Regex, compiled

# softwareversion is printable US-ASCII without spaces or minus signs (RFC 4253 4.2).
IDENTIFICATION = f"SSH-2.0-monai_slo_{__version__}\r\n".encode("ascii")
MAX_IDENTIFICATION = 255  # characters, CR LF included (RFC 4253 4.2)
MAX_LINE = 8192  # OpenSSH's bound on any line before the identification
MAX_PRE_LINES = 1024  # OpenSSH's SSH_MAX_PRE_BANNER_LINES
SSH2_VERSIONS = frozenset({"2.0", "1.99"})  # 1.99: a server speaking SSH-2 and SSH-1 (RFC 4253 5.1)
DRAIN_SECONDS = 0.5  # waiting for the server to close after us: one round trip, with room
_IDENT = re.compile(r"SSH-(?P<proto>[^-\s]+)-(?P<software>\S+)(?: (?P<comments>.*))?")


class Config(CheckConfig):
    """Connect to ``host:port`` and read the SSH server's identification line."""

    kind: Literal["ssh"]
    host: Host
    port: Port = 22
    expect_banner_regex: Regex | None = Field(
        default=None,
        description="Regular expression searched in the identification line, "
        "e.g. '^SSH-2\\.0-OpenSSH_9'.",
    )


def _printable(data: bytes) -> str:
    """Peer bytes as text that cannot move a terminal's cursor or forge a log line."""
    text = data.decode("ascii", "backslashreplace")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _show(data: bytes, limit: int = 80) -> str:
    """A bounded, quoted excerpt of peer bytes for the detail."""
    return repr(_printable(data[:limit]) + ("…" if len(data) > limit else ""))


def _receive(sock: socket.socket, deadline: Deadline, where: str, buffer: bytes) -> bytes:
    remaining = deadline.remaining()
    received = f"; received {_show(buffer)} without a line end" if buffer else ""
    if remaining <= 0:
        raise ProbeFailure(
            FailureReason.TIMEOUT, f"no SSH identification from {where} in time{received}"
        )
    sock.settimeout(remaining)
    try:
        return sock.recv(4096)
    except TimeoutError:
        raise ProbeFailure(
            FailureReason.TIMEOUT, f"no SSH identification from {where} in time{received}"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ProbeFailure(
            FailureReason.CONNECTION, f"reading from {where} failed: {reason}"
        ) from None


def read_identification(sock: socket.socket, deadline: Deadline, where: str) -> str:
    """The server's identification line without CR LF, skipping lines sent before it.

    Follows OpenSSH's client: a NUL byte or a CR not followed by LF is garbage, lines are
    at most 8192 bytes and at most 1024 of them may precede the identification. A bare LF
    ends a line too (old servers send one).
    """
    buffer = b""
    first_line: bytes | None = None
    pre_lines = 0
    while True:
        while (end := buffer.find(b"\n")) >= 0:
            line, buffer = buffer[:end], buffer[end + 1 :]
            line = line.removesuffix(b"\r")
            if b"\0" in line or b"\r" in line:
                raise ProbeFailure(
                    FailureReason.PROTOCOL, f"{where} sent a line that is not text: {_show(line)}"
                )
            if line.startswith(b"SSH-"):
                if len(line) + 2 > MAX_IDENTIFICATION:
                    raise ProbeFailure(
                        FailureReason.PROTOCOL,
                        f"{where} sent an identification longer than {MAX_IDENTIFICATION} "
                        f"characters: {_show(line)}",
                    )
                return _printable(line)
            first_line = line if first_line is None else first_line
            pre_lines += 1
            if pre_lines > MAX_PRE_LINES:
                raise ProbeFailure(
                    FailureReason.PROTOCOL,
                    f"{where} sent more than {MAX_PRE_LINES} lines and no SSH identification; "
                    f"the first: {_show(first_line)}",
                )
        if b"\0" in buffer:
            raise ProbeFailure(
                FailureReason.PROTOCOL, f"{where} does not speak SSH: sent {_show(buffer)}"
            )
        if len(buffer) > MAX_LINE:
            raise ProbeFailure(
                FailureReason.PROTOCOL,
                f"{where} sent a line longer than {MAX_LINE} bytes: {_show(buffer)}",
            )
        chunk = _receive(sock, deadline, where, buffer)
        if not chunk:
            if first_line is None and not buffer:
                raise ProbeFailure(
                    FailureReason.CONNECTION,
                    f"{where} closed the connection without a word (MaxStartups, TCP wrappers?)",
                )
            raise ProbeFailure(
                FailureReason.PROTOCOL,
                f"{where} closed the connection without an SSH identification; it sent "
                f"{_show(first_line if first_line is not None else buffer)}",
            )
        buffer += chunk


def _parse(identification: str, where: str) -> tuple[str, str]:
    """(protoversion, software and comments) of an SSH-2 identification line."""
    match = _IDENT.fullmatch(identification)
    if match is None:
        raise ProbeFailure(
            FailureReason.PROTOCOL,
            f"{where} sent a malformed identification: {_show(identification.encode())}",
        )
    proto = match["proto"]
    if proto not in SSH2_VERSIONS:
        what = "only SSH-1" if proto.startswith("1.") else f"protocol version {proto!r}"
        raise ProbeFailure(
            FailureReason.PROTOCOL, f"{where} speaks {what}: {_show(identification.encode())}"
        )
    software = match["software"] + (f" {match['comments']}" if match["comments"] else "")
    return proto, software


def _close_cleanly(sock: socket.socket, deadline: Deadline) -> None:
    """Half-close, then read what the server still sends (its key-exchange offer) until it
    closes too. Closing with unread data would send a reset, which sshd logs as
    "Connection reset by ... [preauth]" -- a line fail2ban's ddos mode counts against us.
    """
    try:
        sock.shutdown(socket.SHUT_WR)
        until = time.monotonic() + min(DRAIN_SECONDS, deadline.remaining())
        while (left := until - time.monotonic()) > 0:
            sock.settimeout(left)
            if not sock.recv(65536):
                return
    except OSError:
        return  # reset, timeout or already gone: nothing left to be polite about


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Connect, exchange identifications, check the server's, close before key exchange."""
    started = time.monotonic()
    where = format_host(config.host, config.port)
    try:
        sock = connect(config.host, config.port, deadline)
        try:
            try:
                sock.settimeout(deadline.remaining() or 1e-6)
                sock.sendall(IDENTIFICATION)
            except TimeoutError:
                raise ProbeFailure(FailureReason.TIMEOUT, f"sending to {where} timed out") from None
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise ProbeFailure(
                    FailureReason.CONNECTION, f"sending to {where} failed: {reason}"
                ) from None
            identification = read_identification(sock, deadline, where)
            elapsed = time.monotonic() - started
            proto, software = _parse(identification, where)
            if config.expect_banner_regex is not None and not compiled(
                config.expect_banner_regex
            ).search(identification):
                raise ProbeFailure(
                    FailureReason.BODY_MISMATCH,
                    f"identification of {where} {_show(identification.encode())} does not "
                    f"match {config.expect_banner_regex!r}",
                )
            _close_cleanly(sock, deadline)
        finally:
            sock.close()
    except ProbeFailure as failure:
        return CheckOutcome.fail(failure.reason, _bounded(failure.detail))
    return CheckOutcome.ok(_bounded(f"SSH-{proto} {software} at {where} in {elapsed:.3f}s"))


def _bounded(detail: str, limit: int = 300) -> str:
    # A 253-character host name and a 253-character identification must not make an
    # unbounded line in status tables and logs.
    return detail if len(detail) <= limit else detail[: limit - 1] + "…"
