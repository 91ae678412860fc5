"""Config: YAML spec (what administrators write) -> validated model (tiers applied).

Every error names the file, the line where known, the dotted field path and what was
expected; :class:`~monai_slo.yaml_source.SourceError` carries them all at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from monai_slo.checks.base import CheckConfig, Name
from monai_slo.checks.registry import KINDS
from monai_slo.config.maintenance import MaintenanceSpec
from monai_slo.config.paths import default_paths
from monai_slo.config.web_config import WebConfig, load_web_config
from monai_slo.durations import Duration, format_duration, parse_duration
from monai_slo.periods import CALENDAR_UNITS, CalendarUnit, CalendarWindow, zone
from monai_slo.tiers import TIERS, TierName, allowed_downtime
from monai_slo.yaml_source import PathKey, SourceError, SourceIssue, YamlSource, load_yaml

# Per operating system: monai_slo.config.paths.
DEFAULT_CONFIG_PATH = default_paths().config
DEFAULT_STORAGE = default_paths().storage
DEFAULT_WINDOW = 30 * 86400.0
DEFAULT_RETENTION = 90 * 86400.0
DEFAULT_ARCHIVE_RETENTION = 5 * 365 * 86400.0
# A single failed run should cost at most this share of the error budget to be measurable.
COARSE_INTERVAL_BUDGET_SHARE = 0.10

# Identity keys, and the host check's tier (it comes from the environment), are never defaults.
_NOT_DEFAULTS = frozenset({"name", "kind", "tier"})


class AlertingOptions(BaseModel):
    """What the rules need beyond the checks: how Prometheus names the probers' job, etc."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: str = Field(
        default="monai-slo",
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="the Prometheus job that scrapes every monai-slo prober",
    )
    check_down_after: int = Field(
        default=3, ge=1, le=1000, description="consecutive failed runs before MonaiSloCheckDown"
    )
    runbook_url: str | None = Field(
        default=None, description="added to every alert as the runbook_url annotation"
    )
    quorum: int | Literal["all"] = Field(
        default="all",
        description="probers that must see a service down at one instant for the fleet SLI to "
        "count it down: 'all' (every reporting prober) or k >= 1 (at least k, or every "
        "reporting prober when fewer than k report)",
    )

    @field_validator("quorum")
    @classmethod
    def _quorum_at_least_one(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"expected 'all' or an integer >= 1; got {value}")
        return value


def _parse_window(value: object) -> float | str:
    """A rolling window (a duration) or a calendar one (``calendar_month`` ...)."""
    if isinstance(value, str) and value.strip() in CALENDAR_UNITS:
        return value.strip()
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(
            "expected a duration such as 30d (a rolling window) or one of "
            f"{', '.join(CALENDAR_UNITS)}; got {value!r}"
        ) from None


WindowSpec = Annotated[float | str, BeforeValidator(_parse_window)]
"""A pydantic field type: seconds of a rolling window, or a calendar unit's name."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSpec(_Strict):
    name: Name
    description: str = ""
    objective: float | None = Field(default=None, description="percent; overrides the environment")
    maintenance: list[MaintenanceSpec] = Field(default_factory=list)
    checks: list[dict[str, Any]] = Field(min_length=1)


class EnvironmentSpec(_Strict):
    name: Name
    tier: TierName
    description: str = ""
    objective: float | None = None
    window: WindowSpec = DEFAULT_WINDOW
    timezone: str = Field(
        default="UTC", description="IANA zone whose midnights start a calendar window's periods"
    )
    location: Literal["on-premises", "cloud"] = "on-premises"
    provider: Literal["aws", "azure", "gcp", "other"] | None = None
    maintenance: list[MaintenanceSpec] = Field(default_factory=list)
    services: list[ServiceSpec] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        zone(value)
        return value

    @property
    def calendar(self) -> CalendarWindow | None:
        if isinstance(self.window, str):
            return CalendarWindow(cast(CalendarUnit, self.window), self.timezone)
        return None

    @property
    def rolling_window(self) -> float:
        """The window's length, a calendar window's usual length (for the alert rules)."""
        calendar = self.calendar
        return calendar.nominal if calendar is not None else float(self.window)


class ConfigSpec(_Strict):
    listen: str = "127.0.0.1:9790"
    web_config_file: Path | None = Field(
        default=None, description="TLS and basic auth for the listener (exporter-toolkit format)"
    )
    storage: Path | None = None
    alerting: AlertingOptions = Field(default_factory=AlertingOptions)
    flush_interval: Duration = 5.0
    retention: Duration | None = Field(
        default=None,
        description="full-resolution history kept; default 90d, or the longest calendar "
        "period when a calendar window needs more",
    )
    archive_retention: Duration = Field(
        default=DEFAULT_ARCHIVE_RETENTION,
        description="daily rollups kept once segments age out of retention (default 5y)",
    )
    workers: int = Field(default=32, ge=1, le=1024)
    worker_processes: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="processes that run checks (0: on the daemon's own threads; "
        "default: one per core beyond the first, up to four, from 5,000 checks on 4+ cores)",
    )
    defaults: dict[str, Any] = Field(default_factory=dict)
    environments: list[EnvironmentSpec] = Field(min_length=1)

    @field_validator("listen")
    @classmethod
    def _listen_is_host_port(cls, value: str) -> str:
        parse_listen(value)
        return value


def parse_listen(value: str) -> tuple[str, int]:
    """'127.0.0.1:9790', '[::1]:9790' or ':9790' -> (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected host:port such as 127.0.0.1:9790; got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port_text)


