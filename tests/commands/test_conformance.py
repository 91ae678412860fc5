"""``monai-slo conformance``: this host against its tiers, with injected and real measurements."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from monai_slo.checks.hostinfo import GIB, GpuInfo, HostProbe
from monai_slo.commands.conformance import conformance_command, targets
from monai_slo.config.model import Config, load_config
from monai_slo.tiers import TierName

GB = 10**9
GOOD = HostProbe.fixed(memory_bytes=64 * GIB, logical_cores=32)


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_config(path)


def environment(name: str, tier: str, checks: str = "") -> str:
    checks = checks or "          - {name: web, kind: tcp, host: 127.0.0.1, port: 8080}\n"
    return (
        f"  - name: {name}\n"
        f"    tier: {tier}\n"
        "    services:\n"
        "      - name: node\n"
        "        checks:\n" + checks
    )


def no_host_checks(tmp_path: Path) -> Config:
    return load(
        tmp_path,
        "environments:\n"
        + environment("radiology-prod", "production")
        + environment("cardiology-prod", "production")
        + environment("laptop", "desktop"),
    )


def test_without_host_checks_every_tier_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no host check, each tier in use is judged once (environments sharing a tier
    share a row group); a conformant host exits 0 and every requirement shows PASS with its
    spec sentence and the measured value."""
    config = no_host_checks(tmp_path)
    chosen, defaulted = targets(config)
    assert defaulted
    assert [(t.scope, t.tier) for t in chosen] == [
        ("radiology-prod, cardiology-prod", TierName.PRODUCTION),
        ("laptop", TierName.DESKTOP),
    ]
    assert conformance_command(config, GOOD) == 0
    out = capsys.readouterr().out
    assert "has no host check" in out
    assert "64.0 GiB" in out and "32 logical cores" in out and "1 GPU, CUDA 12.4" in out
    assert "FAIL" not in out
    # production: memory, cores, architecture, gpu (+ kubernetes, reported); desktop: 3.
    assert out.count("PASS") == 4 + 3
    assert "reported only" in out
    assert "Desktop/Laptop" in out and "Production Server" in out
    assert "conformant: 7 of 8 requirements met, 1 more not met (reported only)" in out


@pytest.mark.parametrize(
    ("probe", "requirement"),
    [
        (HostProbe.fixed(memory_bytes=4 * GIB, logical_cores=32), "memory"),
        (HostProbe.fixed(memory_bytes=64 * GIB, logical_cores=4), "cores"),
        (HostProbe.fixed(memory_bytes=64 * GIB, architecture="aarch64"), "architecture"),
        (HostProbe.fixed(memory_bytes=64 * GIB, gpus=GpuInfo(0, error="no driver")), "gpu"),
    ],
)
def test_each_failing_requirement_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], probe: HostProbe, requirement: str
) -> None:
    """Any enforced requirement that fails makes the command exit 1 and shows FAIL."""
    config = load(tmp_path, "environments:\n" + environment("ws", "workstation"))
    assert conformance_command(config, probe) == 1
    out = capsys.readouterr().out
    failing = [line for line in out.splitlines() if "FAIL" in line]
    assert len(failing) == 1 and f" {requirement} " in failing[0], out
    assert "NOT conformant: 1 of 4 requirements failed" in out


def test_host_checks_choose_what_is_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the config has host checks, only they are judged: with their own tier or, when
    they have none, their environment's, and with their extras (disk_free)."""
    host_checks = (
        "          - {name: conformance, kind: host, disk_free: [{path: /data, min: 10GB}]}\n"
        "          - {name: as-workstation, kind: host, tier: workstation}\n"
    )
    config = load(
        tmp_path,
        "environments:\n"
        + environment("prod", "production", host_checks)
        + environment("elsewhere", "desktop"),
    )
    chosen, defaulted = targets(config)
    assert not defaulted
    assert [(t.scope, t.tier) for t in chosen] == [
        ("prod/node/conformance", TierName.PRODUCTION),
        ("prod/node/as-workstation", TierName.WORKSTATION),
    ]
    low_disk = HostProbe.fixed(memory_bytes=64 * GIB, disk_free={"/data": 2 * GB})
    assert conformance_command(config, low_disk) == 1
    out = capsys.readouterr().out
    failing = [line for line in out.splitlines() if "FAIL" in line]
    assert len(failing) == 1 and "disk_free /data" in failing[0] and "2.0 GB" in failing[0]
    assert "elsewhere" not in out
    assert "has no host check" not in out


