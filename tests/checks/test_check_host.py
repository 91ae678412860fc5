"""The host check: each tier's hardware requirements against injected and real measurements."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from monai_slo.checks import host
from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.hostinfo import GIB, GpuInfo, HostProbe, gpu_info
from monai_slo.checks.nvml import NvmlErrorCode
from monai_slo.checks.registry import KINDS
from monai_slo.testing.nvml import FakeNvml, use_nvml

SPEC = Path(__file__).resolve().parents[3] / "shared/spec/monai-deploy-operating-environments.md"
GB = 10**9


def config(tier: str | None = "production", **keys: Any) -> host.Config:
    data: dict[str, Any] = {"name": "host", "kind": "host", "interval": 60, "timeout": 1}
    if tier is not None:
        data["tier"] = tier
    data.update(keys)
    return host.Config.model_validate(data)


def check(cfg: host.Config, probe: HostProbe) -> CheckOutcome:
    return host.run(cfg, Deadline(cfg.timeout), probe)


def conformance(outcome: CheckOutcome) -> dict[tuple[str, str], float]:
    return {
        (s.labels["requirement"], s.labels["path"]): s.value
        for s in outcome.series
        if s.name == "conformance_ok"
    }


# --- the spec's requirements ----------------------------------------------------------------


def test_conformant_production_host() -> None:
    """A host with enough memory, cores, an x86 CPU and a CUDA GPU conforms to production;
    every enforced requirement is a conformance_ok series at 1, and the measurements are
    values."""
    outcome = check(config(), HostProbe.fixed(memory_bytes=64 * GIB, logical_cores=32))
    assert outcome.success, outcome
    assert outcome.reason is None
    assert conformance(outcome) == {
        ("memory", ""): 1.0,
        ("cores", ""): 1.0,
        ("architecture", ""): 1.0,
        ("gpu", ""): 1.0,
    }
    assert outcome.values == {
        "host_memory_bytes": 64 * GIB,
        "host_logical_cores": 32,
        "host_gpus": 1,
        "host_in_kubernetes": 0.0,
    }
    assert "conformant to production" in outcome.detail and "CUDA 12.4" in outcome.detail


@pytest.mark.parametrize(
    ("memory", "ok"),
    [
        (8 * GB, True),  # exactly the spec's 8GB
        (int(7.7 * GIB), True),  # what a machine with 8 GiB installed reports
        (8 * GB - 1, False),
        (4 * GIB, False),
    ],
)
def test_memory_minimum(memory: int, ok: bool) -> None:
    """Memory passes from 8 GB (8e9 bytes as the OS reports it) and fails below."""
    outcome = check(config("desktop"), HostProbe.fixed(memory_bytes=memory))
    assert outcome.success is ok, outcome
    assert conformance(outcome)[("memory", "")] == (1.0 if ok else 0.0)
    if not ok:
        assert outcome.reason is FailureReason.NONCONFORMANT
        assert outcome.detail.startswith("not conformant to desktop: memory:")


@pytest.mark.parametrize(("cores", "ok"), [(8, True), (64, True), (7, False), (1, False)])
def test_core_minimum(cores: int, ok: bool) -> None:
    """At least 8 logical cores, on every tier."""
    outcome = check(config("workstation"), HostProbe.fixed(logical_cores=cores))
    assert outcome.success is ok, outcome
    assert conformance(outcome)[("cores", "")] == (1.0 if ok else 0.0)
    if not ok:
        assert f"cores: {cores} logical cores (expected >= 8 logical cores)" in outcome.detail


@pytest.mark.parametrize(
    ("machine", "ok"),
    [("x86_64", True), ("AMD64", True), ("i686", True), ("aarch64", False), ("arm64", False)],
)
def test_architecture_x86_family(machine: str, ok: bool) -> None:
    """The CPU must be x86 family (Linux/macOS x86_64, Windows AMD64, 32-bit x86)."""
    outcome = check(config("staging"), HostProbe.fixed(architecture=machine))
    assert outcome.success is ok, outcome
    assert conformance(outcome)[("architecture", "")] == (1.0 if ok else 0.0)


def test_require_x86_false_reports_without_failing() -> None:
    """With require_x86: false an ARM host (e.g. NVIDIA IGX) conforms; the architecture is
    still assessed but not enforced, so it has no conformance_ok series."""
    cfg = config("production", require_x86=False)
    arm = HostProbe.fixed(architecture="aarch64")
    outcome = check(cfg, arm)
    assert outcome.success, outcome
    assert ("architecture", "") not in conformance(outcome)
    result = host.assess(cfg, host.TierName.PRODUCTION, Deadline(1), arm)
    arch = next(r for r in result.requirements if r.name == "architecture")
    assert not arch.ok and not arch.enforced and arch.measured == "aarch64"


def test_desktop_needs_no_gpu() -> None:
    """Desktops have no GPU requirement: NVML is not even asked."""

    def gpus() -> GpuInfo:
        raise AssertionError("NVML must not be queried for a desktop")

    probe = HostProbe.fixed()
    outcome = check(config("desktop"), dataclasses.replace(probe, gpus=gpus))
    assert outcome.success, outcome
    assert ("gpu", "") not in conformance(outcome)
    assert "host_gpus" not in outcome.values


@pytest.mark.parametrize("tier", ["workstation", "development", "staging", "production"])
@pytest.mark.parametrize(
    ("gpus", "ok"),
    [
        (GpuInfo(2, "12.4", "550.54.15"), True),
        (GpuInfo(0, error="NVML unavailable: NVML_ERROR_DRIVER_NOT_LOADED"), False),
        (GpuInfo(1, None, "390.0"), False),  # a GPU whose driver reports no CUDA version
    ],
)
def test_gpu_with_cuda_from_workstation_up(tier: str, gpus: GpuInfo, ok: bool) -> None:
    """From workstation up, at least one GPU with CUDA is required."""
    outcome = check(config(tier), HostProbe.fixed(gpus=gpus))
    assert outcome.success is ok, outcome
    assert conformance(outcome)[("gpu", "")] == (1.0 if ok else 0.0)
    assert outcome.values["host_gpus"] == gpus.count
    if not ok:
        assert "gpu: " in outcome.detail
        assert (gpus.error or "no CUDA driver") in outcome.detail


def test_kubernetes_reported_not_enforced_by_default() -> None:
    """Staging and production assess Kubernetes but fail on it only with
    require_kubernetes: true; host_in_kubernetes says what was found."""
    outside = HostProbe.fixed()
    ok = check(config("staging"), outside)
    assert ok.success, ok
    assert ("kubernetes", "") not in conformance(ok)
    assert ok.values["host_in_kubernetes"] == 0.0

    required = check(config("production", require_kubernetes=True), outside)
    assert required.reason is FailureReason.NONCONFORMANT
    assert "kubernetes: not inside a Kubernetes cluster" in required.detail
    assert conformance(required)[("kubernetes", "")] == 0.0

    inside = HostProbe.fixed(kubernetes="in a pod (KUBERNETES_SERVICE_HOST is set)")
    in_pod = check(config("production", require_kubernetes=True), inside)
    assert in_pod.success, in_pod
    assert in_pod.values["host_in_kubernetes"] == 1.0
    assert conformance(in_pod)[("kubernetes", "")] == 1.0


def test_require_kubernetes_on_a_lower_tier_is_a_configured_requirement() -> None:
    """require_kubernetes on a tier whose spec says nothing of Kubernetes is enforced and
    attributed to the config, not the spec."""
    cfg = config("workstation", require_kubernetes=True)
    result = host.assess(cfg, host.TierName.WORKSTATION, Deadline(1), HostProbe.fixed())
    kubernetes = next(r for r in result.requirements if r.name == "kubernetes")
    assert kubernetes.source == "configured: require_kubernetes"
    assert kubernetes.enforced and not kubernetes.ok


def test_real_kubernetes_detection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Inside a pod is recognised by KUBERNETES_SERVICE_HOST or the service-account dir."""
    from monai_slo.checks import hostinfo

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(hostinfo, "SERVICE_ACCOUNT_DIR", tmp_path / "absent")
    assert HostProbe().kubernetes() is None
    monkeypatch.setattr(hostinfo, "SERVICE_ACCOUNT_DIR", tmp_path)
    assert str(tmp_path) in (HostProbe().kubernetes() or "")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert "KUBERNETES_SERVICE_HOST" in (HostProbe().kubernetes() or "")


