"""Network plumbing every network kind shares: lookup, connect, TLS, certificate expiry.

Each step is bounded by the check's :class:`Deadline` and says what went wrong as a
:class:`ProbeFailure` (a reason and a detail safe to show). The ``tcp``, ``ssh``, ``http``,
``dicomweb`` and DICOM kinds all connect through here, so a given failure (a name that does
not resolve, a refused port, a failed handshake) has the same reason whatever kind saw it.
"""

from __future__ import annotations

import _ssl
import contextlib
import errno
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Self, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, FilePath, model_validator

from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason

CERT_EXPIRY = "tls_cert_expiry_timestamp_seconds"

UNREACHABLE_ERRNOS = frozenset(
    {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
)

# (family, type, proto, canonname, sockaddr) as getaddrinfo() returns them.
AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


class ProbeFailure(Exception):
    """A step of a probe failed for a known reason; ``detail`` is safe to show."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    def outcome(self, values: dict[str, float] | None = None) -> CheckOutcome:
        return CheckOutcome.fail(self.reason, self.detail, values)


# --- Config field types -----------------------------------------------------------------------


def _plain_host(value: str) -> str:
    # Accept " pacs " and "[::1]" as administrators copy them from other files and URLs.
    host = value.strip()
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if any(ch.isspace() for ch in host) or "/" in host or not host:
        raise ValueError(f"expected a host name or IP address, got {value!r}")
    return host


Host = Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_plain_host)]
"""A host name or IP address to connect to (surrounding spaces and the brackets around
an IPv6 literal dropped)."""

Port = Annotated[int, Field(ge=1, le=65535)]


class TlsClientOptions(BaseModel):
    """How a kind speaks TLS as a client: whom to trust, what to present, how long the
    served certificate must stay valid. Embedded (as a base class, so the keys stay at
    the check's top level) by every kind that speaks TLS."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: FilePath | None = Field(
        default=None, description="PEM bundle to trust instead of the system CAs."
    )
    tls_verify: bool = True
    client_cert: FilePath | None = Field(
        default=None, description="PEM certificate (chain) to present, for peers that ask."
    )
    client_key: FilePath | None = Field(
        default=None, description="Its private key, if not in client_cert."
    )
    min_days_valid: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="Fail when a served certificate expires sooner."
    )

    @model_validator(mode="after")
    def _client_pair(self) -> Self:
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        return self

    def tls_context(self, *, shared: bool) -> ssl.SSLContext:
        """The context for these options: the one shared while its files are unchanged
        (:func:`shared_tls_context`), or a fresh one the caller may change."""
        make = shared_tls_context if shared else tls_context
        return make(
            ca_file=self.ca_file,
            verify=self.tls_verify,
            client_cert=self.client_cert,
            client_key=self.client_key,
        )


class DirectTlsOptions(TlsClientOptions):
    """TLS on a connection that has no URL to say so: the ``tls`` switch and the name to
    send (SNI) and verify (tcp, the DICOM kinds)."""

    tls: bool = False
    server_name: Host | None = Field(
        default=None, description="Name to send (SNI) and verify; default: host."
    )


# --- Name lookup ------------------------------------------------------------------------------


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def format_host(host: str, port: int) -> str:
    """``host:port``, with IPv6 literals bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _LookupThreads:
    """Threads that run name lookups: an idle one is reused, and a new one starts whenever
    none is idle, so a lookup that hangs holds only its own thread and never delays
    another (as a thread per lookup would, without its ~0.4 ms of CPU per lookup)."""

    IDLE_EXIT = 60.0  # seconds an idle thread waits for work before it ends

    def __init__(self) -> None:
        self.started = 0  # threads ever started (for tests)
        self.reset()

    def reset(self) -> None:
        """Forget every thread: a forked child has none of its parent's."""
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._jobs: deque[Callable[[], None]] = deque()
        self._idle = 0  # threads waiting for a job; never fewer than the jobs queued

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._idle > len(self._jobs):
                self._jobs.append(job)
                self._work.notify()
                return
            self.started += 1
        threading.Thread(target=self._serve, args=(job,), name="resolve", daemon=True).start()

    def _serve(self, job: Callable[[], None] | None) -> None:
        while job is not None:
            job()
            with self._lock:
                self._idle += 1
                self._work.wait_for(lambda: self._jobs, self.IDLE_EXIT)
                self._idle -= 1
                job = self._jobs.popleft() if self._jobs else None


