"""The real host probe's GPU count is this machine's, not merely a number: it equals the GPU
device nodes the NVIDIA driver made (/dev/nvidia0, /dev/nvidia1, ...), 0 with the reason
where there is no driver."""

from __future__ import annotations

import re
from pathlib import Path

from monai_slo.checks.hostinfo import HostProbe

DEVICE = re.compile(r"nvidia[0-9]+")


def test_gpu_count_is_the_drivers_device_nodes() -> None:
    """HostProbe().gpus() counts what NVML sees; the driver makes one /dev/nvidiaN per GPU, so
    the two agree. Without a driver the count is 0 and says why (no library, no driver)."""
    nodes = [p for p in Path("/dev").glob("nvidia*") if DEVICE.fullmatch(p.name)]
    gpus = HostProbe().gpus()
    assert gpus.count == len(nodes), (gpus, sorted(p.name for p in nodes))
    if not nodes:
        assert gpus.error and gpus.error.startswith("NVML "), gpus
        assert gpus.cuda_version is None and gpus.driver_version is None, gpus
    else:
        assert gpus.error is None and gpus.driver_version, gpus
