"""Real headless Chromium (Debian ``chromium``) for tests of what a page renders.

``chromium`` (session fixture) runs one browser per call, each with a fresh profile, in its own
process group that is killed afterwards, so nothing outlives the call::

    chromium.screenshot("file:///.../report.html", tmp_path / "shot.png")
    dom = chromium.dump_dom("http://127.0.0.1:9790/")

Helpers read the results: :func:`png_colours` (Pillow), :func:`figures` (``data-figure``
texts per ``data-service``), :func:`day_classes` (the day bars' ``data-class`` per service)
and :func:`external_references` (anything a page would fetch from elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.fixtures_env import missing_peer

__all__ = [
    "Chromium",
    "chromium",
    "day_classes",
    "external_references",
    "figures",
    "png_colours",
]

FLAGS = [
    "--headless",
    "--no-sandbox",  # tests run as root, where the sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--no-proxy-server",  # loopback pages only, whatever proxy the environment names
]
RUN_TIMEOUT = 60.0


class Chromium:
    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir

    def _run(self, args: list[str]) -> str:
        profile = tempfile.mkdtemp(prefix="profile-", dir=self.workdir)
        process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={profile}", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: renderers and zygotes go with it
        )
        try:
            out, err = process.communicate(timeout=RUN_TIMEOUT)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # helpers still exiting
            if process.poll() is None:
                process.wait()
            shutil.rmtree(profile, ignore_errors=True)
        if process.returncode != 0:
            raise AssertionError(f"chromium exited {process.returncode}: {err[-2000:]}")
        return out

    def screenshot(self, url: str, path: Path, size: tuple[int, int] = (1280, 1600)) -> Path:
        self._run([f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", url])
        assert path.is_file() and path.stat().st_size > 0, f"no screenshot of {url}"
        return path

    def dump_dom(self, url: str) -> str:
        """The DOM after load, serialised: what the browser parsed, not the bytes sent."""
        dom = self._run(["--dump-dom", url])
        assert "<body" in dom, f"no DOM for {url}: {dom[:200]!r}"
        return dom


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Chromium:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        missing_peer("chromium is not installed (scripts/install-test-deps.sh installs it)")
    return Chromium(executable, tmp_path_factory.mktemp("chromium"))


def png_colours(path: Path) -> Counter[tuple[int, int, int]]:
    """Pixel count per RGB colour."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=rgb.width * rgb.height) or []
    return Counter({colour: count for count, colour in colours})


def hex_rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class _Figures(HTMLParser):
    """Collects text of ``data-figure`` elements and ``data-class`` of day bars, by the
    ``data-service`` of the nearest enclosing element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None, str | None]] = []  # tag, service, figure
        self.figures: dict[str, dict[str, str]] = {}
        self.days: dict[str, list[tuple[str, str]]] = {}
        self._text: dict[int, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        service = found.get("data-service") or (self.stack[-1][1] if self.stack else None)
        figure = found.get("data-figure")
        if service and found.get("data-day") and found.get("data-class"):
            self.days.setdefault(service, []).append(
                (str(found["data-day"]), str(found["data-class"]))
            )
        if tag in _VOID:
            return
        self.stack.append((tag, service, figure))
        if figure:
            self._text[len(self.stack)] = []

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            depth = len(self.stack)
            open_tag, service, figure = self.stack.pop()
            if figure and depth in self._text:
                text = " ".join("".join(self._text.pop(depth)).split())
                self.figures.setdefault(service or "", {})[figure] = text
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for parts in self._text.values():
            parts.append(data)


def figures(dom: str) -> dict[str, dict[str, str]]:
    """``{"env/service": {"availability": "99.907%", ...}}`` from a rendered DOM."""
    parser = _Figures()
    parser.feed(dom)
    return parser.figures


def day_classes(dom: str) -> dict[str, dict[str, str]]:
    """``{"env/service": {"2026-11-10": "bad", ...}}`` from the day bars of a rendered DOM."""
    parser = _Figures()
    parser.feed(dom)
    return {service: dict(days) for service, days in parser.days.items()}


_FETCHING = re.compile(
    r"""(?:\b(?:src|href|srcset|action|poster|data)\s*=\s*["']?(?!#)[^"'\s>]+)"""
    r"""|<script\b|<link\b|<iframe\b|<object\b|<embed\b|@import|url\(""",
    re.IGNORECASE,
)


def external_references(page: str) -> list[str]:
    """Anything in a page that would make a browser fetch something: src/href attributes,
    scripts, links, frames, CSS imports and url()."""
    # data-* attributes are ours and fetch nothing.
    cleaned = re.sub(r"\bdata-[a-z-]+\s*=\s*\"[^\"]*\"", "", page)
    return _FETCHING.findall(cleaned)
