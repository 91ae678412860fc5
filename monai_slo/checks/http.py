"""The ``http`` kind: one request on a fresh connection, judged by status and body.

The request (deadline, TLS, body limit, redirects) is :mod:`monai_slo.checks.http_client`'s;
this module is the kind's keys and its judgement of the response.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import Field, field_validator, model_validator

from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline, FailureReason
from monai_slo.checks.http_client import (
    ClientSettings,
    Headers,
    Response,
    Url,
    fetch,
    resolve_headers,
)
from monai_slo.checks.json_conditions import JsonConditions, evaluate_body
from monai_slo.checks.net import ProbeFailure
from monai_slo.checks.patterns import Pattern, Regex, compiled

Method = Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"]
StatusCode = Annotated[int, Field(ge=100, le=599)]


class Config(ClientSettings, CheckConfig):
    """Request ``url`` and expect one of ``expect_status`` and, optionally, a body match."""

    kind: Literal["http"]
    url: Url
    method: Method = "GET"
    expect_status: Annotated[list[StatusCode], Field(min_length=1)] = Field(
        default_factory=lambda: [200]
    )
    body_regex: Regex | None = Field(
        default=None, description="Regular expression (RE2 syntax) searched for in the body."
    )
    json_conditions: JsonConditions = Field(alias="json")
    headers: Headers = Field(
        default_factory=dict,
        description="Request headers; a value may be {env: VAR} or {file: PATH}.",
    )
    body: str | None = Field(default=None, description="Request body (POST and PUT only).")
    follow_redirects: bool = False

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.body is not None and self.method not in ("POST", "PUT"):
            raise ValueError(f"body is only sent with POST or PUT, not {self.method}")
        return self

    @property
    def pattern(self) -> Pattern | None:
        return compiled(self.body_regex) if self.body_regex is not None else None


def _decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def _judge(config: Config, exchange: Response, values: dict[str, float]) -> CheckOutcome:
    expected = ", ".join(str(code) for code in config.expect_status)
    if exchange.status not in config.expect_status:
        return CheckOutcome.fail(
            FailureReason.HTTP_STATUS, f"got {exchange.status}, expected {expected}", values
        )
    pattern = config.pattern
    if pattern is not None and not pattern.search(_decode(exchange.body, exchange.charset)):
        scope = (
            f"first {len(exchange.body)} bytes of the body"
            if not exchange.complete
            else f"body ({len(exchange.body)} bytes)"
        )
        return CheckOutcome.fail(
            FailureReason.BODY_MISMATCH,
            f"{pattern.pattern!r} not found in {scope}",
            values,
        )
    mismatch = evaluate_body(config.json_conditions, exchange.body, complete=exchange.complete)
    if mismatch is not None:
        return CheckOutcome.fail(FailureReason.BODY_MISMATCH, mismatch, values)
    return CheckOutcome.ok(f"HTTP {exchange.status} {exchange.reason}".rstrip(), values)


def _probe(config: Config, deadline: Deadline, values: dict[str, float]) -> CheckOutcome:
    response = fetch(
        config,
        config.url,
        method=config.method,
        body=config.body.encode("utf-8") if config.body is not None else None,
        headers=resolve_headers(config.headers),
        deadline=deadline,
        values=values,
        follow_redirects=config.follow_redirects,
    )
    return _judge(config, response, values)


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Request the URL, follow redirects when asked, and judge the final response."""
    values: dict[str, float] = {}
    try:
        return _probe(config, deadline, values)
    except ProbeFailure as failure:
        return failure.outcome(values)
