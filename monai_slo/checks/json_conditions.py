"""Conditions on a JSON body (the ``json:`` key of ``http`` and ``dicomweb`` checks).

Written as Gatus users write them::

    json:
      - {path: "$.status", equals: "Healthy"}
      - {path: "$.Services.*", all: "Running"}
      - {path: "$.models[*].name", any: "spleen"}
      - {path: "$.error", exists: false}
      - {path: "$.Version", matches: "^1\\.1[2-9]\\."}

Paths are JSONPath (RFC 9535, with python-jsonpath's extensions), compiled once when the
config is loaded: a path that does not parse is a config error naming the condition. The
operators:

- ``equals``: the path selects exactly one value, equal to the given JSON value
  (``true`` never equals ``1``);
- ``all``: the path selects at least one value, and every one equals the given value;
- ``any``: at least one selected value equals the given value;
- ``exists``: ``true`` when the path must select something, ``false`` when it must not;
- ``matches``: the path selects at least one value, and every one (a string, or a
  number's or boolean's JSON text) contains a match of the RE2 expression.

Regular expressions inside paths (``=~``, ``match()``, ``search()``) are refused: they would
run Python's backtracking engine on a peer's text; ``matches`` runs RE2 instead (see
:mod:`monai_slo.checks.patterns`). A failure's detail names the path, what was expected
and what was seen, escaped and bounded; a kind whose bodies may identify a patient
(DICOMweb) asks for the values to be withheld.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Self, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

from monai_slo.checks.patterns import Pattern, Regex, compiled
from monai_slo.safe_text import clean

VALUE_LIMIT = 80
"""Characters of a seen or expected value shown in a detail."""
DETAIL_LIMIT = 300


if TYPE_CHECKING:
    import jsonpath

    _Query = jsonpath.JSONPath | jsonpath.CompoundJSONPath


@functools.cache
def _env() -> jsonpath.JSONPathEnvironment:
    """python-jsonpath without its regular-expression functions (Python ``re`` backtracks).
    Built on first use: a config without ``json:`` conditions never imports python-jsonpath
    (~40 ms of every ``validate`` and ``status``)."""
    import jsonpath

    class _Environment(jsonpath.JSONPathEnvironment):
        def setup_function_extensions(self) -> None:
            super().setup_function_extensions()
            for name in ("match", "search"):
                self.function_extensions.pop(name, None)

    return _Environment()


@functools.lru_cache(maxsize=1024)
def _compile(path: str) -> _Query:
    return _env().compile(path)


def _valid_path(path: str) -> str:
    import jsonpath
    from jsonpath.token import TOKEN_RE

    try:
        if any(token.kind == TOKEN_RE for token in _env().lexer.tokenize(path)):
            raise ValueError(
                f"JSONPath {path!r}: regular expressions inside a path are not supported; "
                "select the value and use `matches:` (RE2) instead"
            )
        _compile(path)
    except jsonpath.JSONPathError as exc:
        words = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"invalid JSONPath {path!r}: {words}") from None
    return path


JsonPath = Annotated[str, AfterValidator(_valid_path)]
_OPERATORS = ("equals", "all", "any", "exists", "matches")


class JsonCondition(BaseModel):
    """One condition: a JSONPath and exactly one operator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: JsonPath = Field(description='JSONPath into the body, e.g. "$.Services.*".')
    equals: JsonValue = Field(default=None, description="The one selected value equals this.")
    all: JsonValue = Field(default=None, description="Every selected value equals this.")
    any: JsonValue = Field(default=None, description="Some selected value equals this.")
    exists: bool | None = Field(default=None, description="The path selects something (or not).")
    matches: Regex | None = Field(
        default=None, description="Every selected value contains a match (RE2 syntax)."
    )

    @model_validator(mode="after")
    def _one_operator(self) -> Self:
        given = [name for name in _OPERATORS if name in self.model_fields_set]
        if len(given) != 1:
            listed = ", ".join(given) if given else "none"
            raise ValueError(
                f"a json condition needs exactly one of {', '.join(_OPERATORS)} (got {listed})"
            )
        return self

    @property
    def operator(self) -> str:
        return next(name for name in _OPERATORS if name in self.model_fields_set)

    @property
    def query(self) -> _Query:
        return _compile(self.path)  # compiled once per path


JsonConditions = Annotated[
    list[JsonCondition],
    Field(
        default_factory=list,
        description="Conditions on the JSON body; all must hold (see json_conditions).",
    ),
]


class BodyNotJson(Exception):
    """The body could not be read as JSON; the message says why (bounded)."""


def parse(body: bytes, *, complete: bool = True) -> object:
    """The JSON document in ``body`` (any UTF encoding), or :class:`BodyNotJson`."""
    if not complete:
        raise BodyNotJson(
            f"body larger than max_body_bytes ({len(body)} bytes read); "
            "JSON conditions need the whole body"
        )
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BodyNotJson(f"body is not JSON ({len(body)} bytes)") from None
    except RecursionError:  # a peer's nesting is a malformed answer, not our error
        raise BodyNotJson(f"body is JSON nested too deeply to read ({len(body)} bytes)") from None


