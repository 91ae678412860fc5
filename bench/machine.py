"""What the numbers were measured on: CPU, cores, memory, Python, peer versions."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib import metadata


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _version(command: list[str], pattern: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "unknown"


def _package(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, str]:
    """Machine and software facts, as label -> value."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "CPU": _cpu_model(),
        "cores": f"{usable} usable of {os.cpu_count()}",
        "memory": f"{_memory_gib():.1f} GiB",
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "monai-slo": _package("monai-slo"),
        "pynetdicom": _package("pynetdicom"),
        "Orthanc": _version(["/usr/sbin/Orthanc", "--version"], r"Orthanc\s+([\w.]+)"),
        "DCMTK": _version(["storescp", "--version"], r"storescp v([\w.]+)"),
        "blackbox_exporter": _version(
            ["prometheus-blackbox-exporter", "--version"], r"version ([\w.]+)"
        ),
    }
