"""Years of history: 5 years x 1,000 checks of daily rollups; size on disk, a 2022 report.

The rollups are written through :meth:`HistoryStore.save_rollups` (the daemon's path), one row
per check and per service (200 services of five checks) per UTC day from 2021-12-01 to
2026-11-30 (1,826 days). The pattern, seeded: a check has an outage on about one day in ten
(1-3 of them, 30 s to 20 minutes down, one or two failure reasons); a service's day carries
what its checks' days do. Then ``build_report`` for June 2022 (every day from the rollups)
is timed over the whole config, as ``monai-slo report`` runs it. Last, one roll-up pass (the
daemon's, a week of days) is timed over bench/history.py's 30 days x 1,000 checks.
"""

from __future__ import annotations

import random
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from monai_slo.config.model import load_config
from monai_slo.history.rollup import DAYS_PER_PASS, roll_up
from monai_slo.history.store import DAY, DayRollup, HistoryStore
from monai_slo.outputs.report import build_report, parse_period

from bench import history
from bench.measure import median
from bench.report import Baseline, Row

CHECKS = 1000
CHECKS_PER_SERVICE = 5
REASONS = ("timeout", "refused", "http_status", "tls", "aborted")
QUERY_TARGET = 1.0
FIRST = int(datetime(2021, 12, 1, tzinfo=UTC).timestamp() // DAY)
END = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() // DAY)


def _key(index: int) -> tuple[str, str, str]:
    return ("bench", f"service-{index // CHECKS_PER_SERVICE:03d}", f"check-{index:04d}")


def _check_day(rng: random.Random, day: int) -> DayRollup:
    if rng.random() >= 0.1:
        return DayRollup(day, DAY, 0.0, 0.0, 0.0, 0.0, 0, {})
    outages = rng.randint(1, 3)
    down = round(sum(rng.uniform(30, 1200) for _ in range(outages)), 3)
    reasons = {rng.choice(REASONS): outages}
    return DayRollup(day, DAY - down, down, 0.0, 0.0, 0.0, outages, reasons)


def write_archive(storage: Path, checks: int = CHECKS, seed: int = 1) -> None:
    rng = random.Random(seed)
    store = HistoryStore(storage)
    try:
        ids = [store.check_id(_key(i), "tcp") for i in range(checks)]
        store.flush()
        for day in range(FIRST, END):
            rows = [(check_id, _check_day(rng, day)) for check_id in ids]
            services = []
            for first in range(0, checks, CHECKS_PER_SERVICE):
                group = [row for _, row in rows[first : first + CHECKS_PER_SERVICE]]
                down = min(DAY, sum(r.down for r in group))
                reasons: dict[str, int] = {}
                for r in group:
                    for reason, count in r.reasons.items():
                        reasons[reason] = reasons.get(reason, 0) + count
                outages = sum(r.outages for r in group)
                service = DayRollup(day, DAY - down, down, 0.0, 0.0, 0.0, outages, reasons)
                services.append((_key(first)[0], _key(first)[1], service))
            store.save_rollups(rows, services, day + 1)
    finally:
        store.close()
    db = sqlite3.connect(storage)
    try:
        db.execute("VACUUM")
    finally:
        db.close()


def write_config(path: Path, storage: Path, checks: int = CHECKS) -> None:
    lines = [
        f"storage: {storage}",
        "environments:",
        "  - name: bench\n    tier: production\n    objective: 99.9\n    services:",
    ]
    for index in range(checks):
        _, service, check = _key(index)
        if index % CHECKS_PER_SERVICE == 0:
            lines.append(f"      - name: {service}\n        checks:")
        lines.append(f"          - {{name: {check}, kind: tcp, host: 127.0.0.1, port: 104}}")
    path.write_text("\n".join(lines) + "\n")


def roll_up_pass() -> float:
    """Seconds of one daemon pass rolling up a week of 1,000 checks' segments."""
    pattern = history.Pattern()
    with tempfile.TemporaryDirectory() as tmp:
        storage, config_path = Path(tmp) / "history.sqlite", Path(tmp) / "config.yaml"
        now = time.time()
        history.write(storage, pattern, history.generate(pattern, now))
        history.write_config(config_path, pattern, storage, "127.0.0.1:0", 9)
        config = load_config(config_path)
        # Retention short enough that more than a pass of days has aged out.
        store = HistoryStore(storage, retention=(pattern.days - DAYS_PER_PASS - 2) * DAY)
        try:
            started = time.perf_counter()
            rolled = roll_up(config, store, now)
            wall = time.perf_counter() - started
        finally:
            store.close()
        assert rolled == DAYS_PER_PASS
        return wall


def run(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        storage = Path(tmp) / "history.sqlite"
        write_archive(storage)
        size = storage.stat().st_size
        config_path = Path(tmp) / "config.yaml"
        write_config(config_path, storage)
        config = load_config(config_path)
        period = parse_period("2022-06")
        now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
        walls = []
        for _ in range(3 if quick else 7):
            store = HistoryStore(storage, read_only=True)
            try:
                started = time.perf_counter()
                report = build_report(config, store, period, now)
                walls.append(time.perf_counter() - started)
            finally:
                store.close()
        assert report.archived_until is not None
        wall = median(walls)
    pass_wall = roll_up_pass()
    return [
        Row("archive", "daily rollups, 5 y x 1,000 checks, on disk", size / 1e6, "MB"),
        Row("archive", f"roll-up pass: {DAYS_PER_PASS} days x 1,000 checks", pass_wall * 1e3,
            "ms"),
        Row("archive", "report for June 2022 from them (200 services)", wall * 1e3, "ms",
            [Baseline("target", QUERY_TARGET * 1e3)], "< 1 s", wall < QUERY_TARGET),
    ]  # fmt: skip
