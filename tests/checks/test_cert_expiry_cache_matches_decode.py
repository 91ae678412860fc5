"""The served chain's notAfter is remembered by certificate bytes (decoding a certificate
and parsing its date is ~50 us per HTTPS run): the remembered date equals a fresh decode,
a warm run decodes nothing, and a different certificate on the same address is decoded."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from pathlib import Path

import pytest
import trustme

from monai_slo.checks import http as http_check
from monai_slo.checks import net
from monai_slo.checks.base import Deadline
from tests.fixtures_http import HttpPeer


def _decoded_expiry(peer: HttpPeer, ca_file: Path) -> float:
    """The reference: every served certificate decoded afresh, the earliest notAfter."""
    context = ssl.create_default_context(cafile=str(ca_file))
    with (
        socket.create_connection(("127.0.0.1", peer.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        chain = tls._sslobj.get_unverified_chain()  # type: ignore[union-attr]
        return min(ssl.cert_time_to_seconds(cert.get_info()["notAfter"]) for cert in chain)


def _expiry(peer: HttpPeer, ca_file: Path) -> float:
    config = http_check.Config.model_validate(
        {"name": "web", "kind": "http", "url": peer.url, "ca_file": str(ca_file)}
    )
    outcome = http_check.run(config, Deadline(5))
    assert outcome.success, outcome
    return outcome.values[net.CERT_EXPIRY]


def _peer_with_days(ca: trustme.CA, days: int) -> HttpPeer:
    peer = HttpPeer(tls=ca)
    not_after = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=days)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", not_after=not_after).configure_cert(context)
    peer._server_context = context  # before start: this peer serves the shorter-lived leaf
    peer.cert_not_after = not_after.timestamp()
    return peer


def test_remembered_expiry_matches_fresh_decode(
    https_peer: HttpPeer, tls_ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cold and warm runs report the date a fresh decode gives; the warm one parses none."""
    net._expiries.clear()
    reference = _decoded_expiry(https_peer, tls_ca_file)
    assert _expiry(https_peer, tls_ca_file) == reference == https_peer.cert_not_after

    parsed: list[object] = []
    real = net._not_after

    def counting(text: object) -> float | None:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(net, "_not_after", counting)
    assert _expiry(https_peer, tls_ca_file) == reference
    assert parsed == []


def test_other_certificate_is_decoded(tls_ca: trustme.CA, tls_ca_file: Path) -> None:
    """A certificate not seen before (another leaf, another date) gets its own date."""
    net._expiries.clear()
    with HttpPeer(tls=tls_ca) as long_lived:
        assert _expiry(long_lived, tls_ca_file) == long_lived.cert_not_after
    with _peer_with_days(tls_ca, 30) as short_lived:
        expiry = _expiry(short_lived, tls_ca_file)
        assert expiry == short_lived.cert_not_after == _decoded_expiry(short_lived, tls_ca_file)
    assert long_lived.cert_not_after is not None and expiry < long_lived.cert_not_after


def test_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """However many certificates are seen, at most the cache size are remembered."""
    monkeypatch.setattr(net, "_EXPIRY_CACHE_SIZE", 3)
    net._expiries.clear()

    class Cert:
        def __init__(self, n: int) -> None:
            self.n = n

        def public_bytes(self, _format: int) -> bytes:
            return b"cert-%d" % self.n

        def get_info(self) -> dict[str, str]:
            return {"notAfter": "Jan  5 09:34:43 2030 GMT"}

    for n in range(10):
        assert net._served_not_after(Cert(n)) == ssl.cert_time_to_seconds(
            "Jan  5 09:34:43 2030 GMT"
        )
        assert len(net._expiries) <= 3
