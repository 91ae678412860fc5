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
import os
import re
import secrets
import ssl
import threading
import time
from pathlib import Path
from typing import Annotated, Literal, Self

import bcrypt
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    ValidationError,
    model_validator,
)

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


# Each verification costs 2**cost rounds: 12 is bcrypt's own default (~0.25 s of a core), and
# more would let every unauthenticated request, or a single scrape, hold a core for seconds.
MAX_BCRYPT_COST = 12
MAX_PASSWORD_BYTES = 72  # bcrypt ignores (or refuses) anything beyond
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")


def bcrypt_cost(hashed: str) -> int | None:
    """The cost factor of a well-formed bcrypt hash, None for anything else."""
    match = _BCRYPT.fullmatch(hashed)
    return int(match.group(1)) if match else None


def _bcrypt_hash(hashed: str) -> str:
    # Never echo the value: it might be a password pasted by mistake.
    cost = bcrypt_cost(hashed)
    if cost is None or cost < 4:
        raise ValueError("expected a bcrypt hash ($2y$...)")
    if cost > MAX_BCRYPT_COST:
        raise ValueError(
            f"bcrypt cost {cost} is above the maximum {MAX_BCRYPT_COST} (each request would spend "
            f"~{0.25 * 2 ** (cost - 12):g} s of CPU); re-hash with "
            f"`htpasswd -nBC {MAX_BCRYPT_COST} \"\" | tr -d ':\\n'`"
        )
    return hashed


BcryptHash = Annotated[str, AfterValidator(_bcrypt_hash)]


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
    basic_auth_users: dict[str, BcryptHash] = Field(default_factory=dict)
    http_server_config: HttpServerConfig = HttpServerConfig()

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


AuthVerdict = Literal["ok", "denied", "busy"]

VERIFIED_TTL = 300.0  # seconds a successful verification is remembered
AUTH_WAIT = 1.0  # seconds a request waits for a bcrypt slot before it is answered 503


def auth_slots() -> int:
    """bcrypt verifications run at once: at most half the cores (2 at most, 1 on small hosts),
    so checks keep the rest of the CPU during a wrong-password flood."""
    return max(1, min(2, (os.cpu_count() or 2) // 2))


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes without becoming a
    denial-of-service lever or a user-name oracle:

    * at most ``slots`` bcrypt verifications run at once and as many wait (``AUTH_WAIT`` at
      most); further requests are answered "busy" at once, so a wrong-password flood costs a
      bounded share of the CPU and of the listener's workers;
    * an unknown user is verified against a dummy hash of the same cost, so the answer takes as
      long as for a known user with a wrong password;
    * a password longer than bcrypt's 72 bytes is denied without hashing;
    * a successful verification is remembered for ``VERIFIED_TTL`` (keyed by a per-process
      secret HMAC of user, password and hash), so Prometheus scraping every 15 s pays bcrypt
      once every few minutes, not every scrape, and still gets in during a flood.
    """

    def __init__(self, users: dict[str, str], *, slots: int | None = None) -> None:
        self._users = users
        costs = [cost for cost in map(bcrypt_cost, users.values()) if cost is not None]
        # Any well-formed hash verifies in full; this one matches no password anyone sends.
        self._dummy = f"$2b${max(costs, default=MAX_BCRYPT_COST):02d}${'.' * 53}".encode()
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, float] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(slots or auth_slots())
        self._max_waiting = slots or auth_slots()
        self._waiting = 0

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def allows(self, header: str | None) -> bool:
        return self.check(header) == "ok"

    def check(self, header: str | None) -> AuthVerdict:
        if not self._users:
            return "ok"
        credentials = _basic_credentials(header)
        if credentials is None:
            return "denied"
        user, password = credentials
        secret = password.encode()
        if len(secret) > MAX_PASSWORD_BYTES:
            return "denied"
        hashed = self._users.get(user)
        digest = hmac.digest(
            self._key, b"\0".join((user.encode(), secret, (hashed or "").encode())), hashlib.sha256
        )
        now = time.monotonic()
        if hashed is not None:
            with self._lock:
                expires = self._verified.get(digest)
                if expires is not None and expires > now:
                    return "ok"
        verdict = self._verify(secret, hashed)
        if verdict == "ok":
            with self._lock:
                self._verified = {d: t for d, t in self._verified.items() if t > now}
                self._verified[digest] = now + VERIFIED_TTL
        return verdict

    def _verify(self, secret: bytes, hashed: str | None) -> AuthVerdict:
        if not self._acquire():
            return "busy"
        try:
            matches = bcrypt.checkpw(secret, hashed.encode() if hashed else self._dummy)
        except ValueError:
            matches = False
        finally:
            self._slots.release()
        return "ok" if matches and hashed is not None else "denied"

    def _acquire(self) -> bool:
        if self._slots.acquire(blocking=False):
            return True
        with self._lock:
            if self._waiting >= self._max_waiting:
                return False
            self._waiting += 1
        try:
            return self._slots.acquire(timeout=AUTH_WAIT)
        finally:
            with self._lock:
                self._waiting -= 1


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def basic_user(header: str | None) -> str | None:
    """The user name of an ``Authorization: Basic`` header (None when malformed); ask
    :meth:`BasicAuth.check` first whether it may be believed."""
    credentials = _basic_credentials(header)
    return None if credentials is None else credentials[0]