# --- configured extras ----------------------------------------------------------------------


def test_min_cores_and_memory_raise_the_minimum() -> None:
    """min_cores and min_memory raise the requirement above the spec's."""
    probe = HostProbe.fixed(memory_bytes=32 * GIB, logical_cores=16)
    assert check(config(min_cores=16, min_memory="32GiB"), probe).success
    outcome = check(config(min_cores=32, min_memory="64GB"), probe)
    assert outcome.reason is FailureReason.NONCONFORMANT
    assert "(expected >= 32 logical cores)" in outcome.detail
    assert "(expected >= 64 GB)" in outcome.detail


def test_disk_free_measured_for_real(tmp_path: Path) -> None:
    """disk_free measures the real file system: 1 byte free passes, a petabyte fails, both
    expose host_disk_free_bytes{path} and conformance_ok{requirement=disk_free, path}."""
    ok = check(config("desktop", disk_free=[{"path": str(tmp_path), "min": 1}]), HostProbe())
    assert conformance(ok)[("disk_free", str(tmp_path))] == 1.0
    free = [s for s in ok.series if s.name == "host_disk_free_bytes"]
    assert len(free) == 1 and free[0].labels == {"path": str(tmp_path)} and free[0].value > 0

    full = check(config("desktop", disk_free=[{"path": str(tmp_path), "min": "1PB"}]), HostProbe())
    assert conformance(full)[("disk_free", str(tmp_path))] == 0.0
    assert f"disk_free {tmp_path}:" in full.detail


