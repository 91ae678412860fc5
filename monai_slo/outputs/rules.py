"""Prometheus recording and alerting rules generated from the config.

spec (config) -> model (:class:`Config`) -> output (one rule file, ``monai-slo.rules.yml``).
One group per environment holds that environment's recording rules first and its alerts
after them, so the alerts of an evaluation see the values recorded in the same one; a last
group watches the daemons themselves.

Several probers (HA pairs, vantage points) are separate scrape targets of one job, told apart
by ``instance`` (and optionally a ``prober`` target label). Per-prober views fold them per
metric (``max`` of ``up``, ``min`` of burn rate, the ``*_over_probers`` series) for the
dashboards and the check alerts. The service SLI that burn-rate alerts read is the *fleet*
SLI (:func:`fleet_rules`): the probers are folded at each evaluation instant (down when the
``alerting.quorum`` of the reporting probers sees the service down), that instant state is
recorded, and every window is summed from it by chained recording rules: the 5m window
reads the instant series, each longer window adds non-overlapping shorter recorded windows
at offsets, so a 30-day window costs 30 lookups per service. A prober that stops reporting
leaves the fold (its scrape target down: ``up == 0``, or its series gone); maintenance
instants are left out.

The latency SLI of a check is folded with the same quorum, per window
(:func:`latency_fleet_rules`): its fleet burn rate is the one that the quorum of the reporting
probers reach (the k-th highest; ``all``: the lowest), so one prober slow on its own link does
not page. Each prober times its own canaries, so there is no shared run to fold at an
instant; the alert's short window (5m for a page) makes the quorum's slowness simultaneous.
Every metric and recorded series name comes from :mod:`monai_slo.outputs.metric_names`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from monai_slo.config.model import AlertingOptions
from monai_slo.durations import format_duration
from monai_slo.outputs import metric_names as m
from monai_slo.slo.burn_windows import BurnWindows, load_burn_windows, max_burn_rate
from monai_slo.tiers import TIERS, TierName

if TYPE_CHECKING:
    from collections.abc import Sequence

    from monai_slo.config.model import CheckRef, Config, Environment, Service

RULES_FILE = "monai-slo.rules.yml"
PROBER_LABELS = "instance, prober"
# No-data waits at least this long: a daemon that just started has no result yet.
NO_DATA_MIN_FOR = 300.0

SERVICE_UP = m.RECORDED_SERVICE_UP
CHECK_UP = m.RECORDED_CHECK_UP
BURN_RATE = m.RECORDED_BURN_RATE
AVAILABILITY = m.RECORDED_AVAILABILITY_RATIO
BUDGET = m.RECORDED_ERROR_BUDGET_REMAINING_RATIO
MAINTENANCE = m.RECORDED_MAINTENANCE_ACTIVE
LATENCY_BURN_RATE = m.RECORDED_LATENCY_BURN_RATE
LATENCY_BUDGET = m.RECORDED_LATENCY_ERROR_BUDGET_REMAINING_RATIO
FLEET_LATENCY_BURN_RATE = m.RECORDED_FLEET_LATENCY_BURN_RATE
FLEET_LATENCY_BUDGET = m.RECORDED_FLEET_LATENCY_ERROR_BUDGET_REMAINING_RATIO
FLEET_REPORTING = m.RECORDED_FLEET_SERVICE_REPORTING
FLEET_DOWN_PROBERS = m.RECORDED_FLEET_SERVICE_DOWN_PROBERS
FLEET_DOWN = m.RECORDED_FLEET_SERVICE_DOWN
FLEET_SLI = m.RECORDED_FLEET_SERVICE_SLI
FLEET_GOOD = m.RECORDED_FLEET_GOOD_SAMPLES
FLEET_SAMPLES = m.RECORDED_FLEET_SAMPLES
FLEET_AVAILABILITY = m.RECORDED_FLEET_AVAILABILITY_RATIO
FLEET_BURN_RATE = m.RECORDED_FLEET_BURN_RATE
FLEET_BUDGET = m.RECORDED_FLEET_ERROR_BUDGET_REMAINING_RATIO
# The shortest fleet window reads the instant series; longer ones chain through these.
FLEET_BASE_WINDOW = 300.0
FLEET_STAGES = (3600.0, 86400.0)

# (recorded name, aggregation, source metric): the aggregation is what "every prober says
# so" means for that metric: up if any prober sees it up, burning as slowly as the best one.
RECORDINGS = (
    (SERVICE_UP, "max", m.SERVICE_UP),
    (CHECK_UP, "max", m.CHECK_UP),
    (BURN_RATE, "min", m.BURN_RATE),
    (AVAILABILITY, "max", m.AVAILABILITY_RATIO),
    (BUDGET, "max", m.ERROR_BUDGET_REMAINING_RATIO),
    (MAINTENANCE, "max", m.MAINTENANCE_ACTIVE),
)
# Recorded only in environments with a check that has a latency objective.
LATENCY_RECORDINGS = (
    (LATENCY_BURN_RATE, "min", m.LATENCY_BURN_RATE),
    (LATENCY_BUDGET, "max", m.LATENCY_ERROR_BUDGET_REMAINING_RATIO),
)

BUDGET_LEFT = (
    '{{ with printf "' + FLEET_BUDGET + "{environment='%s',service='%s'}\" "
    "$labels.environment $labels.service | query }}"
    "{{ . | first | value | humanizePercentage }}{{ else }}unknown{{ end }}"
)
WHERE = "{{ $labels.service }} in {{ $labels.environment }}"
LATENCY_BUDGET_LEFT = (
    '{{ with printf "' + FLEET_LATENCY_BUDGET + "{environment='%s',service='%s',check='%s'}\" "
    "$labels.environment $labels.service $labels.check | query }}"
    "{{ . | first | value | humanizePercentage }}{{ else }}unknown{{ end }}"
)


def prom_duration(seconds: float) -> str:
    """A Prometheus duration: 20 -> '20s', 90 -> '1m30s', 1.5 -> '1s500ms', 0 -> '0s'."""
    remaining = round(seconds * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    if remaining:
        parts.append(f"{remaining}ms")
    return "".join(parts) or "0s"


def _number(value: float) -> str:
    return f"{value:.6g}"


def _selector(metric: str, **labels: str) -> str:
    matchers = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return f"{metric}{{{matchers}}}"


def _not_in_maintenance(environment: str, service: str | None = None) -> str:
    """Held back while the service is in maintenance; naming the service keeps a per-check
    rule from reading every service's maintenance series."""
    where = {"environment": environment} | ({"service": service} if service else {})
    return f"unless on (environment, service)\n  ({_selector(MAINTENANCE, **where)} == 1)"