_lookups = _LookupThreads()
if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_lookups.reset)


# An IP literal's answer is the literal itself: parsed once per (host, port), not per run.
_LITERAL_CACHE_SIZE = 1024
_literals: dict[tuple[str, int], tuple[AddrInfo, ...]] = {}


def resolve(
    host: str, port: int, deadline: Deadline, *, limit: float | None = None
) -> Sequence[AddrInfo]:
    """The IPv4 and IPv6 addresses of ``host``; raises ProbeFailure (DNS) when there are
    none or the lookup does not finish within ``limit`` or the deadline, whichever is first.

    getaddrinfo() takes no timeout, and a resolver that does not answer blocks for its own
    (often 5 s x attempts); running it on a lookup thread keeps the check inside its
    deadline. The thread is left to finish on its own if it overruns (it holds no socket
    of ours). A lookup that hangs is a name-resolution failure, not a slow peer.
    """
    known = _literals.get((host, port))
    if known is not None:
        return list(known)
    if is_ip_literal(host):
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        if len(_literals) >= _LITERAL_CACHE_SIZE:
            _literals.clear()
        _literals[(host, port)] = tuple(found)
        return found
    wait = deadline.remaining() if limit is None else min(limit, deadline.remaining())
    box: list[Sequence[AddrInfo] | Exception] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            box.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as exc:
            box.append(exc)
        done.set()

    _lookups.submit(lookup)
    if not done.wait(wait):
        raise ProbeFailure(
            FailureReason.DNS, f"name lookup for {host!r} did not finish within {wait:g}s"
        )
    answer = box[0]
    if isinstance(answer, Exception):
        words = getattr(answer, "strerror", None) or str(answer)
        raise ProbeFailure(FailureReason.DNS, f"cannot resolve {host!r}: {words}")
    usable = [entry for entry in answer if entry[0] in (socket.AF_INET, socket.AF_INET6)]
    if not usable:
        raise ProbeFailure(FailureReason.DNS, f"no IPv4 or IPv6 address for {host!r}")
    return usable


def preferred_address(addresses: Sequence[AddrInfo]) -> str:
    """The first IPv4 address, else the first IPv6 one (as pynetdicom would pick)."""
    for family in (socket.AF_INET, socket.AF_INET6):
        for entry in addresses:
            if entry[0] == family:
                return str(entry[4][0])
    return str(addresses[0][4][0])


# --- Connect ----------------------------------------------------------------------------------


def connect_reason(exc: OSError) -> FailureReason:
    """What a failed connect() means, as a reason (the one errno mapping)."""
    if isinstance(exc, TimeoutError):
        return FailureReason.TIMEOUT
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return FailureReason.REFUSED
    if exc.errno in UNREACHABLE_ERRNOS:
        return FailureReason.UNREACHABLE
    return FailureReason.CONNECTION


def os_words(exc: OSError) -> str:
    """The system's words for an OSError, never empty."""
    return exc.strerror or str(exc) or type(exc).__name__


CONNECT_WORDS: Mapping[FailureReason, str] = {
    FailureReason.TIMEOUT: "connecting to {where} timed out",
    FailureReason.REFUSED: "connection to {where} refused",
    FailureReason.UNREACHABLE: "{where} unreachable: {why}",
    FailureReason.CONNECTION: "connecting to {where} failed: {why}",
}
"""Each reason :func:`connect_reason` gives, as a template: ``{where}`` is ``host:port``,
``{why}`` the system's words; a kind with words of its own passes its table."""


def connect_failure(
    exc: OSError,
    where: str,
    words: Mapping[FailureReason, str] = CONNECT_WORDS,
    **more: object,
) -> ProbeFailure:
    """A failed connect() as a ProbeFailure: the reason, and ``words`` filled in
    (``more`` fills further placeholders)."""
    reason = connect_reason(exc)
    return ProbeFailure(reason, words[reason].format(where=where, why=os_words(exc), **more))


