"""HTTP, HTTPS and TCP checks: CPU per check, monai-slo beside blackbox_exporter.

Both probe the same target at the same rate, one probe at a time. monai-slo's cost is its
check function in this process (``time.process_time``); blackbox_exporter's is its own
process's CPU from /proc, driven through ``/probe?module=...&target=...`` over one kept-alive
connection, as Prometheus scrapes it. Serving that request is part of what a blackbox probe
costs; the driver's own CPU is not counted. The target's CPU is counted for neither.
"""

from __future__ import annotations

import http.client
import time
from types import ModuleType
from typing import Any

from monai_slo.checks import http as http_check
from monai_slo.checks import tcp as tcp_check
from monai_slo.checks.base import Deadline

from bench.measure import Pacer, Timing, median, process_cpu, quantile
from bench.peers import BlackboxPeer, HttpTarget
from bench.report import Baseline, Row

RATE = 50.0
HTTP_CPU_SHARE_TARGET = 0.5


def time_check(kind: ModuleType, config: Any, count: int, rate: float) -> Timing:
    kind.run(config, Deadline(config.timeout))  # warm-up
    pacer = Pacer(rate)
    walls = []
    cpu_start = time.process_time()
    for _ in range(count):
        started = time.perf_counter()
        outcome = kind.run(config, Deadline(config.timeout))
        walls.append(time.perf_counter() - started)
        if not outcome.success:
            raise RuntimeError(f"monai-slo {config.kind} check failed: {outcome}")
        pacer.wait()
    cpu = (time.process_time() - cpu_start) / count
    return Timing(count, median(walls), quantile(walls, 0.99), cpu)


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


def _rows(name: str, ours: Timing, theirs: Timing, target_share: float | None) -> list[Row]:
    cpu = ours.cpu * 1e3
    baseline = theirs.cpu * 1e3
    return [
        Row(
            "probes",
            f"{name} CPU per check",
            cpu,
            "ms",
            [Baseline("blackbox_exporter", baseline)],
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


def run(quick: bool) -> list[Row]:
    count = 150 if quick else 500
    rows: list[Row] = []
    with (
        HttpTarget() as plain,
        HttpTarget(tls=True) as tls,
        BlackboxPeer(ca_file=tls.ca_file) as blackbox,
    ):
        cases: list[tuple[str, ModuleType, dict[str, Any], str, str, float | None]] = [
            ("HTTP", http_check, {"kind": "http", "url": plain.url}, "http_2xx", plain.url,
             HTTP_CPU_SHARE_TARGET),
            ("HTTPS", http_check, {"kind": "http", "url": tls.url, "ca_file": str(tls.ca_file)},
             "https_2xx", tls.url, HTTP_CPU_SHARE_TARGET),
            ("TCP", tcp_check, {"kind": "tcp", "host": "127.0.0.1", "port": plain.port},
             "tcp_connect", f"127.0.0.1:{plain.port}", None),
        ]  # fmt: skip
        for name, kind, values, module, target, share in cases:
            config = kind.Config.model_validate({"name": "probe", "timeout": "5s", **values})
            ours = time_check(kind, config, count, RATE)
            theirs = time_blackbox(blackbox, module, target, count, RATE)
            rows += _rows(name, ours, theirs, share)
    return rows
