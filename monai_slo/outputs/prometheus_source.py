"""A Prometheus-compatible query API (Prometheus, VictoriaMetrics) as a read-only source of the
series the generated rules record: instant vectors and raw samples over a range.

Plain HTTP(S) GETs of ``/api/v1/query`` with a timeout, a bounded response and one error type,
:class:`EngineError`, whose one-line message names the URL: nothing is retried, nothing
written.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from monai_slo.safe_text import clean

# A month of one service's samples every 15 s is ~180k points (~6 MiB of JSON); queries are
# split per day, so this bounds one answer, not a report.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
TIMEOUT = 30.0

Labels = dict[str, str]


class EngineError(Exception):
    """The engine was unreachable or answered something other than a query result."""


class PrometheusSource:
    def __init__(
        self, url: str, *, timeout: float = TIMEOUT, max_bytes: int = MAX_RESPONSE_BYTES
    ) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise EngineError(f"--prometheus {clean(url)}: expected an http:// or https:// URL")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes

    def _query(self, expr: str, at: float | None) -> Mapping[str, Any]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        where = f"{clean(self.url)}"
        try:
            with urllib.request.urlopen(address, timeout=self.timeout) as response:  # noqa: S310 (scheme checked above)
                body = response.read(self.max_bytes + 1)
        except urllib.error.HTTPError as exc:
            body = exc.read(self.max_bytes + 1)
            detail = _error_text(body) or f"HTTP {exc.code}"
            raise EngineError(f"{where}: query failed: {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EngineError(f"{where}: unreachable: {clean(str(reason))}") from exc
        if len(body) > self.max_bytes:
            raise EngineError(f"{where}: answer larger than {self.max_bytes} bytes")
        try:
            document = json.loads(body)
        except ValueError as exc:
            raise EngineError(f"{where}: not a Prometheus query API (no JSON answer)") from exc
        if not isinstance(document, dict) or document.get("status") != "success":
            detail = _error_text(body) or "no success status"
            raise EngineError(f"{where}: query failed: {detail}")
        data = document.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("result"), list):
            raise EngineError(f"{where}: not a Prometheus query API (no result)")
        return data

    def vector(self, expr: str, at: float | None = None) -> list[tuple[Labels, float]]:
        """An instant query: each series' labels and value (NaN and infinities left out)."""
        data = self._query(expr, at)
        if data.get("resultType") != "vector":
            raise EngineError(f"{clean(self.url)}: expected a vector for {clean(expr)}")
        found = []
        for series in data["result"]:
            labels, value = _labels(series, self.url), _value(series.get("value"), self.url)
            if value is not None and math.isfinite(value[1]):
                found.append((labels, value[1]))
        return found

    def samples(self, expr: str, at: float) -> list[tuple[Labels, list[tuple[float, float]]]]:
        """A range selector's raw samples (``metric[1d]``) at ``at``, oldest first."""
        data = self._query(expr, at)
        if data.get("resultType") != "matrix":
            raise EngineError(f"{clean(self.url)}: expected raw samples for {clean(expr)}")
        found = []
        for series in data["result"]:
            values = series.get("values") if isinstance(series, dict) else None
            if not isinstance(values, list):
                raise EngineError(f"{clean(self.url)}: malformed samples")
            points = [p for p in (_value(v, self.url) for v in values) if p is not None]
            found.append((_labels(series, self.url), sorted(points)))
        return found


def _labels(series: Any, url: str) -> Labels:
    metric = series.get("metric") if isinstance(series, dict) else None
    if not isinstance(metric, dict):
        raise EngineError(f"{clean(url)}: malformed series")
    return {str(k): str(v) for k, v in metric.items()}


def _value(point: Any, url: str) -> tuple[float, float] | None:
    if not isinstance(point, list) or len(point) != 2:
        raise EngineError(f"{clean(url)}: malformed sample")
    try:
        value = float(point[1])
        return float(point[0]), value
    except (TypeError, ValueError) as exc:
        raise EngineError(f"{clean(url)}: malformed sample") from exc


def _error_text(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    if isinstance(document, dict) and document.get("error"):
        return clean(f"{document.get('errorType', 'error')}: {document['error']}")
    return ""
