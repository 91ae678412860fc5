"""Start-up of the verbs a person types: `--help`, `tiers`, `validate` and `status` on a small
config.

Each is the whole command in a fresh process (interpreter, imports, the verb's work on one
service of two checks), median of several runs after one warm-up, beside the floors it cannot
go under: a bare `python -c pass`, and the imports every config-reading verb needs (PyYAML;
pydantic and the config model). Bytecode is cached as an installed package has it (the
harness's environment may set PYTHONDONTWRITEBYTECODE, which would time compiling every
module instead).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from monai_slo.history.store import HistoryStore

from bench.measure import children_cpu, median
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


def process_env(pycache: Path) -> dict[str, str]:
    """The environment of a fresh command: bytecode written (once) and read back."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def timed(command: list[str], runs: int, env: Mapping[str, str]) -> tuple[float, float]:
    """Median wall and CPU (user + system) seconds of ``command`` in a fresh process, after
    one warm-up run. On a shared machine the CPU figure moves less with the load."""
    walls, cpus = [], []
    for _ in range(runs + 1):
        cpu = children_cpu()
        started = time.perf_counter()
        subprocess.run(
            command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        walls.append(time.perf_counter() - started)
        cpus.append(children_cpu() - cpu)
    return median(walls[1:]), median(cpus[1:])


def wall(command: list[str], runs: int, env: Mapping[str, str]) -> float:
    return timed(command, runs, env)[0]


def run(quick: bool) -> list[Row]:
    runs = 5 if quick else 15
    cli = str(Path(sys.executable).with_name("monai-slo"))
    with tempfile.TemporaryDirectory(prefix="monai-slo-startup-") as tmp:
        env = process_env(Path(tmp) / "pycache")
        storage = Path(tmp) / "history.sqlite"
        HistoryStore(storage).close()  # an empty history: `status` reads it and prints
        config = Path(tmp) / "config.yaml"
        config.write_text(_CONFIG.format(storage=storage))
        python = [sys.executable, "-c"]
        bare = timed([*python, "pass"], runs, env)
        yaml_floor = timed([*python, "import yaml"], runs, env)
        model_floor = timed([*python, "import monai_slo.config.model"], runs, env)
        verbs = {
            "--help": timed([cli, "--help"], runs, env),
            "tiers": timed([cli, "tiers"], runs, env),
            "validate": timed([cli, "validate", "-c", str(config)], runs, env),
            "status": timed([cli, "status", "-c", str(config)], runs, env),
        }
    rows = []
    for verb, (value, cpu) in verbs.items():
        floors = [("python -c pass", bare)]
        if verb in {"validate", "status"}:
            floors += [
                ("python -c 'import yaml'", yaml_floor),
                ("import the config model (pydantic)", model_floor),
            ]
        rows.append(
            Row(
                "startup",
                f"`monai-slo {verb}` wall (small config)",
                value * 1e3,
                "ms",
                [Baseline(name, w * 1e3) for name, (w, _) in floors],
                "≤ 150 ms",
                value <= STARTUP_TARGET,
            )
        )
        # CPU moves less than wall when other work shares the machine.
        rows.append(
            Row(
                "startup",
                f"`monai-slo {verb}` CPU",
                cpu * 1e3,
                "ms",
                [Baseline(name, c * 1e3) for name, (_, c) in floors],
            )
        )
    return rows  # fmt: skip