@dataclass(frozen=True, slots=True)
class CheckRef:
    """A check with the identity it is recorded and labelled under."""

    environment: str
    tier: TierName
    service: str
    config: CheckConfig

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.environment, self.service, self.config.name)

    @property
    def label(self) -> str:
        return "/".join(self.key)


@dataclass(frozen=True, slots=True)
class Service:
    environment: str
    tier: TierName
    name: str
    objective: float | None
    """Percent; None for best-effort tiers."""
    window: float
    """Seconds of the rolling SLO window; a calendar window's usual length (30d for a
    month), which the burn-rate alerts scale to."""
    checks: tuple[CheckRef, ...]
    maintenance: tuple[MaintenanceSpec, ...] = ()
    """The environment's windows and the service's own."""
    calendar: CalendarWindow | None = None
    """The calendar SLO window, when the environment has one instead of a rolling one."""

    @property
    def history_span(self) -> float:
        """How far back the SLO window can reach from now."""
        return self.calendar.longest if self.calendar is not None else self.window

    @property
    def window_label(self) -> str:
        """The SLO window's ``window`` label value: ``30d``, or ``calendar_month``."""
        return self.calendar.label if self.calendar is not None else format_duration(self.window)

    @property
    def key(self) -> tuple[str, str]:
        return (self.environment, self.name)


@dataclass(frozen=True, slots=True)
class Environment:
    name: str
    tier: TierName
    location: str
    provider: str | None
    window: float
    """As :attr:`Service.window`."""
    services: tuple[Service, ...]
    calendar: CalendarWindow | None = None

    @property
    def history_span(self) -> float:
        return self.calendar.longest if self.calendar is not None else self.window


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    listen: str
    storage: Path
    flush_interval: float
    retention: float
    workers: int
    environments: tuple[Environment, ...]
    web: WebConfig | None = None
    """Listener TLS/basic auth, loaded from ``web_config_file``."""
    alerting: AlertingOptions = field(default_factory=AlertingOptions)
    """What `monai-slo rules` needs beyond the checks."""
    archive_retention: float = DEFAULT_ARCHIVE_RETENTION
    """Daily rollups are kept this long (segments for ``retention``)."""
    worker_processes: int | None = None
    """Processes that run checks; None: the daemon chooses from the core count."""

    def services(self) -> Iterator[Service]:
        for environment in self.environments:
            yield from environment.services

    def checks(self) -> Iterator[CheckRef]:
        for service in self.services():
            yield from service.checks

    def windows(self) -> set[float]:
        """How far back each environment's SLO window reaches (its length, or a calendar
        window's longest period)."""
        return {environment.history_span for environment in self.environments}


def config_path(explicit: str | None) -> Path:
    """-c wins, then MONAI_SLO_CONFIG, then the system's default (/etc/monai-slo/config.yaml
    on Linux; see :mod:`monai_slo.config.paths`)."""
    return Path(explicit or os.environ.get("MONAI_SLO_CONFIG") or DEFAULT_CONFIG_PATH)


def load_config(path: Path, text: str | None = None) -> Config:
    """Load and validate; raises SourceError listing every problem found.

    Hostile files (deep nesting, alias bombs, huge files) are refused by
    :func:`~monai_slo.yaml_source.load_yaml` within bounded time and memory.
    """
    source = load_yaml(path, text)
    if not isinstance(source.data, Mapping):
        raise SourceError([source.issue((), "expected a mapping with an 'environments' list")])
    try:
        spec = ConfigSpec.model_validate(source.data)
        return _build(source, spec, path)
    except ValidationError as exc:
        raise SourceError(_issues(source, (), exc, ConfigSpec)) from exc
    except (RecursionError, MemoryError) as exc:  # the YAML bounds make this unreachable
        raise SourceError(
            [SourceIssue(str(path), None, "", f"cannot load: {type(exc).__name__}")]
        ) from exc


