"""A small, cheap HTTP(S) target for the benchmarks, run as its own process.

``python -m bench.httpd PORT [CERT KEY]`` answers every request with ``200 ok`` and closes
the connection; a connection that sends nothing (a TCP check) is simply closed. asyncio
keeps its CPU per request low, so at thousands of checks the target does not starve the
daemon of the machine's cores. Prints ``ready`` once listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
    b"Connection: close\r\n\r\nok\n"
)


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.write(RESPONSE)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        pass  # a TCP check connects and hangs up; a client may vanish mid-answer
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()


async def _serve(port: int, context: ssl.SSLContext | None) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port, ssl=context, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    port = int(sys.argv[1])
    context = None
    if len(sys.argv) > 3:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
    asyncio.run(_serve(port, context))


if __name__ == "__main__":
    main()
