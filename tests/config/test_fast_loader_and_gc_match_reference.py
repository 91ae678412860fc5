"""Process-level tuning done for speed keeps behaviour: the garbage collector still runs
(less often) in the daemon, and the C YAML loader reads configs exactly as the Python one."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monai_slo import yaml_source
from monai_slo.config.model import load_config
from monai_slo.daemon import daemon as daemon_module
from monai_slo.daemon.daemon import Daemon
from tests.fixtures_dicom import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def gc_settings() -> Iterator[None]:
    """Put the interpreter's collector back as it was after the test."""
    threshold = gc.get_threshold()
    enabled = gc.isenabled()
    yield
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()


def test_daemon_raises_gc_threshold_and_cycles_are_still_collected(
    tmp_path: Path, gc_settings: None
) -> None:
    """Started, the daemon runs the cyclic collector less often, never not at all: a
    reference cycle made afterwards is still freed by the collector."""
    path = tmp_path / "config.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{free_port()}\nstorage: h.sqlite\nenvironments:\n"
        "  - name: e\n    tier: development\n    services:\n      - name: s\n        checks:\n"
        "          - {name: t, kind: tcp, host: 127.0.0.1, port: 9, interval: 1h}\n"
    )
    daemon = Daemon(load_config(path))
    daemon.start()
    try:
        assert gc.get_threshold() == daemon_module.GC_THRESHOLD
        assert gc.isenabled()

        class Node:
            partner: object = None

        freed: list[str] = []
        first, second = Node(), Node()
        first.partner, second.partner = second, first
        weakref.finalize(first, freed.append, "first")
        del first, second
        deadline = time.monotonic() + 5
        while not freed and time.monotonic() < deadline:
            gc.collect(0)
            gc.collect()
        assert freed == ["first"]
    finally:
        daemon.stop()


def _configs() -> list[Path]:
    # The shipped configs (the demo's is a template, not YAML until filled in).
    return [p for p in sorted((REPO / "config").glob("*.yaml")) if "${" not in p.read_text()]


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")
@pytest.mark.parametrize("path", _configs(), ids=lambda p: p.name)
def test_c_loader_reads_configs_as_the_python_loader(path: Path) -> None:
    """The same data and the same line for every key, whichever parser reads the file."""
    text = path.read_text()
    assert yaml_source._LOADER is not yaml_source._BoundedSafeLoader  # libyaml's parser
    fast = yaml_source.load_yaml(path, text)
    assert fast.data == yaml.safe_load(text)
    python_node = yaml.compose(text, Loader=yaml.SafeLoader)
    lines: dict[tuple[str | int, ...], int] = {}
    yaml_source._walk(python_node, (), lines, [], str(path))
    assert fast.lines == lines


def test_yaml_errors_keep_the_python_parsers_words(tmp_path: Path) -> None:
    """A broken file is described exactly as before the C loader (line and problem), at the
    bracket left open rather than at the end of the file."""
    path = tmp_path / "broken.yaml"
    path.write_text("environments:\n  - name: prod\n    tier: [production\n")
    with pytest.raises(yaml_source.SourceError) as raised:
        yaml_source.load_yaml(path)
    assert str(raised.value).endswith(
        ":3: invalid YAML: '[' opened here (column 11) is not closed: "
        "expected ',' or ']', but got '<stream end>' at line 4, column 1"
    )
