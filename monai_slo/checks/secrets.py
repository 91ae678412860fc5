"""Config values that may come from the environment or a file instead of the config itself.

A :class:`SecretRef` is written in YAML as one of::

    Accept: application/json          # a plain string, kept in the config
    Authorization: {env: PACS_TOKEN}  # read from an environment variable
    Authorization: {file: /run/secrets/pacs-token}  # read from a file

References are resolved each time a check runs, because mounted secret files rotate.
Neither ``repr`` nor ``str`` ever shows a value, and :class:`SecretUnavailable` names only
where the value was expected, so a reference can be logged safely.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Source = Literal["plain", "env", "file"]


class SecretUnavailable(Exception):
    """A referenced value cannot be read now. The message names the source, never a value."""


class SecretRef:
    """A string given inline, or a reference to an environment variable or a file."""

    __slots__ = ("_ref", "_source")

    def __init__(self, source: Source, ref: str) -> None:
        if source not in ("plain", "env", "file"):
            raise ValueError(f"unknown secret source {source!r}")
        self._source: Source = source
        self._ref = ref

    @classmethod
    def plain(cls, value: str) -> SecretRef:
        return cls("plain", value)

    @classmethod
    def env(cls, name: str) -> SecretRef:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        return cls("env", name)

    @classmethod
    def file(cls, path: str | os.PathLike[str]) -> SecretRef:
        text = os.fspath(path)
        if not text:
            raise ValueError("secret file path must not be empty")
        return cls("file", text)

    @property
    def source(self) -> Source:
        return self._source

    @property
    def is_secret(self) -> bool:
        """True for values read from the environment or a file rather than the config."""
        return self._source != "plain"

    def describe(self) -> str:
        """Where the value comes from, for messages: ``env var PACS_TOKEN``, ``inline value``."""
        if self._source == "env":
            return f"env var {self._ref}"
        if self._source == "file":
            return f"file {self._ref}"
        return "inline value"

    def resolve(self) -> str:
        """Return the value now; raise :class:`SecretUnavailable` if it cannot be read."""
        if self._source == "plain":
            return self._ref
        if self._source == "env":
            value = os.environ.get(self._ref)
            if value is None:
                raise SecretUnavailable(f"environment variable {self._ref} is not set")
            if not value:
                raise SecretUnavailable(f"environment variable {self._ref} is empty")
            return value
        try:
            raw = Path(self._ref).read_bytes()
        except OSError as exc:
            # strerror only: the exception's str() is fine too, but keep messages uniform.
            raise SecretUnavailable(
                f"cannot read secret file {self._ref}: {exc.strerror or type(exc).__name__}"
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretUnavailable(f"secret file {self._ref} is not UTF-8 text") from None
        # Editors and `kubectl create secret --from-file` leave a trailing newline.
        value = text.rstrip("\r\n")
        if not value:
            raise SecretUnavailable(f"secret file {self._ref} is empty")
        return value

    def to_config(self) -> str | dict[str, str]:
        """The form it was written in, for dumping a config back out."""
        if self._source == "plain":
            return self._ref
        return {self._source: self._ref}

    # Never the value: an inline string is usually harmless, but it is still a header
    # value an administrator may have pasted a token into.
    def __repr__(self) -> str:
        if self._source == "plain":
            return "SecretRef(<inline>)"
        return f"SecretRef({self._source}={self._ref!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretRef):
            return NotImplemented
        return (self._source, self._ref) == (other._source, other._ref)

    def __hash__(self) -> int:
        return hash((SecretRef, self._source, self._ref))

    @classmethod
    def validate(cls, value: object) -> SecretRef:
        """Accept a SecretRef, a string, ``{env: NAME}`` or ``{file: PATH}``."""
        if isinstance(value, SecretRef):
            return value
        if isinstance(value, str):
            return cls.plain(value)
        if isinstance(value, Mapping) and len(value) == 1:
            ((key, ref),) = value.items()
            if key == "env" and isinstance(ref, str):
                return cls.env(ref)
            if key == "file" and isinstance(ref, str | os.PathLike):
                return cls.file(ref)
        raise ValueError("expected a string, {env: VARIABLE} or {file: /path/to/file}")

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.validate,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda ref: ref.to_config()
            ),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {"env": {"type": "string", "pattern": _ENV_NAME.pattern}},
                    "required": ["env"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"file": {"type": "string", "minLength": 1}},
                    "required": ["file"],
                    "additionalProperties": False,
                },
            ]
        }
