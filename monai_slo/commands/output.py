"""``-o table|json|yaml``: the table verbs print for people by default and data for scripts
on request, as kubectl and promtool users expect."""

from __future__ import annotations

import json
import sys
from typing import Any

FORMATS = ("table", "json", "yaml")


def print_data(data: Any, output: str) -> None:
    """``data`` (dicts, lists, numbers, strings, None) as JSON or YAML on stdout."""
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        import yaml  # only here: a table or JSON does not pay PyYAML's import

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
