"""Host conformance to the tier (placeholder until the host check lands)."""

from __future__ import annotations

from monai_slo.config import Config


def conformance_command(config: Config) -> int:
    """Print each requirement with its spec sentence, measured value and pass/fail; exit code."""
    raise NotImplementedError
