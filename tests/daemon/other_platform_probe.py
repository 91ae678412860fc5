"""Run monai-slo's core as if on Windows or macOS: ``python other_platform_probe.py win32 DIR``.

Run by tests/daemon/test_other_platforms.py in a fresh interpreter. The standard library and
the dependencies are imported first, as they are (their own platform support is what the wheel
check proves); then ``sys.platform`` is set to the platform asked for and every Linux-only
socket option, os function, signal and module is removed, and only then is any module of
monai_slo imported. It then imports every module of the package, runs the daemon against a
loopback HTTP server and a DICOM
Verification SCP (``http``, ``tcp`` and ``dicom_echo`` checks), reads /metrics from the daemon's own
listener, and reads the history back with ``status``. The last line printed is a JSON summary.
"""

from __future__ import annotations

import asyncio  # noqa: F401 -- imported before the platform is faked, as said above
import contextlib
import http.client
import importlib
import io
import json
import os
import pkgutil
import signal
import socket
import sqlite3  # noqa: F401
import ssl  # noqa: F401
import sys
import threading
import time
from pathlib import Path
from typing import Any

for dependency in (
    "pydantic",
    "yaml",
    "pynetdicom",
    "pydicom",
    "apscheduler.schedulers.background",
    "prometheus_client",
    "rich.console",
    "psutil",
    "croniter",
    "bcrypt",
    "re2",
    "jsonpath",
    "pynvml",
):
    importlib.import_module(dependency)

# Linux-only (or not on both other systems): gone before monai_slo sees the platform.
LINUX_ONLY = {
    socket: (
        "TCP_QUICKACK",
        "TCP_KEEPIDLE",
        "TCP_KEEPINTVL",
        "TCP_KEEPCNT",
        "TCP_USER_TIMEOUT",
        "TCP_CORK",
        "TCP_DEFER_ACCEPT",
        "TCP_CONGESTION",
        "TCP_FASTOPEN",
        "SO_REUSEPORT",
        "SO_BINDTODEVICE",
        "SO_PEERCRED",
        "SO_MARK",
        "SO_PRIORITY",
        "SOCK_CLOEXEC",
        "SOCK_NONBLOCK",
        "AF_NETLINK",
        "AF_PACKET",
        "AF_UNIX",
    ),
    os: (
        "sched_getaffinity",
        "sched_setaffinity",
        "sched_getscheduler",
        "sched_setscheduler",
        "getloadavg",
        "fork",
        "setsid",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "pipe2",
        "posix_fadvise",
        "posix_fallocate",
        "memfd_create",
        "eventfd",
        "statvfs",
    ),
    signal: ("SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGALRM", "pthread_sigmask"),
}
BLOCKED_MODULES = ("resource", "fcntl", "termios", "pwd", "grp", "posix_ipc", "systemd")


def fake(platform: str) -> list[str]:
    removed = []
    sys.platform = platform
    # Windows's socket.socketpair() is the stdlib's emulation over loopback TCP; here the
    # real one (which needs AF_UNIX, removed below) stands in for it.
    real_socketpair, af_unix = socket.socketpair, socket.AF_UNIX

    def socketpair(
        family: int | None = None, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> tuple[socket.socket, socket.socket]:
        return real_socketpair(af_unix if family is None else family, type, proto)

    socket.socketpair = socketpair  # type: ignore[assignment]
    for module, names in LINUX_ONLY.items():
        for name in names:
            if hasattr(module, name):
                delattr(module, name)
                removed.append(f"{module.__name__}.{name}")
    # pynetdicom's own Windows support (proved by its wheels, not here) asks NTDLL for a finer
    # timer on win32 in every association; there is no NTDLL to ask on this machine.
    from pynetdicom import _config

    _config.WINDOWS_TIMER_RESOLUTION = None
    for name in BLOCKED_MODULES:
        sys.modules[name] = None  # type: ignore[assignment]  # import now raises ImportError
    assert not any(m == "monai_slo" or m.startswith("monai_slo.") for m in sys.modules)
    return removed


def _scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def main(platform: str, directory: Path) -> dict[str, Any]:
    removed = fake(platform)
    import monai_slo

    imported = 0
    for info in pkgutil.walk_packages(monai_slo.__path__, "monai_slo."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
        imported += 1

    from monai_slo.cli import main as cli_main
    from monai_slo.config.model import DEFAULT_CONFIG_PATH, DEFAULT_STORAGE, load_config
    from monai_slo.daemon.daemon import Daemon
    from monai_slo.outputs import metric_names as m
    from monai_slo.testing.peers import FlakyHttpPeer, VerificationPeer

    peer, pacs = FlakyHttpPeer(), VerificationPeer()
    port = peer.port
    config = directory / "config.yaml"
    config.write_text(
        f"listen: 127.0.0.1:0\nstorage: {directory / 'history.sqlite'}\nflush_interval: 1s\n"
        "defaults: {interval: 1s, timeout: 500ms}\n"
        "environments:\n  - name: desk\n    tier: desktop\n    services:\n"
        "      - name: viewer\n        checks:\n"
        f"          - {{name: web, kind: http, url: 'http://127.0.0.1:{port}/',"
        " json: [{path: '$.status', equals: Healthy}]}\n"
        f"          - {{name: port, kind: tcp, host: 127.0.0.1, port: {port}}}\n"
        f"          - {{name: echo, kind: dicom_echo, host: 127.0.0.1, port: {pacs.port},"
        " called_aet: DEMO-PACS}\n"
    )
    daemon = Daemon(load_config(config))
    seen: dict[str, float] = {}

    def watch() -> None:
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                try:
                    text = _scrape(daemon.server.port)
                except OSError:  # the listener is bound before the daemon starts serving
                    text = ""
                for line in text.splitlines():
                    if line.startswith(m.CHECK_UP + "{"):
                        check = line.split('check="')[1].split('"')[0]
                        seen[check] = float(line.rsplit(" ", 1)[1])
                if all(seen.get(check) == 1 for check in ("web", "port", "echo")):
                    return
                time.sleep(0.05)  # poll interval
        finally:
            daemon.request_stop()

    watcher = threading.Thread(target=watch)
    watcher.start()
    daemon.run_until_stopped(duration=25)  # the main thread: signal handlers as `run` sets them
    watcher.join()
    peer.stop()
    pacs.stop()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["status", "-c", str(config), "-o", "json"])
    status = json.loads(out.getvalue())
    return {
        "platform": sys.platform,
        "removed": removed,
        "imported": imported,
        "check_up": seen,
        "status_code": code,
        "service_state": status["services"][0]["state"],
        "check_states": {c["check"]: c["state"] for c in status["checks"]},
        "default_config": str(DEFAULT_CONFIG_PATH),
        "default_storage": str(DEFAULT_STORAGE),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
