"""Alerting end to end: real Prometheus and Alertmanager on loopback watch a running ``tradewire up``.

Prometheus runs deploy/prometheus/prometheus.yml with only the targets (the ports ``tradewire up``
wrote to its ``endpoints.json``), the Alertmanager address and the intervals (1 s) changed, and the
real rule files from deploy/prometheus/rules/. Alertmanager runs deploy/alertmanager/alertmanager.yml
with the two webhook URLs pointed at a local receiver (one path per receiver), the notifier's bearer
token from a test secret file and 1 s grouping timers.
The kill switch is engaged with the real CLI and released through risk's token-protected endpoint.

Skips, saying why, when Debian's ``prometheus`` or ``prometheus-alertmanager`` is not installed
(``tools/ops/install-prometheus.sh`` installs both).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.ports import free_tcp_port
from tests.support.prometheus import (
    ALERTMANAGER_NAMES,
    INSTALL_HINT,
    PROMETHEUS_NAMES,
    RULES_DIR,
    Alertmanager,
    Notification,
    Prometheus,
    WebhookReceiver,
    alertmanager_config,
    copy_rules,
    dump_yaml,
    find_tool,
    load_yaml,
    prometheus_config,
    wait_until,
)
from tests.support.stack import SERVICES, demo_config, stack_env

PROMETHEUS_BIN = find_tool(PROMETHEUS_NAMES)
ALERTMANAGER_BIN = find_tool(ALERTMANAGER_NAMES)

pytestmark = [
    pytest.mark.skipif(PROMETHEUS_BIN is None, reason=f"prometheus is not installed ({INSTALL_HINT})"),
    pytest.mark.skipif(ALERTMANAGER_BIN is None, reason=f"prometheus-alertmanager is not installed ({INSTALL_HINT})"),
]

#: Waits (not assertions on time): generous for a loaded 2-core machine.
WAIT_S = 120.0
#: Rules wait up to 2 minutes (``for:``) before firing; the test copy waits 1 s (see copy_rules), so
#: that TradingStateNotActive (``for: 1m``) fires while the kill switch is engaged and its inhibition
#: by KillSwitchEngaged can be observed. KillSwitchEngaged itself has no ``for:``.
TEST_FOR = "1s"
ONCALL = "oncall-webhook"
NOTIFIER = "tradewire-notifier"
REASON = "e2e alerting test"
#: The notifier's webhook token, which Alertmanager reads from its (test) secrets directory.
WEBHOOK_TOKEN = "e2e-notifier-webhook-token"


@dataclass
class MonitoredStack:
    """``tradewire up`` watched by Prometheus, Alertmanager and a webhook receiver."""

    run_dir: Path
    env: dict[str, str]
    services: dict[str, str]  # service -> host:port, as tradewire up wrote them
    prometheus: Prometheus
    alertmanager: Alertmanager
    receiver: WebhookReceiver

    def cli(self, *args: str) -> dict[str, Any]:
        proc = subprocess.run(
            [sys.executable, "-m", "tradewire_common.cli.main", *args, "--run-dir", str(self.run_dir)],
            env=self.env, cwd=self.run_dir.parent, capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout)
        return result


def _start_up(root: Path) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
    """``tradewire up`` (no --exit-after-replay: it runs until SIGTERM) over 200 demo bars."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "tw.toml"
    config.write_text(demo_config(limit=200))
    run_dir = root / "run"
    env = stack_env(root)
    with (root / "up.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradewire_common.cli.main", "up", "--config", str(config),
             "--run-dir", str(run_dir)],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    return proc, run_dir, env