def _alert(
    name: str,
    expr: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    options: AlertingOptions,
    *,
    for_: float = 0.0,
) -> dict[str, Any]:
    rule: dict[str, Any] = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = prom_duration(for_)
    rule["labels"] = labels
    if options.runbook_url:
        annotations = {**annotations, "runbook_url": options.runbook_url}
    rule["annotations"] = annotations
    return rule


def _highest_tier(config: Config) -> TierName:
    order = list(TierName)
    return max((e.tier for e in config.environments), key=order.index)


def _burning(recorded: str, environment: str, long: str, short: str, factor: float) -> str:
    """Both windows of a recorded burn rate above ``factor``, outside maintenance."""
    return (
        "(\n"
        f"  max without (window) ({_selector(recorded, environment=environment, window=long)})"
        f" > {_number(factor)}\n"
        "and\n"
        f"  max without (window) ({_selector(recorded, environment=environment, window=short)})"
        f" > {_number(factor)}\n"
        ")\n" + _not_in_maintenance(environment)
    )


def fleet_windows(environment: Environment, windows: BurnWindows) -> list[float]:
    """The windows the fleet SLI is recorded over: the burn-rate rows', the SLO window's, and
    the chaining stages up to the longest of them."""
    wanted = {FLEET_BASE_WINDOW, environment.window}
    for scaled in windows.for_window(environment.window):
        wanted |= {scaled.row.long, scaled.row.short}
    longest = max(wanted)
    wanted |= {stage for stage in FLEET_STAGES if stage < longest}
    return sorted(wanted)


