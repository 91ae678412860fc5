"""What every peer fixture shares: a loopback port nothing listens on, and one scripted
accept loop."""

from __future__ import annotations

import contextlib
import socket
import threading

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A loopback port that was free a moment ago (for peers to bind, or for "nothing
    listens here" tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class ScriptedPeer:
    """A loopback TCP peer that answers every connection with ``reply`` and closes: after
    reading what the client sent (``read_first``), or at once. ``reply`` may be changed
    between connections. The one accept loop the hostile-peer tests share."""

    def __init__(self, reply: bytes = b"", *, read_first: bool = True) -> None:
        self.reply = reply
        self.read_first = read_first
        self._listener = socket.create_server((LOOPBACK, 0), backlog=256)
        self._listener.settimeout(0.05)  # how often the loop looks at _stop
        self.port = int(self._listener.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-peer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(2)
                if self.read_first:
                    conn.recv(65536)
                if self.reply:
                    conn.sendall(self.reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def __enter__(self) -> ScriptedPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
