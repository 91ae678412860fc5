"""``monai-slo conformance``: this host against the hardware requirements of its tiers.

What is evaluated:

* every ``host`` check in the config, with its tier (its own ``tier`` key, else its
  environment's) and its extras (``min_memory``, ``min_cores``, ``disk_free`` ...): a host
  check is the config saying "the host running me belongs to this environment";
* when the config has no host check, the spec's requirements of every tier its environments
  use, once per tier, so a newcomer sees what this machine would need without writing one;
* with ``--tier`` (or without any config file: no ``-c``, no ``$MONAI_SLO_CONFIG`` and none at
  the default path), the spec's requirements of the tiers named (default: every tier).

Each requirement is printed with the spec sentence it comes from, what was measured and
PASS/FAIL. Exit 0 when every enforced requirement passes, 1 otherwise (2, a config error,
is the CLI's).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table

from monai_slo.checks import host
from monai_slo.checks.base import Deadline
from monai_slo.checks.hostinfo import HostProbe
from monai_slo.commands.exit_codes import ExitCode
from monai_slo.commands.output import print_data
from monai_slo.commands.tables import console
from monai_slo.config.model import DEFAULT_CONFIG_PATH, Config
from monai_slo.safe_text import cell
from monai_slo.tiers import TierName

# The spec is not shipped: cite it by title and by the sections the SPEC column quotes.
SPEC_CITATION = (
    "MONAI Deploy Operating Environments, section Environment Details "
    "(Desktop/Laptop, Workstation, Development/Integration Server, Staging Server, "
    "Production Server); the SPEC column quotes it"
)


@dataclass(frozen=True, slots=True)
class Target:
    """One set of requirements to judge: where it comes from, its tier, its check config."""

    scope: str
    tier: TierName
    config: host.Config


def targets(config: Config) -> tuple[list[Target], bool]:
    """The host checks of ``config``, or one default per tier in use; True when defaulted."""
    found = [
        Target(ref.label, ref.config.tier or ref.tier, ref.config)
        for ref in config.checks()
        if isinstance(ref.config, host.Config)
    ]
    if found:
        return found, False
    by_tier: dict[TierName, list[str]] = {}
    for environment in config.environments:
        by_tier.setdefault(environment.tier, []).append(environment.name)
    return [
        Target(
            ", ".join(names),
            tier,
            host.Config(name="conformance", kind="host", tier=tier),
        )
        for tier, names in by_tier.items()
    ], True


def tier_targets(tiers: Sequence[TierName] = ()) -> list[Target]:
    """The spec's requirements of each tier named (every tier when none), without a config."""
    return [
        Target(f"tier {tier}", tier, host.Config(name="conformance", kind="host", tier=tier))
        for tier in (tiers or list(TierName))
    ]


def no_config_file(explicit: str | None) -> bool:
    """True when nothing names a config and there is none at the default path."""
    return (
        explicit is None
        and not os.environ.get("MONAI_SLO_CONFIG")
        and not DEFAULT_CONFIG_PATH.exists()
    )


def _result(requirement: host.Requirement) -> str:
    if requirement.enforced:
        return "[green]PASS[/]" if requirement.ok else "[bold red]FAIL[/]"
    return "met (reported only)" if requirement.ok else "[yellow]not met[/] (reported only)"


def conformance_table(assessed: list[tuple[Target, host.Assessment]]) -> Table:
    table = Table(title="host conformance", title_justify="left")
    for column in ("ENVIRONMENT / CHECK", "TIER", "REQUIREMENT", "SPEC", "EXPECTED", "MEASURED"):
        table.add_column(column, overflow="fold")
    table.add_column("RESULT")
    for target, assessment in assessed:
        for requirement in assessment.requirements:
            name = requirement.name + (f" {requirement.path}" if requirement.path else "")
            table.add_row(
                target.scope,
                target.tier,
                name,
                requirement.source,
                cell(requirement.expected),
                cell(requirement.measured),
                _result(requirement),
            )
    table.caption = f"spec: {SPEC_CITATION}"
    return table


def conformance_command(
    config: Config | None,
    probe: HostProbe | None = None,
    output: str = "table",
    tiers: Sequence[TierName] = (),
) -> int:
    """Print each requirement with its spec sentence, measured value and pass/fail; exit code.

    ``config`` None judges the ``tiers`` (every tier when empty). ``probe`` replaces the real
    measurements (tests); each is taken once per command.
    """
    measure = (probe or HostProbe()).cached()
    if config is None:
        chosen, defaulted = tier_targets(tiers), False
    else:
        chosen, defaulted = targets(config)
    assessed = [
        (target, host.assess(target.config, target.tier, Deadline(target.config.timeout), measure))
        for target in chosen
    ]
    enforced = [r for _, a in assessed for r in a.requirements if r.enforced]
    failed = [r for r in enforced if not r.ok]
    if output != "table":
        print_data(
            {
                "conformant": not failed,
                "requirements": [
                    {
                        "scope": target.scope,
                        "tier": target.tier,
                        "requirement": r.name,
                        "path": r.path,
                        "spec": r.source,
                        "expected": r.expected,
                        "measured": r.measured,
                        "enforced": r.enforced,
                        "ok": r.ok,
                    }
                    for target, assessment in assessed
                    for r in assessment.requirements
                ],
            },
            output,
        )
        return ExitCode.FAILED if failed else ExitCode.OK
    out = console()
    if config is None and not tiers:
        out.print(
            f"no config file ({DEFAULT_CONFIG_PATH} does not exist): judging this host against "
            "every tier (give -c FILE, or --tier TIER for one)"
        )
    elif defaulted and config is not None:
        out.print(
            f"{config.source} has no host check: judging this host against the tier of every "
            "environment (add a check of kind host to choose one and add extras)"
        )
    out.print(conformance_table(assessed))
    out.print(summary(assessed))
    return ExitCode.FAILED if failed else ExitCode.OK


def summary(assessed: list[tuple[Target, host.Assessment]]) -> str:
    """One line counting every row of the table: failed (enforced) and not met (reported
    only) apart."""
    rows = [r for _, a in assessed for r in a.requirements]
    failed = sum(1 for r in rows if r.enforced and not r.ok)
    unmet = sum(1 for r in rows if not r.enforced and not r.ok)
    reported = f", {unmet} more not met (reported only)" if unmet else ""
    if failed:
        return f"NOT conformant: {failed} of {len(rows)} requirements failed{reported}"
    if unmet:
        return f"conformant: {len(rows) - unmet} of {len(rows)} requirements met{reported}"
    return f"conformant: all {len(rows)} requirements met"