def connect(host: str, port: int, deadline: Deadline) -> socket.socket:
    """Open a TCP connection to the first address of ``host`` that accepts, within the deadline.

    Unlike socket.create_connection(), the timeout is the time left overall, not per address.
    """
    where = format_host(host, port)
    last: ProbeFailure | None = None
    for family, kind, proto, _, address in resolve(host, port, deadline):
        remaining = deadline.remaining()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(remaining)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = connect_failure(exc, where)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if last is not None and last.reason is not FailureReason.TIMEOUT:
        raise last
    raise ProbeFailure(FailureReason.TIMEOUT, f"connecting to {where} timed out")


_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def quick_ack(sock: socket.socket) -> None:
    """Acknowledge what arrives next at once (Linux; elsewhere nothing). Linux turns quick
    ACKs off again by itself, so this goes before every read."""
    if _QUICKACK is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


# --- TLS --------------------------------------------------------------------------------------


def tls_context(
    *,
    ca_file: Path | None = None,
    verify: bool = True,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> ssl.SSLContext:
    """A client context: system CAs, or only ``ca_file`` when given; built per run so a
    rotated CA or client certificate is picked up.
    """
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if client_cert is not None:
            context.load_cert_chain(client_cert, client_key)
    except (ssl.SSLError, OSError) as exc:
        detail = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise ProbeFailure(FailureReason.TLS, f"cannot load TLS files: {detail}") from None
    return context


# Files a context was built from: (path, (inode, device, size, mtime)) each.
_Signature = tuple[tuple[str, tuple[int, int, int, int] | None], ...]
_CONTEXT_CACHE_SIZE = 64
_contexts: OrderedDict[
    tuple[str | None, bool, str | None, str | None], tuple[_Signature, ssl.SSLContext]
] = OrderedDict()
_contexts_lock = threading.Lock()


def _file_state(path: str | None) -> tuple[int, int, int, int] | None:
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_dev, stat.st_size, stat.st_mtime_ns)


def _signature(
    ca_file: Path | None, client_cert: Path | None, client_key: Path | None
) -> _Signature:
    paths: list[str | None] = [str(p) if p else None for p in (ca_file, client_cert, client_key)]
    if ca_file is None:
        # The system store: the bundle file and the hashed directory OpenSSL reads.
        defaults = ssl.get_default_verify_paths()
        paths += [defaults.cafile, defaults.capath]
    return tuple((path or "", _file_state(path)) for path in paths)


def shared_tls_context(
    *,
    ca_file: Path | None = None,
    verify: bool = True,
    client_cert: Path | None = None,
    client_key: Path | None = None,
) -> ssl.SSLContext:
    """:func:`tls_context`, built once and shared for as long as its files are unchanged.

    Loading the system CA bundle costs ~25 ms of CPU, more than the rest of an HTTPS check;
    a context is reused until a file it was built from (CA bundle or directory, client
    certificate or key) changes inode, size or modification time, so a rotated file is
    still picked up at the next run. Callers must not change the context they get.
    """
    key = (
        str(ca_file) if ca_file else None,
        verify,
        str(client_cert) if client_cert else None,
        str(client_key) if client_key else None,
    )
    signature = _signature(ca_file, client_cert, client_key)
    with _contexts_lock:
        found = _contexts.get(key)
        if found is not None and found[0] == signature:
            _contexts.move_to_end(key)
            return found[1]
    context = tls_context(
        ca_file=ca_file, verify=verify, client_cert=client_cert, client_key=client_key
    )
    with _contexts_lock:
        _contexts[key] = (signature, context)
        _contexts.move_to_end(key)
        while len(_contexts) > _CONTEXT_CACHE_SIZE:
            _contexts.popitem(last=False)
    return context