def _chained(recorded: str, env: str, window: float, source: float) -> str:
    """``recorded`` over ``window`` as the sum of the non-overlapping ``source`` windows that
    end now, source ago, 2 x source ago...; a part with no data drops out of the sum."""
    parts = []
    for index in range(round(window / source)):
        offset = f" offset {prom_duration(index * source)}" if index else ""
        selector = _selector(recorded, environment=env, window=format_duration(source))
        parts.append(f'label_replace({selector}{offset}, "part", "{index}", "", "")')
    return "sum without (part) (\n  " + _union(parts) + "\n)"


def _union(parts: list[str]) -> str:
    """``a or b or c or d`` as ``(a or b) or (c or d)``: the parts' labels differ, so the
    result is the same, and each ``or`` hashes its left side: a left-leaning chain of k parts
    hashes the first part k-1 times, a balanced tree about log2(k) times."""
    if len(parts) <= 2:
        return "\nor\n  ".join(parts)
    half = (len(parts) + 1) // 2
    left, right = (
        _union(side) if len(side) == 1 else f"(\n  {_union(side)}\n)"
        for side in (parts[:half], parts[half:])
    )
    return f"{left}\nor\n  {right}"


def quorum_down(down: str, reporting: str, quorum: int | str) -> str:
    """1 when the quorum of the reporting probers sees the service down, else 0: ``down`` and
    ``reporting`` are PromQL expressions counting the probers."""
    if quorum == "all":
        return f"{down} >= bool {reporting}"
    return f"{down} >= bool clamp_max({reporting}, {quorum})"


def _fleet_down(up: str, quorum: int | str) -> str:
    """The quorum's verdict from the probers' own series, not from the recorded counts: the
    SLI is then one rule from the scrape, and an engine that writes each recorded series back
    before the next rule can read it (vmalert) adds no delay or jitter to its instants."""
    if quorum == "all":
        # Every reporting prober sees it down exactly when the best of them does.
        return f"1 - max without ({PROBER_LABELS}) ({up})"
    reporting = f"count without ({PROBER_LABELS}) ({up})"
    down = f"(count without ({PROBER_LABELS}) ({up} == 0) or {reporting} * 0)"
    return quorum_down(down, reporting, quorum)


def _fleet_up(up: str, quorum: int | str) -> str:
    """1 - :func:`_fleet_down`, written with the fewest operations over every service: the
    quorum "all" is the best prober's state itself."""
    if quorum == "all":
        return f"max without ({PROBER_LABELS}) ({up})"
    return f"1 - (\n  {_fleet_down(up, quorum)}\n)"


