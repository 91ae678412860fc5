"""Property-based fuzzing of the config loader: any input gives a Config or a SourceError
naming the file, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monai_slo.config.model import load_config
from monai_slo.yaml_source import SourceError

EXAMPLE = Path(__file__).parents[2] / "config" / "example.yaml"
FILE = Path("fuzz.yaml")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "10s",
            "0s",
            "-5m",
            "30d",
            "production",
            "staging",
            "dicom_echo",
            "http",
            "tcp",
            "127.0.0.1",
            "99.9",
            "cloud",
            "{env: X}",
        ]
    ),
)
keys = st.sampled_from(
    [
        "listen",
        "storage",
        "defaults",
        "environments",
        "name",
        "tier",
        "objective",
        "window",
        "services",
        "checks",
        "kind",
        "host",
        "port",
        "url",
        "interval",
        "timeout",
        "maintenance",
        "schedule",
        "duration",
        "start",
        "end",
        "headers",
        "location",
        "provider",
        "retention",
    ]
) | st.text(max_size=8)
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)


def _load(text: str) -> None:
    error: SourceError | None = None
    try:
        load_config(FILE, text)
    except SourceError as exc:
        error = exc
    if error is not None:
        assert error.issues
        assert all(issue.file == str(FILE) for issue in error.issues)
        assert str(error)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_documents_never_crash(document: Any) -> None:
    _load(yaml.safe_dump(document))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_never_crashes(text: str) -> None:
    _load(text)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


EXAMPLE_DATA = yaml.safe_load(EXAMPLE.read_text())
EXAMPLE_PATHS = _paths(EXAMPLE_DATA)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLE_PATHS), scalars | st.just("__delete__"))
def test_mutated_example_never_crashes(path: tuple[Any, ...], value: Any) -> None:
    """One value of the shipped example replaced (or removed): a Config or a clear error."""
    document = yaml.safe_load(EXAMPLE.read_text())
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if value == "__delete__":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    _load(yaml.safe_dump(document))