def tls_handshake(
    sock: socket.socket, context: ssl.SSLContext, server_name: str, deadline: Deadline
) -> ssl.SSLSocket:
    """Wrap ``sock`` and complete the handshake within the deadline. Closes ``sock`` on failure.

    ssl's do_handshake() treats the socket timeout as a bound on the whole handshake, so a
    peer that accepts and never answers costs at most the time left.
    """
    try:
        sock.settimeout(deadline.remaining() or 1e-6)
        tls = context.wrap_socket(sock, server_hostname=server_name, do_handshake_on_connect=False)
    except (ssl.SSLError, ValueError) as exc:
        sock.close()
        raise tls_setup_failure(exc) from None
    try:
        tls.do_handshake()
    except OSError as exc:
        tls.close()
        raise handshake_failure(exc) from None
    return tls


def tls_setup_failure(exc: Exception) -> ProbeFailure:
    """TLS: the socket could not even be wrapped (a bad server name, say)."""
    return ProbeFailure(FailureReason.TLS, f"TLS setup failed: {exc}")


def handshake_failure(exc: OSError) -> ProbeFailure:
    """What a failed TLS handshake (or a TLS alert read after it) means, as a reason."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or exc.reason or "unknown reason"
        return ProbeFailure(FailureReason.TLS, f"certificate verify failed: {message}")
    if isinstance(exc, ssl.SSLError):
        return ProbeFailure(FailureReason.TLS, f"TLS handshake failed: {exc.reason or exc}")
    if isinstance(exc, TimeoutError):
        return ProbeFailure(FailureReason.TIMEOUT, "TLS handshake timed out")
    # The peer hung up mid-handshake: typically a plain service on a TLS port, or a
    # server rejecting our certificate.
    reason = exc.strerror or type(exc).__name__
    return ProbeFailure(FailureReason.TLS, f"TLS handshake failed: {reason}")


# --- Certificate expiry -----------------------------------------------------------------------


_ENCODING_DER = _ssl.ENCODING_DER  # the ssl module does not export it
_UNSEEN = object()


def _not_after(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return float(ssl.cert_time_to_seconds(text))
    except ValueError:
        return None


# notAfter by certificate DER: decoding a certificate to a dict and parsing its date with
# strptime is ~50 us per HTTPS run; the same bytes always hold the same date.
_EXPIRY_CACHE_SIZE = 256
_expiries: dict[bytes, float | None] = {}


def _served_not_after(cert: Any) -> float | None:
    """notAfter of one certificate of the served chain (an ``_ssl.Certificate``)."""
    der = cert.public_bytes(_ENCODING_DER)
    if not isinstance(der, bytes):
        return _not_after(cert.get_info().get("notAfter"))
    found = _expiries.get(der, _UNSEEN)
    if found is not _UNSEEN:
        return cast(float | None, found)
    expiry = _not_after(cert.get_info().get("notAfter"))
    if len(_expiries) >= _EXPIRY_CACHE_SIZE:
        _expiries.clear()
    _expiries[der] = expiry
    return expiry


def cert_expiry(sock: ssl.SSLSocket) -> float | None:
    """The earliest notAfter (epoch seconds) among the certificates the peer sent.

    Read from the served chain, verified or not, through the private
    ``_sslobj.get_unverified_chain()`` (CPython 3.10+); where that is missing, the leaf
    as getpeercert() shows it (only when verified). None when nothing can be read.
    """
    chain = getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if callable(chain):
        try:
            expiries = [_served_not_after(cert) for cert in chain() or ()]
        except (AttributeError, ValueError, ssl.SSLError):
            expiries = []
        known = [expiry for expiry in expiries if expiry is not None]
        if known:
            return min(known)
    cert = sock.getpeercert()
    return _not_after(cert.get("notAfter")) if cert else None


def require_validity(expiry: float | None, min_days_valid: float | None) -> None:
    """Raise ProbeFailure (tls) when the certificate expires within ``min_days_valid`` days."""
    if min_days_valid is None:
        return
    if expiry is None:
        raise ProbeFailure(
            FailureReason.TLS, "cannot read the certificate's expiry to check min_days_valid"
        )
    days_left = (expiry - time.time()) / 86400
    if days_left < min_days_valid:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(expiry))
        raise ProbeFailure(
            FailureReason.TLS,
            f"certificate expires in {days_left:.1f} days ({when}), "
            f"sooner than min_days_valid {min_days_valid:g}",
        )
