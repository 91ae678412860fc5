"""The http check against real local servers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monai_slo.checks import http
from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.secrets import SecretRef, SecretUnavailable
from tests.fixtures_http import HttpPeer, Route
from tests.fixtures_net import ScriptedPeer, free_port

TOKEN_VAR = "MONAI_SLO_TEST_HTTP_TOKEN"
TOKEN = "Bearer s3cr3t-Value-4711"


def config(url: str, **keys: Any) -> http.Config:
    """A check config as it would come from YAML (mappings, not model objects)."""
    data: dict[str, Any] = {"name": "web", "kind": "http", "url": url, "interval": 10, "timeout": 2}
    data.update(keys)
    return http.Config.model_validate(data)


def probe(cfg: http.Config) -> tuple[CheckOutcome, float]:
    """Run the check with its own timeout as the deadline; return outcome and seconds taken."""
    started = time.monotonic()
    outcome = http.run(cfg, Deadline(cfg.timeout))
    return outcome, time.monotonic() - started


@pytest.fixture
def raw_server() -> Iterator[ScriptedPeer]:
    """A TCP server that answers every connection with its ``reply``, then closes."""
    with ScriptedPeer(b"this is not HTTP\r\n\r\n") as peer:
        yield peer


def test_ok(http_peer: HttpPeer) -> None:
    """A 200 answer is a success and reports the status code as a value."""
    outcome, _ = probe(config(http_peer.url))
    assert outcome.success, outcome
    assert outcome.reason is None
    assert outcome.values["http_status_code"] == 200
    assert http_peer.last_request.method == "GET"
    assert http_peer.last_request.path == "/"


def test_status_mismatch(http_peer: HttpPeer) -> None:
    """A status outside expect_status fails as http_status, saying what came and what was wanted."""
    http_peer.status = 503
    outcome, _ = probe(config(http_peer.url))
    assert not outcome.success
    assert outcome.reason is FailureReason.HTTP_STATUS
    assert outcome.detail == "got 503, expected 200"
    assert outcome.values["http_status_code"] == 503


def test_expected_status_list(http_peer: HttpPeer) -> None:
    """Any status listed in expect_status counts as success."""
    http_peer.status = 204
    http_peer.body = b""
    outcome, _ = probe(config(http_peer.url, expect_status=[200, 204]))
    assert outcome.success, outcome


def test_body_regex_match(http_peer: HttpPeer) -> None:
    """A body containing a match for body_regex is a success."""
    http_peer.body = b'{"status": "UP", "models": 3}'
    outcome, _ = probe(config(http_peer.url, body_regex=r'"status":\s*"UP"'))
    assert outcome.success, outcome


def test_body_regex_mismatch(http_peer: HttpPeer) -> None:
    """A body without a match fails as body_mismatch, naming the pattern."""
    http_peer.body = b'{"status": "DOWN"}'
    outcome, _ = probe(config(http_peer.url, body_regex=r'"status":\s*"UP"'))
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert "status" in outcome.detail
    assert outcome.values["http_status_code"] == 200


def test_large_body_read_only_up_to_limit(http_peer: HttpPeer) -> None:
    """Past max_body_bytes reading stops: no failure, but a match further on is not seen."""
    http_peer.body = b"needle" + b"x" * 100_000 + b"late-needle"
    outcome, _ = probe(config(http_peer.url, max_body_bytes=1024))
    assert outcome.success, outcome
    outcome, _ = probe(config(http_peer.url, max_body_bytes=1024, body_regex="^needle"))
    assert outcome.success, outcome
    outcome, _ = probe(config(http_peer.url, max_body_bytes=1024, body_regex="late-needle"))
    assert outcome.reason is FailureReason.BODY_MISMATCH
    assert "first 1024 bytes" in outcome.detail


def test_header_from_env_reaches_server_and_stays_hidden(
    http_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An {env: VAR} header is sent with the variable's value, which shows up in no outcome,
    detail or config repr, whether the check passes or fails."""
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    cfg = config(
        http_peer.url,
        headers={"Authorization": {"env": TOKEN_VAR}, "Accept": "application/json"},
    )
    outcome, _ = probe(cfg)
    assert outcome.success, outcome
    assert http_peer.last_request.headers["Authorization"] == TOKEN
    assert http_peer.last_request.headers["Accept"] == "application/json"

    http_peer.status = 401
    failed, _ = probe(cfg)
    assert failed.reason is FailureReason.HTTP_STATUS
    for text in (outcome.detail, repr(outcome), failed.detail, repr(failed), repr(cfg), str(cfg)):
        assert "s3cr3t" not in text
    assert TOKEN_VAR in repr(cfg)


