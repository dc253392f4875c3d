"""The per-role NATS permission table, the generated nats.conf, and how a service finds its login."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tradewire_common import subjects
from tradewire_common.bus import MemoryBroker, MemoryBus
from tradewire_common.cli.embedded_nats import nats_server_binary
from tradewire_common.cli.main import main as tradewire_main
from tradewire_common.cli.nats_config import render_jetstream_conf, render_nats_conf, write_nats_config
from tradewire_common.cli.up import Supervisor
from tradewire_common.config import BusConfig, Config, ConfigError
from tradewire_common.nats_auth import (
    ALL_ROLES,
    KV_KEY_PREFIXES,
    PASSWORD_ENV,
    ROLES,
    ClientAuth,
    check_password,
    client_auth,
    client_auth_from_env,
    covers,
    new_password,
    password_env,
    role_permissions,
)
from tradewire_common.registry import SERVICE_NAMES
from tradewire_datafeed.service import DatafeedService
from tradewire_execution.service import state_key
from tradewire_notifier.store import RULES_KEY
from tradewire_risk.state import KEY_GLOBAL

ROOT = Path(__file__).resolve().parents[2]
KV = f"$KV.{subjects.STATE_BUCKET}."


@pytest.fixture(autouse=True)
def _no_tradewire_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's shell must not leak logins into these tests."""
    for name in list(os.environ):
        if name.startswith("TRADEWIRE"):
            monkeypatch.delenv(name)


# --- the permission table ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ALL_ROLES)
def test_only_risk_may_publish_order_commands(role: str) -> None:
    perms = role_permissions(role)
    assert perms.may_publish(subjects.order_command("BINANCE")) is (role == "risk")
    assert perms.may_publish(subjects.order_command("some.venue")) is (role == "risk")


@pytest.mark.parametrize("role", ALL_ROLES)
def test_only_the_operator_may_publish_on_the_halt_subject(role: str) -> None:
    assert role_permissions(role).may_publish(subjects.RISK_HALT) is (role == "operator")


def test_signals_may_only_publish_signals_and_strategy_errors_of_the_trading_flow() -> None:
    signals = role_permissions("signals")
    assert signals.may_publish(subjects.signal("sma_cross"))
    assert signals.may_publish(subjects.strategy_error("sma_cross"))
    for subject in (subjects.order_event("sma_cross"), subjects.execution_watermark("BINANCE"),
                    subjects.RISK_STATE, subjects.PORTFOLIO_SNAPSHOT, subjects.bar("BINANCE", "BTCUSDT", "1m"),
                    subjects.REPLAY, subjects.dead_letter("risk"), KV + KEY_GLOBAL):
        assert not signals.may_publish(subject), subject


def test_signals_may_create_but_never_reconfigure_streams_nor_consume_from_them() -> None:
    signals, risk = role_permissions("signals"), role_permissions("risk")
    for spec in subjects.STREAMS:
        assert signals.may_publish(f"$JS.API.STREAM.CREATE.{spec.name}")
        assert not signals.may_publish(f"$JS.API.STREAM.UPDATE.{spec.name}")
        assert risk.may_publish(f"$JS.API.STREAM.UPDATE.{spec.name}")
        assert not signals.may_publish(f"$JS.API.CONSUMER.CREATE.{spec.name}.x.sig.*")
    assert not any(p.startswith(("$JS.API.STREAM.DELETE", "$JS.API.STREAM.PURGE")) for r in ALL_ROLES
                   for p in role_permissions(r).publish)


