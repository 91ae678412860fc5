"""Each stored maintenance window says which path started it (the CLI or the daemon's API),
and a file from before that column reads its windows as the CLI's and gains the column in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from monai_slo.history.store import HistoryStore

NOW = 1_800_000_000.0


def _windows(storage: Path, *, read_only: bool) -> list[tuple[str, str]]:
    store = HistoryStore(storage, read_only=read_only)
    try:
        return [(row.reason, row.via) for row in store.maintenance(0)]
    finally:
        store.close()


def test_the_path_that_started_a_window_is_kept(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    store = HistoryStore(storage)
    try:
        store.add_maintenance("prod", "pacs", NOW, NOW + 60, reason="by hand", now=NOW)
        store.add_maintenance("prod", "pacs", NOW, NOW + 60, reason="by api", now=NOW, via="api")
    finally:
        store.close()
    assert _windows(storage, read_only=True) == [("by hand", "cli"), ("by api", "api")]


def test_a_file_without_the_column_reads_as_cli_and_is_migrated(tmp_path: Path) -> None:
    storage = tmp_path / "history.sqlite"
    store = HistoryStore(storage)
    try:
        store.add_maintenance("prod", "pacs", NOW, NOW + 60, reason="older", now=NOW)
    finally:
        store.close()
    db = sqlite3.connect(storage)
    db.execute("ALTER TABLE maintenance DROP COLUMN via")
    db.commit()
    db.close()
    assert _windows(storage, read_only=True) == [("older", "cli")]  # a reader changes nothing
    db = sqlite3.connect(storage)
    assert "via" not in {row[1] for row in db.execute("PRAGMA table_info(maintenance)")}
    db.close()
    assert _windows(storage, read_only=False) == [("older", "cli")]
    db = sqlite3.connect(storage)
    assert "via" in {row[1] for row in db.execute("PRAGMA table_info(maintenance)")}
    db.close()
