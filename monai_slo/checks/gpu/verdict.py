"""One GPU's verdict (healthy / degraded / unhealthy) and the action that would fix it.

Pure: :func:`judge` takes one GPU's readings (:class:`Readings`, filled by the ``gpu`` kind
from NVML; ``None`` = not readable here) and applies :data:`RULES` in order. Each rule is
data (name, source) plus a function of the readings that returns its findings; the worst
finding decides the verdict, and among the findings of that verdict the most drastic action
is suggested. Nothing here talks to NVML, so every rule is tested with plain readings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from monai_slo.checks import nvml
from monai_slo.checks.nvml import NvmlErrorCode, PcieLink, RemappedRows


class Verdict(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class Action(StrEnum):
    NONE = "none"
    RESET = "reset"
    REBOOT = "reboot"
    INSPECT_HARDWARE = "inspect_hardware"


VERDICTS = tuple(Verdict)
ACTIONS = tuple(Action)
_VERDICT_RANK = {v: i for i, v in enumerate(VERDICTS)}
# Most drastic last: a GPU that needs new hardware is not fixed by a reboot.
_ACTION_RANK = {a: i for i, a in enumerate(ACTIONS)}

XID_FALLEN_OFF_BUS = 79
XID_ROW_REMAP_EVENT = 63  # row remapping / page retirement recorded
XID_ROW_REMAP_FAILURE = 64  # row remapper / page retirement recording failure
# XIDs whose fix NVIDIA's XID catalog gives as a node reboot; the other critical XIDs ask
# for a GPU reset.
REBOOT_XIDS = frozenset({XID_FALLEN_OFF_BUS})
# nvmlGpuRecoveryAction_t values that need the whole node rebooted.
REBOOT_RECOVERY_ACTIONS = frozenset({2, 7})  # node_reboot, system_reboot
# DCGM_LIMIT_MAX_PCIREPLAY_RATE: "8 replays per minute is the maximum recommended by RM".
PCIE_REPLAYS_PER_MINUTE = 8.0
# Below this utilisation a GPU may train its link down to save power: not a fault.
PCIE_BUSY_PERCENT = 50

ABNORMAL_THROTTLE = {
    "hw_slowdown": nvml.THROTTLE_HW_SLOWDOWN,
    "hw_thermal": nvml.THROTTLE_HW_THERMAL,
    "hw_power_brake": nvml.THROTTLE_HW_POWER_BRAKE,
    "sw_thermal": nvml.THROTTLE_SW_THERMAL,
}


@dataclass(frozen=True, slots=True)
class Readings:
    """What the rules look at for one GPU; ``None`` where NVML could not tell."""

    lost: int | None = None  # the NVML code that said so: GPU_IS_LOST or RESET_REQUIRED
    recovery_action: int | None = None  # nvmlGpuRecoveryAction_t
    remapped_rows: RemappedRows | None = None
    ecc_uncorrected_volatile: int | None = None
    critical_xids: tuple[int, ...] = ()  # critical XIDs on this GPU within the window
    nvlinks: tuple[bool, ...] | None = None  # active per link; None = no NVLink here
    pcie_link: PcieLink | None = None
    pcie_replays_per_minute: float | None = None  # None until two samples exist
    utilization_percent: int | None = None
    throttle_reasons: int | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    verdict: Verdict
    action: Action
    detail: str


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    source: str
    check: Callable[[Readings], list[Finding]]


@dataclass(frozen=True, slots=True)
class GpuVerdict:
    verdict: Verdict
    action: Action
    findings: tuple[Finding, ...]

    @property
    def deciding(self) -> tuple[Finding, ...]:
        """The findings that produced the verdict (none for a healthy GPU)."""
        return tuple(f for f in self.findings if f.verdict == self.verdict)


def _lost(r: Readings) -> list[Finding]:
    found: list[Finding] = []
    if r.lost == NvmlErrorCode.RESET_REQUIRED:
        found.append(Finding("lost", Verdict.UNHEALTHY, Action.RESET, "reset required"))
    elif r.lost is not None:
        found.append(Finding("lost", Verdict.UNHEALTHY, Action.REBOOT, "lost (fell off the bus)"))
    if XID_FALLEN_OFF_BUS in r.critical_xids and r.lost is None:
        found.append(Finding("lost", Verdict.UNHEALTHY, Action.REBOOT, "XID 79: fell off the bus"))
    return found


def _recovery(r: Readings) -> list[Finding]:
    if not r.recovery_action:
        return []
    words = nvml.RECOVERY_ACTIONS.get(r.recovery_action, f"action {r.recovery_action}")
    action = Action.REBOOT if r.recovery_action in REBOOT_RECOVERY_ACTIONS else Action.RESET
    return [Finding("recovery_action", Verdict.UNHEALTHY, action, f"driver requests {words}")]


def _row_remap(r: Readings) -> list[Finding]:
    rows = r.remapped_rows
    if rows is None:
        return []
    if rows.failure:
        return [
            Finding(
                "row_remap_failure",
                Verdict.UNHEALTHY,
                Action.INSPECT_HARDWARE,
                "row remapping failed (no spare rows left)",
            )
        ]
    if rows.pending:
        return [
            Finding(
                "row_remap_pending",
                Verdict.UNHEALTHY,
                Action.RESET,
                "row remap pending (a GPU reset applies it)",
            )
        ]
    return []


def _ecc_contained(rows: RemappedRows | None) -> bool:
    """The driver remapped (or will remap at the next reset) the rows that failed."""
    return rows is not None and not rows.failure and (rows.uncorrectable > 0 or rows.pending)


def _ecc(r: Readings) -> list[Finding]:
    if not r.ecc_uncorrected_volatile or _ecc_contained(r.remapped_rows):
        return []
    return [
        Finding(
            "ecc_uncorrected",
            Verdict.UNHEALTHY,
            Action.RESET,
            f"{r.ecc_uncorrected_volatile} uncorrected ECC error(s) not contained by row remapping",
        )
    ]


def _xids(r: Readings) -> list[Finding]:
    found: list[Finding] = []
    remap_known = r.remapped_rows is not None
    for xid in sorted(set(r.critical_xids)):
        if xid == XID_FALLEN_OFF_BUS:
            continue  # the lost rule
        if xid in (XID_ROW_REMAP_EVENT, XID_ROW_REMAP_FAILURE) and remap_known:
            continue  # read through the remap state: the row remap rules decide
        action = Action.REBOOT if xid in REBOOT_XIDS else Action.RESET
        found.append(Finding("critical_xid", Verdict.UNHEALTHY, action, f"critical XID {xid}"))
    return found


def _nvlink(r: Readings) -> list[Finding]:
    if not r.nvlinks or any(r.nvlinks):
        return []
    return [
        Finding(
            "nvlink_inactive",
            Verdict.UNHEALTHY,
            Action.RESET,
            f"all {len(r.nvlinks)} NVLink(s) inactive",
        )
    ]


def _pcie(r: Readings) -> list[Finding]:
    found: list[Finding] = []
    rate = r.pcie_replays_per_minute
    if rate is not None and rate > PCIE_REPLAYS_PER_MINUTE:
        found.append(
            Finding(
                "pcie_replays",
                Verdict.DEGRADED,
                Action.INSPECT_HARDWARE,
                f"{rate:.1f} PCIe replays/min (> {PCIE_REPLAYS_PER_MINUTE:g})",
            )
        )
    link = r.pcie_link
    if link is None:
        return found
    if link.width < link.max_width:
        found.append(
            Finding(
                "pcie_link_width",
                Verdict.DEGRADED,
                Action.INSPECT_HARDWARE,
                f"PCIe link x{link.width} of x{link.max_width}",
            )
        )
    busy = r.utilization_percent is not None and r.utilization_percent >= PCIE_BUSY_PERCENT
    if busy and link.generation < link.max_generation:
        found.append(
            Finding(
                "pcie_link_speed",
                Verdict.DEGRADED,
                Action.INSPECT_HARDWARE,
                f"PCIe gen {link.generation} of {link.max_generation} while busy",
            )
        )
    return found


def _throttle(r: Readings) -> list[Finding]:
    if r.throttle_reasons is None:
        return []
    active = [name for name, bit in ABNORMAL_THROTTLE.items() if r.throttle_reasons & bit]
    if not active:
        return []
    return [
        Finding(
            "clocks_throttled",
            Verdict.DEGRADED,
            Action.NONE,
            f"clocks throttled ({', '.join(active)})",
        )
    ]


GPUD = "gpud"
RULES: tuple[Rule, ...] = (
    Rule(
        "lost",
        "NVML_ERROR_GPU_IS_LOST / RESET_REQUIRED; XID 79 (NVIDIA XID catalog); DCGM health; gpud",
        _lost,
    ),
    Rule(
        "recovery_action",
        "NVML_FI_DEV_GET_GPU_RECOVERY_ACTION (NVML API reference); gpud",
        _recovery,
    ),
    Rule(
        "row_remap",
        "nvmlDeviceGetRemappedRows (NVIDIA A100+ memory error management); gpud: inspect hardware",
        _row_remap,
    ),
    Rule(
        "ecc_uncorrected",
        "nvmlDeviceGetTotalEccErrors; DCGM health (memory); gpud: "
        "contained by remapping is not unhealthy",
        _ecc,
    ),
    Rule(
        "critical_xid",
        "DCGM / device plugin / gpud critical XID set; NVIDIA XID catalog "
        "(resolution); gpud: XID 63/64 via remap state",
        _xids,
    ),
    Rule("nvlink_inactive", "nvmlDeviceGetNvLinkState; gpud: all links inactive", _nvlink),
    Rule(
        "pcie",
        "nvmlDeviceGetPcieReplayCounter / PCIe link gen & width; DCGM "
        "DCGM_LIMIT_MAX_PCIREPLAY_RATE (8/min)",
        _pcie,
    ),
    Rule(
        "clocks_throttled",
        "nvmlDeviceGetCurrentClocksEventReasons; DCGM health (thermal / power)",
        _throttle,
    ),
)


def judge(readings: Readings) -> GpuVerdict:
    """Every rule on one GPU's readings: the worst verdict and the action that fixes it."""
    findings = tuple(f for rule in RULES for f in rule.check(readings))
    if not findings:
        return GpuVerdict(Verdict.HEALTHY, Action.NONE, ())
    verdict = max((f.verdict for f in findings), key=_VERDICT_RANK.__getitem__)
    action = max((f.action for f in findings if f.verdict == verdict), key=_ACTION_RANK.__getitem__)
    return GpuVerdict(verdict, action, findings)


def fails(verdict: Verdict, fail_on: Verdict) -> bool:
    """Whether a GPU with ``verdict`` fails a check configured with ``fail_on``."""
    return verdict != Verdict.HEALTHY and _VERDICT_RANK[verdict] >= _VERDICT_RANK[fail_on]
