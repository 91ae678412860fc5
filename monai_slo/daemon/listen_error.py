"""The error for a listen address that cannot be bound; light, so the CLI can catch it
without importing the listener."""

from __future__ import annotations

import errno


class ListenError(OSError):
    """The listen address cannot be bound: one line saying where, why and what to do."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        why = cause.strerror or str(cause)
        if cause.errno == errno.EADDRINUSE:
            remedy = "another program (or another monai-slo) listens there; stop it or choose "
            remedy += "another address with `listen:` in the config or --listen"
        elif cause.errno == errno.EACCES:
            remedy = "ports below 1024 need privileges; choose a port above 1024"
        else:
            remedy = "check that the address belongs to this host (`listen:` or --listen)"
        super().__init__(cause.errno, f"cannot listen on {where}: {why}; {remedy}")
