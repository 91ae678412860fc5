"""Start lateness of check runs against their schedule: a histogram the runner fills and
the collector exposes as ``monai_slo_scheduler_start_lateness_seconds``."""

from __future__ import annotations

import bisect
import itertools
import threading

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Lateness:
    """How late check runs start against their schedule: a histogram, cheap to update."""

    def __init__(self, buckets: tuple[float, ...] = LATENESS_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last slot is +Inf
        self.total = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
            self.total += seconds

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative (le, count) pairs and the sum, as Prometheus histograms want them."""
        with self._lock:
            cumulative = list(itertools.accumulate(self.counts))
            total = self.total
        bounds = [*(f"{bound:g}" for bound in self.buckets), "+Inf"]
        return list(zip(bounds, map(float, cumulative), strict=True)), total