def _build(source: YamlSource, spec: ConfigSpec, path: Path) -> Config:
    issues: list[SourceIssue] = []
    used_kinds = {
        raw["kind"]
        for env_spec in spec.environments
        for svc_spec in env_spec.services
        for raw in svc_spec.checks
        if isinstance(raw.get("kind"), str) and raw["kind"] in KINDS
    }
    for key in spec.defaults:
        if key in _NOT_DEFAULTS or not _known_check_key(key, used_kinds):
            known_kind_keys = set().union(
                *(kind.config_type.model_fields for kind in KINDS.values())
            )
            issues.append(
                source.issue(
                    ("defaults", key),
                    "unknown key; expected one of: "
                    + ", ".join(sorted(known_kind_keys - _NOT_DEFAULTS)),
                )
            )
    environments = []
    _duplicates(source, issues, ("environments",), [e.name for e in spec.environments])
    for e_index, env_spec in enumerate(spec.environments):
        env_path: PathKey = ("environments", e_index)
        env_objective = _objective(
            source, issues, (*env_path, "objective"), env_spec.tier, env_spec.objective, None
        )
        if env_spec.location == "cloud" and env_spec.provider is None:
            issues.append(
                source.issue(
                    (*env_path, "provider"),
                    "required for location cloud; expected aws, azure, gcp or other",
                )
            )
        if env_spec.location == "on-premises" and env_spec.provider is not None:
            issues.append(
                source.issue((*env_path, "provider"), "only meaningful with location: cloud")
            )
        _duplicates(source, issues, (*env_path, "services"), [s.name for s in env_spec.services])
        services = []
        for s_index, svc_spec in enumerate(env_spec.services):
            svc_path: PathKey = (*env_path, "services", s_index)
            objective = _objective(
                source,
                issues,
                (*svc_path, "objective"),
                env_spec.tier,
                svc_spec.objective,
                env_objective,
            )
            checks = []
            names = []
            for c_index, raw in enumerate(svc_spec.checks):
                check_path: PathKey = (*svc_path, "checks", c_index)
                check = _check(source, issues, check_path, raw, spec.defaults, env_spec.tier)
                if check is not None:
                    names.append(check.name)
                    checks.append(CheckRef(env_spec.name, env_spec.tier, svc_spec.name, check))
            _duplicates(source, issues, (*svc_path, "checks"), names)
            services.append(
                Service(
                    env_spec.name,
                    env_spec.tier,
                    svc_spec.name,
                    objective,
                    env_spec.rolling_window,
                    tuple(checks),
                    (*env_spec.maintenance, *svc_spec.maintenance),
                    env_spec.calendar,
                )
            )
        environments.append(
            Environment(
                env_spec.name,
                env_spec.tier,
                env_spec.location,
                env_spec.provider,
                env_spec.rolling_window,
                tuple(services),
                env_spec.calendar,
            )
        )
    retention = _retention(source, issues, spec, environments)
    if issues:
        raise SourceError(issues)
    storage = spec.storage or _default_storage()
    if not storage.is_absolute():
        storage = path.parent / storage
    web = None
    if spec.web_config_file is not None:
        web_path = spec.web_config_file
        web = load_web_config(web_path if web_path.is_absolute() else path.parent / web_path)
    return Config(
        str(path),
        spec.listen,
        storage,
        spec.flush_interval,
        retention,
        spec.workers,
        tuple(environments),
        web,
        spec.alerting,
        spec.archive_retention,
        spec.worker_processes,
    )


def _retention(
    source: YamlSource,
    issues: list[SourceIssue],
    spec: ConfigSpec,
    environments: Sequence[Environment],
) -> float:
    """The retention in force (default: 90d, or longer for a calendar window's longest
    period); too short a retention, or an archive shorter than it, is an issue."""
    longest_window = max(e.history_span for e in environments) if environments else 0.0
    retention = spec.retention or max(DEFAULT_RETENTION, longest_window)
    if retention < longest_window:
        issues.append(
            source.issue(
                ("retention",),
                f"expected at least the longest window ({format_duration(longest_window)})",
            )
        )
    if spec.archive_retention < retention:
        issues.append(
            source.issue(
                ("archive_retention",),
                f"expected at least retention ({format_duration(retention)}): daily rollups "
                "keep what ages out of it",
            )
        )
    return retention


def _default_storage() -> Path:
    # systemd's StateDirectory= tells us where state belongs.
    state_dir = os.environ.get("STATE_DIRECTORY")
    return Path(state_dir.split(":")[0]) / "history.sqlite" if state_dir else DEFAULT_STORAGE