def _stop_up(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # tradewire up stops its services and the broker
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _ready_services(proc: subprocess.Popen[bytes], run_dir: Path, root: Path) -> dict[str, str] | None:
    assert proc.poll() is None, f"tradewire up exited with {proc.returncode}: {(root / 'up.log').read_text()[-3000:]}"
    endpoints = run_dir / "endpoints.json"
    if not endpoints.exists():
        return None
    urls: dict[str, str] = json.loads(endpoints.read_text())["services"]
    for url in urls.values():
        try:
            if httpx.get(url + "/readyz", timeout=2.0).status_code != 200:
                return None
        except httpx.HTTPError:
            return None
    return {name: url.removeprefix("http://") for name, url in urls.items()}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitoredStack]:
    assert PROMETHEUS_BIN is not None and ALERTMANAGER_BIN is not None
    root = tmp_path_factory.mktemp("alerting")
    receiver = WebhookReceiver().start()
    up, run_dir, env = _start_up(root / "stack")
    am_root, prom_root = root / "alertmanager", root / "prometheus"
    am_root.mkdir()
    prom_root.mkdir()
    alertmanager = prometheus = None
    try:
        services = wait_until(lambda: _ready_services(up, run_dir, root / "stack"), timeout=WAIT_S,
                              what="tradewire up's services to be ready")
        secrets_dir = am_root / "secrets"
        secrets_dir.mkdir()
        (secrets_dir / "notifier_webhook_token").write_text(WEBHOOK_TOKEN + "\n")
        am_file = dump_yaml(alertmanager_config(receiver_url=lambda name: receiver.url(name), secrets_dir=secrets_dir),
                            am_root / "alertmanager.yml")
        alertmanager = Alertmanager(ALERTMANAGER_BIN, am_root, am_file)
        alertmanager.start()
        rewritten = copy_rules(prom_root / "rules", for_duration=TEST_FOR)
        assert sum(rewritten.values()) > 0, "the rule files have no for: clause left to shorten"
        prometheus = Prometheus(PROMETHEUS_BIN, prom_root, prom_root / "prometheus.yml")
        port = free_tcp_port()
        dump_yaml(prometheus_config(targets=services, self_address=f"127.0.0.1:{port}",
                                    alertmanager_address=alertmanager.address), prometheus.config_file)
        prometheus.start(port)
        yield MonitoredStack(run_dir, env, services, prometheus, alertmanager, receiver)
    finally:
        for server in (prometheus, alertmanager):
            if server is not None:
                server.stop()
        _stop_up(up)
        receiver.stop()


def _rule(alertname: str) -> dict[str, Any]:
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == alertname:
                    return dict(rule)
    raise AssertionError(f"no rule {alertname} in {RULES_DIR}")


def _firing(alertname: str, receiver: str) -> Callable[[Notification], bool]:
    def match(n: Notification) -> bool:
        return n.receiver == receiver and any(a["status"] == "firing" for a in n.alerts_named(alertname))
    return match


def _resolved(alertname: str, receiver: str) -> Callable[[Notification], bool]:
    def match(n: Notification) -> bool:
        return n.receiver == receiver and any(a["status"] == "resolved" for a in n.alerts_named(alertname))
    return match


def test_prometheus_scrapes_every_service_of_tradewire_up_under_its_deployed_job_and_service_label(
    monitored: MonitoredStack,
) -> None:
    def all_up() -> list[dict[str, Any]] | None:
        targets = [t for t in monitored.prometheus.targets() if t["labels"]["job"].startswith("tradewire-")]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    assert set(SERVICES) <= set(monitored.services)
    targets = wait_until(all_up, timeout=WAIT_S, what="the tradewire targets to be scraped")
    seen = {t["labels"]["job"]: (t["labels"]["service"], t["labels"]["instance"]) for t in targets}
    # every service tradewire up runs, each under its deployed job (a service without one is missing here)
    assert seen == {f"tradewire-{name}": (name, address) for name, address in monitored.services.items()}
    ready = wait_until(lambda: monitored.prometheus.query('{__name__=~"tradewire_[a-z]+_up_info"}'),
                       timeout=WAIT_S, what="the services' up_info")
    assert sorted((s["metric"]["service"], s["value"][1]) for s in ready) == sorted(
        (name, "1") for name in monitored.services)


