"""Start-up of the verbs a person types: `tiers`, `validate` and `status` on a small config.

Each is the whole command in a fresh process (interpreter, imports, the verb's work on one
service of two checks), median of several runs, beside a bare `python -c pass`: what is left
above that is what monai-slo imports and does.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from monai_slo.history.store import HistoryStore

from bench.measure import median
from bench.report import Baseline, Row

STARTUP_TARGET = 0.15

_CONFIG = """\
storage: {storage}
environments:
  - name: bench
    tier: production
    services:
      - name: pacs
        checks:
          - {{name: port, kind: tcp, host: 127.0.0.1, port: 104}}
          - {{name: web, kind: http, url: "http://127.0.0.1:8042/system"}}
"""


def _wall(command: list[str], runs: int) -> float:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - started)
    return median(walls)


def run(quick: bool) -> list[Row]:
    runs = 5 if quick else 15
    cli = str(Path(sys.executable).with_name("monai-slo"))
    with tempfile.TemporaryDirectory(prefix="monai-slo-startup-") as tmp:
        storage = Path(tmp) / "history.sqlite"
        HistoryStore(storage).close()  # an empty history: `status` reads it and prints
        config = Path(tmp) / "config.yaml"
        config.write_text(_CONFIG.format(storage=storage))
        bare = _wall([sys.executable, "-c", "pass"], runs)
        walls = {
            "tiers": _wall([cli, "tiers"], runs),
            "validate": _wall([cli, "validate", "-c", str(config)], runs),
            "status": _wall([cli, "status", "-c", str(config)], runs),
        }
    return [
        Row("startup", f"`monai-slo {verb}` wall (small config)", wall * 1e3, "ms",
            [Baseline("python -c pass", bare * 1e3)], "≤ 150 ms", wall <= STARTUP_TARGET)
        for verb, wall in walls.items()
    ]  # fmt: skip
