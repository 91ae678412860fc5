"""The ``tcp`` kind: can a connection (and optionally a TLS handshake) be made in time?

Lookup, connect and handshake are the shared plumbing of :mod:`monai_slo.checks.net`, each
bounded by the check's :class:`Deadline`.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import Field, FilePath, field_validator

from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline
from monai_slo.checks.net import (
    CERT_EXPIRY,
    ProbeFailure,
    cert_expiry,
    connect,
    format_host,
    require_validity,
    shared_tls_context,
    tls_handshake,
)


class Config(CheckConfig):
    """Connect to ``host:port``; with ``tls``, also complete a verified TLS handshake."""

    kind: Literal["tcp"]
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)]
    tls: bool = False
    ca_file: FilePath | None = Field(
        default=None, description="PEM bundle to trust instead of the system CAs (with tls)."
    )
    tls_verify: bool = True
    server_name: str | None = Field(
        default=None, description="Name to send (SNI) and verify; default: host."
    )
    min_days_valid: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="With tls, fail when a served certificate expires sooner."
    )

    @field_validator("host")
    @classmethod
    def _plain_host(cls, value: str) -> str:
        # Accept "[::1]" as administrators copy it from URLs.
        host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        if any(ch.isspace() for ch in host) or "/" in host or not host:
            raise ValueError(f"expected a host name or IP address, got {value!r}")
        return host


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Connect, handshake when asked, close; report the certificate's expiry under TLS."""
    started = time.monotonic()
    where = format_host(config.host, config.port)
    values: dict[str, float] = {}
    try:
        context = (
            shared_tls_context(ca_file=config.ca_file, verify=config.tls_verify)
            if config.tls
            else None
        )
        sock = connect(config.host, config.port, deadline)
        if context is None:
            sock.close()
            return CheckOutcome.ok(f"connected to {where} in {time.monotonic() - started:.3f}s")
        tls = tls_handshake(sock, context, config.server_name or config.host, deadline)
        try:
            expiry = cert_expiry(tls)
            if expiry is not None:
                values[CERT_EXPIRY] = expiry
            version = tls.version() or "TLS"
        finally:
            tls.close()
        require_validity(expiry, config.min_days_valid)
    except ProbeFailure as failure:
        return failure.outcome(values)
    return CheckOutcome.ok(
        f"{version} handshake with {where} in {time.monotonic() - started:.3f}s", values
    )