def test_require_kubernetes_fails_outside_a_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """require_kubernetes: true turns the reported Kubernetes row into a requirement."""
    config = load(
        tmp_path,
        "environments:\n"
        + environment(
            "prod",
            "production",
            "          - {name: conformance, kind: host, require_kubernetes: true}\n",
        ),
    )
    assert conformance_command(config, GOOD) == 1
    inside = HostProbe.fixed(memory_bytes=64 * GIB, kubernetes="in a pod (test)")
    assert conformance_command(config, inside) == 0
    out = capsys.readouterr().out
    assert "not inside a Kubernetes cluster" in out and "in a pod (test)" in out


def test_each_measurement_taken_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Several tiers reuse one measurement of each thing (NVML is asked once)."""
    calls: list[str] = []

    def gpus() -> GpuInfo:
        calls.append("gpus")
        return GpuInfo(1, "12.4")

    probe = dataclasses.replace(HostProbe.fixed(memory_bytes=64 * GIB), gpus=gpus)
    config = load(
        tmp_path,
        "environments:\n"
        + environment("a", "workstation")
        + environment("b", "staging")
        + environment("c", "production"),
    )
    assert conformance_command(config, probe) == 0
    assert calls == ["gpus"]
    capsys.readouterr()


def test_real_measurement_on_this_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real measurements run here without crashing and print plausible values: some
    GiB of memory, at least one logical core, this machine's architecture."""
    config = no_host_checks(tmp_path)
    code = conformance_command(config)
    assert code in {0, 1}
    out = capsys.readouterr().out
    real = HostProbe()
    assert real.memory_bytes() > 0 and real.logical_cores() >= 1
    assert f"{real.logical_cores()} logical cores" in out
    assert f"{real.memory_bytes() / GIB:.1f} GiB" in out
    assert real.architecture() in out
    assert ("\nconformant: " in out) is (code == 0)


def test_the_summary_counts_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Above six rows too, the last line counts every row of the table: enforced failures
    and reported-only requirements not met apart, adding up to the rows shown."""
    config = no_host_checks(tmp_path)
    weak = HostProbe.fixed(memory_bytes=4 * GIB, logical_cores=2)
    assert conformance_command(config, weak, output="json") == 1
    rows = json.loads(capsys.readouterr().out)["requirements"]
    assert len(rows) == 8
    failed = sum(1 for r in rows if r["enforced"] and not r["ok"])
    unmet = sum(1 for r in rows if not r["enforced"] and not r["ok"])
    assert (failed, unmet) == (4, 1)
    assert conformance_command(config, weak) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == failed
    assert f"NOT conformant: {failed} of {len(rows)} requirements failed, 1 more not met" in out


def test_without_a_config_every_tier_is_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The usage says [-c CONFIG | --tier TIER]: with neither and no config file anywhere,
    every tier is judged (not a config error); --tier picks some; both at once is a usage
    error; the table cites the spec by title and section, not by a path not shipped."""
    from monai_slo.cli import main
    from monai_slo.commands import conformance

    monkeypatch.delenv("MONAI_SLO_CONFIG", raising=False)
    monkeypatch.setattr(conformance, "DEFAULT_CONFIG_PATH", tmp_path / "absent.yaml")
    monkeypatch.setattr(conformance, "HostProbe", lambda: GOOD)
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["conformance", "-o", "json"]) == 0
    tiers = {r["tier"] for r in json.loads(capsys.readouterr().out)["requirements"]}
    assert tiers == {t.value for t in TierName}
    assert main(["conformance"]) == 0
    out = capsys.readouterr().out
    assert "judging this host against every tier" in out
    assert "Environment Details" in out and "spec/" not in out
    assert main(["conformance", "--tier", "desktop", "--tier", "staging", "-o", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["requirements"]
    assert {r["tier"] for r in rows} == {"desktop", "staging"}
    with pytest.raises(SystemExit) as usage:
        main(["conformance", "--tier", "desktop", "-c", str(tmp_path / "x.yaml")])
    assert usage.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["conformance", "--help"])
    assert "[-c CONFIG | --tier" in " ".join(capsys.readouterr().out.split())