def test_disk_free_missing_path_fails(tmp_path: Path) -> None:
    """A disk_free path that does not exist fails the requirement, saying why."""
    missing = tmp_path / "nope"
    outcome = check(
        config("desktop", disk_free=[{"path": str(missing), "min": "1GB"}]), HostProbe()
    )
    assert outcome.reason is FailureReason.NONCONFORMANT
    assert "cannot measure: No such file or directory" in outcome.detail


def test_series_share_label_names() -> None:
    """Every conformance_ok series has the same label names (the collector requires it)."""
    outcome = check(
        config(disk_free=[{"path": "/data", "min": "10GB"}], require_kubernetes=True),
        HostProbe.fixed(disk_free={"/data": 20 * GB}),
    )
    labels = {tuple(s.labels) for s in outcome.series if s.name == "conformance_ok"}
    assert labels == {("requirement", "path")}
    assert len(conformance(outcome)) == 6


@pytest.mark.parametrize(
    ("text", "size"),
    [("10GB", 10 * GB), ("512MiB", 512 * 2**20), ("1.5TB", 1500 * GB), (4096, 4096)],
)
def test_sizes(text: object, size: int) -> None:
    """Sizes are decimal (GB) or binary (GiB) units or plain bytes."""
    assert config(disk_free=[{"path": "/", "min": text}]).disk_free[0].min == size


@pytest.mark.parametrize(
    ("keys", "field", "message"),
    [
        ({"disk_free": [{"path": "/", "min": "ten"}]}, "disk_free.0.min", "size such as"),
        ({"disk_free": [{"path": "/", "min": 0}]}, "disk_free.0.min", "positive"),
        ({"disk_free": [{"path": "/", "min": True}]}, "disk_free.0.min", "size such as"),
        ({"disk_free": [{"path": "data", "min": 1}]}, "disk_free.0.path", "absolute"),
        ({"disk_free": [{"path": "/", "min": 1}, {"path": "/", "min": 2}]}, "", "twice"),
        ({"disk_free": [{"path": "/", "min": 1, "max": 2}]}, "disk_free.0.max", "Extra"),
        ({"min_cores": 4}, "min_cores", "only raise"),
        ({"min_memory": "4GB"}, "min_memory", "only raise"),
        ({"tier": "cloud"}, "tier", "desktop"),
        ({"gpus": 2}, "gpus", "Extra"),
    ],
)
def test_config_errors_name_the_field(keys: dict[str, Any], field: str, message: str) -> None:
    """Invalid host configs fail validation naming the key and what was expected."""
    with pytest.raises(ValidationError) as excinfo:
        config(**keys)
    error = str(excinfo.value)
    assert field in error and message in error, error


def test_missing_tier_is_an_error() -> None:
    """Without a tier (neither on the check nor filled in from the environment) the check
    cannot judge anything and says so."""
    outcome = check(config(tier=None), HostProbe.fixed())
    assert outcome.reason is FailureReason.ERROR
    assert "tier" in outcome.detail


def test_registered() -> None:
    """The kind is registered as host."""
    assert KINDS["host"].config_type is host.Config
    assert KINDS["host"].run is host.run


# --- hung measurements ----------------------------------------------------------------------


def test_hung_disk_costs_the_deadline_once(tmp_path: Path) -> None:
    """A statvfs that hangs (dead NFS mount) makes the check time out within its deadline;
    while it still hangs, the next run fails at once instead of stacking a second stuck
    thread; once it returns, measuring works again."""
    release = threading.Event()
    path = f"/hung-{tmp_path.name}"

    def disk_free_bytes(_: Path) -> int:
        release.wait()
        return 100 * GB

    probe = dataclasses.replace(HostProbe.fixed(), disk_free_bytes=disk_free_bytes)
    cfg = config("desktop", timeout=0.5, disk_free=[{"path": path, "min": "1GB"}])
    stuck = f"measure-disk:{path}"
    try:
        started = time.monotonic()
        first = check(cfg, probe)
        assert time.monotonic() - started < 0.5 + 0.3
        assert first.reason is FailureReason.TIMEOUT, first
        assert ("disk_free", path) not in conformance(first)

        started = time.monotonic()
        second = check(cfg, probe)
        assert time.monotonic() - started < 0.25  # did not wait out a second deadline
        assert second.reason is FailureReason.TIMEOUT
        assert "has not returned yet" in second.detail
        assert [t.name for t in threading.enumerate()].count(stuck) == 1
    finally:
        release.set()
    for thread in [t for t in threading.enumerate() if t.name == stuck]:
        thread.join(5)
    assert check(cfg, probe).success


