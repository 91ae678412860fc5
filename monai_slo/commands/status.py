"""``monai-slo status``: per service objective, availability per window, error budget, burn
rate and current state, read from the history file (never written)."""

from __future__ import annotations

import sys
import time

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.commands.output import print_data
from monai_slo.config.model import Config


def status_command(config: Config, output: str = "table", *, wide: bool = False) -> int:
    from monai_slo.commands.status_tables import service_checks_table, status_table
    from monai_slo.commands.text_table import colour_enabled, output_width
    from monai_slo.history.evaluation import evaluate
    from monai_slo.history.store import HistoryStore
    from monai_slo.outputs.status_data import status_data

    if not config.storage.exists():
        print(f"no history yet at {config.storage}; start `monai-slo run` first", file=sys.stderr)
        return ExitCode.FAILED
    store = HistoryStore(config.storage, retention=config.retention, read_only=True)
    try:
        reports = evaluate(config, store, time.time())
    finally:
        store.close()
    if output != "table":
        print_data(status_data(reports, source="history"), output)
        return ExitCode.OK
    width, colour = output_width(), colour_enabled()
    sys.stdout.write(status_table(reports, wide=wide, width=width, colour=colour) + "\n")
    sys.stdout.write(service_checks_table(reports, wide=wide, width=width, colour=colour))
    return ExitCode.OK
