"""Grafana dashboards from code, with Grafana's own typed builders (grafana-foundation-sdk).

Three dashboards, checked in under ``grafana/dashboards/`` (a test proves they are current)::

    python -m monai_slo.outputs.dashboards grafana/dashboards

* ``monai-slo-overview.json``: every environment and service: state, availability over its
  SLO window against the objective, error budget left, burn rates, maintenance, coverage.
* ``monai-slo-service.json``: one service (or several): availability per window, budget
  burn-down, check states, durations and failure reasons over time, latency objectives, the
  study flow of study_flow checks.
* ``monai-slo-gpu.json``: the ``gpu`` kind's verdict and suggested action per GPU, and its
  gauges: temperature and headroom to slowdown, throttling, power, memory, utilisation, ECC
  and XID counts.

Metric names come from :mod:`monai_slo.outputs.metric_names`, the windows from
:mod:`monai_slo.history.evaluation` and :mod:`monai_slo.slo.burn_windows`, so a renamed metric or a
new window changes the dashboards with it. Only this package needs the SDK: the daemon never
imports it (install the ``dashboards`` extra to regenerate).

The panel kit is :mod:`~monai_slo.outputs.dashboards.kit`; each board is a module of its own
(``overview``, ``service``, ``gpu``) that builds a :class:`~monai_slo.outputs.dashboards.kit.Board`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from monai_slo.outputs.dashboards.gpu import gpu
from monai_slo.outputs.dashboards.kit import (
    ALL_VARIABLES,
    GPU_UID,
    OVERVIEW_UID,
    SERVICE_UID,
    TAG,
    over_slo_window,
)
from monai_slo.outputs.dashboards.overview import overview
from monai_slo.outputs.dashboards.service import service

__all__ = [
    "ALL_VARIABLES",
    "BOARDS",
    "GPU_UID",
    "OVERVIEW_UID",
    "SERVICE_UID",
    "TAG",
    "main",
    "over_slo_window",
    "render_dashboards",
    "write_dashboards",
]

BOARDS = {
    f"{OVERVIEW_UID}.json": overview,
    f"{SERVICE_UID}.json": service,
    f"{GPU_UID}.json": gpu,
}


def render_dashboards() -> dict[str, str]:
    """File name -> dashboard JSON text, as checked in under grafana/dashboards/."""
    return {
        name: json.dumps(make().build(), indent=2, ensure_ascii=False) + "\n"
        for name, make in BOARDS.items()
    }


def write_dashboards(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_dashboards().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monai_slo.outputs.dashboards",
        description="Write the Grafana dashboards (JSON) into DIRECTORY.",
    )
    parser.add_argument("directory", type=Path, help="e.g. grafana/dashboards")
    args = parser.parse_args(argv)
    for path in write_dashboards(args.directory):
        print(path)
    return 0
