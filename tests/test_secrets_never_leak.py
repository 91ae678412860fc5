"""Secrets (HTTP/DICOMweb headers from env or file) never reach metrics, the status page,
the `check` table or logs, whether the checks pass or fail."""

from __future__ import annotations

import http.client
import logging
import time
from pathlib import Path

import pytest

from monai_slo.cli import main
from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from tests.fixtures_dicom import free_port
from tests.fixtures_http import HttpPeer

ENV_SECRET = "env-secret-6f1c2a9d"
FILE_SECRET = "file-secret-93be04d7"


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize("status", [200, 503])
def test_secrets_stay_out_of_every_output(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    status: int,
) -> None:
    monkeypatch.setenv("PACS_TOKEN", ENV_SECRET)
    secret_file = tmp_path / "token"
    secret_file.write_text(FILE_SECRET + "\n")
    port = free_port()
    with HttpPeer(status=status, body=b"[]") as peer:
        path = tmp_path / "config.yaml"
        path.write_text(
            f"listen: 127.0.0.1:{port}\nstorage: h.sqlite\n"
            "environments:\n  - name: e\n    tier: production\n    services:\n      - name: s\n"
            "        checks:\n"
            f"          - {{name: web, kind: http, url: '{peer.url}/', interval: 0.3s, timeout: 0.2s,"
            "              headers: {Authorization: {env: PACS_TOKEN}}}\n"
            f"          - {{name: qido, kind: dicomweb, base_url: '{peer.url}/dicom-web', interval: 0.3s,"
            f"              timeout: 0.2s, headers: {{Authorization: {{file: {secret_file}}}}}}}\n"
        )
        with caplog.at_level(logging.DEBUG):
            daemon = Daemon(load_config(path))
            daemon.start()
            try:
                deadline = time.monotonic() + 10
                while min(daemon.counters.runs.get(("e", "s", c), 0) for c in ("web", "qido")) < 2:
                    assert time.monotonic() < deadline, "checks did not run"
                    time.sleep(0.02)  # poll interval
                outputs = [_get(port, "/metrics"), _get(port, "/")]
            finally:
                daemon.stop()
            main(["check", "-c", str(path)])
        received = {r.headers.get("Authorization") for r in peer.requests}
    assert {ENV_SECRET, FILE_SECRET} <= received  # the secrets did reach the peer
    outputs += [capsys.readouterr().out, caplog.text]
    outputs += [repr(ref.config) for ref in load_config(path).checks()]
    for text in outputs:
        assert ENV_SECRET not in text
        assert FILE_SECRET not in text
