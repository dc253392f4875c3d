"""deploy/k8s: both kustomize overlays render, pass the Kubernetes schemas, and mean what they should.

Offline only: ``kubectl kustomize`` renders, ``kubernetes-validate --strict`` checks the rendered objects
against the pinned Kubernetes version's schemas (the prometheus-operator kinds only warn there, so the
PrometheusRule's rules go through ``promtool check rules``), the bundled ``nats-server -t`` parses the
NATS configuration, and the rest are semantic checks on the rendered YAML.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

import pytest
from ruamel.yaml import YAML

from tradewire_common.cli.embedded_nats import nats_server_binary
from tradewire_common.config import HttpPorts, load_config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.30.0"
OVERLAYS = {"dev": "tradewire-dev", "prod": "tradewire"}
SERVICES = ("datafeed", "signals", "risk", "execution", "ledger", "notifier")
SECRET = "tradewire-secrets"
CRD_KINDS = {"PrometheusRule", "ServiceMonitor"}
KUBECTL = shutil.which("kubectl")
PROMTOOL = shutil.which("promtool")

needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed: it renders the overlays")
pytestmark = needs_kubectl

Doc = dict[str, Any]


def _load_generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_generate", K8S / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generate()


def _kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run([KUBECTL, "kustomize", str(directory)], capture_output=True, text=True, timeout=120)


class Manifests:
    """The objects of one rendered overlay."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.docs: list[Doc] = [d for d in YAML(typ="safe").load_all(text) if d]

    def of_kind(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Doc:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def configmap(self, ref: str) -> dict[str, str]:
        data: dict[str, str] = self.get("ConfigMap", ref).get("data") or {}
        return data

    def workloads(self) -> list[Doc]:
        return self.of_kind("Deployment") + self.of_kind("StatefulSet")

    def container(self, kind: str, name: str, container: str | None = None) -> Doc:
        containers = self.get(kind, name)["spec"]["template"]["spec"]["containers"]
        wanted = container or name
        return next(c for c in containers if c["name"] == wanted)

    def env(self, container: Doc) -> dict[str, Any]:
        """Environment of a container: plain values as str, secret references as ("secret", name, key)."""
        env: dict[str, Any] = {}
        for source in container.get("envFrom", []):
            env.update(self.configmap(source["configMapRef"]["name"]))
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            elif "secretKeyRef" in var.get("valueFrom", {}):
                ref = var["valueFrom"]["secretKeyRef"]
                env[var["name"]] = ("secret", ref["name"], ref["key"])
            else:
                env[var["name"]] = ("field", var["valueFrom"])
        return env

    def secret_name(self) -> str:
        """The Secret's name as rendered (dev's generator adds a content hash)."""
        names = {
            ref[1]
            for workload in self.workloads()
            for c in workload["spec"]["template"]["spec"]["containers"]
            for ref in self.env(c).values()
            if isinstance(ref, tuple) and ref[0] == "secret"
        }
        assert len(names) == 1, names
        return str(names.pop())


def _all_containers(manifests: Manifests) -> Iterator[tuple[str, Doc]]:
    for workload in manifests.workloads():
        spec = workload["spec"]["template"]["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            yield f"{workload['kind']}/{workload['metadata']['name']}/{c['name']}", c


def _selects(selector: Doc | None, labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (an empty selector selects everything)."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and key in labels and labels[key] in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def _pod_labels(workload: Doc) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


_UNITS = {"m": Decimal("0.001"), "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30)}


def _quantity(value: str | int) -> Decimal:
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi)?", str(value))
    assert match, f"unexpected quantity {value!r}"
    return Decimal(match.group(1)) * _UNITS.get(match.group(2) or "", Decimal(1))


# --- rendering -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/k8s with a generated dev secrets.env (the real one is never committed)."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env", "__pycache__"))
    generate.write_dev_secrets(copy / "overlays" / "dev" / "secrets.env")
    return copy


@pytest.fixture(scope="module")
def rendered(tree: Path) -> dict[str, Manifests]:
    out = {}
    for overlay in OVERLAYS:
        result = _kustomize(tree / "overlays" / overlay)
        assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
        out[overlay] = Manifests(result.stdout)
    return out


@pytest.fixture(params=list(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def manifests(rendered: dict[str, Manifests], overlay: str) -> Manifests:
    return rendered[overlay]


def test_each_overlay_renders_nats_every_service_and_the_monitoring_objects_into_its_namespace(
    manifests: Manifests, overlay: str
) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in manifests.docs}
    expected = {
        ("Namespace", OVERLAYS[overlay]),
        ("StatefulSet", "nats"),
        ("Service", "nats"),
        ("Service", "nats-headless"),
        ("HorizontalPodAutoscaler", "signals"),
        ("NetworkPolicy", "default-deny"),
        ("PrometheusRule", "tradewire"),
        ("ServiceMonitor", "tradewire"),
        ("ServiceMonitor", "nats"),
        ("ConfigMap", "tradewire-grafana-dashboards"),
        *(("Deployment", name) for name in SERVICES),
        *(("Service", name) for name in SERVICES),
    }
    assert expected <= kinds, f"missing: {expected - kinds}"
    for doc in manifests.docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == OVERLAYS[overlay], doc["metadata"]
    assert manifests.get("Namespace", OVERLAYS[overlay])["metadata"]["labels"] == {
        "pod-security.kubernetes.io/enforce": "restricted"
    }


def test_dev_overlay_refuses_to_render_without_its_uncommitted_secrets_env(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env", "__pycache__"))
    result = _kustomize(copy / "overlays" / "dev")
    assert result.returncode != 0
    assert "secrets.env" in result.stderr


# --- schemas ---------------------------------------------------------------------------------------


def _kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    tool = BIN / "kubernetes-validate"
    if not tool.exists():
        pytest.skip("kubernetes-validate is not installed (it is in the root pyproject's test group)")
    cmd = [str(tool), "--strict", "-k", KUBERNETES_VERSION, str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_rendered_overlay_passes_kubernetes_validate_strict_for_the_pinned_kubernetes_version(
    manifests: Manifests, overlay: str, tmp_path: Path
) -> None:
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(manifests.text)
    result = _kubernetes_validate(path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = [line for line in output.splitlines() if " passed for resource " in line]
    core = [d for d in manifests.docs if d["kind"] not in CRD_KINDS]
    assert len(passed) == len(core), output
    for line in output.splitlines():
        if line.startswith("WARN"):
            assert any(f"kind {kind} " in line for kind in CRD_KINDS), f"unexpected warning: {line}"


def test_kubernetes_validate_strict_rejects_a_misspelt_field(rendered: dict[str, Manifests], tmp_path: Path) -> None:
    path = tmp_path / "misspelt.yaml"
    path.write_text(rendered["prod"].text.replace("revisionHistoryLimit:", "revisionHistoryLimt:", 1))
    result = _kubernetes_validate(path)
    assert result.returncode != 0
    assert "'revisionHistoryLimt' was unexpected" in result.stdout + result.stderr


# --- workloads -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_its_own_command_from_the_one_image_and_serves_http_on_its_default_port(
    manifests: Manifests, name: str
) -> None:
    container = manifests.container("Deployment", name)
    assert container["args"] == ["run", name]
    assert container["image"].split("/")[-1].split(":")[0] == "tradewire"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": getattr(HttpPorts(), name)}
    service = manifests.get("Service", name)
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(manifests.get("Deployment", name)))
    assert service["spec"]["ports"] == [{"name": "http", "port": ports["http"], "targetPort": "http"}]


def test_every_deployment_probes_readyz_for_readiness_and_healthz_for_liveness(manifests: Manifests) -> None:
    deployments = manifests.of_kind("Deployment")
    assert {d["metadata"]["name"] for d in deployments} == set(SERVICES)
    for deployment in deployments:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, where
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, where
            assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, where


def test_every_container_requests_and_limits_cpu_and_memory(manifests: Manifests) -> None:
    for where, container in _all_containers(manifests):
        resources = container.get("resources", {})
        for resource in ("cpu", "memory"):
            request = resources.get("requests", {}).get(resource)
            limit = resources.get("limits", {}).get(resource)
            assert request is not None and limit is not None, f"{where}: no {resource} request and limit"
            assert _quantity(request) <= _quantity(limit), f"{where}: {resource} request above its limit"


def test_every_pod_meets_the_restricted_pod_security_standard(manifests: Manifests) -> None:
    for workload in manifests.workloads():
        pod = workload["spec"]["template"]["spec"]
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] > 0, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert pod["automountServiceAccountToken"] is False, where
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, f"{where}/{container['name']}"
            assert context["capabilities"] == {"drop": ["ALL"]}, f"{where}/{container['name']}"
            assert context["readOnlyRootFilesystem"] is True, f"{where}/{container['name']}"


def test_singleton_services_never_run_twice_and_signals_leaves_its_replica_count_to_the_autoscaler(
    manifests: Manifests,
) -> None:
    for name in SERVICES:
        spec = manifests.get("Deployment", name)["spec"]
        if name == "signals":
            assert "replicas" not in spec, "an HPA-managed Deployment must not pin replicas"
            assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        else:
            assert spec["replicas"] == 1, name
            assert spec["strategy"] == {"type": "Recreate"}, name


def test_the_only_autoscaler_scales_the_signals_deployment_out_from_two_replicas(manifests: Manifests) -> None:
    (hpa,) = manifests.of_kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "signals"}
    manifests.get("Deployment", "signals")
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    cpu_request = manifests.container("Deployment", "signals")["resources"]["requests"]["cpu"]
    assert _quantity(cpu_request) > 0, "CPU utilization needs a CPU request"


def _replicas(manifests: Manifests, workload: Doc) -> int:
    """The replica count a workload runs with (the HPA's minimum for an autoscaled one)."""
    for hpa in manifests.of_kind("HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == workload["metadata"]["name"]:
            minimum: int = hpa["spec"]["minReplicas"]
            return minimum
    replicas: int = workload["spec"].get("replicas", 1)
    return replicas


def test_every_workload_has_one_pod_disruption_budget_that_still_lets_a_node_drain(manifests: Manifests) -> None:
    workloads = manifests.workloads()
    budgets = manifests.of_kind("PodDisruptionBudget")
    covered: dict[str, str] = {}
    for pdb in budgets:
        name = pdb["metadata"]["name"]
        selected = [w for w in workloads if _selects(pdb["spec"]["selector"], _pod_labels(w))]
        assert len(selected) == 1, f"PodDisruptionBudget {name} selects {len(selected)} workloads"
        workload = selected[0]
        covered[workload["metadata"]["name"]] = name
        replicas = _replicas(manifests, workload)
        if "maxUnavailable" in pdb["spec"]:
            allowed = min(int(pdb["spec"]["maxUnavailable"]), replicas)
        else:
            allowed = replicas - int(pdb["spec"]["minAvailable"])
        assert allowed >= 1, f"PodDisruptionBudget {name} blocks every voluntary eviction of {replicas} pod(s)"
        if replicas >= 2:
            assert allowed < replicas, f"PodDisruptionBudget {name} lets every replica go at once"
    assert set(covered) == {w["metadata"]["name"] for w in workloads}


# --- secrets ---------------------------------------------------------------------------------------


def test_secrets_reach_the_pods_only_through_secret_key_refs_to_documented_keys(
    manifests: Manifests, overlay: str
) -> None:
    documented = set(generate.secret_keys()) | ({"PGPASSWORD"} if overlay == "prod" else set())
    referenced: set[str] = set()
    optional: set[str] = set()
    secret = manifests.secret_name()
    for where, container in _all_containers(manifests):
        for name, value in manifests.env(container).items():
            if re.search(r"PASSWORD|TOKEN|SECRET|URLS", name):
                assert isinstance(value, tuple) and value[0] == "secret", f"{where}: {name} is not a secretKeyRef"
            if isinstance(value, tuple) and value[0] == "secret":
                assert value[1] == secret
                referenced.add(value[2])
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef", {})
            if ref.get("optional"):
                optional.add(ref["key"])
    # a required key missing from the Secret stops the pod; only the documented optional ones may be absent
    assert optional == set(generate.OPTIONAL_SECRET_KEYS)
    assert referenced == documented | optional
    readme = (ROOT / "deploy" / "README.md").read_text()
    for key in ("TRADEWIRE_API_TOKEN", "TRADEWIRE_NATS_PASSWORD_<ROLE>", "PGPASSWORD",
                generate.NOTIFIER_WEBHOOK_TOKEN_KEY, *generate.OPTIONAL_SECRET_KEYS):
        assert f"`{key}`" in readme, f"deploy/README.md does not document the secret key {key}"


def test_dev_generates_its_secret_from_secrets_env_and_prod_expects_an_external_one(
    rendered: dict[str, Manifests],
) -> None:
    (dev_secret,) = rendered["dev"].of_kind("Secret")
    assert dev_secret["metadata"]["name"] == rendered["dev"].secret_name()
    assert dev_secret["metadata"]["name"].startswith(f"{SECRET}-"), "the generator's hash suffix rolls the pods"
    assert set(dev_secret["data"]) == set(generate.secret_keys())
    assert rendered["prod"].of_kind("Secret") == []
    assert rendered["prod"].secret_name() == SECRET


def test_the_base_defines_no_secret_and_no_committed_file_carries_secret_values() -> None:
    result = _kustomize(K8S / "base")
    assert result.returncode == 0, result.stderr
    assert [d for d in Manifests(result.stdout).docs if d["kind"] == "Secret"] == []
    committed = subprocess.run(
        ["git", "ls-files", "deploy/k8s"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert committed, "deploy/k8s is not committed"
    for path in committed:
        text = (ROOT / path).read_text()
        assert not re.search(r"^kind:\s*Secret\s*$", text, re.M), f"{path} defines a Secret"
        if Path(path).name != "kustomization.yaml":
            continue
        for generator in YAML(typ="safe").load(text).get("secretGenerator", []):
            assert set(generator) <= {"name", "envs", "options"}, f"{path}: secret values in the kustomization"
            for env_file in generator.get("envs", []):
                source = str(Path(path).parent / env_file)
                assert source not in committed, f"{source} is committed"
                ignored = subprocess.run(["git", "check-ignore", "-q", source], cwd=ROOT)
                assert ignored.returncode == 0, f"{source} must be git-ignored"


def test_dev_secrets_get_a_fresh_random_value_for_every_key_and_are_never_overwritten(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    generate.write_dev_secrets(first)
    generate.write_dev_secrets(second)
    values = dict(line.split("=", 1) for line in first.read_text().splitlines())
    assert set(values) == set(generate.secret_keys())
    # nats-server reads a variable as a string only if it does not look like a number or a duration.
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{31,}", v) for v in values.values())
    assert first.read_text() != second.read_text()
    assert first.stat().st_mode & 0o077 == 0
    with pytest.raises(SystemExit, match="exists"):
        generate.write_dev_secrets(first)


# --- NATS ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_service_connects_to_the_nats_service_as_its_own_user_with_its_own_password(
    manifests: Manifests, name: str
) -> None:
    env = manifests.env(manifests.container("Deployment", name))
    assert env["TRADEWIRE__BUS__URL"] == "nats://nats:4222"
    assert env["TRADEWIRE__BUS__USER"] == name
    assert env["TRADEWIRE_NATS_PASSWORD"] == (
        "secret",
        manifests.secret_name(),
        f"TRADEWIRE_NATS_PASSWORD_{name.upper()}",
    )
    service = manifests.get("Service", "nats")
    assert service["spec"]["ports"][0]["port"] == 4222
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(manifests.get("StatefulSet", "nats")))


@pytest.mark.parametrize("name", SERVICES)
def test_service_environment_gives_a_valid_tradewire_configuration(
    manifests: Manifests, overlay: str, name: str
) -> None:
    env = manifests.env(manifests.container("Deployment", name))
    plain = {key: value for key, value in env.items() if isinstance(value, str)}
    config = load_config(ROOT / "config" / "tradewire.toml", plain)
    assert config.http.host == "0.0.0.0"
    assert config.bus.url == "nats://nats:4222"
    if name == "ledger":
        assert config.ledger.backend == ("postgres" if overlay == "prod" else "sqlite")


def _nats_config(manifests: Manifests) -> dict[str, str]:
    volumes = manifests.get("StatefulSet", "nats")["spec"]["template"]["spec"]["volumes"]
    config = next(v for v in volumes if v["name"] == "config")
    return manifests.configmap(config["configMap"]["name"])


def test_nats_runs_three_jetstream_nodes_with_a_persistent_volume_each(manifests: Manifests) -> None:
    nats = manifests.get("StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    assert nats["spec"]["podManagementPolicy"] == "Parallel"
    headless = manifests.get("Service", nats["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    (claim,) = nats["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert _quantity(claim["spec"]["resources"]["requests"]["storage"]) >= _quantity("1Gi")
    conf = _nats_config(manifests)["nats.conf"]
    store_dir = re.search(r"jetstream\s*\{[^}]*store_dir:\s*(\S+)", conf)
    assert store_dir, "JetStream is not enabled with a store_dir"
    container = manifests.container("StatefulSet", "nats")
    limit = re.search(r"jetstream\s*\{[^}]*max_file_store:\s*\$(\w+)", conf)
    assert limit, "JetStream's file store has no limit"
    store_limit = _quantity(manifests.env(container)[limit.group(1)].replace("B", "i"))
    volume = _quantity(claim["spec"]["resources"]["requests"]["storage"])
    assert volume * Decimal("0.7") <= store_limit <= volume * Decimal("0.9"), "file store limit not ~80% of the volume"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == store_dir.group(1)
    cluster_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "cluster")
    routes = re.findall(r"nats://([\w.-]+):(\d+)", conf.split("cluster", 1)[1])
    assert routes == [(f"nats-{i}.{headless['metadata']['name']}", str(cluster_port)) for i in range(3)]


def test_nats_config_is_accepted_by_nats_server_with_every_password_from_the_secret(
    manifests: Manifests, tmp_path: Path
) -> None:
    for filename, text in _nats_config(manifests).items():
        (tmp_path / filename).write_text(text)
    env = manifests.env(manifests.container("StatefulSet", "nats"))
    passwords = {name for name, value in env.items() if isinstance(value, tuple) and value[0] == "secret"}
    auth = (tmp_path / "auth.conf").read_text()
    assert set(re.findall(r"\$(TRADEWIRE_NATS_PASSWORD_\w+)", auth)) == passwords
    roles = {"DATAFEED", "SIGNALS", "RISK", "EXECUTION", "LEDGER", "NOTIFIER", "OPERATOR"}
    assert {f"TRADEWIRE_NATS_PASSWORD_{role}" for role in roles} <= passwords
    plain = {name: value for name, value in env.items() if isinstance(value, str)}
    secrets_env = {name: generate.random_secret() for name in passwords}
    environ = {"PATH": "/usr/bin:/bin", "POD_NAME": "nats-0", **plain, **secrets_env}
    cmd = [nats_server_binary(), "-t", "-c", str(tmp_path / "nats.conf")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=environ)
    assert result.returncode == 0, result.stdout + result.stderr
    missing = {k: v for k, v in environ.items() if k != "TRADEWIRE_NATS_PASSWORD_LEDGER"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=missing)
    assert result.returncode != 0 and "TRADEWIRE_NATS_PASSWORD_LEDGER" in result.stdout + result.stderr


# --- ledger storage --------------------------------------------------------------------------------


def test_prod_ledger_stores_in_postgresql_with_the_password_from_the_secret(rendered: dict[str, Manifests]) -> None:
    prod = rendered["prod"]
    env = prod.env(prod.container("Deployment", "ledger"))
    assert env["TRADEWIRE__LEDGER__BACKEND"] == "postgres"
    dsn = urlparse(env["TRADEWIRE__LEDGER__DSN"])
    assert dsn.password is None, "the DSN must not carry the password"
    assert env["PGPASSWORD"] == ("secret", SECRET, "PGPASSWORD")
    service = prod.get("Service", dsn.hostname or "")
    assert service["spec"]["ports"][0]["port"] == (dsn.port or 5432)
    postgres = prod.get("StatefulSet", "postgres")
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(postgres))
    pg_env = prod.env(prod.container("StatefulSet", "postgres"))
    assert pg_env["POSTGRES_PASSWORD"] == ("secret", SECRET, "PGPASSWORD")
    assert (pg_env["POSTGRES_USER"], "/" + pg_env["POSTGRES_DB"]) == (dsn.username, dsn.path)
    assert postgres["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_dev_ledger_stores_sqlite_on_a_persistent_volume_claim(rendered: dict[str, Manifests]) -> None:
    dev = rendered["dev"]
    container = dev.container("Deployment", "ledger")
    env = dev.env(container)
    assert env["TRADEWIRE__LEDGER__BACKEND"] == "sqlite"
    db_dir = str(Path(env["TRADEWIRE__LEDGER__PATH"]).parent)
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == db_dir)
    volumes = dev.get("Deployment", "ledger")["spec"]["template"]["spec"]["volumes"]
    volume = next(v for v in volumes if v["name"] == mount["name"])
    claim = dev.get("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "postgres" not in {d["metadata"]["name"] for d in dev.workloads()}


# --- network policies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str] = field(hash=False)
    ports: tuple[tuple[str, int, str], ...] = ()  # (name, number, protocol)
    external: bool = False


def _pods(manifests: Manifests, namespace: str) -> list[Pod]:
    pods = []
    for workload in manifests.workloads():
        ports = tuple(
            (p.get("name", ""), p["containerPort"], p.get("protocol", "TCP"))
            for c in workload["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        )
        pods.append(Pod(workload["metadata"]["name"], namespace, _pod_labels(workload), ports))
    return pods


PROMETHEUS = Pod("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, external=True)
#: The prometheus-operator labels Alertmanager's pods so.
ALERTMANAGER = Pod("alertmanager", "monitoring", {"app.kubernetes.io/name": "alertmanager"}, external=True)
KUBE_DNS = Pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")), True)


def _peer_matches(peer: Doc, policy_namespace: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False
    ns_labels = {"kubernetes.io/metadata.name": pod.namespace}
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], ns_labels):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return _selects(peer.get("podSelector"), pod.labels)


def _port_matches(rule_ports: list[Doc] | None, dst: Pod, port: int, protocol: str) -> bool:
    if not rule_ports:
        return True
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if any(n == wanted and num == port and proto == protocol for n, num, proto in dst.ports):
                return True
        elif int(wanted) <= port <= int(entry.get("endPort") or wanted):
            return True
    return False


def _direction_allows(
    policies: list[Doc], pod: Pod, peer: Pod, direction: str, dst: Pod, port: int, proto: str
) -> bool:
    if pod.external:
        return True  # not ours: the other namespace's own policies decide
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and _selects(p["spec"]["podSelector"], pod.labels)
        and direction in p["spec"]["policyTypes"]
    ]
    if not selecting:
        return True
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(p, policy["metadata"]["namespace"], peer) for p in peers):
                continue
            if _port_matches(rule.get("ports"), dst, port, proto):
                return True
    return False


def _allowed_flows(manifests: Manifests, namespace: str) -> set[tuple[str, str, int, str]]:
    policies = manifests.of_kind("NetworkPolicy")
    pods = _pods(manifests, namespace)
    flows = set()
    for src in [*pods, PROMETHEUS, ALERTMANAGER]:
        for dst in [*pods, KUBE_DNS]:
            if src.external and dst.external:
                continue
            for _, port, proto in dst.ports:
                if _direction_allows(policies, src, dst, "Egress", dst, port, proto) and _direction_allows(
                    policies, dst, src, "Ingress", dst, port, proto
                ):
                    flows.add((src.name, dst.name, port, proto))
    return flows


def test_network_policies_deny_all_ingress_and_egress_by_default(manifests: Manifests) -> None:
    deny = manifests.get("NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny and "egress" not in deny


def test_network_policies_allow_exactly_the_flows_the_system_needs(manifests: Manifests, overlay: str) -> None:
    ports = HttpPorts()
    expected = {
        *((name, "nats", 4222, "TCP") for name in SERVICES),
        ("nats", "nats", 6222, "TCP"),
        *(("prometheus", name, getattr(ports, name), "TCP") for name in SERVICES),
        ("prometheus", "nats", 7777, "TCP"),
        ("risk", "ledger", ports.ledger, "TCP"),  # risk's rebuild from the ledger at start
        ("alertmanager", "notifier", ports.notifier, "TCP"),  # the notifier's webhook
    }
    workloads = [w["metadata"]["name"] for w in manifests.workloads()]
    expected |= {(name, "kube-dns", 53, proto) for name in workloads for proto in ("UDP", "TCP")}
    if overlay == "prod":
        expected.add(("ledger", "postgres", 5432, "TCP"))
    assert _allowed_flows(manifests, OVERLAYS[overlay]) == expected


#: Addresses the notifier's internet egress must leave out: private, carrier-grade NAT, loopback and
#: link-local (cloud metadata services) ranges, where the cluster and its neighbours live.
NON_PUBLIC = {"10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
              "::1/128", "fc00::/7", "fe80::/10"}


def test_only_the_notifier_may_reach_public_addresses_and_only_on_https_and_smtp_submission(
    manifests: Manifests,
) -> None:
    workloads = manifests.workloads()
    outside = []
    for policy in manifests.of_kind("NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            name = policy["metadata"]["name"]
            assert rule.get("to"), f"{name}: an egress rule without `to` allows everything"
            blocks = [peer["ipBlock"] for peer in rule["to"] if "ipBlock" in peer]
            if not blocks:
                continue
            outside.append(name)
            selector = policy["spec"]["podSelector"]
            selected = [w["metadata"]["name"] for w in workloads if _selects(selector, _pod_labels(w))]
            assert selected == ["notifier"], f"{name}: {selected} may leave the cluster"
            assert len(blocks) == len(rule["to"]), f"{name}: ipBlocks and pod peers in one rule"
            assert {block["cidr"] for block in blocks} == {"0.0.0.0/0", "::/0"}
            assert set().union(*(block.get("except", []) for block in blocks)) == NON_PUBLIC
            assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 443), ("TCP", 587)]
    assert outside == ["notifier"]


def test_risk_rebuilds_its_context_from_the_ledger_service(manifests: Manifests) -> None:
    url = urlparse(manifests.env(manifests.container("Deployment", "risk"))["TRADEWIRE__RISK__LEDGER_URL"])
    service = manifests.get("Service", url.hostname or "")
    assert service["spec"]["ports"][0]["port"] == url.port == HttpPorts().ledger
    assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(manifests.get("Deployment", "ledger")))


def test_network_policy_evaluation_sees_a_missing_flow() -> None:
    """The evaluator itself: an egress rule alone is not enough while the destination accepts no ingress."""

    def workload(kind: str, name: str, ports: list[Doc]) -> Doc:
        pod = {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "ports": ports}]}}
        return {"kind": kind, "metadata": {"name": name}, "spec": {"template": pod}}

    def policy(name: str, selector: Doc, types: list[str], **rules: Any) -> Doc:
        spec = {"podSelector": selector, "policyTypes": types, **rules}
        return {"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": "ns"}, "spec": spec}

    docs = [
        workload("StatefulSet", "nats", [{"name": "client", "containerPort": 4222}]),
        workload("Deployment", "risk", []),
        policy("deny", {}, ["Ingress", "Egress"]),
        policy(
            "risk",
            {"matchLabels": {"app": "risk"}},
            ["Egress"],
            egress=[{"to": [{"podSelector": {"matchLabels": {"app": "nats"}}}], "ports": [{"port": "client"}]}],
        ),
    ]
    nats_ingress = policy(
        "nats",
        {"matchLabels": {"app": "nats"}},
        ["Ingress"],
        ingress=[{"from": [{"podSelector": {"matchLabels": {"app": "risk"}}}]}],
    )

    def flows(objects: list[Doc]) -> set[tuple[str, str, int, str]]:
        return _allowed_flows(Manifests("\n---\n".join(json.dumps(d) for d in objects)), "ns")

    assert flows(docs) == set()
    assert flows([*docs, nats_ingress]) == {("risk", "nats", 4222, "TCP")}


# --- monitoring ------------------------------------------------------------------------------------


def test_service_monitors_scrape_metrics_from_every_service_and_from_nats(manifests: Manifests) -> None:
    services = manifests.of_kind("Service")
    scraped: set[str] = set()
    for monitor in manifests.of_kind("ServiceMonitor"):
        assert generate.MONITORING_LABELS.items() <= monitor["metadata"]["labels"].items()
        selected = [s for s in services if _selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        assert selected, f"ServiceMonitor {monitor['metadata']['name']} selects no Service"
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["path"] == "/metrics"
            for service in selected:
                port_names = {p["name"] for p in service["spec"]["ports"]}
                if endpoint["port"] in port_names:
                    scraped.add(service["spec"]["selector"]["app.kubernetes.io/name"])
    assert scraped == {*SERVICES, "nats"}


def _expand(template: str, match: re.Match[str]) -> str:
    """``$1``/``${1}`` references of a relabel replacement (missing groups are empty)."""
    return re.sub(r"\$\{?(\d+)\}?", lambda ref: match.group(int(ref.group(1))) or "", template)


def _relabel(rules: list[Doc], labels: dict[str, str]) -> dict[str, str]:
    """Prometheus ``replace`` relabeling (the only action the ServiceMonitors use)."""
    labels = dict(labels)
    for rule in rules:
        assert rule.get("action", "replace") == "replace"
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule.get("sourceLabels", []))
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if match:
            labels[rule["targetLabel"]] = _expand(rule.get("replacement", "$1"), match)
    return labels


def test_service_monitors_give_the_targets_the_job_and_service_labels_of_the_compose_scrape_config(
    manifests: Manifests,
) -> None:
    compose_config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    if not compose_config.exists():
        pytest.skip("deploy/prometheus/prometheus.yml does not exist yet")
    expected = {
        job["job_name"]: target.get("labels", {})
        for job in YAML(typ="safe").load(compose_config.read_text())["scrape_configs"]
        if job["job_name"].startswith("tradewire-")
        for target in job.get("static_configs", [])
    }
    (endpoint,) = manifests.get("ServiceMonitor", "tradewire")["spec"]["endpoints"]
    got = {}
    for name in SERVICES:
        labels = _relabel(endpoint["relabelings"], {"__meta_kubernetes_service_name": name, "job": name})
        got[labels["job"]] = {"service": labels["service"]}
    assert got == expected


def _rendered_rule(manifests: Manifests) -> Doc:
    rule = manifests.get("PrometheusRule", "tradewire")
    assert generate.MONITORING_LABELS.items() <= rule["metadata"]["labels"].items()
    return rule


def test_prometheus_rule_carries_every_group_of_the_rule_files(manifests: Manifests) -> None:
    expected = []
    for path in sorted([*generate.RULES_DIR.glob("*.yml"), *generate.RULES_DIR.glob("*.yaml")]):
        expected += [g["name"] for g in (YAML(typ="safe").load(path.read_text()) or {}).get("groups") or []]
    assert [g["name"] for g in _rendered_rule(manifests)["spec"]["groups"]] == expected


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (tools/ops/install-prometheus.sh)")
def test_prometheus_rule_groups_pass_promtool_check_rules(rendered: dict[str, Manifests], tmp_path: Path) -> None:
    assert PROMTOOL is not None
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": _rendered_rule(rendered["prod"])["spec"]["groups"]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_grafana_dashboards_configmap_holds_every_dashboard_for_the_sidecar(manifests: Manifests) -> None:
    configmap = manifests.get("ConfigMap", "tradewire-grafana-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    data = configmap.get("data") or {}
    files = sorted(generate.DASHBOARDS_DIR.glob("*.json"))
    assert sorted(data) == [f.name for f in files]
    for path in files:
        assert json.loads(data[path.name]) == json.loads(path.read_text()), path.name


# --- generated files -------------------------------------------------------------------------------


def test_generated_files_are_up_to_date_with_their_sources() -> None:
    stale = [str(p.relative_to(ROOT)) for p in generate.stale()]
    assert not stale, f"out of date: {', '.join(stale)}; run: .venv/bin/python deploy/k8s/generate.py"


def test_generator_joins_the_groups_of_every_rule_file_and_rejects_a_duplicate_group(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    a.write_text("groups:\n  - name: one\n    rules:\n      - alert: A\n        expr: |\n          up == 0\n")
    b.write_text("groups:\n  - name: two\n    rules:\n      - record: job:up:sum\n        expr: sum(up)\n")
    doc = YAML(typ="safe").load(generate.render_prometheus_rule([a, b]))
    assert doc["kind"] == "PrometheusRule"
    assert [g["name"] for g in doc["spec"]["groups"]] == ["one", "two"]
    assert doc["spec"]["groups"][0]["rules"][0]["expr"] == "up == 0\n"
    b.write_text("groups:\n  - name: one\n    rules: []\n")
    with pytest.raises(SystemExit, match="already defined"):
        generate.render_prometheus_rule([a, b])
    assert YAML(typ="safe").load(generate.render_prometheus_rule([]))["spec"]["groups"] == []


def test_generator_puts_each_dashboard_in_the_configmap_and_an_empty_one_when_there_are_none(tmp_path: Path) -> None:
    assert YAML(typ="safe").load(generate.render_dashboards([]))["data"] == {}
    board = tmp_path / "tradewire-overview.json"
    board.write_text(json.dumps({"title": "Überblick", "panels": [{"expr": 'rate(x{a="b"}[5m])'}]}))
    data = YAML(typ="safe").load(generate.render_dashboards([board]))["data"]
    assert json.loads(data["tradewire-overview.json"]) == json.loads(board.read_text())
    board.write_text("{not json")
    with pytest.raises(SystemExit, match="invalid JSON"):
        generate.render_dashboards([board])


def test_generator_copies_only_the_authorization_blocks_of_the_nats_config() -> None:
    conf = """
port: 4222
jetstream { store_dir: "/data" }  # braces in a comment: { {
authorization {
  users: [
    {user: risk, password: $TRADEWIRE_NATS_PASSWORD_RISK, permissions: {publish: ["ord.cmd.>"]}}
    {user: ledger, password: $TRADEWIRE_NATS_PASSWORD_LEDGER}  // a } in a comment
  ]
  description: "a { in a string"
}
http: 8222
"""
    blocks = generate.extract_auth_blocks(conf)
    assert blocks.startswith("authorization {") and blocks.rstrip().endswith("}")
    assert "TRADEWIRE_NATS_PASSWORD_RISK" in blocks and "TRADEWIRE_NATS_PASSWORD_LEDGER" in blocks
    assert "jetstream" not in blocks and "http" not in blocks and "port" not in blocks
