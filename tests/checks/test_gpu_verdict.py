"""The GPU verdict rules one by one: readings in through FakeNvml, verdict and action out.

Each row scripts one GPU (GPU 0 of two) and says what its verdict, suggested action and
deciding rule must be, and how the check ends with the default ``fail_on: unhealthy``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from monai_slo.checks import gpu, nvml
from monai_slo.checks.base import CheckOutcome, Deadline, FailureReason
from monai_slo.checks.gpu import verdict as rules
from monai_slo.checks.gpu.verdict import Action, Readings, Verdict
from monai_slo.checks.nvml import NvmlErrorCode, PcieLink, RemappedRows
from monai_slo.testing.nvml import FakeNvml, use_nvml

E = NvmlErrorCode
R = FailureReason


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(gpu, "_clock", moved)
    return moved


@pytest.fixture
def fake() -> Iterator[FakeNvml]:
    backend = FakeNvml(gpus=2)
    with use_nvml(backend):
        yield backend


def config(**keys: Any) -> gpu.Config:
    data: dict[str, Any] = {"name": "gpus", "kind": "gpu", "interval": 10, "timeout": 2}
    data.update(keys)
    return gpu.Config.model_validate(data)


def state(outcome: CheckOutcome, name: str, label: str, index: int = 0) -> str:
    """The one label value set to 1 in a per-GPU state set; every other member is 0."""
    members = {
        s.labels[label]: s.value
        for s in outcome.series
        if s.name == name and s.labels["gpu"] == str(index)
    }
    on = [value for value, v in members.items() if v == 1]
    assert len(on) == 1 and all(v in (0, 1) for v in members.values()), members
    return on[0]


def verdict_of(outcome: CheckOutcome, index: int = 0) -> tuple[str, str]:
    return (
        state(outcome, "gpu_health", "verdict", index),
        state(outcome, "gpu_suggested_action", "action", index),
    )


@dataclass(frozen=True)
class Row:
    id: str
    script: Callable[[FakeNvml], None]
    verdict: Verdict
    action: Action
    rule: str | None
    reason: FailureReason | None  # None: the check passes


def _set(**attrs: Any) -> Callable[[FakeNvml], None]:
    def script(fake: FakeNvml) -> None:
        for key, value in attrs.items():
            setattr(fake.gpus[0], key, value)

    return script


def _fail(call: str, code: int) -> Callable[[FakeNvml], None]:
    return lambda fake: fake.fail(call, code, gpu=0)


H, D, U = Verdict.HEALTHY, Verdict.DEGRADED, Verdict.UNHEALTHY
ROWS = [
    Row("healthy", _set(), H, Action.NONE, None, None),
    Row("lost", _set(lost=True), U, Action.REBOOT, "lost", R.GPU_LOST),
    Row(
        "reset_required",
        _fail("device_get_handle_by_index", E.RESET_REQUIRED),
        U,
        Action.RESET,
        "lost",
        R.GPU_LOST,
    ),
    Row(
        "recovery_reset",
        _set(recovery_action=1),
        U,
        Action.RESET,
        "recovery_action",
        R.GPU_RECOVERY,
    ),
    Row(
        "recovery_reboot",
        _set(recovery_action=2),
        U,
        Action.REBOOT,
        "recovery_action",
        R.GPU_RECOVERY,
    ),
    Row(
        "recovery_not_supported",
        _fail("device_get_recovery_action", E.NOT_SUPPORTED),
        H,
        Action.NONE,
        None,
        None,
    ),
    Row(
        "remap_failure",
        _set(remapped_rows=RemappedRows(0, 3, pending=False, failure=True)),
        U,
        Action.INSPECT_HARDWARE,
        "row_remap_failure",
        R.GPU_ROW_REMAP,
    ),
    Row(
        "remap_pending",
        _set(remapped_rows=RemappedRows(0, 1, pending=True, failure=False)),
        U,
        Action.RESET,
        "row_remap_pending",
        R.GPU_ROW_REMAP,
    ),
    Row(
        "remapped_done",
        _set(remapped_rows=RemappedRows(4, 2, pending=False, failure=False)),
        H,
        Action.NONE,
        None,
        None,
    ),
    Row(
        "ecc_uncontained",
        _set(ecc_uncorrected_volatile=2),
        U,
        Action.RESET,
        "ecc_uncorrected",
        R.GPU_ECC,
    ),
    Row(
        "ecc_contained_by_remap",
        _set(
            ecc_uncorrected_volatile=2,
            remapped_rows=RemappedRows(0, 2, pending=False, failure=False),
        ),
        H,
        Action.NONE,
        None,
        None,
    ),
    Row(
        "ecc_remap_failed",
        _set(
            ecc_uncorrected_volatile=2,
            remapped_rows=RemappedRows(0, 2, pending=False, failure=True),
        ),
        U,
        Action.INSPECT_HARDWARE,
        "row_remap_failure",
        R.GPU_ROW_REMAP,
    ),
    Row(
        "nvlink_all_inactive",
        _set(nvlinks=(False,) * 18),
        U,
        Action.RESET,
        "nvlink_inactive",
        R.GPU_NVLINK,
    ),
    Row("nvlink_one_active", _set(nvlinks=(False, True, False)), H, Action.NONE, None, None),
    Row("no_nvlink", _set(nvlinks=()), H, Action.NONE, None, None),
    Row(
        "pcie_width_low",
        _set(pcie_link=PcieLink(4, 4, 8, 16)),
        D,
        Action.INSPECT_HARDWARE,
        "pcie_link_width",
        None,
    ),
    Row(
        "pcie_gen_low_busy",
        _set(pcie_link=PcieLink(1, 4, 16, 16), utilization=90),
        D,
        Action.INSPECT_HARDWARE,
        "pcie_link_speed",
        None,
    ),
    Row(
        "pcie_gen_low_idle",
        _set(pcie_link=PcieLink(1, 4, 16, 16), utilization=0),
        H,
        Action.NONE,
        None,
        None,
    ),
    Row(
        "hw_slowdown",
        _set(throttle_reasons=nvml.THROTTLE_HW_SLOWDOWN),
        D,
        Action.NONE,
        "clocks_throttled",
        None,
    ),
    Row(
        "hw_thermal",
        _set(throttle_reasons=nvml.THROTTLE_HW_THERMAL),
        D,
        Action.NONE,
        "clocks_throttled",
        None,
    ),
    Row(
        "power_cap_only",
        _set(throttle_reasons=nvml.THROTTLE_SW_POWER_CAP),
        H,
        Action.NONE,
        None,
        None,
    ),
    Row(
        "worst_wins",
        _set(
            throttle_reasons=nvml.THROTTLE_HW_SLOWDOWN,
            remapped_rows=RemappedRows(0, 3, pending=False, failure=True),
            recovery_action=1,
        ),
        U,
        Action.INSPECT_HARDWARE,
        "row_remap_failure",
        R.GPU_RECOVERY,
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_rule_table(fake: FakeNvml, row: Row) -> None:
    """One scripted GPU: its verdict and action in the state sets, the deciding rule in the
    detail, the check failing only on unhealthy; the other GPU stays healthy."""
    row.script(fake)
    outcome = gpu.run(config(), Deadline(2))
    assert verdict_of(outcome) == (row.verdict.value, row.action.value), outcome.detail
    assert verdict_of(outcome, 1) == ("healthy", "none")
    if row.rule is not None:
        assert f"rule {row.rule})" in outcome.detail, outcome.detail
    else:
        assert "rule " not in outcome.detail, outcome.detail
    assert outcome.success is (row.reason is None), outcome.detail
    assert outcome.reason is row.reason


def test_fail_on_degraded(fake: FakeNvml) -> None:
    """fail_on: degraded turns a degraded GPU into a failed check, with the rule's reason."""
    fake.gpus[1].pcie_link = PcieLink(4, 4, 4, 16)
    assert gpu.run(config(), Deadline(2)).success
    outcome = gpu.run(config(fail_on="degraded"), Deadline(2))
    assert outcome.reason is R.GPU_PCIE
    assert "GPU 1: PCIe link x4 of x16 (degraded" in outcome.detail
    assert "1 healthy, 1 degraded" not in outcome.detail  # a failure lists problems only
    passing = gpu.run(config(), Deadline(2))
    assert "GPU(s): 1 healthy, 1 degraded" in passing.detail


