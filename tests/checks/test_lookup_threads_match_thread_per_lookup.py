"""Name lookups run on reused threads instead of a new thread each (~0.4 ms of CPU per
lookup), with the same answers and failures: a hung lookup still fails as dns within the
deadline and holds only its own thread, so another lookup meanwhile is not delayed. An IP
literal's answer is parsed once and remembered."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import pytest

from monai_slo.checks import net
from monai_slo.checks import tcp as tcp_check
from monai_slo.checks.base import Deadline, FailureReason
from monai_slo.checks.net import ProbeFailure


def test_answer_matches_getaddrinfo_and_threads_are_reused() -> None:
    """The answer is getaddrinfo's own (IPv4/IPv6 entries); later lookups start no thread."""
    expected = [
        entry
        for entry in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        if entry[0] in (socket.AF_INET, socket.AF_INET6)
    ]
    assert net.resolve("localhost", 80, Deadline(5)) == expected
    started = net._lookups.started
    for _ in range(20):
        assert net.resolve("localhost", 80, Deadline(5)) == expected
    assert net._lookups.started == started


def test_failure_text_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that does not resolve fails as dns in the same words as before."""

    def no_such_host(*args: object, **kwargs: object) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    with pytest.raises(ProbeFailure) as caught:
        net.resolve("pacs.example.invalid", 104, Deadline(5))
    assert caught.value.reason is FailureReason.DNS
    assert caught.value.detail == "cannot resolve 'pacs.example.invalid': Name or service not known"


def test_hung_lookup_delays_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    """While one lookup hangs (and fails as dns at its deadline), another lookup on another
    thread is answered at once, on a thread of its own."""
    release = threading.Event()
    real = socket.getaddrinfo

    def hang_one(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        if host == "hung.example.invalid":
            release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hang_one)
    try:
        config = tcp_check.Config.model_validate(
            {"name": "t", "kind": "tcp", "host": "hung.example.invalid", "port": 1, "timeout": 0.3}
        )
        started = time.monotonic()
        outcome = tcp_check.run(config, Deadline(0.3))
        assert outcome.reason is FailureReason.DNS, outcome
        assert outcome.detail.startswith("name lookup for 'hung.example.invalid' did not finish")
        assert time.monotonic() - started < 0.5
        for _ in range(5):
            asked = time.monotonic()
            assert net.resolve("localhost", 80, Deadline(2))
            assert time.monotonic() - asked < 1.0
    finally:
        release.set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_forked_child_resolves() -> None:
    """A child forked while lookup threads sit idle has none of them, yet resolves."""
    net.resolve("localhost", 80, Deadline(5))  # an idle lookup thread now exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once
        try:
            ok = bool(net.resolve("localhost", 80, Deadline(2)))
        except BaseException:
            ok = False
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_literal_answer_matches_getaddrinfo_and_is_remembered(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An IP literal gets getaddrinfo's numeric answer, asked once for each host and port."""
    net._literals.clear()
    expected = socket.getaddrinfo(host, 8080, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    asked: list[object] = []
    real = socket.getaddrinfo

    def counting(*args: Any, **kwargs: Any) -> list[Any]:
        asked.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    for _ in range(5):
        assert list(net.resolve(host, 8080, Deadline(5))) == expected
    assert len(asked) == 1
    assert net.resolve(host, 8081, Deadline(5))[0][4][1] == 8081
    assert len(asked) == 2
