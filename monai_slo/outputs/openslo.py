"""The config's SLOs as OpenSLO v1 documents, for SLO catalogues to import.

spec (config) -> model (:class:`Config`) -> output: one ``Service`` per configured service,
one availability ``SLO`` per service with an objective, and one latency ``SLO`` per check
with ``latency:``. Each SLI is the Prometheus series the daemon exports (names from
:mod:`monai_slo.outputs.metric_names`), so an importer that reads the daemon's Prometheus
sees what ``monai-slo status`` sees.

Budgeting method: ``Timeslices`` with 1-minute slices (the finest the OpenSLO duration
shorthand writes) and ``timeSliceTarget: 0.5``. The daemon's availability is time-weighted:
up seconds over measured seconds. A slice counts good when the SLI was good for at least
half of its data points, so each bad slice stands for the downtime that fell inside it,
rounded to the nearest minute rather than always up (a target of 1 would add up to a minute
to every outage): over a window the bad slices add up to the daemon's downtime, within half
a slice per state change. Slices without data (no prober reporting, planned maintenance)
are neither good nor bad, as the daemon counts them. Latency SLIs are per run in the daemon
(fast runs / runs); a check runs at a fixed interval, so the share of time its last run was
fast is the share of runs that were fast, and the same slices measure it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monai_slo.durations import format_duration
from monai_slo.outputs import metric_names as m
from monai_slo.outputs.rules import PROBER_LABELS, quorum_down
from monai_slo.periods import CalendarUnit
from monai_slo.tiers import percent_to_ratio

if TYPE_CHECKING:
    from monai_slo.config.model import CheckRef, Config, Environment, Service

API_VERSION = "openslo/v1"
BUDGETING_METHOD = "Timeslices"
TIME_SLICE_WINDOW = "1m"
TIME_SLICE_SECONDS = 60.0
TIME_SLICE_TARGET = 0.5
METRIC_SOURCE_TYPE = "Prometheus"
# OpenSLO object names: RFC 1123 labels.
NAME_LIMIT = 63
DESCRIPTION_LIMIT = 1050
# A calendar window starts at a boundary of its period; 2024-01-01 is a Monday and the first
# day of a month and of a quarter, so one anchor serves all three.
CALENDAR_ANCHOR = "2024-01-01 00:00:00"
CALENDAR_DURATIONS: dict[CalendarUnit, str] = {
    "calendar_week": "1w",
    "calendar_month": "1M",
    "calendar_quarter": "1Q",
}
# Duration shorthand postfixes for a rolling window, largest first (no s: minutes are the
# finest; no M/Q/Y: those are calendar lengths, not a fixed number of seconds).
_SHORTHAND = (("d", 86400), ("h", 3600), ("m", 60))


class OpenSloError(ValueError):
    """Something in the config that OpenSLO v1 cannot express."""


@dataclass(frozen=True, slots=True)
class Export:
    documents: list[dict[str, Any]]
    warnings: list[str]


def openslo_documents(config: Config) -> Export:
    """Every document for ``config``, Services first, in config order."""
    names = _Names()
    services: list[dict[str, Any]] = []
    slos: list[dict[str, Any]] = []
    warnings: list[str] = []
    for environment in config.environments:
        window = time_window(environment)
        for service in environment.services:
            service_name = names.claim(f"{service.environment}-{service.name}")
            services.append(_service_document(service, service_name))
            if service.objective is not None:
                slos.append(
                    _availability_slo(
                        config,
                        service,
                        service_name,
                        names.claim(f"{service_name}-availability"),
                        window,
                    )
                )
                warnings.extend(_coarse_slice_warnings(service))
            for ref in service.checks:
                if ref.config.latency is not None:
                    slos.append(
                        _latency_slo(
                            ref,
                            service_name,
                            names.claim(f"{service_name}-{ref.config.name}-latency"),
                            window,
                        )
                    )
    return Export(services + slos, warnings)


def time_window(environment: Environment) -> list[dict[str, Any]]:
    """The SLO's ``timeWindow`` (a list of exactly one item) for the environment's window:
    rolling (``30d``), or calendar-aligned in the environment's ``timezone``."""
    calendar = environment.calendar
    if calendar is not None:
        return calendar_time_window(calendar.unit, calendar.timezone)
    return [{"duration": rolling_duration(environment.window), "isRolling": True}]