def test_fail_on_is_validated() -> None:
    with pytest.raises(ValueError, match="fail_on"):
        config(fail_on="sometimes")


def test_pcie_replay_rate_over_a_minute(fake: FakeNvml, clock: Clock) -> None:
    """PCIe replays are judged as a rate over at least a minute: above 8/min (DCGM's
    limit) is degraded, at or below it is healthy; a counter that went back starts over."""
    gpu0 = fake.gpus[0]
    gpu0.pcie_replays = 100
    assert verdict_of(gpu.run(config(), Deadline(2))) == ("healthy", "none")
    gpu0.pcie_replays = 1000
    clock.now += 30  # not a minute yet: no rate
    assert verdict_of(gpu.run(config(), Deadline(2))) == ("healthy", "none")
    clock.now += 30
    outcome = gpu.run(config(), Deadline(2))
    assert verdict_of(outcome) == ("degraded", "inspect_hardware")
    assert "900.0 PCIe replays/min" in outcome.detail
    clock.now += 30  # the last rate stands until the next minute is counted
    assert verdict_of(gpu.run(config(), Deadline(2)))[0] == "degraded"
    gpu0.pcie_replays = 1008
    clock.now += 30
    assert verdict_of(gpu.run(config(), Deadline(2))) == ("healthy", "none")
    gpu0.pcie_replays = 5  # driver reloaded
    clock.now += 60
    assert verdict_of(gpu.run(config(), Deadline(2))) == ("healthy", "none")


