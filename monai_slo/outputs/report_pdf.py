"""``report --format pdf``: the HTML report printed by headless Chromium.

Chromium rather than WeasyPrint: it is already installed for the browser tests
(scripts/install-test-deps.sh), needs no Python packages or their native libraries, and prints
the very HTML the browser tests check, so the PDF looks like the page a change board would open.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

ENV = "MONAI_SLO_CHROMIUM"
NAMES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT = 120.0
FLAGS = (
    "--headless",
    # Sandboxing fails as root and in many containers; the page is our own file, with no
    # scripts and nothing to fetch.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-pdf-header-footer",  # the page's own footer states the method; no file path
)


class PdfError(Exception):
    """Chromium is missing or could not print; the message is one line."""


def find_chromium() -> str:
    """``$MONAI_SLO_CHROMIUM``, else the first of :data:`NAMES` on PATH."""
    named = os.environ.get(ENV, "").strip()
    if named:
        found = shutil.which(named)
        if found is None:
            raise PdfError(f"pdf needs headless Chromium: {ENV}={named!r} is not an executable")
        return found
    for name in NAMES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise PdfError(
        f"pdf needs headless Chromium: none of {', '.join(NAMES)} is on PATH "
        f"(install chromium, or set {ENV} to its path)"
    )


def render_pdf(page: str, *, timeout: float = TIMEOUT) -> bytes:
    """``page`` (a self-contained HTML document) printed to PDF."""
    executable = find_chromium()
    with tempfile.TemporaryDirectory(prefix="monai-slo-pdf-") as work:
        source, target = Path(work) / "report.html", Path(work) / "report.pdf"
        source.write_text(page, encoding="utf-8")
        command = [
            executable,
            *FLAGS,
            f"--user-data-dir={Path(work) / 'profile'}",
            f"--print-to-pdf={target}",
            source.as_uri(),
        ]
        try:
            process = subprocess.Popen(  # noqa: S603 (our own argv, no shell)
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own group: renderers and zygotes end with it
            )
        except OSError as exc:
            raise PdfError(f"pdf: could not start {executable}: {exc.strerror}") from exc
        try:
            _, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PdfError(f"pdf: {executable} did not finish within {timeout:g}s") from None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if process.poll() is None:
                process.wait()
        if process.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            last = next((line for line in reversed(err.splitlines()) if line.strip()), "")
            raise PdfError(
                f"pdf: {executable} exited {process.returncode} without a PDF"
                + (f": {last.strip()[:200]}" if last else "")
            )
        return target.read_bytes()
