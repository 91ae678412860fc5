"""HTTP, HTTPS and TCP checks: CPU per check, monai-slo beside blackbox_exporter.

Both probe the same target at the same rate, one probe at a time. monai-slo's cost is its
check function in this process (``time.process_time``); blackbox_exporter's is its own
process's CPU from /proc, driven through ``/probe?module=...&target=...`` over one kept-alive
connection, as Prometheus scrapes it. Serving that request is part of what a blackbox probe
costs; the driver's own CPU is not counted. The target's CPU is counted for neither.

Beside them, two floors at the same pace in this process: ``http.client`` making the same
GET on a fresh connection, and a bare ``ssl`` + ``socket`` client making one verified
handshake (fresh, no session resumption, as every check makes) and one GET. And the whole
daemon (``monai-slo run``: scheduler, runner, history, metrics) running only HTTP(S)
checks at the same rate, its CPU from /proc (worker processes included) divided by the
runs it counted.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from monai_slo.checks import http as http_check
from monai_slo.checks import tcp as tcp_check
from monai_slo.checks.base import Deadline

from bench.measure import Pacer, Timing, median, process_cpu, quantile
from bench.peers import BlackboxPeer, HttpTarget
from bench.report import Baseline, Row
from bench.scale import daemon, free_port, parse, scrape, tree_cpu

RATE = 50.0
HTTP_CPU_SHARE_TARGET = 0.5
HTTPS_CPU_SHARE_TARGET = 0.6
TLS_FLOOR_TARGET = 1.3
DAEMON_INTERVAL = 2.0


def _time_calls(call: Callable[[], None], count: int, rate: float) -> Timing:
    """Wall and CPU (this process) of ``call``, paced at ``rate``, after one warm-up call."""
    call()
    pacer = Pacer(rate)
    walls = []
    cpu_start = time.process_time()
    for _ in range(count):
        started = time.perf_counter()
        call()
        walls.append(time.perf_counter() - started)
        pacer.wait()
    cpu = (time.process_time() - cpu_start) / count
    return Timing(count, median(walls), quantile(walls, 0.99), cpu)


def time_check(kind: ModuleType, config: Any, count: int, rate: float) -> Timing:
    def call() -> None:
        outcome = kind.run(config, Deadline(config.timeout))
        if not outcome.success:
            raise RuntimeError(f"monai-slo {config.kind} check failed: {outcome}")

    return _time_calls(call, count, rate)


def time_http_client(target: HttpTarget, count: int, rate: float) -> Timing:
    """The floor for HTTP: http.client's GET on a fresh connection, body read."""

    def call() -> None:
        conn = http.client.HTTPConnection(target.host, target.port, timeout=5)
        try:
            conn.request("GET", "/", headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"http.client floor got {response.status}")
        finally:
            conn.close()

    return _time_calls(call, count, rate)


def time_tls_floor(target: HttpTarget, count: int, rate: float) -> Timing:
    """The floor for HTTPS: one verified handshake (context built once, no session reuse)
    and one GET over a bare socket, the response read to EOF."""
    context = ssl.create_default_context(cafile=str(target.ca_file))
    request = (
        f"GET / HTTP/1.1\r\nHost: {target.host}:{target.port}\r\nConnection: close\r\n\r\n"
    ).encode()

    def call() -> None:
        with (
            socket.create_connection((target.host, target.port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=target.host) as tls,
        ):
            if tls.session_reused:
                raise RuntimeError("TLS floor resumed a session")
            tls.sendall(request)
            head = tls.recv(65536)
            while tls.recv(65536):
                pass
        if not head.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"TLS floor got {head[:40]!r}")

    return _time_calls(call, count, rate)


