"""``python -m bench``: run the benchmarks and print the table (see docs/performance.md)."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

SECTIONS = ("echo", "probes", "scale", "scrape", "startup", "history", "archive", "canary")
_NEEDED = ("storescp", "echoscu", "prometheus-blackbox-exporter")


def _install_missing() -> None:
    """Install the Debian peers the bench needs (bench/install-deps.sh) when one is missing."""
    orthanc = shutil.which("Orthanc") or os.access("/usr/sbin/Orthanc", os.X_OK)
    if orthanc and all(shutil.which(name) for name in _NEEDED):
        return
    script = Path(__file__).with_name("install-deps.sh")
    subprocess.run([str(script)], check=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer runs, 30 s scale runs, no N search"
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds per scale run (default 180, quick 30)"
    )
    parser.add_argument(
        "--scale-n",
        default="1000,5000",
        help="check counts to run (comma-separated); without --quick the search goes on from there",
    )
    parser.add_argument("--scale-limit", type=int, default=20000, help="largest N the search tries")
    parser.add_argument(
        "--scale-processes",
        type=int,
        default=None,
        help="the daemon's worker_processes in scale runs (default: the daemon's own default; "
        "0: checks on its threads)",
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"sections to run, of {','.join(SECTIONS)}"
    )
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    _install_missing()

    # Imported late: they need the peers' binaries only when they run.
    from bench import (
        archive,
        canary,
        echo,
        history,
        machine,
        probes,
        report,
        scale,
        scrape,
        startup,
    )

    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    result = report.Report(machine.describe(), command.strip())
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:6.0f} s] {text}", file=sys.stderr, flush=True)

    if "echo" in sections:
        say("C-ECHO: monai-slo, pynetdicom, echoscu against storescp and Orthanc")
        result.add(echo.run(args.quick))
    if "probes" in sections:
        say("HTTP, HTTPS and TCP checks beside blackbox_exporter")
        result.add(probes.run(args.quick))
    if "scale" in sections:
        duration = args.duration or (30.0 if args.quick else 180.0)
        sizes = [int(n) for n in args.scale_n.split(",") if n.strip()]
        say(f"sustained scale, {duration:g} s per N, N = {sizes}{'' if args.quick else ' and on'}")
        rows, log = scale.run(args.quick, duration, sizes, args.scale_limit, args.scale_processes)
        result.add(rows)
        result.notes += log
    if "scrape" in sections:
        say("/metrics at 5,000 and 20,000 checks, in process")
        result.add(scrape.run(args.quick))
    if "startup" in sections:
        say("start-up: tiers, validate, status on a small config")
        result.add(startup.run(args.quick))
    if "history" in sections:
        say("history: 30 days x 1,000 checks")
        rows, notes = history.run(args.quick)
        result.add(rows)
        result.notes += notes
    if "archive" in sections:
        say("archive: 5 years x 1,000 checks of daily rollups")
        result.add(archive.run(args.quick))
    if "canary" in sections:
        say("study_flow: CPU per canary beside plain pynetdicom C-STORE + C-FIND")
        rows, notes = canary.run(args.quick)
        result.add(rows)
        result.notes += notes
    say("done")
    print(report.text(result))
    if args.markdown is not None:
        args.markdown.write_text(report.markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
