"""The /metrics text, written faster than prometheus_client writes it, byte for byte the same.

prometheus_client formats every sample through general escaping code (for OpenMetrics it
rebuilds each metric name character by character); at 1,000 checks that is ~70 ms (text
format) and ~105 ms (OpenMetrics) per scrape. The families monai-slo exposes are plain:
legacy metric and label names, no exemplars, timestamps or native histograms. For such
families these encoders write the same bytes directly; for anything else they hand the
whole registry to prometheus_client. tests/test_perf_exposition.py compares the two.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, cast

from prometheus_client import exposition
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample, Timestamp
from prometheus_client.utils import floatToGoString

Encoder = Callable[[Collector], bytes]
# prometheus_client leaves these two untyped.
_go_float = cast(Callable[[float], str], floatToGoString)
_openmetrics_latest = cast(Encoder, openmetrics.generate_latest)

_LEGACY_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# prometheus_client moves these into families of their own in the text format.
_OPENMETRICS_SUFFIXES = ("_created", "_gsum", "_gcount")
# Type names in the text format (prometheus_client's munging).
_TEXT_TYPES = {
    "unknown": "untyped",
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
}


def choose_encoder(accept_header: str) -> tuple[Encoder, str]:
    """prometheus_client's content negotiation, with the fast encoders where they apply."""
    encoder, content_type = exposition.choose_encoder(accept_header)
    if encoder is exposition.generate_latest:
        return _text, content_type
    if (
        isinstance(encoder, partial)
        and encoder.func is openmetrics.generate_latest
        and encoder.keywords.get("escaping") == openmetrics.UNDERSCORES
        and encoder.keywords.get("version") == "1.0.0"
        and not encoder.args
    ):
        return _openmetrics, content_type
    return encoder, content_type


def _value(text: str) -> str:
    if "\\" in text or "\n" in text or '"' in text:
        return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return text


class _Exotic(Exception):
    """A family the fast path does not write exactly as prometheus_client would."""


# Checked names, and 'name="escaped value"' per label name and value: the same few thousand
# strings every scrape. Emptied should they ever grow past _PIECES_LIMIT (label values
# renamed by many reloads).
_names: set[str] = set()
_pieces: dict[str, dict[str, str]] = {}
_PIECES_LIMIT = 200_000
_piece_count = [0]


def _legacy(name: str) -> None:
    if name not in _names:
        if not _LEGACY_NAME.match(name):
            raise _Exotic
        _names.add(name)


def _pieces_for(name: str) -> dict[str, str]:
    """value -> 'name="escaped value"' for one label name."""
    by_value = _pieces.get(name)
    if by_value is None:
        _legacy(name)
        if _piece_count[0] > _PIECES_LIMIT:
            _pieces.clear()
            _piece_count[0] = 0
        by_value = _pieces[name] = {}
    return by_value


Row = tuple[tuple[str, ...], float]


def _no_row(kept: object) -> Row:
    raise TypeError("keep() without reads_kept()")


def _no_line(kept: object) -> str:
    raise TypeError("keep() without reads_kept()")


