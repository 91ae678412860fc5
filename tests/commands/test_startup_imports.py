"""Start-up: a verb imports only what it uses (the bench times it; this keeps it so).

Each verb runs in a fresh interpreter, which then lists the modules it holds: `tiers` needs no
check kind, no config model and no history; `validate` and `status` only the kinds their
config names. A config's defaults may still name a key of a kind it does not use, and an
unknown key still lists every kind's keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from monai_slo.checks.registry import KINDS, MODULES
from monai_slo.config.model import load_config
from monai_slo.yaml_source import SourceError

_PROBE = textwrap.dedent(
    """
    import contextlib, io, json, sys
    from monai_slo import cli
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = cli.main(sys.argv[1:])
        except SystemExit as stop:  # --help, --version
            code = stop.code
    print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
    """
)

# What only running a check (or the daemon) needs.
_HEAVY = ("pynetdicom", "pydicom", "apscheduler", "prometheus_client", "psutil", "jsonpath")


def _modules(*argv: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout.splitlines()[-1])
    return found["code"], set(found["modules"])


def _kind_modules(modules: set[str]) -> set[str]:
    return {name for name in MODULES.values() if name in modules}


def _heavy(modules: set[str]) -> set[str]:
    return {name for name in modules if name.split(".")[0] in _HEAVY}


@pytest.fixture
def tcp_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"storage: {tmp_path / 'history.sqlite'}\n"
        "defaults: {interval: 30s}\n"
        "environments:\n  - name: e\n    tier: production\n    services:\n"
        "      - name: s\n        checks: [{name: c, kind: tcp, host: 127.0.0.1, port: 104}]\n"
    )
    return path


def _packages(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def test_tiers_imports_no_check_kind_and_no_history() -> None:
    code, modules = _modules("tiers")
    assert code == 0
    assert _kind_modules(modules) == set()
    assert _heavy(modules) == set()
    assert "monai_slo.config.model" not in modules
    assert "monai_slo.history.store" not in modules
    assert "sqlite3" not in modules
    # Nor pydantic (durations format without it), PyYAML or rich (a plain-text table).
    assert _packages(modules) & {"pydantic", "pydantic_core", "yaml", "rich"} == set()


def test_help_imports_no_yaml_pydantic_or_rich() -> None:
    code, modules = _modules("--help")
    assert code == 0
    assert _packages(modules) & {"pydantic", "pydantic_core", "yaml", "rich"} == set()


def test_validate_imports_only_the_kinds_its_config_names(tcp_config: Path) -> None:
    code, modules = _modules("validate", "-c", str(tcp_config))
    assert code == 0
    assert _kind_modules(modules) == {MODULES["tcp"]}
    assert _heavy(modules) == set()
    assert "croniter" not in _packages(modules)  # only a cron maintenance window needs it


def test_an_http_check_without_json_conditions_imports_no_jsonpath(tcp_config: Path) -> None:
    tcp_config.write_text(
        tcp_config.read_text().replace(
            "kind: tcp, host: 127.0.0.1, port: 104", "kind: http, url: 'http://127.0.0.1:1/'"
        )
    )
    code, modules = _modules("validate", "-c", str(tcp_config))
    assert code == 0
    assert _kind_modules(modules) == {MODULES["http"]}
    assert _heavy(modules) == set()


def test_status_imports_no_dicom_no_daemon(tcp_config: Path) -> None:
    # No history yet: status says so; it still loaded the config the same way.
    _, modules = _modules("status", "-c", str(tcp_config))
    assert _kind_modules(modules) == {MODULES["tcp"]}
    assert _heavy(modules) == set()
    assert "rich" not in _packages(modules)  # its tables are plain text


def test_every_kind_resolves_to_its_module() -> None:
    for name, module_name in MODULES.items():
        module = sys.modules.get(module_name) or __import__(module_name, fromlist=["Config"])
        assert KINDS[name].config_type is module.Config
        assert KINDS[name].run is module.run
        assert KINDS[name].name == name
    assert sorted(KINDS) == sorted(MODULES)


def test_defaults_keep_meaning_without_importing_every_kind(tcp_config: Path) -> None:
    """A default for a kind the config does not use is accepted (that one key imports the
    kinds to tell); an unknown one is not."""
    text = tcp_config.read_text().replace("{interval: 30s}", "{interval: 30s, calling_aet: MON}")
    tcp_config.write_text(text)
    config = load_config(tcp_config)
    assert [ref.config.interval for ref in config.checks()] == [30]
    tcp_config.write_text(tcp_config.read_text().replace("calling_aet", "callng_aet"))
    with pytest.raises(SourceError) as info:
        load_config(tcp_config)
    (issue,) = info.value.issues
    assert issue.field == "defaults.callng_aet"
    assert "calling_aet" in issue.message
