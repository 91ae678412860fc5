"""Incidents on the status page, as real headless Chromium renders it from a real daemon: the
current incident on its service's card and in the list, a past one from the last 90 days in
the list, an older one left out, and operators' text with markup shown as text (a script or
an event handler in it never runs)."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from monai_slo.config.model import load_config
from monai_slo.daemon.daemon import Daemon
from monai_slo.history.store import HistoryStore
from tests.fixtures_browser import Chromium
from tests.fixtures_http import HttpPeer

DAY = 86400.0
SCRIPT = "<script>document.body.dataset.pwned = 'script'</script>"
HANDLER = "<img src=x onerror=\"document.body.dataset.pwned = 'img'\">"


class _Incidents(HTMLParser):
    """Text inside each element with ``data-incident`` / ``data-current-incident``, the tags
    seen, and the body's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.tags: list[str] = []
        self.body: dict[str, str | None] = {}
        self._open: list[tuple[str, str, int]] = []  # (key, tag, depth)
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "body":
            self.body = found
        if tag in {"br", "img", "meta", "link"}:
            return  # void elements: no end tag
        self._depth += 1
        for name in ("data-incident", "data-current-incident"):
            if found.get(name):
                key = f"{name}={found[name]}"
                self.text.setdefault(key, "")
                self._open.append((key, tag, self._depth))

    def handle_endtag(self, tag: str) -> None:
        if tag in {"br", "img", "meta", "link"}:
            return
        self._open = [o for o in self._open if o[2] != self._depth]
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        for key, _, _ in self._open:
            self.text[key] += data


def _incidents(storage: Path, now: float) -> dict[str, int]:
    store = HistoryStore(storage)
    try:
        old = store.open_incident(
            "radiology", "pacs", "tape robot jammed", author="carol", now=now - 120 * DAY
        )
        store.note_incident(old, "fixed", author="carol", now=now - 119 * DAY, resolve=True)
        past = store.open_incident(
            "radiology", "pacs", f"archive slow {SCRIPT}", author="<b>eve</b>", now=now - 30 * DAY
        )
        store.note_incident(past, "index rebuilt", author="dave", now=now - 29 * DAY, resolve=True)
        current = store.open_incident(
            "radiology", "pacs", "PACS unreachable from the router", author="alice", now=now - 600
        )
        store.note_incident(current, f"vendor called {HANDLER}", author="bob", now=now - 60)
    finally:
        store.close()
    return {"old": old, "past": past, "current": current}


@pytest.mark.slow
def test_current_and_past_incidents_in_chromium(tmp_path: Path, chromium: Chromium) -> None:
    with HttpPeer() as web:
        path = tmp_path / "c.yaml"
        path.write_text(
            "listen: 127.0.0.1:0\nstorage: history.sqlite\n"
            "environments:\n  - name: radiology\n    tier: production\n    services:\n"
            f"      - name: pacs\n        checks: [{{name: web, kind: http, url: '{web.url}/'}}]\n"
        )
        config = load_config(path)
        ids = _incidents(config.storage, time.time())
        daemon = Daemon(config)
        daemon.start()
        try:
            dom = chromium.dump_dom(f"http://127.0.0.1:{daemon.server.port}/")
        finally:
            daemon.stop()
    page = _Incidents()
    page.feed(dom)
    assert "pwned" not in str(page.body), "text from an incident ran in the browser"
    assert "script" not in page.tags[page.tags.index("body") :]
    assert "img" not in page.tags

    card = page.text[f"data-current-incident={ids['current']}"]
    assert f"Incident #{ids['current']}" in card and "by alice" in card
    assert f"vendor called {HANDLER}" in card  # the latest note, as text

    current = page.text[f"data-incident={ids['current']}"]
    assert "open" in current
    assert (
        "PACS unreachable from the router" in current
        and f"by bob: vendor called {HANDLER}" in current
    )

    past = page.text[f"data-incident={ids['past']}"]
    assert "resolved" in past
    assert f"by <b>eve</b>: archive slow {SCRIPT}" in past
    assert "resolved by dave: index rebuilt" in past

    assert f"data-incident={ids['old']}" not in page.text  # resolved 119 days ago
    assert "tape robot" not in dom