class _Deferred:
    """A gauge or counter family that keeps (label values, value) rows and makes
    prometheus_client ``Sample`` objects only when something reads ``samples`` (its own
    encoders, a test); the fast encoders write the rows straight to lines. At 5,000 checks a
    scrape adds ~45,000 samples: their objects and per-sample label dicts were a third of it.
    """

    _labelnames: tuple[str, ...]
    name: str
    type: str

    def _init_rows(self) -> None:
        self.rows: list[Row] = []
        self.lines: list[str] = []
        """Each row's line already written (:func:`sample_line`): the fast encoders copy
        them when every row has one (:meth:`add_line` appends to both)."""
        self.kept: list[Any] = []
        """Objects that hold a row's value and line (:meth:`keep`), read only when written:
        a scrape appends references instead of making a row per sample (rows the cyclic
        collector would have to scan)."""
        self._kept_row: Callable[[Any], Row] = _no_row
        self._kept_line: Callable[[Any], str] = _no_line
        self._made: list[Sample] = []

    def reads_kept(self, row: Callable[[Any], Row], line: Callable[[Any], str]) -> None:
        """How :meth:`keep`'s objects give their row and their line."""
        self._kept_row, self._kept_line = row, line

    def keep(self, kept: object) -> None:
        """A row read from ``kept`` (see :meth:`reads_kept`) when the family is written."""
        if self.rows:  # after rows: keep the order
            self.rows.append(self._kept_row(kept))
            self.lines.append(self._kept_line(kept))
        else:
            self.kept.append(kept)

    def add_line(self, row: Row, line: str) -> None:
        """A row with its line already written."""
        self._spill()
        self.rows.append(row)
        self.lines.append(line)

    def _spill(self) -> None:
        """Kept objects become rows (with their lines) before any other row is added."""
        if self.kept:
            self.rows = [self._kept_row(kept) for kept in self.kept] + self.rows
            self.lines = [self._kept_line(kept) for kept in self.kept] + self.lines
            self.kept = []

    @property
    def samples(self) -> list[Sample]:
        self._spill()
        if self.rows:
            name = self.name + "_total" if self.type == "counter" else self.name
            names = self._labelnames
            self._made.extend(
                # zip as prometheus_client's add_metric zips (a short row loses labels)
                Sample(name, dict(zip(names, values)), value, None)  # noqa: B905
                for values, value in self.rows
            )
            self.rows = []
            self.lines = []
        return self._made

    @samples.setter
    def samples(self, samples: list[Sample]) -> None:  # Metric.__init__ sets it
        self._init_rows()
        self._made = samples


class Gauge(_Deferred, GaugeMetricFamily):
    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        GaugeMetricFamily.__init__(self, name, documentation, value, labels)

    def add_metric(
        self, labels: Sequence[str], value: float, timestamp: Timestamp | float | None = None
    ) -> None:
        if timestamp is not None:
            GaugeMetricFamily.add_metric(self, labels, value, timestamp)
            return
        self._spill()
        self.rows.append((tuple(labels), value))


class Counter(_Deferred, CounterMetricFamily):
    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        CounterMetricFamily.__init__(self, name, documentation, value, labels)

    def add_metric(
        self,
        labels: Sequence[str],
        value: float,
        created: float | None = None,
        timestamp: Timestamp | float | None = None,
        exemplar: Exemplar | None = None,
    ) -> None:
        if created is not None or timestamp is not None or exemplar is not None:
            CounterMetricFamily.add_metric(self, labels, value, created, timestamp, exemplar)
            return
        self._spill()
        self.rows.append((tuple(labels), value))


# Label names -> their values -> '{a="x",b="y"}' (sorted by name, as prometheus_client
# writes them): the same few thousand every scrape, one per check and per service window.
_label_sets: dict[tuple[str, ...], dict[tuple[str, ...], str]] = {}
_label_set_count = [0]