def fleet_rules(
    environment: Environment, windows: BurnWindows, options: AlertingOptions
) -> list[dict[str, Any]]:
    """The fleet SLI of every service of ``environment``: the instant state folded over the
    probers with the quorum, then availability, burn rate and error budget per window."""
    env = environment.name
    # A prober whose target is down leaves the fold at once: federation keeps serving its
    # last samples for the lookback delta (5m), staleness markers do not cross /federate.
    up = (
        f"({_selector(m.SERVICE_UP, environment=env)}"
        f' unless on (job, instance) (up{{job="{options.job}"}} == 0))'
    )
    labels = {"environment": env}

    def record(name: str, expr: str, **extra: str) -> dict[str, Any]:
        return {"record": name, "expr": expr, "labels": {**labels, **extra}}

    rules = [
        record(FLEET_REPORTING, f"count without ({PROBER_LABELS}) ({up})"),
        record(
            FLEET_DOWN_PROBERS,
            f"count without ({PROBER_LABELS}) ({up} == 0)\n"
            f"or\n{_selector(FLEET_REPORTING, environment=env)} * 0",
        ),
        record(FLEET_DOWN, _fleet_down(up, options.quorum)),
        record(FLEET_SLI, f"{_fleet_up(up, options.quorum)}\n" + _not_in_maintenance(env)),
    ]
    sli = _selector(FLEET_SLI, environment=env)
    recorded: list[float] = []
    for window in fleet_windows(environment, windows):
        name = format_duration(window)
        sources = [w for w in recorded if window % w == 0]
        if sources:
            good = _chained(FLEET_GOOD, env, window, max(sources))
            samples = _chained(FLEET_SAMPLES, env, window, max(sources))
        else:  # the base window, or one the stages do not divide
            # 1ms short: Prometheus 2 ranges include their left end, and the windows
            # chained from this one must not share an instant.
            span = prom_duration(window - 0.001)
            good = f"sum_over_time({sli}[{span}])"
            samples = f"count_over_time({sli}[{span}])"
        rules += [
            record(FLEET_GOOD, good, window=name),
            record(FLEET_SAMPLES, samples, window=name),
        ]
        recorded.append(window)
    rules.append(
        record(
            FLEET_AVAILABILITY,
            # No ``> 0`` guard: a recorded count is at least 1 (no instant: no series), and the
            # comparison over every window's series cost as much as the division.
            f"{_selector(FLEET_GOOD, environment=env)}\n"
            f"/\n{_selector(FLEET_SAMPLES, environment=env)}",
        )
    )
    by_objective: dict[float, list[str]] = {}
    for service in environment.services:
        if service.objective is not None:
            by_objective.setdefault(service.objective, []).append(service.name)
    slo_window = format_duration(environment.window)
    # The commonest objective covers every service but those with another one, so a service
    # a prober reports before the rules are regenerated still gets it.
    common = max(by_objective, key=lambda o: len(by_objective[o]), default=None)
    for objective, services in by_objective.items():
        budget = _number(1 - objective / 100)
        others = sorted(n for o, names in by_objective.items() if o != objective for n in names)
        if objective != common:
            matcher = f', service=~"{"|".join(services)}"'
        elif others:
            matcher = f', service!~"{"|".join(others)}"'
        else:
            matcher = ""
        availability = f'{FLEET_AVAILABILITY}{{environment="{env}"{matcher}}}'
        slo = f'{FLEET_AVAILABILITY}{{environment="{env}"{matcher}, window="{slo_window}"}}'
        rules += [
            record(FLEET_BURN_RATE, f"(1 - {availability}) / {budget}"),
            record(FLEET_BUDGET, f"1 - max without (window) (1 - {slo}) / {budget}"),
        ]
    return rules


def burn_rate_alerts(
    environment: Environment, windows: BurnWindows, options: AlertingOptions
) -> list[dict[str, Any]]:
    """One alert per table row that fits the environment's SLO window; none for best effort."""
    if TIERS[environment.tier].best_effort:
        return []
    env = environment.name
    slo_window = format_duration(environment.window)
    alerts = []
    for scaled in windows.for_window(environment.window):
        row = scaled.row
        long, short, factor = format_duration(row.long), format_duration(row.short), scaled.factor
        scaling = (
            ""
            if environment.window == windows.base_window
            else f" (factor {_number(row.factor)} for {format_duration(windows.base_window)},"
            f" scaled to {slo_window})"
        )
        expr = _burning(FLEET_BURN_RATE, env, long, short, factor)
        alerts.append(
            _alert(
                "MonaiSloErrorBudgetBurn",
                expr,
                {
                    "severity": row.severity,
                    "environment": env,
                    "long_window": long,
                    "short_window": short,
                },
                {
                    "summary": f"{WHERE} burns its error budget "
                    f'{{{{ printf "%.1f" $value }}}}x as fast as its objective allows',
                    "description": f"Burn rate above {_number(factor)} over both the last {long}"
                    f" and {short}: {scaled.budget_share:.0%} of the {slo_window} error budget"
                    f" gone in {long}{scaling}.",
                    "budget_left": BUDGET_LEFT,
                    "runbook": "Run `monai-slo status` on a prober; "
                    f'{m.total(m.CHECK_FAILURES)}{{environment="{{{{ $labels.environment }}}}",'
                    'service="{{ $labels.service }}"} says why its checks fail. Planned '
                    "work? Start a maintenance window (`monai-slo maintenance start`).",
                },
                options,
            )
        )
    return alerts


def _quorum_fold(metric: str, env: str, quorum: int | str, *, worst: str, best: str) -> str:
    """``metric`` per check and window as the quorum of its reporting probers sees it: the
    ``best`` value (min/max) of the ``worst`` (topk/bottomk) k of them ('all': of every one;
    with fewer than k reporting, of those)."""
    selector = _selector(metric, environment=env)
    if quorum == "all":
        return f"{best} without ({PROBER_LABELS}) ({selector})"
    return (
        f"{best} without ({PROBER_LABELS}) (\n"
        f"  {worst} without ({PROBER_LABELS}) ({quorum}, {selector})\n)"
    )


