"""``monai-slo run``: the daemon, reloading its config on SIGHUP."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.config.model import Config, coarse_interval_warnings, parse_listen


def with_listen(config: Config, listen: str | None) -> Config:
    """``config`` with ``--listen`` (when given) in place of its own address."""
    if not listen:
        return config
    parse_listen(listen)
    return replace(config, listen=listen)


def run_command(config: Config, reload_config: Callable[[], Config]) -> int:
    from monai_slo.daemon.daemon import Daemon

    for warning in coarse_interval_warnings(config):
        logging.getLogger("monai_slo").warning("%s", warning)
    Daemon(config, reload_config=reload_config).run_until_stopped()
    return ExitCode.OK
