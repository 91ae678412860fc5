"""``Duration`` builds its pydantic validator on demand (so ``durations`` imports no
pydantic); it must accept, convert and refuse exactly what ``BeforeValidator(parse_duration)``
did, with the same error, as a field, an optional field and inside a list."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, BeforeValidator, ValidationError

from monai_slo.durations import Duration, parse_duration

_Reference = Annotated[float, BeforeValidator(parse_duration)]


class _Fast(BaseModel):
    one: Duration
    maybe: Duration | None = None
    many: list[Duration] = []


class _Slow(BaseModel):
    one: _Reference
    maybe: _Reference | None = None
    many: list[_Reference] = []


_INPUTS: list[object] = [
    "10s", "5m", "1h30m", "30d", "1w", "250ms", "1.5h", " 2m ", 30, 0.25, 7.0,
    "", "10", "10x", "m5", "-5s", "0s", 0, -1, True, None, [], "1h 30m", "\u0661\u0660s",
]  # fmt: skip


def _outcome(model: type[BaseModel], **fields: object) -> object:
    try:
        return model(**fields).model_dump()
    except ValidationError as exc:
        return [(e["loc"], e["type"], e["msg"]) for e in exc.errors()]


@pytest.mark.parametrize("value", _INPUTS, ids=repr)
def test_duration_matches_before_validator(value: object) -> None:
    for fields in ({"one": value}, {"one": 1, "maybe": value}, {"one": 1, "many": [5, value]}):
        assert _outcome(_Fast, **fields) == _outcome(_Slow, **fields)


def test_json_schema_is_a_number_as_before() -> None:
    fast = _Fast.model_json_schema()["properties"]
    slow = _Slow.model_json_schema()["properties"]
    assert fast == slow
