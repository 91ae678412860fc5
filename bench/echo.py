"""C-ECHO (associate, echo, release) wall latency and CPU: monai-slo beside its baselines.

Baselines: pynetdicom used the plain way (``AE().associate`` + ``send_c_echo`` +
``release``), DCMTK ``echoscu`` as a process per run (its CPU from RUSAGE_CHILDREN), and,
where monai-slo has a faster path, monai-slo's own pynetdicom association path. Runs are
sequential; in-process CPU is the whole process's (pynetdicom's threads included).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

from monai_slo.checks.base import Deadline
from monai_slo.checks.dicom import echo as dicom_echo
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from tests.fixtures_dicom import PynetdicomPeer

from bench.measure import Timing, children_cpu, median, quantile
from bench.peers import OrthancPeer, StorescpPeer
from bench.report import Baseline, Row

WALL_TARGET = 0.002
CPU_TARGET = 0.001


def time_in_process(run: Callable[[], None], runs: int) -> Timing:
    run()  # warm-up: imports, first-use caches
    walls = []
    cpu_start = time.process_time()
    for _ in range(runs):
        started = time.perf_counter()
        run()
        walls.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu_start) / runs
    return Timing(runs, median(walls), quantile(walls, 0.99), cpu)


def time_processes(command: list[str], runs: int) -> Timing:
    subprocess.run(command, check=True, capture_output=True)  # warm-up (page cache)
    walls = []
    cpu_start = children_cpu()
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    cpu = (children_cpu() - cpu_start) / runs
    return Timing(runs, median(walls), quantile(walls, 0.99), cpu)


def echo_config(port: int, aet: str, **extra: Any) -> dicom_echo.Config:
    return dicom_echo.Config.model_validate(
        {"name": "echo", "kind": "dicom_echo", "host": "127.0.0.1", "port": port,
         "called_aet": aet, "timeout": "5s", **extra}
    )  # fmt: skip


def monai_slo_run(config: dicom_echo.Config, run: Callable[..., Any]) -> Callable[[], None]:
    def once() -> None:
        outcome = run(config, Deadline(config.timeout))
        if not outcome.success:
            raise RuntimeError(f"monai-slo C-ECHO failed: {outcome}")

    return once


def pynetdicom_defaults(port: int, aet: str) -> Callable[[], None]:
    def once() -> None:
        ae = AE()
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", port, ae_title=aet)
        if not assoc.is_established:
            raise RuntimeError("pynetdicom could not associate")
        status = assoc.send_c_echo()
        assoc.release()
        if status.get("Status") != 0:
            raise RuntimeError(f"pynetdicom C-ECHO failed: {status}")

    return once


def _paths() -> dict[str, Callable[..., Any]]:
    """monai-slo's C-ECHO paths: the default, and the pynetdicom one if they differ."""
    paths: dict[str, Callable[..., Any]] = {"monai-slo": dicom_echo.run}
    full = getattr(dicom_echo, "run_pynetdicom", None)
    if full is not None:
        paths["monai-slo pynetdicom path"] = full
    return paths


def measure(peer_name: str, port: int, aet: str, runs: int, subprocess_runs: int) -> list[Row]:
    paths = _paths()
    config = echo_config(port, aet)
    ours = time_in_process(monai_slo_run(config, paths.pop("monai-slo")), runs)
    baselines: dict[str, Timing] = {
        name: time_in_process(monai_slo_run(config, run), runs) for name, run in paths.items()
    }
    baselines["pynetdicom defaults"] = time_in_process(pynetdicom_defaults(port, aet), runs)
    echoscu = shutil.which("echoscu")
    if echoscu is not None:
        command = [echoscu, "-aet", "MONAI_SLO", "-aec", aet, "127.0.0.1", str(port)]
        baselines["echoscu"] = time_processes(command, subprocess_runs)

    def row(figure: str, pick: Callable[[Timing], float], target: float | None) -> Row:
        value = pick(ours) * 1e3
        return Row(
            "C-ECHO",
            f"{figure} vs {peer_name}",
            value,
            "ms",
            [Baseline(name, pick(timing) * 1e3) for name, timing in baselines.items()],
            "" if target is None else f"≤ {target * 1e3:g} ms",
            None if target is None else value <= target * 1e3,
        )

    return [
        row("wall median", lambda t: t.median, WALL_TARGET),
        row("wall p99", lambda t: t.p99, None),
        row("CPU per check", lambda t: t.cpu, CPU_TARGET),
    ]


def peer_delay_shows(runs: int, delay: float = 0.05) -> Row:
    """A delay added at the peer must show up in the measured duration, in full."""
    from monai_slo.config.model import CheckRef
    from monai_slo.daemon.runner import execute
    from monai_slo.tiers import TierName

    with PynetdicomPeer(echo_delay=delay) as slow:
        ref = CheckRef("bench", TierName.PRODUCTION, "pacs", echo_config(slow.port, slow.aet))
        execute(ref)
        shown = median([execute(ref).duration for _ in range(runs)]) * 1e3
    return Row(
        "C-ECHO",
        f"duration with a {delay * 1e3:g} ms peer delay (pynetdicom SCP)",
        shown,
        "ms",
        [Baseline("injected delay", delay * 1e3)],
        f"≥ {delay * 1e3:g} ms",
        shown >= delay * 1e3,
    )


def run(quick: bool) -> list[Row]:
    runs = 50 if quick else 300
    subprocess_runs = 20 if quick else 100
    rows: list[Row] = []
    with StorescpPeer() as storescp:
        rows += measure("storescp", storescp.port, storescp.aet, runs, subprocess_runs)
    with OrthancPeer() as orthanc:
        rows += measure("Orthanc", orthanc.dicom_port, orthanc.aet, runs, subprocess_runs)
    rows.append(peer_delay_shows(10 if quick else 30))
    return rows