def time_daemon(check: str, seconds: float) -> float:
    """CPU seconds of the whole daemon process per run, running copies of ``check`` (a
    flow mapping's keys) at ``RATE`` runs a second in all; no scrape inside the window."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="monai-slo-probes-") as tmp:
        workdir = Path(tmp)
        config = workdir / "daemon.yaml"
        checks = "".join(
            f"          - {{name: c{n}, {check}}}\n" for n in range(int(RATE * DAEMON_INTERVAL))
        )
        config.write_text(
            f"listen: 127.0.0.1:{port}\nstorage: {workdir / 'history.sqlite'}\n"
            f"defaults: {{interval: {DAEMON_INTERVAL:g}s, timeout: 1s}}\n"
            "environments:\n  - name: bench\n    tier: production\n    objective: 99.9\n"
            "    services:\n      - name: web\n        checks:\n" + checks
        )
        with daemon(config, workdir / "daemon.log", port) as process:
            time.sleep(2 * DAEMON_INTERVAL)  # warm-up: every check has run
            first = parse(*_scrape_at(port))
            cpu_start = tree_cpu(process.pid)
            time.sleep(seconds)  # the measured window
            cpu = tree_cpu(process.pid) - cpu_start
            last = parse(*_scrape_at(port))
    runs = sum(last.runs.values()) - sum(first.runs.values())
    failed = sum(last.failures.values()) - sum(first.failures.values())
    if runs <= 0 or failed:
        raise RuntimeError(f"daemon probe run: {runs:g} runs, {failed:g} failed")
    return cpu / runs


def _scrape_at(port: int) -> tuple[str, float, float]:
    text, seconds = scrape(port)
    return text, time.time(), seconds


def time_blackbox(
    blackbox: BlackboxPeer, module: str, target: str, count: int, rate: float
) -> Timing:
    conn = http.client.HTTPConnection("127.0.0.1", blackbox.port, timeout=10)
    path = blackbox.probe_path(module, target)

    def probe() -> None:
        conn.request("GET", path)
        body = conn.getresponse().read()
        if b"\nprobe_success 1" not in body:
            raise RuntimeError(f"blackbox {module} probe of {target} failed:\n{body.decode()}")

    try:
        probe()  # warm-up, and the connection is open
        pacer = Pacer(rate)
        walls = []
        cpu_start = process_cpu(blackbox.pid)
        for _ in range(count):
            started = time.perf_counter()
            probe()
            walls.append(time.perf_counter() - started)
            pacer.wait()
        cpu = (process_cpu(blackbox.pid) - cpu_start) / count
    finally:
        conn.close()
    return Timing(count, median(walls), quantile(walls, 0.99), cpu)


def _rows(
    name: str,
    ours: Timing,
    theirs: Timing,
    target_share: float | None,
    floor: tuple[str, Timing] | None = None,
) -> list[Row]:
    cpu = ours.cpu * 1e3
    baseline = theirs.cpu * 1e3
    floors = [] if floor is None else [Baseline(floor[0], floor[1].cpu * 1e3)]
    return [
        Row(
            "probes",
            f"{name} CPU per check",
            cpu,
            "ms",
            [Baseline("blackbox_exporter", baseline), *floors],
            "" if target_share is None else f"≤ {target_share:g}x blackbox",
            None if target_share is None else cpu <= target_share * baseline,
        ),
        Row(
            "probes",
            f"{name} wall median",
            ours.median * 1e3,
            "ms",
            [Baseline("blackbox_exporter (incl. /probe request)", theirs.median * 1e3)],
        ),
    ]


def _daemon_row(name: str, cpu: float, theirs: Timing, share: float, floor: Timing) -> Row:
    baseline = theirs.cpu * 1e3
    return Row(
        "probes",
        f"{name} daemon CPU per check (whole process)",
        cpu * 1e3,
        "ms",
        [Baseline("blackbox_exporter", baseline), Baseline("floor above", floor.cpu * 1e3)],
        f"≤ {share:g}x blackbox",
        cpu * 1e3 <= share * baseline,
    )


def run(quick: bool) -> list[Row]:
    count = 150 if quick else 500
    window = 15.0 if quick else 60.0
    rows: list[Row] = []
    with (
        HttpTarget() as plain,
        HttpTarget(tls=True) as tls,
        BlackboxPeer(ca_file=tls.ca_file) as blackbox,
    ):
        http_floor = ("http.client GET, fresh connection", time_http_client(plain, count, RATE))
        tls_floor = ("ssl handshake + GET, fresh connection", time_tls_floor(tls, count, RATE))
        cases: list[tuple[str, ModuleType, dict[str, Any], str, str, float | None,
                          tuple[str, Timing] | None]] = [
            ("HTTP", http_check, {"kind": "http", "url": plain.url}, "http_2xx", plain.url,
             HTTP_CPU_SHARE_TARGET, http_floor),
            ("HTTPS", http_check, {"kind": "http", "url": tls.url, "ca_file": str(tls.ca_file)},
             "https_2xx", tls.url, HTTPS_CPU_SHARE_TARGET, tls_floor),
            ("TCP", tcp_check, {"kind": "tcp", "host": "127.0.0.1", "port": plain.port},
             "tcp_connect", f"127.0.0.1:{plain.port}", None, None),
        ]  # fmt: skip
        blackbox_cpu: dict[str, Timing] = {}
        for name, kind, values, module, target, share, floor in cases:
            config = kind.Config.model_validate({"name": "probe", "timeout": "5s", **values})
            ours = time_check(kind, config, count, RATE)
            theirs = blackbox_cpu[name] = time_blackbox(blackbox, module, target, count, RATE)
            rows += _rows(name, ours, theirs, share, floor)
            if name == "HTTPS" and floor is not None:
                rows.append(
                    Row(
                        "probes",
                        "HTTPS CPU per check vs the bare TLS floor",
                        ours.cpu * 1e3,
                        "ms",
                        [Baseline(floor[0], floor[1].cpu * 1e3)],
                        f"≤ {TLS_FLOOR_TARGET:g}x floor",
                        ours.cpu <= TLS_FLOOR_TARGET * floor[1].cpu,
                    )
                )
        http_daemon = time_daemon(f'kind: http, url: "{plain.url}"', window)
        https_daemon = time_daemon(
            f'kind: http, url: "{tls.url}", ca_file: "{tls.ca_file}"', window
        )
        rows.append(
            _daemon_row("HTTP", http_daemon, blackbox_cpu["HTTP"], HTTP_CPU_SHARE_TARGET,
                        http_floor[1])
        )  # fmt: skip
        rows.append(
            _daemon_row("HTTPS", https_daemon, blackbox_cpu["HTTPS"], HTTPS_CPU_SHARE_TARGET,
                        tls_floor[1])
        )  # fmt: skip
    return rows