def latency_fleet_rules(environment: Environment, options: AlertingOptions) -> list[dict[str, Any]]:
    """The fleet latency burn rate and budget left of every check with a latency objective."""
    env = environment.name
    quorum = options.quorum
    return [
        {
            "record": FLEET_LATENCY_BURN_RATE,
            "expr": _quorum_fold(m.LATENCY_BURN_RATE, env, quorum, worst="topk", best="min"),
            "labels": {"environment": env},
        },
        {
            "record": FLEET_LATENCY_BUDGET,
            "expr": _quorum_fold(
                m.LATENCY_ERROR_BUDGET_REMAINING_RATIO, env, quorum, worst="bottomk", best="max"
            ),
            "labels": {"environment": env},
        },
    ]


def latency_burn_alerts(
    environment: Environment, windows: BurnWindows, options: AlertingOptions
) -> list[dict[str, Any]]:
    """Per row that fits the SLO window, one alert over every check of the environment with a
    latency objective: both windows of its fleet burn rate spend its budget of slow runs
    faster than the row's factor. None for best effort, as for availability."""
    if TIERS[environment.tier].best_effort:
        return []
    env = environment.name
    slo_window = format_duration(environment.window)
    alerts = []
    for scaled in windows.for_window(environment.window):
        row = scaled.row
        long, short, factor = format_duration(row.long), format_duration(row.short), scaled.factor
        expr = _burning(FLEET_LATENCY_BURN_RATE, env, long, short, factor)
        alerts.append(
            _alert(
                "MonaiSloLatencyBudgetBurn",
                expr,
                {
                    "severity": row.severity,
                    "environment": env,
                    "long_window": long,
                    "short_window": short,
                },
                {
                    "summary": f"check {{{{ $labels.check }}}} of {WHERE} is too slow: it burns "
                    f'its latency budget {{{{ printf "%.1f" $value }}}}x as fast as its '
                    "objective allows",
                    "description": f"Latency burn rate above {_number(factor)} over both the"
                    f" last {long} and {short}: {scaled.budget_share:.0%} of the {slo_window}"
                    f" budget of slow runs gone in {long}.",
                    "budget_left": LATENCY_BUDGET_LEFT,
                    "runbook": f"{m.CHECK_DURATION_SECONDS} and {m.LATENCY_THRESHOLD_SECONDS} of "
                    "the check show how slow it is against its threshold; `monai-slo status` "
                    "on a prober shows its latency per window.",
                },
                options,
            )
        )
    return alerts


def _checks_selector(env: str, refs: Sequence[CheckRef]) -> str:
    """``CHECK_UP`` of exactly these checks: one selector per service, its checks by name."""
    by_service: dict[str, list[str]] = {}
    for ref in refs:
        by_service.setdefault(ref.service, []).append(ref.config.name)
    return "\nor\n".join(
        f'{CHECK_UP}{{environment="{env}", service="{service}", check=~"{"|".join(names)}"}}'
        for service, names in by_service.items()
    )


