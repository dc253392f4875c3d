"""docker-compose.yml, Dockerfile and .env.example are valid and agree with each other."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tradewire_common.config import HttpPorts

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
TRADEWIRE_SERVICES = ["datafeed", "signals", "risk", "execution", "ledger"]


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    result: dict[str, Any] = compose["services"]
    return result


def _run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _published(service: dict[str, Any]) -> set[tuple[int, int]]:
    """(host port, container port) pairs from short-syntax ``[ip:]host:container`` entries."""
    pairs = set()
    for entry in service.get("ports", []):
        host, container = str(entry).split(":")[-2:]
        pairs.add((int(host), int(container)))
    return pairs


def test_compose_file_validates_against_the_compose_spec_schema() -> None:
    result = _run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_defines_nats_and_the_five_tradewire_services(services: dict[str, Any]) -> None:
    assert set(services) == {"nats", *TRADEWIRE_SERVICES}


def test_every_depends_on_target_is_a_defined_service(services: dict[str, Any]) -> None:
    for name, service in services.items():
        targets = set(service.get("depends_on", {}))
        assert targets <= set(services), f"{name} depends on undefined {targets - set(services)}"
    for name in TRADEWIRE_SERVICES:
        assert services[name]["depends_on"]["nats"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", TRADEWIRE_SERVICES)
def test_service_healthcheck_probes_the_port_it_publishes_and_listens_on(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    probe = " ".join(service["healthcheck"]["test"])
    match = re.search(r"http://127\.0\.0\.1:(\d+)/readyz", probe)
    assert match, f"{name} healthcheck does not probe /readyz: {probe}"
    port = int(match.group(1))
    assert _published(service) == {(port, port)}
    assert getattr(HttpPorts(), name) == port, "the service's default HTTP port differs"
    assert service["environment"]["TRADEWIRE__HTTP__HOST"] == "0.0.0.0"


@pytest.mark.parametrize("name", TRADEWIRE_SERVICES)
def test_service_runs_itself_from_the_one_image_against_the_nats_service(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert service["command"] == ["run", name, "--nats", "nats://nats:4222"]
    assert (service["build"], service["image"]) == (".", "tradewire:latest")
    assert service["restart"] == "unless-stopped"
    assert "TRADEWIRE_API_TOKEN" in service["environment"]


def test_env_example_provides_the_api_token_and_env_itself_is_gitignored() -> None:
    assert re.search(r"^TRADEWIRE_API_TOKEN=\S+", (ROOT / ".env.example").read_text(), re.MULTILINE)
    assert ".env" in (ROOT / ".gitignore").read_text().split()


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
    assert re.search(r"^USER \d+", text, re.MULTILINE), "the image must not run as root"
