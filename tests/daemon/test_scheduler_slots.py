"""The scheduler fires each check once per interval at its own fixed phase, from one job per
phase slot rather than one job per check."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from monai_slo.config.model import CheckRef, load_config
from monai_slo.daemon.scheduler import SLOT, CheckScheduler, start_offset

pytestmark = pytest.mark.timeout(30)
CHECKS = 300


def _refs(tmp_path: Path) -> list[CheckRef]:
    checks = "".join(
        f"          - {{name: c{i}, kind: tcp, host: 127.0.0.1, port: 9, interval: 1s, "
        f"timeout: 0.5s}}\n"
        for i in range(CHECKS)
    )
    path = tmp_path / "c.yaml"
    path.write_text(
        "environments:\n  - name: e\n    tier: production\n    services:\n      - name: s\n"
        "        checks:\n" + checks
    )
    return list(load_config(path).checks())


@pytest.mark.slow
def test_every_check_fires_at_its_phase_from_a_job_per_slot(tmp_path: Path) -> None:
    refs = _refs(tmp_path)
    fired: dict[str, list[tuple[float, float]]] = {}
    lock = threading.Lock()

    def fire(ref: CheckRef, due: float) -> None:
        with lock:
            fired.setdefault(ref.label, []).append((due, time.time()))

    scheduler = CheckScheduler(fire)
    scheduled = time.time()
    scheduler.schedule(refs)
    scheduler.start()
    try:
        assert scheduler.check_jobs() <= round(1.0 / SLOT) < CHECKS
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                if len(fired) == CHECKS and all(len(f) >= 2 for f in fired.values()):
                    break
            time.sleep(0.05)  # polling for the runs
    finally:
        scheduler.shutdown()
    assert len(fired) == CHECKS
    for ref in refs:
        (first_due, first_at), (second_due, _) = fired[ref.label][:2]
        assert second_due - first_due == pytest.approx(1.0)
        # Due at the schedule time plus the check's own phase (plus whole intervals: a
        # phase that passed before the scheduler started waits one), never fired early.
        phase = (first_due - scheduled - start_offset(ref)) % 1.0
        assert min(phase, 1.0 - phase) < 0.05
        assert first_at >= first_due - 0.02
    assert {round(start_offset(ref) / SLOT, 6) % 1 for ref in refs} == {0.0}