def check_down_alerts(environment: Environment, options: AlertingOptions) -> list[dict[str, Any]]:
    """Fires once a check has been down on every prober for N-1 of its intervals: ~N failed
    runs. One alert per distinct interval, not per check (1,000 rules of one series each cost
    more to evaluate than the series): the commonest interval covers every check but those
    with another one, so a check a prober reports before the rules are regenerated is
    covered too."""
    env = environment.name
    runs = options.check_down_after
    by_interval: dict[float, list[CheckRef]] = {}
    for service in environment.services:
        for ref in service.checks:
            by_interval.setdefault(ref.config.interval, []).append(ref)
    common = max(by_interval, key=lambda i: len(by_interval[i]), default=None)
    alerts = []
    for interval, refs in sorted(by_interval.items()):
        others = [r for i, rs in by_interval.items() if i != interval for r in rs]
        if interval == common:
            down = f"({_selector(CHECK_UP, environment=env)} == 0)"
            if others:
                down += f"\nunless on (service, check)\n({_checks_selector(env, others)})"
        else:
            down = f"(\n{_checks_selector(env, refs)}\n) == 0"
        wait = (runs - 1) * interval
        alerts.append(
            _alert(
                "MonaiSloCheckDown",
                f"{down}\n" + _not_in_maintenance(env),
                # Alerts of one name need a label apart (promtool's duplicate-rule lint).
                {"severity": "ticket", "environment": env}
                | ({"check_interval": format_duration(interval)} if len(by_interval) > 1 else {}),
                {
                    "summary": f"check {{{{ $labels.check }}}} ({{{{ $labels.kind }}}}) of {WHERE} "
                    f"failed {runs} run{'s' if runs > 1 else ''} in a row on every prober",
                    "description": f"{m.CHECK_UP} has been 0 for {prom_duration(wait)}"
                    f" ({runs} runs every {format_duration(interval)}).",
                    "budget_left": BUDGET_LEFT,
                    "runbook": "`monai-slo check --service {{ $labels.service }}` on a prober "
                    f"shows the failure reason; {m.total(m.CHECK_FAILURES)} counts them by reason.",
                },
                options,
                for_=wait,
            )
        )
    return alerts


def no_data_alert(service: Service, options: AlertingOptions) -> dict[str, Any]:
    """No prober reports the service: every daemon is gone, or none gets results any more."""
    staleness = max(ref.config.staleness for ref in service.checks)
    selector = _selector(m.SERVICE_UP, environment=service.environment, service=service.name)
    return _alert(
        "MonaiSloNoData",
        f"absent({selector})",
        {
            "severity": "ticket",
            "tier": str(service.tier),
            "environment": service.environment,
            "service": service.name,
            # the job expected to report it: lets AllProbersDown inhibit these
            "job": options.job,
        },
        {
            "summary": f"no prober reports {WHERE}: its availability is not being measured",
            "description": f"{m.SERVICE_UP} is absent on every prober: the daemons are "
            "down or not scraped, or none has a recent result for any of its checks.",
            "runbook": "Is `monai-slo run` up on the probers and scraped (the up metric)? "
            "Are its checks scheduled (`monai-slo status`)?",
        },
        options,
        for_=max(NO_DATA_MIN_FOR, staleness),
    )


def environment_group(
    environment: Environment, windows: BurnWindows, options: AlertingOptions
) -> dict[str, Any]:
    env = environment.name
    rules: list[dict[str, Any]] = [
        {
            "record": record,
            "expr": f"{op} without ({PROBER_LABELS}) ({_selector(metric, environment=env)})",
            # A no-op on the output; tells promtool's duplicate-rule lint the groups apart.
            "labels": {"environment": env},
        }
        for record, op, metric in (
            (*RECORDINGS, *LATENCY_RECORDINGS) if _has_latency(environment) else RECORDINGS
        )
    ]
    rules += fleet_rules(environment, windows, options)
    rules += burn_rate_alerts(environment, windows, options)
    if _has_latency(environment):
        rules += latency_fleet_rules(environment, options)
        rules += latency_burn_alerts(environment, windows, options)
    rules += check_down_alerts(environment, options)
    rules.append(
        _alert(
            "MonaiSloGpuFatal",
            f"({_selector(CHECK_UP, environment=env, kind='gpu')} == 0)\n"
            + _not_in_maintenance(env),
            {"severity": "page", "environment": env},
            {
                "summary": f"GPU check {{{{ $labels.check }}}} of {WHERE} reports a fatal "
                "GPU condition on every prober",
                "description": "A gpu check fails only for fatal conditions (GPU lost, "
                "reset required, critical XID, uncorrected ECC, fewer GPUs than expected).",
                "budget_left": BUDGET_LEFT,
                "runbook": "`monai-slo check --service {{ $labels.service }}` shows the "
                "condition; see nvidia-smi -q and the kernel log for XIDs.",
            },
            options,
        )
    )
    rules += [no_data_alert(service, options) for service in environment.services]
    rules.append(
        _alert(
            "MonaiSloMaintenance",
            f"{_selector(MAINTENANCE, environment=env)} == 1",
            {"severity": "info", "environment": env},
            {
                "summary": f"{WHERE} is in planned maintenance",
                "description": "Its check and burn-rate alerts are held back meanwhile (in "
                "the rules, and by Alertmanager inhibition); the time is left out of its SLI.",
            },
            options,
        )
    )
    return {"name": f"monai-slo:{env}", "rules": rules}