def calendar_time_window(calendar: CalendarUnit, timezone: str) -> list[dict[str, Any]]:
    """``calendar_week|calendar_month|calendar_quarter`` in an IANA time zone."""
    return [
        {
            "duration": CALENDAR_DURATIONS[calendar],
            "calendar": {"startTime": CALENDAR_ANCHOR, "timeZone": timezone},
            "isRolling": False,
        }
    ]


def rolling_duration(seconds: float) -> str:
    """A window in OpenSLO duration shorthand (one integer and one postfix): 30d, 36h, 90m."""
    for postfix, size in _SHORTHAND:
        count, rest = divmod(seconds, size)
        if rest == 0 and count >= 1:
            return f"{int(count)}{postfix}"
    raise OpenSloError(
        f"window of {seconds:g}s: OpenSLO writes windows in whole minutes; use one such as 30d"
    )


# -- the documents -------------------------------------------------------------------------


def _metadata(name: str, display: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "displayName": display, "labels": labels}


def _service_labels(service: Service) -> dict[str, str]:
    return {"environment": service.environment, "tier": str(service.tier), "service": service.name}


def _service_document(service: Service, name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": _metadata(name, service.name, _service_labels(service)),
        "spec": {
            "description": _bounded(
                f"{service.name} in environment {service.environment} "
                f"(tier {service.tier}), watched by monai-slo"
            )
        },
    }


def _slo(
    name: str,
    display: str,
    labels: dict[str, str],
    *,
    description: str,
    service: str,
    query: str,
    sli_name: str,
    window: list[dict[str, Any]],
    target: float,
    objective_name: str,
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "SLO",
        "metadata": _metadata(name, display, labels),
        "spec": {
            "description": _bounded(description),
            "service": service,
            "indicator": {
                "metadata": {"name": sli_name},
                "spec": {
                    "thresholdMetric": {
                        "metricSource": {
                            "type": METRIC_SOURCE_TYPE,
                            "spec": {"query": query},
                        }
                    }
                },
            },
            "timeWindow": window,
            "budgetingMethod": BUDGETING_METHOD,
            "objectives": [
                {
                    "displayName": objective_name,
                    # The SLI is 1 while good, 0 while bad.
                    "op": "gte",
                    "value": 1,
                    "target": target,
                    "timeSliceTarget": TIME_SLICE_TARGET,
                    "timeSliceWindow": TIME_SLICE_WINDOW,
                }
            ],
        },
    }


def _availability_slo(
    config: Config,
    service: Service,
    service_name: str,
    name: str,
    window: list[dict[str, Any]],
) -> dict[str, Any]:
    assert service.objective is not None
    return _slo(
        name,
        f"{service.name} availability",
        _service_labels(service),
        description=(
            f"Availability of {service.name} as monai-slo measures it: down while any of its "
            f"checks is down, planned maintenance left out; objective {service.objective:g}%"
        ),
        service=service_name,
        query=availability_query(service, config.alerting.quorum),
        sli_name=f"{name}-sli",
        window=window,
        target=percent_to_ratio(service.objective),
        objective_name=f"{service.objective:g}% available",
    )