def test_sticky_xid_clears_after_the_window(fake: FakeNvml, clock: Clock) -> None:
    """A critical XID keeps its GPU unhealthy for xid_window only; a new one restarts it."""
    cfg = config(xid_window="5m")
    gpu.run(cfg, Deadline(2))
    fake.xid(0, 95)
    assert verdict_of(gpu.run(cfg, Deadline(2))) == ("unhealthy", "reset")
    clock.now += 200
    fake.xid(0, 48)
    gpu.run(cfg, Deadline(2))
    clock.now += 200  # the 95 is older than 5 min now, the 48 is not
    outcome = gpu.run(cfg, Deadline(2))
    assert "critical XID 48" in outcome.detail and "critical XID 95" not in outcome.detail
    clock.now += 101
    assert verdict_of(gpu.run(cfg, Deadline(2))) == ("healthy", "none")


def test_xid_63_64_follow_the_remap_state(fake: FakeNvml) -> None:
    """XID 63/64 listed as critical decide nothing themselves where the remap state is
    readable: a pending remap says reset, a failed one inspect hardware."""
    cfg = config(critical_xids=[63, 64])
    gpu.run(cfg, Deadline(2))
    fake.xid(0, 63)
    fake.xid(0, 64)
    assert verdict_of(gpu.run(cfg, Deadline(2))) == ("healthy", "none")
    fake.gpus[0].remapped_rows = RemappedRows(0, 1, pending=True, failure=False)
    assert verdict_of(gpu.run(cfg, Deadline(2))) == ("unhealthy", "reset")
    fake.gpus[0].remapped_rows = RemappedRows(0, 1, pending=False, failure=True)
    assert verdict_of(gpu.run(cfg, Deadline(2))) == ("unhealthy", "inspect_hardware")


def test_nvlink_error_other_than_not_supported_is_an_nvml_error(fake: FakeNvml) -> None:
    """NOT_SUPPORTED on NVLink means no NVLink (not listed as missing); UNKNOWN fails."""
    fake.fail("device_get_nvlink_states", E.NOT_SUPPORTED)
    assert "NVLink" not in gpu.run(config(), Deadline(2)).detail
    fake.fail("device_get_nvlink_states", E.UNKNOWN, gpu=0)
    outcome = gpu.run(config(), Deadline(2))
    assert outcome.reason is R.GPU_NVML_ERROR and "GPU 0: NVLink state" in outcome.detail


# --- the pure functions -------------------------------------------------------------------


def test_every_rule_names_its_source() -> None:
    assert [rule.name for rule in rules.RULES] == [
        "lost",
        "recovery_action",
        "row_remap",
        "ecc_uncorrected",
        "critical_xid",
        "nvlink_inactive",
        "pcie",
        "clocks_throttled",
    ]
    assert all(rule.source for rule in rules.RULES)


@pytest.mark.parametrize(
    ("readings", "expected"),
    [
        (Readings(), (H, Action.NONE)),
        (Readings(lost=E.GPU_IS_LOST), (U, Action.REBOOT)),
        (Readings(critical_xids=(79,)), (U, Action.REBOOT)),
        (Readings(critical_xids=(64,)), (U, Action.RESET)),  # remap state unknown
        (
            Readings(critical_xids=(64,), remapped_rows=RemappedRows(0, 0, False, False)),
            (H, Action.NONE),
        ),
        (Readings(ecc_uncorrected_volatile=1), (U, Action.RESET)),
        (Readings(pcie_replays_per_minute=8.0), (H, Action.NONE)),
        (Readings(pcie_replays_per_minute=8.5), (D, Action.INSPECT_HARDWARE)),
        (Readings(nvlinks=()), (H, Action.NONE)),
        (
            Readings(throttle_reasons=nvml.THROTTLE_SW_THERMAL, pcie_link=PcieLink(4, 4, 8, 16)),
            (D, Action.INSPECT_HARDWARE),
        ),
    ],
)
def test_judge(readings: Readings, expected: tuple[Verdict, Action]) -> None:
    result = rules.judge(readings)
    assert (result.verdict, result.action) == expected


def test_fails_by_threshold() -> None:
    assert not rules.fails(H, D) and not rules.fails(D, U)
    assert rules.fails(D, D) and rules.fails(U, U) and rules.fails(U, D)
