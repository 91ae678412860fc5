"""The ``tcp`` kind: can a connection (and optionally a TLS handshake) be made in time?

Lookup, connect and handshake are the shared plumbing of :mod:`monai_slo.checks.net`, each
bounded by the check's :class:`Deadline`.
"""

from __future__ import annotations

import time
from typing import Literal

from monai_slo.checks.base import CheckConfig, CheckOutcome, Deadline
from monai_slo.checks.net import (
    CERT_EXPIRY,
    DirectTlsOptions,
    Host,
    Port,
    ProbeFailure,
    cert_expiry,
    connect,
    format_host,
    require_validity,
    tls_handshake,
)


class Config(DirectTlsOptions, CheckConfig):
    """Connect to ``host:port``; with ``tls``, also complete a verified TLS handshake."""

    kind: Literal["tcp"]
    host: Host
    port: Port


def run(config: Config, deadline: Deadline) -> CheckOutcome:
    """Connect, handshake when asked, close; report the certificate's expiry under TLS."""
    started = time.monotonic()
    where = format_host(config.host, config.port)
    values: dict[str, float] = {}
    try:
        context = config.tls_context(shared=True) if config.tls else None
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
