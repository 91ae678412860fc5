"""Secrets (HTTP/DICOMweb headers from env or file) never reach metrics, the status page,
the `check`, `status` and `report` outputs, the stored history (the `detail` column and every
other byte of the database) or logs, whether the checks pass or fail."""

from __future__ import annotations

import datetime as dt
import http.client
import logging
import sqlite3
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
    storage = tmp_path / "h.sqlite"
    with HttpPeer(status=status, body=b"[]") as peer:
        path = tmp_path / "config.yaml"
        path.write_text(
            f"listen: 127.0.0.1:{port}\nstorage: {storage}\n"
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
            main(["status", "-c", str(path)])
            report = tmp_path / "report.html"
            month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
            assert main(["report", "-c", str(path), "--period", month, "-o", str(report)]) == 0
        received = {r.headers.get("Authorization") for r in peer.requests}
    assert {ENV_SECRET, FILE_SECRET} <= received  # the secrets did reach the peer
    printed = capsys.readouterr().out
    assert "web" in printed and "qido" in printed  # check and status printed their tables
    outputs += [printed, caplog.text, report.read_text()]
    outputs += [repr(ref.config) for ref in load_config(path).checks()]
    connection = sqlite3.connect(f"file:{storage}?mode=ro", uri=True)
    try:
        details = connection.execute("SELECT detail FROM last_results").fetchall()
        rows = [
            repr(row)
            for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            for row in connection.execute(f'SELECT * FROM "{table}"')
        ]
    finally:
        connection.close()
    assert len(details) == 2
    if status != 200:  # the failures were stored with what the peer answered
        assert all("503" in detail for (detail,) in details), details
    outputs += rows
    # Every byte of the database and its WAL, freed pages included.
    outputs += [f.read_bytes().decode("latin-1") for f in tmp_path.glob("h.sqlite*")]
    for text in outputs:
        assert ENV_SECRET not in text
        assert FILE_SECRET not in text