def test_the_notifier_consumes_alerts_order_events_and_the_state_and_never_reconfigures_a_stream() -> None:
    notifier = role_permissions("notifier")
    for stream in ("TW_ALERTS", "TW_ORDER_EVENTS", "TW_STATE"):
        assert notifier.may_publish(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.notifier-alerts")
        assert notifier.may_publish(f"$JS.ACK.{stream}.notifier-alerts.1.2.3.4.0")
    for stream in ("TW_SIGNALS", "TW_ORDER_COMMANDS", "TW_DEAD_LETTERS", "TW_CONTROL", "TW_GOVERNANCE"):
        assert not notifier.may_publish(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.notifier-x"), stream
    for spec in subjects.STREAMS:
        assert notifier.may_publish(f"$JS.API.STREAM.CREATE.{spec.name}")
        assert not notifier.may_publish(f"$JS.API.STREAM.UPDATE.{spec.name}")
    assert notifier.may_publish(subjects.alert("warning"))  # its price alerts
    for subject in (subjects.bar("BINANCE", "BTCUSDT", "1m"), subjects.quote("BINANCE", "BTCUSDT"),
                    subjects.trade("BINANCE", "BTCUSDT"), subjects.PORTFOLIO_SNAPSHOT, subjects.RISK_STATE):
        assert notifier.may_subscribe(subject), subject
    for subject in (subjects.signal("sma_cross"), subjects.order_event("sma_cross"), subjects.RISK_STATE,
                    subjects.PORTFOLIO_SNAPSHOT, subjects.PORTFOLIO_REQUEST, subjects.REPLAY, KV + KEY_GLOBAL):
        assert not notifier.may_publish(subject), subject
    assert not notifier.may_subscribe(subjects.ALL_ORDER_COMMANDS)


def test_consumers_may_create_durables_only_on_the_streams_they_read() -> None:
    execution = role_permissions("execution")
    assert execution.may_publish("$JS.API.CONSUMER.CREATE.TW_ORDER_COMMANDS.execution-BINANCE.ord.cmd.BINANCE")
    assert execution.may_publish("$JS.ACK.TW_ORDER_COMMANDS.execution-BINANCE.1.2.3.4.0")
    assert not execution.may_publish("$JS.API.CONSUMER.CREATE.TW_SIGNALS.x.sig.*")
    risk = role_permissions("risk")
    assert risk.may_publish("$JS.API.CONSUMER.DURABLE.CREATE.TW_SIGNALS.risk-signals")
    assert not risk.may_publish("$JS.API.CONSUMER.CREATE.TW_ORDER_COMMANDS.x.ord.cmd.*")
    ledger = role_permissions("ledger")
    assert all(ledger.may_publish(f"$JS.API.CONSUMER.INFO.{spec.name}.ledger-x") for spec in subjects.STREAMS)


@pytest.mark.parametrize("role", ALL_ROLES)
def test_each_role_reads_replies_only_from_its_own_inbox(role: str) -> None:
    perms = role_permissions(role)
    assert perms.may_subscribe(subjects.inbox_prefix(role) + ".abc.1")
    assert not perms.may_subscribe("_INBOX.>")
    for other in ALL_ROLES:
        if other != role:
            assert not perms.may_subscribe(subjects.inbox_prefix(other) + ".abc.1"), other


def test_the_state_writers_own_exactly_the_keys_their_services_write() -> None:
    bus = MemoryBus("datafeed", MemoryBroker())
    datafeed_key = DatafeedService(Config(), bus).progress_key
    written = {"risk": KEY_GLOBAL, "execution": state_key("BIN.ANCE"), "datafeed": datafeed_key,
               "notifier": RULES_KEY}
    for role in ALL_ROLES:
        perms = role_permissions(role)
        for writer, key in written.items():
            assert perms.may_publish(KV + key) is (role == writer), (role, key)
    assert set(KV_KEY_PREFIXES) == set(written)


CONCRETE_SUBJECTS = [
    subjects.bar("BINANCE", "BTCUSDT", "1m"), subjects.quote("BINANCE", "BTCUSDT"), subjects.signal("sma_cross"),
    subjects.strategy_error("sma_cross"), subjects.order_command("BINANCE"), subjects.order_event("sma_cross"),
    subjects.execution_watermark("BINANCE"), subjects.PORTFOLIO_SNAPSHOT, subjects.RISK_STATE, subjects.RISK_HALT,
    subjects.alert("critical"), subjects.REPLAY, subjects.STATS, subjects.PORTFOLIO_REQUEST, subjects.STATS_REPORT,
    *(subjects.dead_letter(name) for name in SERVICE_NAMES),
]


@pytest.mark.parametrize("subject", CONCRETE_SUBJECTS)
def test_every_subject_of_the_system_has_a_publisher_and_a_listener(subject: str) -> None:
    assert any(role_permissions(r).may_publish(subject) for r in ALL_ROLES)
    assert any(role_permissions(r).may_subscribe(subject) for r in ALL_ROLES)


def test_the_monitor_may_publish_nothing_but_read_only_jetstream_requests() -> None:
    monitor = role_permissions("monitor")
    assert all(p.startswith("$JS.API.") and any(w in p for w in ("INFO", "NAMES", "LIST")) for p in monitor.publish)
    assert not monitor.allow_responses
    assert all(not monitor.may_publish(s) for s in CONCRETE_SUBJECTS)


@pytest.mark.parametrize(
    ("allowed", "subject", "ok"),
    [
        ("ord.cmd.*", "ord.cmd.BINANCE", True),
        ("ord.cmd.*", "ord.cmd.a.b", False),
        ("ord.evt.*", "ord.evt._wm.BINANCE", False),
        ("ord.evt.>", "ord.evt._wm.BINANCE", True),
        ("md.>", "md", False),
        ("md.bar.*", "md.bar.>", False),  # a narrower permission never admits a wider subscription
        ("md.>", "md.bar.>", True),
    ],
)
def test_covers_follows_nats_wildcard_rules(allowed: str, subject: str, ok: bool) -> None:
    assert covers(allowed, subject) is ok


# --- the generated configuration ---------------------------------------------------------------


def _server_env(passwords: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEWIRE")}
    return env | {password_env(role): pw for role, pw in passwords.items()}


def _nats_server_t(conf: Path, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([nats_server_binary(), "-t", "-c", str(conf)], env=_server_env(passwords),
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("roles", "store_dir"), [(ROLES, ""), (ALL_ROLES, "js-store")])
def test_the_generated_config_passes_nats_server_t(tmp_path: Path, roles: tuple[str, ...], store_dir: str) -> None:
    conf = write_nats_config(tmp_path / "conf", roles=roles, store_dir=store_dir and str(tmp_path / store_dir))
    check = _nats_server_t(conf, {role: new_password() for role in roles})
    assert check.returncode == 0, check.stdout + check.stderr
    assert "is valid" in check.stdout + check.stderr
    # the passwords are real references: without one in the environment the server refuses to start
    missing = _nats_server_t(conf, {role: new_password() for role in roles[1:]})
    assert missing.returncode != 0
    assert password_env(roles[0]) in missing.stdout + missing.stderr


def test_the_generated_config_holds_no_secret_and_one_user_per_role() -> None:
    text = render_nats_conf()
    for role in ROLES:
        assert f'user: "{role}"' in text
        assert f"password: ${password_env(role)}\n" in text
    assert text.count("password:") == len(ROLES)
    assert "include" not in text and "store_dir" not in text  # JetStream is the deployment's to set
    assert "no_auth_user" not in text
    assert 'user: "monitor"' in render_nats_conf(ALL_ROLES)


def test_the_committed_deploy_config_is_the_generated_one() -> None:
    assert (ROOT / "deploy" / "nats" / "nats.conf").read_text() == render_nats_conf(), \
        "regenerate: .venv/bin/tradewire nats-config --out deploy/nats"


def test_nats_config_command_writes_prints_and_generates_private_passwords(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tradewire_main(["nats-config", "--out", str(tmp_path / "plain")]) == 0
    assert (tmp_path / "plain" / "nats.conf").read_text() == render_nats_conf()
    assert not (tmp_path / "plain" / "jetstream.conf").exists()
    assert tradewire_main(["nats-config", "--out", str(tmp_path / "out"), "--store-dir", "/srv/js", "--monitor"]) == 0
    assert (tmp_path / "out" / "nats.conf").read_text() == render_nats_conf(ALL_ROLES, jetstream_include=True)
    assert (tmp_path / "out" / "jetstream.conf").read_text() == render_jetstream_conf("/srv/js")
    capsys.readouterr()
    assert tradewire_main(["nats-config", "--print"]) == 0
    assert capsys.readouterr().out == render_nats_conf()

    env_file = tmp_path / "nats.env"
    assert tradewire_main(["nats-config", "--passwords", str(env_file)]) == 0
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    pairs = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert set(pairs) == {password_env(role) for role in ROLES}
    for role in ROLES:
        check_password(role, pairs[password_env(role)])
    assert len(set(pairs.values())) == len(ROLES)
    before = env_file.read_text()
    assert tradewire_main(["nats-config", "--passwords", str(env_file)]) == 2  # never overwrites
    assert env_file.read_text() == before
    assert tradewire_main(["nats-config"]) == 2


@pytest.mark.parametrize(
    "bad", ["12345678901234567890", "-abcdefghijklmnopqrs", "true", "short1", "a b c d e f g h i j"]
)
def test_passwords_nats_server_would_misread_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="TRADEWIRE_NATS_PASSWORD_RISK"):
        check_password("risk", bad)


def test_generated_passwords_are_fresh_and_read_back_as_strings() -> None:
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        check_password("risk", password)


# --- the service side --------------------------------------------------------------------------


def test_a_service_takes_its_password_from_the_environment_first_then_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    bus = BusConfig(user="risk", password_file=str(secret))
    assert client_auth(bus, {PASSWORD_ENV: "from-env"}) == ClientAuth("risk", "from-env")
    assert client_auth(bus, {}) == ClientAuth("risk", "from-file")
    other = tmp_path / "other"
    other.write_text("from-env-file")
    assert client_auth(bus, {f"{PASSWORD_ENV}_FILE": str(other)}) == ClientAuth("risk", "from-env-file")
    assert client_auth(BusConfig(), {PASSWORD_ENV: "ignored"}) is None


def test_a_user_without_a_password_stops_the_service_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TRADEWIRE_NATS_PASSWORD"):
        client_auth(BusConfig(user="risk"), {})
    with pytest.raises(ConfigError, match="cannot read"):
        client_auth(BusConfig(user="risk", password_file=str(tmp_path / "missing")), {})


def test_the_login_comes_from_the_service_side_environment() -> None:
    env = {"TRADEWIRE__BUS__USER": "ledger", PASSWORD_ENV: "s3cret-value"}
    assert client_auth_from_env(env) == ClientAuth("ledger", "s3cret-value")
    assert client_auth_from_env({PASSWORD_ENV: "s3cret-value"}) is None


def test_the_password_never_shows_in_a_repr_or_a_config_dump(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "s3cret-value" not in repr(ClientAuth("risk", "s3cret-value"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRADEWIRE__BUS__USER", "risk")
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-value")
    assert tradewire_main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert '"user": "risk"' in out
    assert "s3cret-value" not in out


def test_tradewire_up_gives_each_service_its_own_password_and_nobody_elses(tmp_path: Path) -> None:
    supervisor = Supervisor(Config(), None, tmp_path)
    supervisor.passwords = {role: new_password() for role in ROLES}
    base = {"PATH": "/usr/bin", password_env("risk"): "leaked", f"{PASSWORD_ENV}_FILE": "/x",
            "TRADEWIRE__BUS__USER": "x"}
    for name in SERVICE_NAMES:
        env = supervisor.child_env(base, name)
        assert env["TRADEWIRE__BUS__USER"] == name
        assert env[PASSWORD_ENV] == supervisor.passwords[name]
        assert [k for k in env if k.startswith(PASSWORD_ENV)] == [PASSWORD_ENV]
        others = set(supervisor.passwords.values()) - {supervisor.passwords[name]}
        assert not others & set(env.values())
        assert env["PATH"] == "/usr/bin"
