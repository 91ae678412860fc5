"""Regular expressions matched against what peers send, in linear time.

Python's ``re`` backtracks: ``(a+)+$`` against a 28-byte body runs for seconds, holding the
interpreter lock so that every check and scrape stalls behind one peer. RE2 (google-re2)
matches in time linear in the input, so a body or banner costs its check microseconds
whatever it holds. RE2 has no backreferences or lookaround; a pattern that needs them is
refused when the config is loaded, with the reason.
"""

from __future__ import annotations

import functools
from typing import Annotated, Protocol

import re2
from pydantic import AfterValidator

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the config error says what is wrong; no stderr chatter


class Pattern(Protocol):
    pattern: str

    def search(self, text: str) -> object | None: ...


@functools.lru_cache(maxsize=1024)
def compiled(expression: str) -> Pattern:
    """The linear-time pattern for ``expression`` (compiled once per expression)."""
    pattern: Pattern = re2.compile(expression, _OPTIONS)
    return pattern


def _linear(expression: str) -> str:
    try:
        compiled(expression)
    except re2.error as exc:
        words = exc.args[0].decode(errors="replace") if exc.args else str(exc)
        raise ValueError(
            f"invalid regular expression {expression!r}: {words} "
            "(RE2 syntax: no backreferences or lookaround, so that matching a peer's "
            "text takes linear time)"
        ) from None
    return expression


Regex = Annotated[str, AfterValidator(_linear)]
"""A config field holding a regular expression in RE2 syntax, checked at load."""
