"""``monai-slo check``: every check once, concurrently, as a table; exit 1 if any failed."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence

from monai_slo.checks.base import CheckResult
from monai_slo.commands.exit_codes import ExitCode
from monai_slo.commands.output import print_data
from monai_slo.config.model import CheckRef, Config
from monai_slo.daemon.runner import CheckRunner


def run_checks_once(refs: Sequence[CheckRef], workers: int) -> list[tuple[CheckRef, CheckResult]]:
    """Every check once, concurrently, each under its overall deadline; results in config order."""
    results: dict[tuple[str, str, str], CheckResult] = {}
    all_done = threading.Event()
    lock = threading.Lock()

    def sink(ref: CheckRef, result: CheckResult) -> None:
        with lock:
            results[ref.key] = result
            if len(results) == len(refs):
                all_done.set()

    runner = CheckRunner(max(1, min(workers, len(refs))), sink)
    try:
        for ref in refs:
            runner.submit(ref)
        if refs:
            all_done.wait()
    finally:
        runner.shutdown()
    return [(ref, results[ref.key]) for ref in refs]


def check_command(
    config: Config, service: str | None, output: str = "table", *, wide: bool = False
) -> int:
    from monai_slo.commands.tables import check_rows, check_table, console

    refs = [ref for ref in config.checks() if service in (None, ref.service)]
    if not refs:
        print(f"no service named {service!r} in {config.source}", file=sys.stderr)
        return ExitCode.USAGE
    results = run_checks_once(refs, config.workers)
    failed = sum(1 for _, result in results if not result.success)
    if output != "table":
        print_data(check_rows(results), output)
        return ExitCode.FAILED if failed else ExitCode.OK
    console().print(check_table(results, wide=wide))
    print(f"{len(results) - failed} passed, {failed} failed")
    return ExitCode.FAILED if failed else ExitCode.OK
