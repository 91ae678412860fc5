"""Prometheus rules from the config (placeholder until the alerting work lands)."""

from __future__ import annotations

from pathlib import Path

from monai_slo.config import Config


def rules_command(config: Config, output: Path | None) -> int:
    """Write the rule files for ``config`` into ``output`` (stdout when None); exit code."""
    raise NotImplementedError