def test_missing_env_var_is_secret_unavailable(
    http_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unset variable fails as secret_unavailable, naming the variable, before any request."""
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    outcome, _ = probe(config(http_peer.url, headers={"Authorization": {"env": TOKEN_VAR}}))
    assert outcome.reason is FailureReason.SECRET_UNAVAILABLE
    assert TOKEN_VAR in outcome.detail
    assert http_peer.requests == []


def test_header_from_file_is_reread_each_run(http_peer: HttpPeer, tmp_path: Path) -> None:
    """A {file: PATH} header sends the file's content without its trailing newline, and a
    rotated file is picked up by the next run; a missing file is secret_unavailable."""
    secret = tmp_path / "token"
    secret.write_text("first-token\n")
    cfg = config(http_peer.url, headers={"X-Api-Key": {"file": str(secret)}})
    assert probe(cfg)[0].success
    assert http_peer.last_request.headers["X-Api-Key"] == "first-token"

    secret.write_text("second-token\n")
    assert probe(cfg)[0].success
    assert http_peer.last_request.headers["X-Api-Key"] == "second-token"

    secret.unlink()
    outcome, _ = probe(cfg)
    assert outcome.reason is FailureReason.SECRET_UNAVAILABLE
    assert str(secret) in outcome.detail


def test_secret_with_line_break_is_refused(http_peer: HttpPeer, tmp_path: Path) -> None:
    """A secret value that would split the header is not sent and not shown."""
    secret = tmp_path / "token"
    secret.write_text("abc\r\nX-Injected: yes\n")
    outcome, _ = probe(config(http_peer.url, headers={"X-Api-Key": {"file": str(secret)}}))
    assert outcome.reason is FailureReason.SECRET_UNAVAILABLE
    assert "Injected" not in outcome.detail
    assert http_peer.requests == []


def test_secret_ref_never_shows_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """repr/str of a reference name the source only; resolving reads the value at call time."""
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    ref = SecretRef.validate({"env": TOKEN_VAR})
    assert ref.resolve() == TOKEN
    assert "s3cr3t" not in repr(ref)
    assert "s3cr3t" not in str(ref)
    assert "inline-value" not in repr(SecretRef.validate("inline-value"))
    monkeypatch.delenv(TOKEN_VAR)
    with pytest.raises(SecretUnavailable, match=TOKEN_VAR):
        ref.resolve()
    with pytest.raises(ValueError, match="env"):
        SecretRef.validate({"vault": "x"})


def test_post_sends_body(http_peer: HttpPeer) -> None:
    """POST sends the configured body."""
    outcome, _ = probe(config(http_peer.url, method="post", body='{"ping": true}'))
    assert outcome.success, outcome
    assert http_peer.last_request.method == "POST"
    assert http_peer.last_request.body == b'{"ping": true}'


def test_head(http_peer: HttpPeer) -> None:
    """HEAD succeeds without a body."""
    outcome, _ = probe(config(http_peer.url, method="HEAD"))
    assert outcome.success, outcome
    assert http_peer.last_request.method == "HEAD"


def test_delay_longer_than_timeout(http_peer: HttpPeer) -> None:
    """A server slower than the timeout fails as timeout, and the check returns in time."""
    http_peer.delay = 10
    outcome, elapsed = probe(config(http_peer.url, timeout=0.5))
    assert outcome.reason is FailureReason.TIMEOUT
    assert elapsed < 0.5 + 0.5
    assert "waiting for the response" in outcome.detail


def test_dribbled_body_cannot_exceed_deadline(http_peer: HttpPeer) -> None:
    """A body sent a byte at a time, each byte well within the socket timeout but the whole
    far beyond the deadline, fails as timeout within the deadline."""
    http_peer.body = b"x" * 200
    http_peer.dribble = 0.02  # 4 s for the whole body
    outcome, elapsed = probe(config(http_peer.url, timeout=0.6))
    assert outcome.reason is FailureReason.TIMEOUT, outcome
    assert elapsed < 0.6 + 0.2
    assert "reading the body" in outcome.detail


def test_refused() -> None:
    """Nothing listening on the port fails as refused."""
    outcome, _ = probe(config(f"http://127.0.0.1:{free_port()}/"))
    assert outcome.reason is FailureReason.REFUSED
    assert "refused" in outcome.detail


@pytest.mark.usefixtures("hung_resolver")
def test_hung_name_lookup_is_dns() -> None:
    """A name lookup that never finishes fails as dns (as for every kind) within the deadline."""
    outcome, elapsed = probe(config("http://pacs.example.invalid/", timeout=0.3))
    assert outcome.reason is FailureReason.DNS, outcome
    assert elapsed < 0.3 + 0.2


def test_malformed_response_is_protocol(raw_server: ScriptedPeer) -> None:
    """A server that answers with something other than HTTP fails as protocol."""
    outcome, _ = probe(config(f"http://127.0.0.1:{raw_server.port}/"))
    assert outcome.reason is FailureReason.PROTOCOL, outcome


def test_truncated_body_is_protocol(raw_server: ScriptedPeer) -> None:
    """A body shorter than its Content-Length fails as protocol."""
    raw_server.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    outcome, _ = probe(config(f"http://127.0.0.1:{raw_server.port}/"))
    assert outcome.reason is FailureReason.PROTOCOL, outcome
    assert outcome.values["http_status_code"] == 200


def test_redirect_not_followed_by_default(http_peer: HttpPeer) -> None:
    """Without follow_redirects a 302 is judged as it is."""
    http_peer.routes["/old"] = Route(302, headers={"Location": "/"})
    outcome, _ = probe(config(http_peer.url + "old"))
    assert outcome.reason is FailureReason.HTTP_STATUS
    assert outcome.detail == "got 302, expected 200"


def test_redirect_followed(http_peer: HttpPeer) -> None:
    """With follow_redirects the final answer is judged."""
    http_peer.routes["/old"] = Route(302, headers={"Location": "/"})
    outcome, _ = probe(config(http_peer.url + "old", follow_redirects=True))
    assert outcome.success, outcome
    assert [request.path for request in http_peer.requests] == ["/old", "/"]


def test_redirect_to_other_origin_drops_secrets(
    http_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret header is not forwarded when a redirect leads to another origin."""
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    with HttpPeer() as other:
        http_peer.routes["/away"] = Route(307, headers={"Location": other.url})
        cfg = config(
            http_peer.url + "away",
            follow_redirects=True,
            headers={"Authorization": {"env": TOKEN_VAR}, "Accept": "text/plain"},
        )
        outcome, _ = probe(cfg)
        assert outcome.success, outcome
        assert http_peer.last_request.headers["Authorization"] == TOKEN
        assert other.last_request.headers["Authorization"] is None
        assert other.last_request.headers["Accept"] == "text/plain"


def test_https_with_ca_file(https_peer: HttpPeer) -> None:
    """HTTPS verified against the test CA succeeds and reports the leaf's notAfter."""
    outcome, _ = probe(config(https_peer.url, ca_file=str(https_peer.ca_file)))
    assert outcome.success, outcome
    assert https_peer.cert_not_after is not None
    expiry = outcome.values["tls_cert_expiry_timestamp_seconds"]
    assert abs(expiry - https_peer.cert_not_after) < 1


def test_https_with_localhost_name(https_peer: HttpPeer) -> None:
    """The certificate is verified for the host name in the URL."""
    url = f"https://localhost:{https_peer.port}/"
    outcome, _ = probe(config(url, ca_file=str(https_peer.ca_file)))
    assert outcome.success, outcome


def test_https_without_ca_is_tls(https_peer: HttpPeer) -> None:
    """Without the test CA the certificate is untrusted: tls, saying why."""
    outcome, _ = probe(config(https_peer.url))
    assert outcome.reason is FailureReason.TLS
    assert "certificate verify failed" in outcome.detail
    assert https_peer.requests == []


def test_https_without_verification(https_peer: HttpPeer) -> None:
    """tls_verify: false accepts the untrusted certificate."""
    outcome, _ = probe(config(https_peer.url, tls_verify=False))
    assert outcome.success, outcome
    assert outcome.values["http_status_code"] == 200


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"url": "ftp://127.0.0.1/"}, "url"),
        ({"url": "http://user:pw@127.0.0.1/"}, "url"),
        ({"body_regex": "(unclosed"}, "body_regex"),
        ({"expect_status": [700]}, "expect_status"),
        ({"expect_status": []}, "expect_status"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
        ({"method": "DELETE"}, "method"),
        ({"body": "x"}, "body"),
        ({"headers": {"Bad Name": "x"}}, "headers"),
        ({"timeout": 10, "interval": 10}, "timeout"),
    ],
)
def test_config_errors_name_the_field(keys: dict[str, Any], field: str) -> None:
    """Invalid configs fail validation with an error that names the offending key."""
    data = {"url": "http://127.0.0.1/"} | keys
    with pytest.raises(ValidationError) as excinfo:
        config(**data)
    assert field in str(excinfo.value)


def test_min_days_valid(https_peer: HttpPeer) -> None:
    """min_days_valid fails with tls before the request is sent when the certificate
    (90 days left) expires sooner; the expiry is still reported; 30 days passes."""
    ca_file = str(https_peer.ca_file)
    ok, _ = probe(config(https_peer.url, ca_file=ca_file, min_days_valid=30))
    sent = len(https_peer.requests)
    short, _ = probe(config(https_peer.url, ca_file=ca_file, min_days_valid=120))

    assert ok.success, ok
    assert short.reason is FailureReason.TLS
    assert "sooner than min_days_valid 120" in short.detail
    assert short.values["tls_cert_expiry_timestamp_seconds"] == https_peer.cert_not_after
    assert len(https_peer.requests) == sent


def test_min_days_valid_ignored_for_plain_http(http_peer: HttpPeer) -> None:
    """min_days_valid only concerns https: a plain http URL is not failed by it."""
    outcome, _ = probe(config(http_peer.url, min_days_valid=30))
    assert outcome.success, outcome
