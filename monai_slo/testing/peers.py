"""Local peers for the demo and for users' own tests: a DICOM Verification SCP, an HTTP endpoint.

Both bind loopback on a free port and stop cleanly. The HTTP endpoint can be made flaky:
down for ``down_for`` seconds of every ``cycle`` seconds, so availability visibly moves.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

logging.getLogger("pynetdicom").setLevel(logging.WARNING)


class VerificationPeer:
    """A pynetdicom C-ECHO SCP on 127.0.0.1 that answers any calling AE."""

    def __init__(self, aet: str = "DEMO-PACS", host: str = "127.0.0.1", port: int = 0) -> None:
        self.aet = aet
        ae = AE(ae_title=aet)
        ae.add_supported_context(Verification)
        server = ae.start_server(
            (host, port), block=False, evt_handlers=[(evt.EVT_C_ECHO, lambda event: 0x0000)]
        )
        assert server is not None  # block=False always returns the server
        self._server = server
        self.host = host
        self.port: int = self._server.server_address[1]

    def stop(self) -> None:
        self._server.shutdown()


class FlakyHttpPeer:
    """An HTTP health endpoint: 200 ``OK`` normally, 503 during the down part of each cycle."""

    def __init__(
        self, *, cycle: float = 0.0, down_for: float = 0.0, host: str = "127.0.0.1"
    ) -> None:
        self.cycle = cycle
        self.down_for = down_for
        self._origin = time.monotonic()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                healthy = peer.healthy()
                body = b'{"status": "Healthy"}' if healthy else b'{"status": "Unhealthy"}'
                self.send_response(200 if healthy else 503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def healthy(self) -> bool:
        if self.cycle <= 0:
            return True
        # Up first, then down for the last ``down_for`` seconds of each cycle.
        phase = (time.monotonic() - self._origin) % self.cycle
        return phase < self.cycle - self.down_for

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
