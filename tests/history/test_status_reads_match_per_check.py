"""`status` reads the history once for all checks: run counts in one GROUP BY query and
segments built straight from the rows. Both equal the per-check answers they replaced: the
counts of the results recorded (flushed and still buffered, before and after an hour
boundary), the segments a per-check read gives (file and memory, a segment that grew after it
was written), and the whole `status` report evaluated check by check."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

from monai_slo.checks.base import CheckResult, FailureReason
from monai_slo.config.model import load_config
from monai_slo.history.evaluation import evaluate, evaluate_service
from monai_slo.history.store import HistoryStore

_HOUR = 3600.0
_START = 1_000 * _HOUR


def _result(at: float, ok: bool) -> CheckResult:
    return CheckResult(ok, 0.01, None if ok else FailureReason.REFUSED, "" if ok else "no", at)


def _history(
    path: Path,
) -> tuple[HistoryStore, dict[tuple[str, str, str], list[tuple[float, bool]]]]:
    """Five checks over three hours at 60 s, some failing; flushed part way, the rest buffered."""
    rng = random.Random(7)
    store = HistoryStore(path, clock=lambda: _START + 3 * _HOUR)
    recorded: dict[tuple[str, str, str], list[tuple[float, bool]]] = {}
    for minute in range(180):
        for index in range(5):
            key = ("prod", f"svc{index // 3}", f"c{index}")
            if index == 4 and minute < 90:
                continue  # a check added later
            at = _START + minute * 60 + index
            ok = rng.random() > 0.2
            store.record(key, "tcp", _result(at, ok), staleness=150)
            recorded.setdefault(key, []).append((at, ok))
        if minute == 100:
            assert store.flush()
    return store, recorded


def test_run_counts_many_equals_what_was_recorded(tmp_path: Path) -> None:
    store, recorded = _history(tmp_path / "h.sqlite")
    try:
        ids = {key: store.check_id(key) for key in recorded}
        for since in (_START, _START + 1800, _START + _HOUR, _START + 2.5 * _HOUR, _START + 9e9):
            hour = int(since // _HOUR) * _HOUR
            many = store.run_counts_many([*ids.values(), 999], since)
            assert many[999] == (0, 0)  # never recorded
            for key, check_id in ids.items():
                runs = [ok for at, ok in recorded[key] if at >= hour]
                expected = (len(runs), runs.count(False))
                assert many[check_id] == expected == store.run_counts(check_id, since)
    finally:
        store.close()


def test_segments_read_together_equal_each_read_alone(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    store, recorded = _history(path)
    try:
        ids = [store.check_id(key) for key in recorded]
        now = _START + 3 * _HOUR
        for since in (0.0, _START + 1000, now - 600):
            together = store.segments(ids, since, now)
            for check_id in ids:
                assert together[check_id] == store.segments([check_id], since, now)[check_id]
            assert all(
                a.end <= b.start
                for segments in together.values()
                for a, b in itertools.pairwise(segments)
            )
        assert store.flush()
    finally:
        store.close()
    reader = HistoryStore(path, read_only=True)
    try:
        # The file alone (a `status` process) gives what the daemon's memory and file gave.
        ids = [reader.known_id(key) for key in recorded]
        assert all(i is not None for i in ids)
        from_file = reader.segments([i for i in ids if i is not None], 0.0, now)
        assert sum(len(s) for s in from_file.values()) > 20
    finally:
        reader.close()


def test_status_report_equals_the_per_check_evaluation(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    store, _ = _history(path)
    assert store.flush()
    store.close()
    config_path = tmp_path / "c.yaml"
    checks = "\n".join(
        f"          - {{name: c{i}, kind: tcp, host: 127.0.0.1, port: 9}}" for i in range(3)
    )
    config_path.write_text(
        f"storage: {path}\nenvironments:\n  - name: prod\n    tier: production\n    window: 1d\n"
        f"    services:\n      - name: svc0\n        checks:\n{checks}\n"
        "      - name: svc1\n        checks:\n"
        "          - {name: c3, kind: tcp, host: 127.0.0.1, port: 9}\n"
        "          - {name: c4, kind: tcp, host: 127.0.0.1, port: 9}\n"
        "          - {name: c9, kind: tcp, host: 127.0.0.1, port: 9}\n"
    )
    config = load_config(config_path)
    reader = HistoryStore(path, read_only=True)
    try:
        now = _START + 3 * _HOUR
        together = evaluate(config, reader, now)
        alone = [evaluate_service(service, reader, now) for service in config.services()]
        assert together == alone
        runs = {c.ref.config.name: c.runs for report in together for c in report.checks}
        assert runs["c9"] == 0 and runs["c0"] == 180 and runs["c4"] == 90
    finally:
        reader.close()