def _latency_slo(
    ref: CheckRef, service_name: str, name: str, window: list[dict[str, Any]]
) -> dict[str, Any]:
    latency = ref.config.latency
    assert latency is not None
    threshold = format_duration(latency.threshold)
    return _slo(
        name,
        f"{ref.service} {ref.config.name} latency",
        {**_service_labels_of(ref), "check": ref.config.name},
        description=(
            f"Runs of check {ref.config.name} ({ref.config.kind}) on {ref.service} that "
            f"succeed within {threshold}; a failed run is never fast; objective "
            f"{latency.objective:g}%"
        ),
        service=service_name,
        query=latency_query(ref, latency.threshold),
        sli_name=f"{name}-sli",
        window=window,
        target=percent_to_ratio(latency.objective),
        objective_name=f"{latency.objective:g}% within {threshold}",
    )


def _service_labels_of(ref: CheckRef) -> dict[str, str]:
    return {"environment": ref.environment, "tier": str(ref.tier), "service": ref.service}


# -- the queries ---------------------------------------------------------------------------


def _selector(metric: str, **labels: str) -> str:
    matchers = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{metric}{{{matchers}}}"


def _outside_maintenance(environment: str, service: str) -> str:
    maintenance = _selector(m.MAINTENANCE_ACTIVE, environment=environment, service=service)
    return f"unless on (environment, service) (max without ({PROBER_LABELS}) ({maintenance}) == 1)"


def availability_query(service: Service, quorum: int | str) -> str:
    """1 while the service is up, 0 while down, absent without data or in maintenance: the
    daemon's ``service_up`` folded over the probers with ``alerting.quorum``."""
    up = _selector(m.SERVICE_UP, environment=service.environment, service=service.name)
    if quorum == "all":
        # Down only when every reporting prober sees it down: up if any prober sees it up.
        state = f"max without ({PROBER_LABELS}) ({up})"
    else:
        reporting = f"count without ({PROBER_LABELS}) ({up})"
        down = f"(count without ({PROBER_LABELS}) ({up} == 0) or {reporting} * 0)"
        state = f"1 - ({quorum_down(down, reporting, quorum)})"
    return f"{state} {_outside_maintenance(service.environment, service.name)}"


def latency_query(ref: CheckRef, threshold: float) -> str:
    """1 while the check's last run succeeded within ``threshold`` seconds, else 0; the
    fastest prober's view, as the latency rules fold them; absent in maintenance."""
    labels = {"environment": ref.environment, "service": ref.service, "check": ref.config.name}
    duration = _selector(m.CHECK_DURATION_SECONDS, **labels)
    up = _selector(m.CHECK_UP, **labels)
    seconds = repr(threshold).removesuffix(".0")
    return (
        f"max without ({PROBER_LABELS}) (({duration} <= bool {seconds}) * {up}) "
        + _outside_maintenance(ref.environment, ref.service)
    )


def _coarse_slice_warnings(service: Service) -> Iterator[str]:
    assert service.objective is not None
    budget = (1 - percent_to_ratio(service.objective)) * service.window
    if budget < TIME_SLICE_SECONDS:
        yield (
            f"{service.environment}/{service.name}: {service.objective:g}% allows "
            f"{budget:.0f}s of downtime per window, less than one {TIME_SLICE_WINDOW} time "
            "slice: an importer counting time slices spends the whole budget on one bad minute"
        )


# -- names ---------------------------------------------------------------------------------


class _Names:
    """RFC 1123 object names, unique within one export: lower case, ``_``/``.`` as ``-``; a
    name too long or already taken keeps a short hash of what it stands for."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def claim(self, wanted: str) -> str:
        name = re.sub(r"[^a-z0-9-]", "-", wanted.lower()).strip("-") or "slo"
        if len(name) > NAME_LIMIT or name in self._taken:
            digest = hashlib.sha256(wanted.encode()).hexdigest()[:8]
            name = f"{name[: NAME_LIMIT - 9].rstrip('-')}-{digest}"
        self._taken.add(name)
        return name


def _bounded(text: str) -> str:
    return text if len(text) <= DESCRIPTION_LIMIT else text[: DESCRIPTION_LIMIT - 1] + "…"
