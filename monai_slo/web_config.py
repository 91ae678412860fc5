"""Access control for the listener, in the Prometheus exporter-toolkit web config format:

    tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, min_version}
    basic_auth_users: {name: bcrypt hash}
    http_server_config: {headers: {Name: value}}

The same file works for node_exporter and blackbox_exporter, so one file can guard them all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import threading
from pathlib import Path
from typing import Literal, Self

import bcrypt
from pydantic import BaseModel, ConfigDict, Field, FilePath, ValidationError, model_validator

from monai_slo.yaml_source import SourceError, SourceIssue, load_yaml

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Strict):
    cert_file: FilePath
    key_file: FilePath
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: FilePath | None = None
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"

    @model_validator(mode="after")
    def _ca_for_verification(self) -> Self:
        if "Verify" in self.client_auth_type and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        return self


class HttpServerConfig(_Strict):
    headers: dict[str, str] = Field(default_factory=dict)


class WebConfig(_Strict):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)
    http_server_config: HttpServerConfig = HttpServerConfig()

    @model_validator(mode="after")
    def _hashes_are_bcrypt(self) -> Self:
        for user, hashed in self.basic_auth_users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                # Never echo the value: it might be a password pasted by mistake.
                raise ValueError(f"basic_auth_users.{user}: expected a bcrypt hash ($2y$...)")
        return self

    def ssl_context(self) -> ssl.SSLContext | None:
        tls = self.tls_server_config
        if tls is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _TLS_VERSIONS[tls.min_version]
        context.load_cert_chain(tls.cert_file, tls.key_file)
        if tls.client_ca_file is not None:
            context.load_verify_locations(tls.client_ca_file)
        context.verify_mode = {
            "NoClientCert": ssl.CERT_NONE,
            "RequestClientCert": ssl.CERT_OPTIONAL,
            "RequireAnyClientCert": ssl.CERT_REQUIRED,
            "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
            "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
        }[tls.client_auth_type]
        return context


def load_web_config(path: Path) -> WebConfig:
    source = load_yaml(path)
    try:
        config = WebConfig.model_validate(source.data or {})
        config.ssl_context()  # unreadable or mismatched key/cert fails now, not at first scrape
    except ValidationError as exc:
        issues = [
            source.issue(tuple(e["loc"]), e["msg"].removeprefix("Value error, "))
            for e in exc.errors(include_url=False)
        ]
        raise SourceError(issues) from exc
    except (ssl.SSLError, OSError) as exc:
        raise SourceError(
            [SourceIssue(str(path), None, "tls_server_config", f"cannot load certificate: {exc}")]
        ) from exc
    return config


class BasicAuth:
    """Checks ``Authorization: Basic`` headers; successful checks are cached, since bcrypt is
    deliberately slow and Prometheus sends the same credentials every scrape."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def allows(self, header: str | None) -> bool:
        if not self._users:
            return True
        credentials = _basic_credentials(header)
        hashed = self._users.get(credentials[0]) if credentials else None
        if credentials is None or hashed is None:
            return False
        user, password = credentials
        digest = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        with self._lock:
            if any(hmac.compare_digest(digest, known) for known in self._verified):
                return True
        if not bcrypt.checkpw(password.encode(), hashed.encode()):
            return False
        with self._lock:
            self._verified.add(digest)
        return True


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password
