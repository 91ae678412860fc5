"""The systemd notify protocol (READY/RELOADING/STATUS/WATCHDOG/STOPPING) and its watchdog.

Everything here is a no-op without ``NOTIFY_SOCKET`` (and off Linux), so the daemon runs the
same by hand, under systemd, in a container or on a workstation.

The watchdog must not ping just because the process is alive: a thread that pings on a timer
would keep a daemon whose scheduler has stalled looking healthy forever. So the daemon runs a
cheap :class:`Heartbeat` job through the same scheduler as its checks, and the
:class:`Watchdog` thread sends ``WATCHDOG=1`` only while that heartbeat is fresh. A stuck
scheduler stops the pings and systemd restarts the service after ``WatchdogSec=``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# The heartbeat job's period when no watchdog asks for a shorter one.
HEARTBEAT_INTERVAL = 5.0


def notify(message: str) -> bool:
    """Send one sd_notify datagram; False when not under systemd or the send failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not hasattr(socket, "AF_UNIX"):
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def reloading_message() -> str:
    """``RELOADING=1`` with the CLOCK_MONOTONIC timestamp newer systemd versions ask for."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}"


def watchdog_period(environ: Mapping[str, str] | None = None) -> float | None:
    """systemd's ``WatchdogSec=`` in seconds, or None when no watchdog watches this process.

    systemd sets ``WATCHDOG_USEC`` and ``WATCHDOG_PID``; a PID other than ours means the
    variables were inherited from a parent that is the one being watched.
    """
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000


def heartbeat_interval(period: float | None) -> float:
    """How often the heartbeat job runs: every few seconds, at least 4 times per ``period``."""
    return HEARTBEAT_INTERVAL if period is None else min(HEARTBEAT_INTERVAL, period / 4)


class Heartbeat:
    """A monotonic timestamp a scheduler job refreshes; its age says whether jobs still run."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = self._clock()

    def age(self) -> float:
        return self._clock() - self._last


class Watchdog:
    """Sends ``WATCHDOG=1`` every ``period / 2`` seconds while the heartbeat is fresh.

    The heartbeat counts as fresh while younger than ``max_age`` (default ``period / 2``), so
    systemd kills a stuck daemon at most ``max_age + period`` after its scheduler stalled.
    ``send`` and the heartbeat's clock are injectable for tests.
    """

    def __init__(
        self,
        heartbeat: Heartbeat,
        period: float,
        *,
        max_age: float | None = None,
        send: Callable[[str], object] = notify,
    ) -> None:
        if period <= 0:
            raise ValueError(f"expected a positive watchdog period; got {period}")
        self.heartbeat = heartbeat
        self.period = period
        self.max_age = period / 2 if max_age is None else max_age
        self._send = send
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stale = False
        self.pings = 0
        """WATCHDOG=1 messages sent."""
        self.withheld = 0
        """Turns on which the heartbeat was stale and no ping was sent."""

    def ping(self) -> bool:
        """One turn: send WATCHDOG=1 if the heartbeat is fresh; True when it was sent."""
        age = self.heartbeat.age()
        if age > self.max_age:
            self.withheld += 1
            if not self._stale:
                log.error(
                    "scheduler heartbeat is %.1fs old (limit %.1fs): withholding the systemd "
                    "watchdog ping so systemd restarts this stuck daemon",
                    age,
                    self.max_age,
                )
            self._stale = True
            return False
        if self._stale:
            log.warning("scheduler heartbeat fresh again; resuming watchdog pings")
            self._stale = False
        self._send("WATCHDOG=1")
        self.pings += 1
        return True

    def _loop(self) -> None:
        interval = self.period / 2
        while True:
            self.ping()
            if self._stop.wait(interval):
                return

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("watchdog already started")
        self._thread = threading.Thread(target=self._loop, name="systemd-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Watchdog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
