"""status/report --prometheus against what is not a working query API: nothing listening,
a web server that is not Prometheus, an answer too large, an engine without the fleet
series. Each is one line naming the URL and exit 2. The figures themselves are checked
against real engines in tests/e2e/test_fleet_engines.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monai_slo.outputs.prometheus_source import EngineError, PrometheusSource
from tests.fixtures_http import HttpPeer
from tests.fixtures_net import free_port


def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        "storage: history.sqlite\n"
        "environments:\n"
        "  - name: radiology\n"
        "    tier: production\n"
        "    services:\n"
        "      - name: pacs\n"
        "        checks:\n"
        "          - {name: web, kind: http, url: 'http://127.0.0.1:1/'}\n"
    )
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monai_slo.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("verb", ["status", "report"])
def test_unreachable_engine_is_one_line_naming_the_url(tmp_path: Path, verb: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    extra = ["--period", "2026-11", "-o", str(tmp_path / "r.html")] if verb == "report" else []
    result = run(verb, "-c", str(config(tmp_path)), "--prometheus", url, *extra)
    assert result.returncode == 2, result
    assert url in result.stderr and "unreachable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_web_server_that_is_not_an_engine(tmp_path: Path) -> None:
    with HttpPeer(body=b"<html>hello</html>") as web:
        url = web.url
        result = run("status", "-c", str(config(tmp_path)), "--prometheus", url)
    assert result.returncode == 2
    assert "not a Prometheus query API" in result.stderr and url.rstrip("/") in result.stderr


def test_an_engine_error_is_passed_on_escaped(tmp_path: Path) -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse\x1b[31m"})
    with HttpPeer(status=400, body=body.encode()) as web:
        result = run("status", "-c", str(config(tmp_path)), "--prometheus", web.url)
    assert result.returncode == 2
    assert "bad_data: parse" in result.stderr and "\x1b" not in result.stderr


def test_an_engine_without_the_fleet_series_says_so(tmp_path: Path) -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}})
    with HttpPeer(body=body.encode()) as web:
        result = run("status", "-c", str(config(tmp_path)), "--prometheus", web.url)
    assert result.returncode == 2
    assert "no fleet series" in result.stderr and "monai-slo rules" in result.stderr


def test_answers_are_bounded() -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}})
    with HttpPeer(body=body.encode() + b" " * 5000) as web:
        with pytest.raises(EngineError, match="larger than 1000 bytes"):
            PrometheusSource(web.url, max_bytes=1000).vector("up")
        assert PrometheusSource(web.url).vector("up") == []


def test_only_http_urls() -> None:
    with pytest.raises(EngineError, match="expected an http"):
        PrometheusSource("file:///etc/passwd")


def test_report_queries_stay_under_the_answer_bound() -> None:
    """A day per query for a few services; for 1,000 services every 15 s, hours per query, so
    one answer holds about a million samples, not 5.8 million."""
    from monai_slo.outputs.fleet_view import DAY, HOUR, chunk_seconds

    assert chunk_seconds(3, 1.0) == DAY
    many = chunk_seconds(1000, 15.0)
    assert HOUR <= many < DAY and 1000 * many / 15.0 <= 1_000_000
    assert chunk_seconds(100_000, 1.0) == HOUR