def test_definite_failure_outranks_a_hung_measurement() -> None:
    """Too little memory is reported as nonconformant even when the GPU query hangs."""
    release = threading.Event()

    def gpus() -> GpuInfo:
        release.wait()
        return GpuInfo(1, "12.4")

    probe = dataclasses.replace(HostProbe.fixed(memory_bytes=2 * GIB), gpus=gpus)
    try:
        outcome = check(config("workstation", timeout=0.2), probe)
    finally:
        release.set()
    for thread in [t for t in threading.enumerate() if t.name == "measure-gpus"]:
        thread.join(5)
    assert outcome.reason is FailureReason.NONCONFORMANT
    assert "memory:" in outcome.detail and "gpu:" in outcome.detail


# --- the NVML boundary ----------------------------------------------------------------------


def test_gpu_info_through_nvml() -> None:
    """GPUs are counted and the CUDA version decoded (12040 -> 12.4) through the NVML
    boundary, with NVML released afterwards; no driver reads as 0 GPUs with the reason."""
    nvml = FakeNvml(2)
    assert gpu_info(nvml) == GpuInfo(2, "12.4", "550.54.15")
    assert nvml.init_calls == nvml.shutdown_calls == 1

    old_driver = FakeNvml(1)
    old_driver.fail("system_get_cuda_driver_version", NvmlErrorCode.FUNCTION_NOT_FOUND)
    no_cuda = gpu_info(old_driver)
    assert no_cuda.count == 1 and not no_cuda.cuda

    absent = FakeNvml(1)
    absent.fail("init", NvmlErrorCode.DRIVER_NOT_LOADED)
    info = gpu_info(absent)
    assert info.count == 0 and "NVML_ERROR_DRIVER_NOT_LOADED" in (info.error or "")
    assert absent.shutdown_calls == 0


def test_host_check_reads_the_nvml_the_gpu_check_uses() -> None:
    """The default probe asks the same NVML as the gpu check, so a fake installed with
    use_nvml (tests, the demo) is what the host check counts."""
    real_gpus = HostProbe().gpus  # the default measurement; the rest fixed to conform
    probe = dataclasses.replace(HostProbe.fixed(), gpus=real_gpus)
    with use_nvml(FakeNvml(2)):
        outcome = check(config("workstation"), probe)
    assert outcome.success, outcome
    assert outcome.values["host_gpus"] == 2
    assert "2 GPUs, CUDA 12.4" in outcome.detail


def test_detail_stays_bounded() -> None:
    """Many failed requirements with long reasons still give a detail of at most 300
    characters (the conformance command shows everything)."""
    probe = HostProbe.fixed(
        memory_bytes=GIB,
        logical_cores=1,
        architecture="aarch64",
        gpus=GpuInfo(0, error="NVML unavailable: " + "x" * 300),
    )
    outcome = check(config(require_kubernetes=True), probe)
    assert outcome.reason is FailureReason.NONCONFORMANT
    assert len(outcome.detail) <= 300 and outcome.detail.endswith("…")


# --- this machine ---------------------------------------------------------------------------


def test_real_measurements_are_plausible(tmp_path: Path) -> None:
    """The real probe measures this machine without crashing: memory > 0, cores >= 1, an
    architecture name."""
    probe = HostProbe()
    assert probe.memory_bytes() > 0
    assert probe.logical_cores() >= 1
    assert probe.architecture()
    # The exact count against the driver's device nodes: tests/checks/test_host_gpu_count.py.
    outcome = check(config("production", disk_free=[{"path": str(tmp_path), "min": 1}]), probe)
    assert outcome.values["host_memory_bytes"] == probe.memory_bytes()
    assert outcome.values["host_logical_cores"] >= 1
    assert outcome.reason in {None, FailureReason.NONCONFORMANT}, outcome


@pytest.mark.skipif(not SPEC.exists(), reason="the spec is not beside the repository")
def test_every_quote_is_verbatim_from_the_spec() -> None:
    """Every quoted sentence a requirement cites appears word for word in the spec."""
    spec = " ".join(SPEC.read_text().split())
    quotes: set[str] = set()
    for tier in host.TierName:
        cfg = config(tier, require_kubernetes=True)
        for requirement in host.assess(cfg, tier, Deadline(1), HostProbe.fixed()).requirements:
            quotes.update(re.findall(r'"([^"]+)"', requirement.source))
    assert len(quotes) >= 8
    for quote in quotes:
        assert quote in spec, quote