def _has_latency(environment: Environment) -> bool:
    return any(ref.config.latency is not None for s in environment.services for ref in s.checks)


def daemon_group(config: Config, options: AlertingOptions) -> dict[str, Any]:
    job = options.job
    tier = str(_highest_tier(config))
    return {
        "name": "monai-slo:daemon",
        "rules": [
            _alert(
                "MonaiSloDaemonDown",
                f'up{{job="{job}"}} == 0',
                {"severity": "ticket", "tier": tier},
                {
                    "summary": "monai-slo prober {{ $labels.instance }} is down or not "
                    "answering scrapes",
                    "description": "Other probers of the job, if any, keep measuring.",
                    "runbook": "systemctl status monai-slo; journalctl -u monai-slo on that "
                    "host; curl http://{{ $labels.instance }}/-/healthy",
                },
                options,
                for_=60.0,
            ),
            _alert(
                "MonaiSloAllProbersDown",
                f'absent(up{{job="{job}"}} == 1)',
                {"severity": "page", "tier": tier, "job": job},
                {
                    "summary": f"no monai-slo prober of job {job} is up: no SLO is being "
                    "measured and no outage would alert",
                    "description": f"Every target of job {job} fails its scrapes, or the job "
                    "is missing from the Prometheus configuration.",
                    "runbook": "Start monai-slo on a prober; check the scrape config.",
                },
                options,
                for_=120.0,
            ),
            _alert(
                "MonaiSloConfigReloadFailed",
                f'{m.CONFIG_LAST_RELOAD_SUCCESSFUL}{{job="{job}"}} == 0',
                {"severity": "ticket", "tier": tier},
                {
                    "summary": "monai-slo on {{ $labels.instance }} rejected its new config "
                    "and keeps running the previous one",
                    "description": "The last SIGHUP reload failed validation.",
                    "runbook": "`monai-slo validate -c FILE` on that host says what is wrong.",
                },
                options,
                for_=60.0,
            ),
        ],
    }


def generate_rules(
    config: Config,
    options: AlertingOptions | None = None,
    windows: BurnWindows | None = None,
) -> dict[str, Any]:
    """The rule file for ``config`` as a document (``groups: [...]``)."""
    options = options or config.alerting
    windows = windows or load_burn_windows()
    groups = [environment_group(e, windows, options) for e in config.environments]
    groups.append(daemon_group(config, options))
    return {"groups": groups}


def unreachable_warnings(config: Config, windows: BurnWindows | None = None) -> list[str]:
    """Rows whose scaled factor a total outage cannot reach for some service's objective."""
    windows = windows or load_burn_windows()
    warnings = []
    for service in config.services():
        if service.objective is None:
            continue
        ceiling = max_burn_rate(service.objective)
        for scaled in windows.for_window(service.window):
            if scaled.factor >= ceiling:
                warnings.append(
                    f"{service.environment}/{service.name}: the {scaled.row.severity} alert over "
                    f"{format_duration(scaled.row.long)} and {format_duration(scaled.row.short)} "
                    f"can never fire: its threshold {_number(scaled.factor)} (scaled to a "
                    f"{format_duration(service.window)} window) is at or above the burn rate of "
                    f"a total outage at {service.objective:g}% ({_number(ceiling)})"
                )
    return warnings


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL expressions) as literal blocks, so they read as written."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_rules(config: Config, options: AlertingOptions | None = None) -> str:
    """The rule file's text, with a header naming its source."""
    document = generate_rules(config, options)
    header = (
        "# Prometheus rules for monai-slo, generated by "
        f"`monai-slo rules -c {Path(config.source).name}`.\n"
        "# Do not edit: change the config and regenerate. Burn-rate windows and factors:\n"
        "# monai_slo/slo/burn_windows.yaml (scaled to each environment's SLO window).\n"
    )
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
    return header + body