def _label_set(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if len(values) != len(names):
        raise _Exotic  # let prometheus_client say what is wrong
    if _label_set_count[0] > _PIECES_LIMIT:
        _label_sets.clear()
        _label_set_count[0] = 0
    pairs = sorted(zip(names, values, strict=True))
    for name, _ in pairs:
        _legacy(name)
    inner = ",".join(f'{name}="{_value(value)}"' for name, value in pairs)
    text = _label_sets.setdefault(names, {})[values] = f"{{{inner}}}" if inner else ""
    _label_set_count[0] += 1
    return text


def go_float(value: float) -> str:
    """prometheus_client's ``floatToGoString``, with the answer for most values written
    directly: a finite float below 1e6 is its ``repr``, an int of fewer than seven digits
    gains ``.0``; the rest (infinities, NaN, Go's exponents from 1e6 up, bools) go to it."""
    kind = type(value)
    if kind is float:
        if -1e300 < value < 1e6:  # false for NaN and the infinities
            return repr(value)
    elif kind is int and -1_000_000 < value < 1_000_000:
        return f"{value}.0"
    return _go_float(value)


def label_set(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    """'{a="x",b="y"}' as the fast encoders write these labels (raises ValueError for label
    names or values they would not write themselves)."""
    known = _label_sets.get(names)
    text = None if known is None else known.get(values)
    if text is None:
        try:
            text = _label_set(names, values)
        except _Exotic:
            raise ValueError(f"labels the fast encoders do not write: {names}") from None
    return text


def sample_line(name: str, labels: str, value: float) -> str:
    """One sample line, byte for byte as the fast encoders write a row: ``name`` with
    ``_total`` for a counter, ``labels`` from :func:`label_set`."""
    return f"{name}{labels} {go_float(value)}\n"


def _rows(metric: _Deferred, out: list[str]) -> None:
    name = metric.name + "_total" if metric.type == "counter" else metric.name
    _legacy(name)
    names = metric._labelnames
    known = _label_sets.get(names, {})
    for values, value in metric.rows:
        if value is None:
            raise _Exotic
        labels = known.get(values)
        if labels is None:
            labels = _label_set(names, values)
            known = _label_sets[names]
        out.append(f"{name}{labels} {go_float(value)}\n")


def _samples(metric: Metric, out: list[str], forbidden: tuple[str, ...]) -> None:
    """Append the family's sample lines; raise _Exotic for anything but plain samples."""
    if isinstance(metric, _Deferred) and metric.kept and not metric._made:
        _legacy(metric.name + "_total" if metric.type == "counter" else metric.name)
        out.extend(map(metric._kept_line, metric.kept))
        return
    if isinstance(metric, _Deferred) and (metric.rows or metric.kept):
        if metric._made:  # rows after samples made: keep their order through the slow path
            metric.samples  # noqa: B018 -- makes the samples from the rows
        elif len(metric.lines) == len(metric.rows):
            _legacy(metric.name + "_total" if metric.type == "counter" else metric.name)
            out.extend(metric.lines)
            return
        else:
            _rows(metric, out)
            return
    keys: set[str] = set()
    table: list[tuple[str, dict[str, str]]] = []
    for sample in metric.samples:
        name, labels, value = sample.name, sample.labels, sample.value
        if (
            sample.timestamp is not None
            or sample.exemplar is not None
            or getattr(sample, "native_histogram", None) is not None
            or value is None
            or name in forbidden
        ):
            raise _Exotic
        _legacy(name)
        if not labels:
            out.append(f"{name} {go_float(value)}\n")
            continue
        if labels.keys() != keys:  # the same keys throughout a family, as a rule
            table = [(key, _pieces_for(key)) for key in sorted(labels)]
            keys = set(labels)
        parts = []
        for key, by_value in table:
            label = labels[key]
            piece = by_value.get(label)
            if piece is None:
                piece = by_value[label] = f'{key}="{_value(label)}"'
                _piece_count[0] += 1
            parts.append(piece)
        out.append(f"{name}{{{','.join(parts)}}} {go_float(value)}\n")


def _text(registry: Collector) -> bytes:
    """The Prometheus text format 0.0.4, as prometheus_client.generate_latest writes it."""
    metrics = list(registry.collect())
    out: list[str] = []
    try:
        for metric in metrics:
            kind = _TEXT_TYPES.get(metric.type)
            if kind is None or metric.unit:
                raise _Exotic
            _legacy(metric.name)
            name = metric.name + "_total" if metric.type == "counter" else metric.name
            doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
            out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
            # prometheus_client moves these samples into gauge families of their own.
            _samples(metric, out, tuple(metric.name + s for s in _OPENMETRICS_SUFFIXES))
    except _Exotic:
        return exposition.generate_latest(_Collected(metrics))
    return "".join(out).encode("utf-8")


def _openmetrics(registry: Collector) -> bytes:
    """OpenMetrics 1.0.0, as prometheus_client's openmetrics generate_latest writes it."""
    metrics = list(registry.collect())
    out: list[str] = []
    try:
        for metric in metrics:
            if metric.unit:
                raise _Exotic
            _legacy(metric.name)
            doc = _value(metric.documentation)
            out.append(f"# HELP {metric.name} {doc}\n# TYPE {metric.name} {metric.type}\n")
            _samples(metric, out, ())
    except _Exotic:
        return _openmetrics_latest(_Collected(metrics))
    out.append("# EOF\n")
    return "".join(out).encode("utf-8")


class _Collected(Collector):
    """What was collected once, handed to prometheus_client's encoders as a registry."""

    def __init__(self, metrics: Sequence[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return iter(self._metrics)
