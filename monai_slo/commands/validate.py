"""``monai-slo validate``: the config loads (else exit 2 from the loader), and what it cannot
measure or store is said beforehand."""

from __future__ import annotations

import sys

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.config.model import Config, coarse_interval_warnings
from monai_slo.history.store import storage_warnings


def validate_command(config: Config) -> int:
    for warning in [*coarse_interval_warnings(config), *storage_warnings(config.storage)]:
        print(f"warning: {warning}", file=sys.stderr)
    services = sum(1 for _ in config.services())
    checks = sum(1 for _ in config.checks())
    print(
        f"{config.source}: ok ({len(config.environments)} environments, {services} services, "
        f"{checks} checks)"
    )
    return ExitCode.OK
