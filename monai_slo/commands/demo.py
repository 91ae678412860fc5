"""`monai-slo demo`: the daemon against local simulated peers, one of them flaky."""

from __future__ import annotations

import logging
import threading
import time
from importlib.resources import files
from pathlib import Path
from string import Template

from monai_slo.commands.status_tables import status_table
from monai_slo.commands.tables import console
from monai_slo.commands.text_table import colour_enabled
from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.history.evaluation import evaluate
from monai_slo.outputs.status_data import status_data
from monai_slo.testing.peers import FlakyHttpPeer, VerificationPeer

# The gateway blips for 15 s of every 2 minutes (first after 105 s): enough to see the
# staging budget being spent at a visible rate without a newcomer reading "overspent".
DEMO_CYCLE, DEMO_DOWN = 120.0, 15.0


def demo_config_text(**ports: object) -> str:
    template = Template(
        files("monai_slo.commands").joinpath("demo.yaml").read_text(encoding="utf-8"),
    )
    flaky = {"cycle": f"{DEMO_CYCLE:g}", "down_for": f"{DEMO_DOWN:g}"}
    return template.substitute({**flaky, **ports})


def run_demo(*, listen: str, storage: Path, duration: float | None, every: float) -> int:
    logging.getLogger("monai_slo").setLevel(logging.WARNING)
    pacs = VerificationPeer("DEMO-PACS")
    flaky = FlakyHttpPeer(cycle=DEMO_CYCLE, down_for=DEMO_DOWN)
    stable = FlakyHttpPeer()
    try:
        text = demo_config_text(
            listen=listen,
            storage=storage,
            dicom_port=pacs.port,
            http_port=flaky.port,
            stable_http_port=stable.port,
        )
        written = storage.with_suffix(".yaml")
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_text(text, encoding="utf-8")
        config = load_config(written, text)
        daemon = Daemon(config)
        out = console()
        out.print(
            f"monai-slo demo: PACS (C-ECHO) on 127.0.0.1:{pacs.port}, gateway on {flaky.url} "
            f"(down {DEMO_DOWN:g}s of every {DEMO_CYCLE:g}s)\n"
            f"status page: http://{listen}/   metrics: http://{listen}/metrics\n"
            f"history: {storage}\n"
            f"config: {written}\n"
            "Try, in another terminal while the demo runs:\n"
            f"  monai-slo status -c {written}\n"
            f"  monai-slo check -c {written}\n"
            f"  monai-slo report -c {written} --period {time.strftime('%Y-%m', time.gmtime())}\n"
            f"  monai-slo conformance -c {written}\n"
            f"Ctrl-C stops. The status table follows every {every:g}s.\n"
        )
        stop_printing = threading.Event()

        def printer() -> None:
            while not stop_printing.wait(every):
                reports = evaluate(daemon.config, daemon.store, daemon.clock())
                services = status_data(reports)["services"]
                text = status_table(services, width=out.width, colour=colour_enabled())
                out.file.write(text + "\n")
                out.file.flush()

        if every > 0:
            threading.Thread(target=printer, name="demo-status", daemon=True).start()
        try:
            daemon.run_until_stopped(duration)
        finally:
            stop_printing.set()
    finally:
        pacs.stop()
        flaky.stop()
        stable.stop()
    return 0
