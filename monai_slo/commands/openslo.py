"""``monai-slo openslo``: the config's SLOs as OpenSLO v1 documents.

``-o`` takes ``yaml`` (or ``-``, the default) or ``json`` for stdout, as the table verbs do,
and anything else as a directory to write ``openslo.yaml`` into, as ``rules -o DIR`` does
(``-o ./json`` for a directory of that name).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from monai_slo.commands.exit_codes import ExitCode
from monai_slo.config.model import Config
from monai_slo.outputs.openslo import OpenSloError, openslo_documents

OPENSLO_FILE = "openslo.yaml"
STDOUT_FORMATS = {"-": "yaml", "yaml": "yaml", "json": "json"}


def openslo_command(config: Config, output: str = "-") -> int:
    try:
        export = openslo_documents(config)
    except OpenSloError as exc:
        print(f"{config.source}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    for warning in export.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if STDOUT_FORMATS.get(output) == "json":
        sys.stdout.write(json.dumps(export.documents, indent=2, ensure_ascii=False) + "\n")
        return ExitCode.OK
    # One line per query: PromQL reads best unwrapped.
    text = yaml.safe_dump_all(
        export.documents, sort_keys=False, allow_unicode=True, width=1_000_000
    )
    if output in STDOUT_FORMATS:
        sys.stdout.write(text)
        return ExitCode.OK
    directory = Path(output)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / OPENSLO_FILE
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({len(export.documents)} documents)")
    return ExitCode.OK
