"""Maintenance windows people start and end: the one path `monai-slo maintenance` and the
daemon's API (``/api/v1/maintenance``) both take, so a window from either is stored, audited
and listed the same way."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monai_slo.config.maintenance import Window, utc
from monai_slo.config.model import Config, Service
from monai_slo.history.evaluation import maintenance_windows
from monai_slo.history.store import HistoryStore, MaintenanceRow

REASON_LIMIT = 1000
"""Characters of a reason: shown in list, status, alerts and the report."""


def resolve_targets(
    config: Config, environment: str | None, service: str | None
) -> list[Service] | str:
    """The services a command names, or an error message."""
    if environment is None and service is None:
        return "name a service (--service) or an environment (--environment)"
    matches = [
        s
        for s in config.services()
        if environment in (None, s.environment) and service in (None, s.name)
    ]
    if not matches:
        named = " ".join(
            f"--{flag} {value}"
            for flag, value in (("environment", environment), ("service", service))
            if value is not None
        )
        return f"no service matches {named} in {config.source}"
    if service is not None and len({s.environment for s in matches}) > 1:
        names = ", ".join(sorted({s.environment for s in matches}))
        return f"service {service!r} exists in several environments ({names}); add --environment"
    return matches


@dataclass(frozen=True, slots=True)
class Started:
    id: int
    environment: str
    service: str | None
    """None: every service of the environment."""
    start: float
    end: float
    reason: str
    author: str

    @property
    def scope(self) -> str:
        return (
            f"{self.environment}/{self.service}"
            if self.service
            else f"{self.environment} (every service)"
        )

    def data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "service": self.service,
            "start": utc(self.start),
            "end": utc(self.end),
            "start_timestamp": self.start,
            "end_timestamp": self.end,
            "reason": self.reason,
            "created_by": self.author,
        }


def start_window(
    store: HistoryStore,
    config: Config,
    *,
    environment: str | None,
    service: str | None,
    start: float,
    end: float,
    reason: str,
    author: str,
    now: float,
    via: str = "cli",
) -> Started | str:
    """Store a window started by ``author`` at ``now``; an error message when the targets
    name nothing (or are ambiguous)."""
    targets = resolve_targets(config, environment, service)
    if isinstance(targets, str):
        return targets
    env_name = targets[0].environment
    window_id = store.add_maintenance(
        env_name, service, start, end, reason=reason, now=now, author=author, via=via
    )
    return Started(window_id, env_name, service, start, end, reason, author)


def end_windows(
    store: HistoryStore,
    config: Config,
    *,
    window_id: int | None,
    environment: str | None,
    service: str | None,
    author: str,
    now: float,
) -> int | str:
    """End active (and cancel planned) windows, by number or by target: how many changed, or
    an error message when the targets name nothing."""
    if window_id is None:
        targets = resolve_targets(config, environment, service)
        if isinstance(targets, str):
            return targets
        environment = targets[0].environment
    return store.end_maintenance(
        now, window_id=window_id, environment=environment, service=service, author=author
    )


@dataclass(frozen=True, slots=True)
class Listed:
    """One service's window as `maintenance list` shows it."""

    environment: str
    service: str
    window: Window
    state: str
    """active, planned or ended."""
    audit: MaintenanceRow | None
    """The stored row (who started and ended it); None for config windows."""

    def data(self) -> dict[str, object]:
        row = self.audit
        return {
            "id": self.window.id,
            "environment": self.environment,
            "service": self.service,
            "start": utc(self.window.start),
            "end": utc(self.window.end),
            "state": self.state,
            "source": "config" if row is None else row.via,
            "reason": self.window.reason,
            "created_by": None if row is None else row.created_by,
            "created": None if row is None or not row.created else utc(row.created),
            "ended_by": None if row is None else row.ended_by,
            "ended_at": None if row is None or row.ended_at is None else utc(row.ended_at),
            "planned_end": None if row is None or row.planned_end is None else utc(row.planned_end),
        }


def listed_windows(
    config: Config, stored: Sequence[MaintenanceRow], now: float, past: float
) -> list[Listed]:
    """Active and upcoming windows (config and stored) per service, and those ended within
    ``past`` seconds; a window covering several services is listed once per service."""
    horizon = now + 7 * 86400
    audit = {row.id: row for row in stored}
    found: list[Listed] = []
    seen = set()
    for service in config.services():
        for window in maintenance_windows(service, stored, now - past, horizon):
            key = (window.id, service.environment, service.name, window.start)
            if key in seen:
                continue
            seen.add(key)
            state = (
                "active" if window.active(now) else ("ended" if window.end <= now else "planned")
            )
            row = audit.get(window.id) if window.id is not None else None
            found.append(Listed(service.environment, service.name, window, state, row))
    return found
