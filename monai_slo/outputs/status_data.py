"""The status document: what ``monai-slo status`` shows, as data. ``status -o json`` prints it,
the daemon serves it at ``/api/v1/status``, and the status tables are drawn from it, so the
figures are the same whichever process computed them.

Only the daemon knows which canaries (``study_flow`` runs) are still on their way: it passes
``canaries``, and a check whose newest canary is in flight is ``pending`` (its verdict is not
known yet), as is a service not known to be down while one of its checks is pending.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from monai_slo.history.evaluation import ServiceReport

CheckKey = tuple[str, str, str]
PENDING = "pending"
"""The state of a check whose newest run's verdict is still to come."""


def status_data(
    reports: Iterable[ServiceReport],
    *,
    source: str = "history",
    canaries: Mapping[CheckKey, tuple[int, bool]] | None = None,
) -> dict[str, Any]:
    """Services with every window, and their checks. ``source``: ``history`` (read from the
    file) or ``daemon`` (the running daemon's own figures); ``canaries``, known only to the
    daemon: per check, the runs in flight and whether the newest of them is one."""
    services, checks = [], []
    for report in reports:
        service = report.service
        latency = {lr.ref.key: lr for lr in report.latency}
        service_checks = []
        for check in report.checks:
            last = check.last
            objective = latency.get(check.ref.key)
            in_flight, newest_in_flight = (
                (None, False) if canaries is None else canaries.get(check.ref.key, (0, False))
            )
            service_checks.append(
                {
                    "environment": service.environment,
                    "service": service.name,
                    "check": check.ref.config.name,
                    "kind": check.ref.config.kind,
                    "state": PENDING if newest_in_flight else check.state.name.lower(),
                    "in_flight": in_flight,
                    "last_run": None if last is None else last.timestamp,
                    "last_duration_seconds": None if last is None else last.duration,
                    "runs": check.runs,
                    "failures": check.failures,
                    "reason": None if last is None or last.success else str(last.reason),
                    "detail": None if last is None or last.success else last.detail,
                    "outage_reasons": [
                        {"since": mark.at, "reason": mark.reason, "detail": mark.detail}
                        for mark in check.outage_reasons
                    ],
                    "latency": None
                    if objective is None
                    else {
                        "threshold_seconds": objective.threshold,
                        "objective_ratio": objective.objective_ratio,
                        "slo_window": objective.slo_window.label,
                        "ratio": objective.slo_window.stats.ratio,
                        "error_budget_remaining_ratio": objective.budget_remaining,
                        "windows": {
                            w.label: {"ratio": w.stats.ratio, "burn_rate": w.burn_rate}
                            for w in objective.windows
                        },
                    },
                }
            )
        state = report.state.name.lower()
        if state != "down" and any(c["state"] == PENDING for c in service_checks):
            state = PENDING
        services.append(
            {
                "environment": service.environment,
                "tier": str(service.tier),
                "service": service.name,
                "state": state,
                "maintenance": report.maintenance_active,
                "objective_percent": service.objective,
                "slo_window": report.slo_window.label,
                # A calendar window's current period (epoch seconds); null for a rolling one.
                "slo_period": (
                    {"start": report.slo_window.period[0], "end": report.slo_window.period[1]}
                    if report.slo_window.period
                    else None
                ),
                "error_budget_remaining_ratio": report.budget_remaining,
                "windows": {
                    w.label: {
                        "availability_ratio": w.stats.availability,
                        "data_coverage_ratio": w.stats.coverage,
                        "burn_rate": w.burn_rate,
                    }
                    for w in (*report.windows, report.slo_window)
                },
            }
        )
        checks.extend(service_checks)
    return {"source": source, "services": services, "checks": checks}