def _same(left: object, right: object) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0, containers compare deeply."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_same(left[k], right[k]) for k in left)
    return type(left) is type(right) and left == right


def _text(value: object) -> str:
    """A value as JSON text, cut to :data:`VALUE_LIMIT` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (RecursionError, ValueError, TypeError):
        return f"a deeply nested {'array' if isinstance(value, list) else 'object'}"
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _seen(value: object, show: bool) -> str:
    return _text(value) if show else f"{_kind(value)} (value withheld)"


def _searchable(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    return None


Found = Sequence[tuple[str, object]]
"""Values a path selected, each with its normalized path."""


def _find(condition: JsonCondition, document: object) -> Found:
    """Each value the path selects, with its normalized path."""
    if isinstance(document, str):
        # python-jsonpath reads a str argument as JSON text, not as the document: a body
        # that is one JSON string has only itself, at ``$``.
        return [("$", document)] if condition.path.strip() == "$" else []
    data = cast("Mapping[str, object] | Sequence[object] | int | float | bool | None", document)
    return [(match.path, match.obj) for match in condition.query.finditer(data)]


def _exists(condition: JsonCondition, found: Found, show: bool) -> str | None:
    if condition.exists and not found:
        return f"{condition.path}: expected a value, found none"
    if not condition.exists and found:
        where, value = found[0]
        return f"{condition.path}: expected no value, found {where} = {_seen(value, show)}"
    return None


def _equals(condition: JsonCondition, found: Found, show: bool) -> str | None:
    if len(found) != 1:
        return f"{condition.path}: {len(found)} values, `equals` expects one (use `all` or `any`)"
    value = found[0][1]
    if not _same(value, condition.equals):
        return f"{condition.path}: expected {_text(condition.equals)}, got {_seen(value, show)}"
    return None


def _any(condition: JsonCondition, found: Found, show: bool) -> str | None:
    if any(_same(value, condition.any) for _, value in found):
        return None
    where, value = found[0]
    return (
        f"{condition.path}: none of {len(found)} values is {_text(condition.any)}; "
        f"{where} = {_seen(value, show)}"
    )


def _check(condition: JsonCondition, document: object, show: bool) -> str | None:
    """What is wrong with ``document`` under ``condition``, or None when it holds."""
    found = _find(condition, document)
    operator = condition.operator
    if operator == "exists":
        return _exists(condition, found, show)
    if not found:
        return f"{condition.path}: no value (expected {operator} {_expected(condition)})"
    if operator == "equals":
        return _equals(condition, found, show)
    if operator == "any":
        return _any(condition, found, show)
    return _check_each(condition, found, show)


def _check_each(condition: JsonCondition, found: Found, show: bool) -> str | None:
    """``all`` and ``matches``: the first value that fails (by its path), and how many did."""
    pattern: Pattern | None = compiled(condition.matches) if condition.matches else None
    failed: list[tuple[str, object]] = []
    for where, value in found:
        if pattern is not None:
            text = _searchable(value)
            if text is None or not pattern.search(text):
                failed.append((where, value))
        elif not _same(value, condition.all):
            failed.append((where, value))
    if not failed:
        return None
    wanted = f"matching {condition.matches!r}" if pattern is not None else _text(condition.all)
    where, value = failed[0]
    return (
        f"{condition.path}: {len(failed)} of {len(found)} values not {wanted}; "
        f"{where} = {_seen(value, show)}"
    )


def _expected(condition: JsonCondition) -> str:
    if condition.operator == "matches":
        return repr(condition.matches)
    return _text(getattr(condition, condition.operator))


def evaluate(
    conditions: Sequence[JsonCondition], document: object, *, show_values: bool = True
) -> str | None:
    """The first failing condition's detail (escaped, bounded), or None when all hold.

    ``show_values=False`` names only the kind of a value seen (for bodies that may
    identify a patient); expected values come from the config and are always shown.
    """
    for condition in conditions:
        try:
            problem = _check(condition, document, show_values)
        except RecursionError:
            problem = f"{condition.path}: body is JSON nested too deeply to search"
        if problem is not None:
            return clean(problem, DETAIL_LIMIT)
    return None


def evaluate_body(
    conditions: Sequence[JsonCondition],
    body: bytes,
    *,
    complete: bool = True,
    show_values: bool = True,
) -> str | None:
    """:func:`evaluate` on ``body`` parsed as JSON; a body that is not JSON fails too."""
    if not conditions:
        return None
    try:
        document = parse(body, complete=complete)
    except BodyNotJson as problem:
        return clean(str(problem), DETAIL_LIMIT)
    return evaluate(conditions, document, show_values=show_values)
