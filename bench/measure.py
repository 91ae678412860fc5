"""Process accounting from /proc and the few statistics the tables need."""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        text = stat.read().decode()
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def process_rss(pid: int) -> int:
    """Resident set size in bytes, from /proc/<pid>/statm."""
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * _PAGE


def children_cpu() -> float:
    """CPU seconds of waited-for children (echoscu runs), user + system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile (p99 of 100 values is the 99th smallest); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return quantile(values, 0.5)


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall latency (median, p99) and CPU per operation, all in seconds."""

    runs: int
    median: float
    p99: float
    cpu: float


class Pacer:
    """Calls at a fixed rate without drifting: waits until the next slot, never bursts."""

    def __init__(self, rate: float) -> None:
        self.period = 1.0 / rate
        self.next = time.monotonic()

    def wait(self) -> None:
        self.next += self.period
        delay = self.next - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # pacing the load, not synchronising with anything
        else:
            self.next = time.monotonic()
