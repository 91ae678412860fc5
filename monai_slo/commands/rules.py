"""``monai-slo rules``: write the Prometheus rule file for the config."""

from __future__ import annotations

import sys
from pathlib import Path

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.config.model import AlertingOptions, Config
from monai_slo.outputs.rules import RULES_FILE, render_rules, unreachable_warnings


def rules_command(
    config: Config, output: Path | None, options: AlertingOptions | None = None
) -> int:
    """Write the rule file for ``config`` into ``output`` (stdout when None); exit code."""
    text = render_rules(config, options)
    for warning in unreachable_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    if output is None:
        sys.stdout.write(text)
        return ExitCode.OK
    output.mkdir(parents=True, exist_ok=True)
    path = output / RULES_FILE
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return ExitCode.OK
