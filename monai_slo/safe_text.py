"""Peer and operator text as data: no terminal control, no markup, bounded length.

A banner, an HTTP reason phrase, a DICOM detail or a maintenance reason can hold anything:
ANSI escape sequences that repaint a terminal, newlines that forge log lines, Unicode
direction overrides that reorder what an administrator reads, rich markup (``[/]``) that
crashes a table. Every such string passes through :func:`clean` before it is stored or
shown; tables wrap it in :func:`cell` so rich never reads it as markup, and HTML outputs
escape it as well.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.text import Text

# C0 controls, DEL and C1 controls (ESC and CSI among them), and the bidirectional
# embedding, override and isolate characters: shown as visible escapes instead.
_CONTROLS = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
_BIDI = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
_ESCAPES: dict[int, str] = {
    **{code: f"\\x{code:02x}" for code in _CONTROLS},
    **{code: f"\\u{code:04x}" for code in _BIDI},
}
DEFAULT_LIMIT = 300
LOG_LIMIT = 2000


def clean(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """``text`` with every control character escaped, cut to ``limit`` characters."""
    if len(text) > limit * 4:
        text = text[: limit * 4]  # escaping at most quadruples a character; no more is shown
    cleaned = text.translate(_ESCAPES)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned


def cell(text: str, limit: int = DEFAULT_LIMIT) -> Text:
    """A table cell showing ``text`` literally: cleaned, never parsed as rich markup."""
    from rich.text import Text  # only the table verbs pay for rich

    return Text(clean(text, limit))


class CleanFormatter(logging.Formatter):
    """Log lines with peer text escaped: one record is one line, whatever a peer sent.

    Tracebacks (added after the message) keep their own lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return clean(super().formatMessage(record), LOG_LIMIT)


# Keys a record may carry as ``extra=`` that the JSON format writes as its own fields.
LOG_FIELDS = ("event", "check", "reason")


class JsonFormatter(logging.Formatter):
    """One JSON object per line with stable keys (``time``, ``level``, ``logger``,
    ``message``, and ``event``/``check``/``reason`` where the record has them), for journald
    and Loki; peer text is escaped and bounded as in the text format."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": clean(record.getMessage(), LOG_LIMIT),
        }
        for key in LOG_FIELDS:
            value = getattr(record, key, None)
            if value:
                entry[key] = clean(str(value), DEFAULT_LIMIT)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
