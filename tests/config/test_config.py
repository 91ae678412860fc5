"""Config validation: tiers applied, every bad input named by file, line, field; exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from monai_slo.cli import main
from monai_slo.config.model import coarse_interval_warnings, load_config
from monai_slo.tiers import TierName
from monai_slo.yaml_source import SourceError

DATA = Path(__file__).parents[1] / "data"
INVALID = sorted((DATA / "invalid").glob("*.yaml"))
REPO = Path(__file__).parents[2]


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# error: "), f"{path} must start with '# error: <expected>'"
    return first.removeprefix("# error: ")


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_names_file_line_field(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each invalid fixture is rejected with exactly its expected message and exit code 2."""
    assert main(["validate", "-c", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    expected = f"{path}{_expected(path)}"
    assert err[0] == "config error:"
    assert len(err) == 2, err
    assert err[1].startswith(expected) if expected.endswith(":") else err[1] == expected


def test_several_problems_reported_at_once(tmp_path: Path) -> None:
    """A file with several mistakes lists all of them, not only the first."""
    path = tmp_path / "c.yaml"
    path.write_text(
        "environments:\n"
        "  - name: prod\n"
        "    tier: production\n"
        "    objective: 50\n"
        "    services:\n"
        "      - name: pacs\n"
        "        checks:\n"
        "          - {name: a, kind: tcp, host: h, port: 70000}\n"
    )
    with pytest.raises(SourceError) as info:
        load_config(path)
    fields = [issue.field for issue in info.value.issues]
    assert fields == ["environments[0].objective", "environments[0].services[0].checks[0].port"]
    assert [issue.line for issue in info.value.issues] == [4, 8]


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(body)
    return path


def _one_service(tier: str, extra: str = "") -> str:
    return (
        f"environments:\n  - name: e\n    tier: {tier}\n{extra}"
        "    services:\n      - name: s\n"
        "        checks: [{name: c, kind: tcp, host: 127.0.0.1, port: 104}]\n"
    )


@pytest.mark.parametrize(
    ("tier", "extra", "objective"),
    [
        ("production", "", 99.9),
        ("production", "    objective: 99.999\n", 99.999),
        ("production", "    objective: 99\n", 99.0),
        ("staging", "", 98.0),
        ("staging", "    objective: 99.5\n", 99.5),
        ("workstation", "", None),
        ("desktop", "", None),
        ("development", "", None),
    ],
)
def test_tier_objectives(tmp_path: Path, tier: str, extra: str, objective: float | None) -> None:
    """Production defaults to 99.9 %, staging to 98 %, best-effort tiers have no objective."""
    config = load_config(_write(tmp_path, _one_service(tier, extra)))
    (service,) = config.services()
    assert service.tier == TierName(tier)
    assert service.objective == objective


def test_defaults_reach_only_kinds_that_have_the_key(tmp_path: Path) -> None:
    """calling_aet in defaults applies to DICOM checks and does not break tcp checks."""
    path = _write(
        tmp_path,
        "defaults: {interval: 10s, timeout: 2s, calling_aet: ROUTER_MON}\n"
        "environments:\n  - name: e\n    tier: staging\n    window: 7d\n    services:\n"
        "      - name: s\n        checks:\n"
        "          - {name: echo, kind: dicom_echo, host: 127.0.0.1, port: 104, called_aet: PACS}\n"
        "          - {name: port, kind: tcp, host: 127.0.0.1, port: 104, interval: 1m}\n",
    )
    config = load_config(path)
    echo, port = (ref.config for ref in config.checks())
    assert echo.calling_aet  # type: ignore[attr-defined] == "ROUTER_MON"
    assert echo.interval == 10 and echo.timeout == 2
    assert port.interval == 60 and port.timeout == 2
    assert config.environments[0].window == 7 * 86400


def test_relative_storage_resolves_beside_the_config(tmp_path: Path) -> None:
    """A relative storage path is relative to the config file, not the working directory."""
    config = load_config(_write(tmp_path, "storage: state/h.sqlite\n" + _one_service("staging")))
    assert config.storage == tmp_path / "state" / "h.sqlite"


def test_coarse_interval_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """99.999 % over 30 d is 25.9 s of budget: a 30 s interval cannot measure it, validate warns."""
    path = _write(tmp_path, _one_service("production", "    objective: 99.999\n"))
    warnings = coarse_interval_warnings(load_config(path))
    assert len(warnings) == 1
    assert "25.9s of error budget" in warnings[0] and "e/s/c" in warnings[0]
    assert main(["validate", "-c", str(path)]) == 0
    assert "too coarse" in capsys.readouterr().err


def test_no_warning_when_interval_fits_budget(tmp_path: Path) -> None:
    """99.9 % over 30 d (43 min of budget) is measurable with a 30 s interval."""
    path = _write(tmp_path, _one_service("production"))
    assert coarse_interval_warnings(load_config(path)) == []


@pytest.mark.parametrize("name", ["example.yaml", "demo.yaml", "desktop.yaml"])
def test_shipped_configs_are_valid(name: str, tmp_path: Path) -> None:
    """config/example.yaml (every option) and the demo config validate."""
    path = REPO / "config" / name
    if name == "demo.yaml":
        from monai_slo.commands.demo import demo_config_text

        text = demo_config_text(
            listen="127.0.0.1:0",
            storage=tmp_path / "h.sqlite",
            dicom_port=11112,
            http_port=8080,
            stable_http_port=8081,
        )
        config = load_config(path, text)
    else:
        config = load_config(path)
    assert sum(1 for _ in config.checks()) >= 3


def test_config_path_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """MONAI_SLO_CONFIG is used when -c is absent."""
    path = _write(tmp_path, _one_service("staging"))
    monkeypatch.setenv("MONAI_SLO_CONFIG", str(path))
    assert main(["validate"]) == 0


def test_nesting_and_alias_bounds(tmp_path: Path) -> None:
    """MAX_DEPTH levels load; one more is refused with the line. Anchors, aliases and merge
    keys within MAX_NODES work as YAML says; past it the file is refused unexpanded."""
    from monai_slo import yaml_source

    deep = tmp_path / "deep.yaml"
    depth = yaml_source.MAX_DEPTH
    deep.write_text("x: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n")
    assert yaml_source.load_yaml(deep).data == {"x": _nested(depth - 1)}
    deep.write_text("x: " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(SourceError) as info:
        yaml_source.load_yaml(deep)
    assert str(info.value) == f"{deep}:1: invalid YAML: nested deeper than {depth} levels"

    merged = _write(
        tmp_path,
        "defaults: &common {interval: 30s, timeout: 5s}\n"
        "environments:\n  - name: prod\n    tier: production\n    services:\n"
        "      - name: pacs\n        checks:\n"
        "          - {<<: *common, name: a, kind: tcp, host: h, port: 104, timeout: 2s}\n"
        "          - {<<: *common, name: b, kind: tcp, host: h, port: 105}\n",
    )
    config = load_config(merged)
    assert [(c.config.interval, c.config.timeout) for c in config.checks()] == [
        (30.0, 2.0),
        (30.0, 5.0),
    ]

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "a: &a [" + ",".join(["x"] * 100) + "]\n"
        "b: &b [" + ",".join(["*a"] * 100) + "]\n"
        "c: [" + ",".join(["*b"] * 100) + "]\n"
    )
    with pytest.raises(SourceError, match="expands to more than 250,000 values"):
        yaml_source.load_yaml(bomb)


def _nested(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_a_bracket_left_open_is_reported_where_it_was_opened(tmp_path: Path) -> None:
    """A '{' never closed on line 2 of a long file points at line 2 and its column, not at
    the end of the file where the parser gives up; an unclosed quote likewise."""
    services = "".join(
        f"      - name: s{i}\n        checks:\n          - name: c\n" for i in range(10)
    )
    path = tmp_path / "open.yaml"
    path.write_text(
        "listen: 127.0.0.1:9790\ndefaults: {interval: 30s,\n"
        "  timeout: 5s,\nenvironments:\n  - name: prod\n    services:\n" + services
    )
    with pytest.raises(SourceError) as raised:
        load_config(path)
    message = str(raised.value)
    assert message.startswith(f"{path}:2: invalid YAML: '{{' opened here (column 11)"), message
    path.write_text('listen: "127.0.0.1:9790\nstorage: x.sqlite\nenvironments: []\n')
    with pytest.raises(SourceError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}:1: invalid YAML: '\"' opened here (column 9)")
