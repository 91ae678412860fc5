"""The GPU dashboard (``monai-slo-gpu.json``): the ``gpu`` kind's verdict and suggested action
per GPU, and its gauges: temperature and headroom to slowdown, throttling, power, memory,
utilisation, ECC and XID counts."""

from __future__ import annotations

from monai_slo.checks.gpu import NEAR_SLOWDOWN_CELSIUS
from monai_slo.checks.gpu.verdict import ACTIONS, VERDICTS
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.dashboards.kit import (
    GPU_UID,
    SEL,
    THROTTLING,
    UP_DOWN,
    Board,
    Query,
    bar_gauge,
    dashed_override,
    one_of,
    ranked,
    row_value,
    selector,
    stat_panel,
    state_timeline,
    table_panel,
    time_series,
    variables,
)


def gpu() -> Board:
    gpu_sel = selector('gpu=~"$gpu"')
    gpu_legend = "{{instance}} GPU {{gpu}}"
    board = Board(
        GPU_UID,
        "MONAI SLO / GPUs",
        "The gpu check's readings from NVML: inventory, verdict and suggested action, "
        "temperature and headroom to slowdown, clock throttling, power, memory, "
        "utilisation, ECC and XID counts.",
        variables(m.GPU_INFO, [("gpu", "GPU", m.GPU_INFO)]),
    )
    board.row("Inventory")
    board.add(
        stat_panel(
            "GPUs visible",
            "GPUs NVML reports on the selected hosts (the check fails below expected_count).",
            Query(f"sum({m.GPU_COUNT}{SEL})", instant=True),
            ((None, "green"),),
        ),
        4,
        6,
    )
    board.add(
        table_panel(
            "GPUs",
            "Model, driver and CUDA version of each watched GPU.",
            [Query(row_value(f"{m.GPU_INFO}{gpu_sel}"), table=True, column="Seen")],
        ),
        20,
        6,
    )
    board.add(
        state_timeline(
            "GPU check state",
            "Fails on a lost GPU, fewer GPUs than expected, critical XIDs, uncorrected "
            "ECC errors, row remapping, driver recovery actions (and, if configured, heat "
            "or throttling).",
            [
                Query(
                    m.CHECK_UP + selector('kind="gpu"'),
                    "{{instance}} {{service}} / {{check}}",
                )
            ],
            UP_DOWN,
        ),
        24,
        5,
    )

    board.row("Verdict")
    board.add(
        state_timeline(
            "GPU verdict",
            "Healthy, degraded or unhealthy per GPU, by the gpu check's rules (the rule "
            "that decided is in the check's detail); unhealthy fails the check, degraded "
            "only with fail_on: degraded.",
            [Query(one_of(m.GPU_HEALTH, gpu_sel, "verdict", VERDICTS), gpu_legend)],
            ranked(VERDICTS, ("green", "orange", "red")),
        ),
        12,
        7,
    )
    board.add(
        state_timeline(
            "Suggested action",
            "What fixes the GPU: nothing, a GPU reset, a node reboot, or inspecting the "
            "hardware (a reboot does not fix it).",
            [Query(one_of(m.GPU_SUGGESTED_ACTION, gpu_sel, "action", ACTIONS), gpu_legend)],
            ranked(ACTIONS, ("green", "yellow", "orange", "red")),
        ),
        12,
        7,
    )

    board.row("Thermal")
    board.add(
        time_series(
            "Temperature",
            "GPU temperature (solid) and the slowdown threshold where the GPU starts "
            "throttling its clocks (dashed).",
            [
                Query(f"{m.GPU_TEMPERATURE_CELSIUS}{gpu_sel}", gpu_legend),
                Query(f"{m.GPU_TEMPERATURE_SLOWDOWN_CELSIUS}{gpu_sel}", gpu_legend + " slowdown"),
            ],
            "celsius",
        ).with_override(*dashed_override(".* slowdown")),
        12,
        8,
    )
    board.add(
        bar_gauge(
            "Headroom to slowdown",
            f"Degrees below the slowdown threshold; under {NEAR_SLOWDOWN_CELSIUS} the check warns.",
            [
                Query(
                    f"{m.GPU_TEMPERATURE_SLOWDOWN_CELSIUS}{gpu_sel} - "
                    f"{m.GPU_TEMPERATURE_CELSIUS}{gpu_sel}",
                    gpu_legend,
                    instant=True,
                )
            ],
            "celsius",
            ((None, "red"), (NEAR_SLOWDOWN_CELSIUS, "orange"), (15, "green")),
            minimum=0,
        ),
        12,
        8,
    )
    board.add(
        state_timeline(
            "Clock throttling",
            "Throttle reasons active per GPU. sw_power_cap is normal under full load; "
            "hw_slowdown, hw_thermal, hw_power_brake and sw_thermal are not.",
            [Query(f"{m.GPU_THROTTLE_ACTIVE}{gpu_sel}", gpu_legend + " {{reason}}")],
            THROTTLING,
        ),
        24,
        8,
    )

    board.row("Load")
    board.add(
        time_series(
            "Power",
            "Power draw.",
            [Query(f"{m.GPU_POWER_WATTS}{gpu_sel}", gpu_legend)],
            "watt",
        ),
        8,
        8,
    )
    board.add(
        time_series(
            "Memory used",
            "Framebuffer memory used (solid) and installed (dashed).",
            [
                Query(f"{m.GPU_MEMORY_USED_BYTES}{gpu_sel}", gpu_legend),
                Query(f"{m.GPU_MEMORY_TOTAL_BYTES}{gpu_sel}", gpu_legend + " total"),
            ],
            "bytes",
        ).with_override(*dashed_override(".* total")),
        8,
        8,
    )
    board.add(
        time_series(
            "Utilisation",
            "Share of time a kernel was running on the GPU.",
            [Query(f"{m.GPU_UTILIZATION_RATIO}{gpu_sel}", gpu_legend)],
            "percentunit",
        ).max(1),
        8,
        8,
    )

    board.row("Errors")
    board.add(
        time_series(
            "Uncorrected ECC errors (volatile)",
            "Uncorrected volatile ECC errors since the last driver reload; any fails the check.",
            [Query(f"{m.GPU_ECC_UNCORRECTED_VOLATILE_ERRORS}{gpu_sel}", gpu_legend)],
            "short",
        ),
        12,
        7,
    )
    board.add(
        time_series(
            "XID events since daemon start",
            "XID events NVML reported; critical ones fail the check, application XIDs "
            "(13, 31, 43 ...) are a CUDA program's fault.",
            [Query(f"{m.GPU_XID_EVENTS_SINCE_START}{gpu_sel}", gpu_legend)],
            "short",
        ),
        12,
        7,
    )
    return board
