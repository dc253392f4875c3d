"""deploy/prometheus and deploy/alertmanager: valid for the real tools, every alert unit-tested,
and every metric an expression selects is one the services export.

promtool and amtool come from Debian's prometheus and prometheus-alertmanager packages
(tools/ops/install-prometheus.sh); the tests that run them skip, saying so, when they are missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from ruamel.yaml import YAML

from tradewire_common.config import HttpPorts
from tradewire_common.metrics_catalog import exported_series_names
from tradewire_common.registry import SERVICE_NAMES

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.yml"))
#: Series Prometheus itself makes for every scrape target.
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
SEVERITIES = {"critical", "warning", "info"}
NOTIFIER_URL = "http://notifier:8106/v1/alertmanager"


def load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (bash tools/ops/install-prometheus.sh installs it as root)")
    return path


def run(*cmd: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, capture_output=True, text=True, timeout=120)


def rules() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        for group in load(path)["groups"]:
            yield from group["rules"]


ALERTS = sorted(r["alert"] for r in rules() if "alert" in r)
RECORDS = sorted(r["record"] for r in rules() if "record" in r)


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def unit_tests() -> Iterator[dict[str, Any]]:
    for path in TEST_FILES:
        yield from load(path)["tests"]


# --- the files are what the real tools accept ---------------------------------------------------

def test_the_rule_directory_has_rules_and_unit_tests() -> None:
    assert len(RULE_FILES) >= 3 and len(TEST_FILES) >= 3
    assert len(ALERTS) == len(set(ALERTS)), "alert names must be unique"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_accepts_the_rule_file(path: Path) -> None:
    result = run(tool("promtool"), "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = run(tool("promtool"), "test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_prometheus_config_and_the_rule_files_it_loads() -> None:
    result = run(tool("promtool"), "check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


def test_a_broken_unit_test_expectation_fails_promtool(tmp_path: Path) -> None:
    """The unit tests can fail: the same file with one expected annotation changed does."""
    source = PROMETHEUS / "tests" / "trading_test.yml"
    broken = tmp_path / "trading_test.yml"
    text = source.read_text().replace("../rules/", f"{PROMETHEUS / 'rules'}/")
    assert "Trading state is REDUCING" in text
    broken.write_text(text.replace("Trading state is REDUCING", "Trading state is HALTED"))
    result = run(tool("promtool"), "test", "rules", broken)
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


# --- every rule is unit-tested ------------------------------------------------------------------

def test_every_rule_file_is_loaded_by_a_unit_test_file() -> None:
    loaded = {(path.parent / f).resolve() for path in TEST_FILES for f in load(path)["rule_files"]}
    assert {p.resolve() for p in RULE_FILES} <= loaded


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_is_unit_tested_both_firing_and_quiet(alert: str) -> None:
    cases = [case for test in unit_tests() for case in test.get("alert_rule_test", []) if case["alertname"] == alert]
    assert any(case.get("exp_alerts") for case in cases), f"{alert}: no test case where it fires"
    assert any(not case.get("exp_alerts") for case in cases), f"{alert}: no test case where it stays quiet"


@pytest.mark.parametrize("record", RECORDS)
def test_every_recording_rule_is_unit_tested(record: str) -> None:
    exprs = [case["expr"] for test in unit_tests() for case in test.get("promql_expr_test", [])]
    assert any(record in expr for expr in exprs), f"{record}: no promql_expr_test"


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_has_a_severity_a_summary_and_a_description(alert: str) -> None:
    rule = next(r for r in rules() if r.get("alert") == alert)
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"].strip() and rule["annotations"]["description"].strip()


# --- rules select only what the services export -------------------------------------------------

def test_every_metric_a_rule_selects_is_exported_by_a_service() -> None:
    exported = exported_series_names()
    known = exported | SCRAPE_SERIES | set(RECORDS)
    problems = []
    for rule in rules():
        for selector in selectors(str(rule["expr"])):
            where = rule.get("alert") or rule.get("record")
            if selector.name is not None:
                if selector.name not in known:
                    problems.append(f"{where}: {selector.name} is not exported")
                continue
            patterns = [m.value for m in selector.matchers.matchers if m.name == "__name__"]
            assert patterns, f"{where}: a selector without a metric name"
            for pattern in patterns:
                if not any(re.fullmatch(pattern, name) for name in exported):
                    problems.append(f"{where}: no exported metric matches {pattern!r}")
    assert problems == []


def test_the_name_check_catches_a_misspelt_metric() -> None:
    exported = exported_series_names()
    expr = "rate(tradewire_execution_fils_total[5m]) > 0 and tradewire_ledger_equity_value"
    names = [s.name for s in selectors(expr)]
    assert [n for n in names if n not in exported] == ["tradewire_execution_fils_total"]


# --- Prometheus scrapes every service ---------------------------------------------------------

def test_prometheus_scrapes_each_service_at_its_compose_name_and_port() -> None:
    config = load(PROMETHEUS_CONFIG)
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]] for job in config["scrape_configs"]
    }
    ports = HttpPorts()
    for service in SERVICE_NAMES:
        assert targets[f"tradewire-{service}"] == [f"{service}:{getattr(ports, service)}"]
    assert config["rule_files"] == ["rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]


# --- Alertmanager ---------------------------------------------------------------------------------

def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run(tool("amtool"), "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("labels, receivers", [
    (["alertname=KillSwitchEngaged", "severity=critical"], "oncall-webhook,tradewire-notifier"),
    (["alertname=ConsumerLag", "severity=warning"], "tradewire-notifier"),
    (["alertname=Unlabelled"], "tradewire-notifier"),
    # the notifier cannot report its own delivery failures: on-call only
    (["alertname=NotificationDeliveryFailing", "severity=warning"], "oncall-webhook"),
])
def test_alerts_route_to_the_notifier_and_critical_ones_also_to_the_oncall_webhook(
    labels: list[str], receivers: str,
) -> None:
    result = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_the_notifier_receiver_posts_to_the_notifier_webhook_endpoint_with_its_bearer_token_file() -> None:
    receivers = {r["name"]: r for r in load(ALERTMANAGER_CONFIG)["receivers"]}
    assert [c["url"] for c in receivers["tradewire-notifier"]["webhook_configs"]] == [NOTIFIER_URL]
    assert [c["http_config"]["authorization"] for c in receivers["tradewire-notifier"]["webhook_configs"]] == [
        {"type": "Bearer", "credentials_file": "/run/secrets/notifier_webhook_token"}]
    assert all(c["send_resolved"] for r in receivers.values() for c in r["webhook_configs"])


def test_inhibit_rules_name_alerts_that_exist() -> None:
    for rule in load(ALERTMANAGER_CONFIG)["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            name, _, value = matcher.partition("=")
            if name == "alertname":
                assert value.strip('"') in ALERTS, matcher