def test_an_engaged_kill_switch_reaches_both_receivers_inhibits_the_state_alert_and_resolves_on_release(
    monitored: MonitoredStack,
) -> None:
    prometheus, alertmanager, receiver = monitored.prometheus, monitored.alertmanager, monitored.receiver
    # before: Prometheus has seen the kill switch released (the rule is evaluated and quiet)
    wait_until(lambda: [s for s in prometheus.query("tradewire_risk_kill_switch_engaged_info") if s["value"][1] == "0"],
               timeout=WAIT_S, what="a scrape of risk with the kill switch released")
    assert prometheus.query('ALERTS{alertname="KillSwitchEngaged"}') == []
    assert not any(n.alerts_named("KillSwitchEngaged") for n in receiver.received())

    engaged = monitored.cli("kill-switch", "engage", "--reason", REASON)
    assert (engaged["state"], engaged["reason"]) == ("HALTED", REASON)

    # critical: the on-call webhook (continue: true) and the notifier both get it
    rule = _rule("KillSwitchEngaged")
    expected_labels = {
        "alertname": "KillSwitchEngaged", **rule["labels"],
        "job": "tradewire-risk", "service": "risk", "instance": monitored.services["risk"],
        "system": "tradewire",  # the external label of deploy/prometheus/prometheus.yml
    }
    for name in (ONCALL, NOTIFIER):
        notification = receiver.wait_for(_firing("KillSwitchEngaged", name), timeout=WAIT_S,
                                         what=f"KillSwitchEngaged firing at {name}")
        assert notification.path == f"/{name}"
        # the notifier's webhook wants its bearer token (from the secret file); the on-call one gets none
        assert notification.authorization == (f"Bearer {WEBHOOK_TOKEN}" if name == NOTIFIER else "")
        assert notification.body["groupLabels"] == {"alertname": "KillSwitchEngaged", "job": "tradewire-risk"}
        (alert,) = notification.alerts_named("KillSwitchEngaged")
        assert alert["labels"] == expected_labels
        assert alert["annotations"] == rule["annotations"]
        assert alert["labels"]["severity"] == "critical"

    # TradingStateNotActive (state HALTED) fires in Prometheus but Alertmanager inhibits it
    def suppressed() -> list[dict[str, Any]]:
        return [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "TradingStateNotActive"
                and a["status"]["state"] == "suppressed"]

    (inhibited,) = wait_until(suppressed, timeout=WAIT_S, what="TradingStateNotActive suppressed in Alertmanager")
    assert inhibited["labels"]["state"] == "HALTED"
    assert inhibited["labels"]["job"] == "tradewire-risk"
    assert inhibited["status"]["inhibitedBy"], inhibited["status"]
    # Alertmanager decides "suppressed" when it flushes the alert's group, before any notification
    assert not [n for n in receiver.received() if n.alerts_named("TradingStateNotActive")]
    # Not asserted after the release: Prometheus sends each rule's alerts right after evaluating it,
    # so KillSwitchEngaged's resolution can reach Alertmanager a moment before TradingStateNotActive's,
    # and a group flush in between delivers TradingStateNotActive as firing (seen about one run in six
    # with 1 s timers).

    released = httpx.post(
        f"http://{monitored.services['risk']}/v1/kill-switch", json={"state": "ACTIVE", "reason": "test over"},
        headers={"Authorization": f"Bearer {monitored.env['TRADEWIRE_API_TOKEN']}"}, timeout=10.0,
    )
    assert released.status_code == 200, released.text
    assert released.json()["state"] == "ACTIVE"

    for name in (ONCALL, NOTIFIER):  # send_resolved: true on both receivers
        notification = receiver.wait_for(_resolved("KillSwitchEngaged", name), timeout=WAIT_S,
                                          what=f"KillSwitchEngaged resolved at {name}")
        (alert,) = notification.alerts_named("KillSwitchEngaged")
        assert alert["labels"] == expected_labels