def _objective(  # noqa: PLR0917 -- private helper, called with all six positionally
    source: YamlSource,
    issues: list[SourceIssue],
    path: PathKey,
    tier_name: TierName,
    given: float | None,
    inherited: float | None,
) -> float | None:
    tier = TIERS[tier_name]
    if tier.best_effort:
        if given is not None:
            issues.append(
                source.issue(
                    path,
                    f"tier {tier_name} is best effort and has no objective; "
                    "remove it or choose tier staging or production",
                )
            )
        return None
    if given is None and inherited is not None:
        return inherited  # already checked where it was written
    value = given if given is not None else tier.default_objective
    assert value is not None and tier.min_objective is not None
    assert tier.max_objective is not None
    if not tier.min_objective <= value <= tier.max_objective:
        issues.append(
            source.issue(
                path,
                f"expected a percentage within [{tier.min_objective:g}, "
                f"{tier.max_objective:g}] for tier {tier_name}; got {value:g}",
            )
        )
    return value


def _known_check_key(key: str, used_kinds: set[str]) -> bool:
    """Whether any kind has ``key``: the common keys and the kinds the config names first, so
    that only a key of another kind (or none) imports every kind's module to tell."""
    if key in CheckConfig.model_fields:
        return True
    if any(key in KINDS[name].config_type.model_fields for name in used_kinds):
        return True
    return any(key in kind.config_type.model_fields for kind in KINDS.values())


def _check(  # noqa: PLR0917 -- private helper, called with all six positionally
    source: YamlSource,
    issues: list[SourceIssue],
    path: PathKey,
    raw: dict[str, Any],
    defaults: dict[str, Any],
    tier: TierName,
) -> CheckConfig | None:
    kind_name = raw.get("kind")
    kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        issues.append(
            source.issue(
                (*path, "kind"), f"expected one of: {', '.join(sorted(KINDS))}; got {kind_name!r}"
            )
        )
        return None
    fields = kind.config_type.model_fields
    from_defaults = {key for key in defaults if key in fields and key not in raw}
    merged = {**{key: defaults[key] for key in from_defaults}, **raw}
    if "tier" in fields and "tier" not in merged:
        merged["tier"] = tier  # host conformance: the environment's tier unless the check names one
    try:
        return kind.config_type.model_validate(merged)
    except ValidationError as exc:
        for issue_path, message in _error_items(exc, kind.config_type):
            origin = (
                ("defaults", issue_path[0])
                if issue_path and issue_path[0] in from_defaults
                else (*path, *issue_path)
            )
            issues.append(source.issue(origin, message))
        return None


def _duplicates(
    source: YamlSource, issues: list[SourceIssue], path: PathKey, names: list[str]
) -> None:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            issues.append(
                source.issue(
                    (*path, index, "name"), f"duplicate name {name!r}; names must be unique here"
                )
            )
        seen.add(name)


def _issues(
    source: YamlSource, prefix: PathKey, exc: ValidationError, model: type[BaseModel]
) -> list[SourceIssue]:
    return [source.issue((*prefix, *path), message) for path, message in _error_items(exc, model)]


def _error_items(exc: ValidationError, model: type[BaseModel]) -> Iterator[tuple[PathKey, str]]:
    for error in exc.errors(include_url=False):
        path: PathKey = tuple(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            message = f"unknown key; expected one of: {', '.join(_allowed_keys(model, path[:-1]))}"
        elif kind == "missing":
            message = "required key is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
            if (
                "input" in error
                and kind not in {"value_error", "assertion_error"}
                and not isinstance(error["input"], dict | list)
            ):
                message += f"; got {error['input']!r}"
        yield path, message


def _allowed_keys(model: type[BaseModel], path: PathKey) -> list[str]:
    """Field names of the (nested) model that ``path`` points into, for 'unknown key' errors."""
    current: type[BaseModel] = model
    for part in path:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if field is None:
            break
        annotation = field.annotation
        nested = _model_in(annotation)
        if nested is None:
            break
        current = nested
    # What administrators write: a field's alias where it has one (``json``).
    return sorted(field.alias or name for name, field in current.model_fields.items())


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def coarse_interval_warnings(config: Config) -> list[str]:
    """Checks whose single failed run would burn more than a tenth of the error budget."""
    warnings = []
    for service in config.services():
        if service.objective is None:
            continue
        budget = allowed_downtime(service.objective, service.window)
        for ref in service.checks:
            if ref.config.interval > budget * COARSE_INTERVAL_BUDGET_SHARE:
                warnings.append(
                    f"{config.source}: {ref.label}: interval "
                    f"{format_duration(ref.config.interval)} is too coarse for "
                    f"{service.objective:g}% over {service.window_label} "
                    f"({format_duration(budget)} of error budget): one failed run spends "
                    f"{ref.config.interval / budget:.0%} of it; use an interval of at most "
                    f"{format_duration(max(1.0, budget * COARSE_INTERVAL_BUDGET_SHARE))}"
                )
    return warnings
