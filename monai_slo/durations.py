"""Durations as administrators write them: ``10s``, ``5m``, ``1h30m``, ``30d``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

# y: 365 days (for archive_retention: 5y).
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 365 * 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(value: object) -> float:
    """Return seconds for a duration string or a plain number of seconds.

    Raises ValueError with what was expected, so config errors read well.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 10s, 5m, 30d; got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos = 0
        seconds = 0.0
        for match in _PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"expected a duration such as 10s, 5m, 1h30m, 30d; got {value!r}")
    else:
        raise ValueError(f"expected a duration such as 10s, 5m, 30d; got {value!r}")
    if seconds <= 0:
        raise ValueError(f"expected a positive duration; got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Shortest exact-ish rendering: 2592000 -> '30d', 90 -> '1m30s', 0.25 -> '250ms'."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    remaining = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size:
            count, remaining = divmod(remaining, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


class _ParsedAsDuration:
    """What pydantic's ``BeforeValidator(parse_duration)`` does, without importing pydantic
    here: pydantic calls this when it builds a model, so a verb that only formats durations
    (``tiers``) does not pay pydantic's import."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(parse_duration, handler(source))


Duration = Annotated[float, _ParsedAsDuration()]
"""A pydantic field type: accepts '10s' style strings or numbers, holds seconds."""
