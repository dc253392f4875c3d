"""Configuration: defaults, the TOML file, ``TRADEWIRE__`` overrides and errors that name the field."""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tradewire_common.cli.main import main as tradewire_main
from tradewire_common.config import (
    BusConfig,
    Config,
    ConfigError,
    apply_env_overrides,
    config_from_dict,
    config_to_toml_dict,
    load_config,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "tradewire.toml"
NO_ENV: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _no_tradewire_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Overrides in the developer's shell must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("TRADEWIRE"):
            monkeypatch.delenv(name)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradewire.toml"
    path.write_text(text)
    return path


# --- loading ----------------------------------------------------------------------------------


def test_defaults_load_without_a_file() -> None:
    config = load_config(None, NO_ENV)
    assert config == Config()
    assert config.bus == BusConfig(url="", credentials_file="", connect_timeout_s=10.0, max_deliver=5)
    assert config.risk.max_position_pct == 0.10
    assert config.risk.sizing == "fixed_fraction"
    assert config.http.ports.risk == 8103
    assert config.datafeed.speed == "max"
    assert config.ledger.backend == "sqlite"
    assert config.ledger.starting_cash == Decimal("10000")
    assert [v.name for v in config.execution.venues] == ["BINANCE"]


def test_a_toml_file_loads_into_typed_sections(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[bus]
url = "nats://broker:4222"
max_deliver = 3

[http.ports]
risk = 9103

[risk]
max_position_pct = 0.2
allow_short = true

[[risk.instruments]]
id = "BTCUSDT.BINANCE"
quantity_step = "0.001"

[datafeed]
speed = "60"

[[signals.strategies]]
id = "sma_btc"
kind = "sma_cross"
instruments = ["BTCUSDT.BINANCE"]
params = { fast = 5, slow = 20 }

[ledger]
starting_cash = 2500.5
""",
    )
    config = load_config(path, NO_ENV)
    assert config.bus.url == "nats://broker:4222" and config.bus.max_deliver == 3
    assert config.http.ports.risk == 9103 and config.http.ports.ledger == 8105
    assert config.risk.max_position_pct == 0.2 and config.risk.allow_short is True
    assert config.risk.instruments[0].quantity_step == Decimal("0.001")
    assert config.datafeed.speed == "60"
    assert config.signals.strategies[0].params == {"fast": 5, "slow": 20}
    assert config.ledger.starting_cash == Decimal("2500.5")


def test_the_shipped_demo_config_is_valid() -> None:
    config = load_config(DEMO, NO_ENV)
    assert config.datafeed.replay[0].instrument_id == "BTCUSDT.BINANCE"
    assert [s.id for s in config.signals.strategies] == ["sma_cross"]
    assert config.risk.instruments[0].price_tick == Decimal("0.1")
    assert config.ledger.currency == "USDT"


def test_tradewire_config_check_accepts_the_shipped_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert tradewire_main(["config", "check", str(DEMO)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"{DEMO}: ok"
    assert captured.err == ""


# --- environment overrides --------------------------------------------------------------------


def test_an_environment_variable_overrides_a_key() -> None:
    config = load_config(None, {"TRADEWIRE__RISK__MAX_POSITION_PCT": "0.2"})
    assert config.risk.max_position_pct == 0.2


def test_an_environment_override_wins_over_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[risk]\nmax_position_pct = 0.05\nfraction = 0.01\n")
    config = load_config(path, {"TRADEWIRE__RISK__MAX_POSITION_PCT": "0.2"})
    assert config.risk.max_position_pct == 0.2
    assert config.risk.fraction == 0.01


def test_a_nested_environment_variable_overrides_a_nested_key() -> None:
    config = load_config(None, {"TRADEWIRE__HTTP__PORTS__RISK": "9000"})
    assert config.http.ports.risk == 9000
    assert config.http.ports.ledger == 8105
    assert config.http.host == "127.0.0.1"


def test_the_process_environment_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIRE__RISK__FRACTION", "0.05")
    assert load_config(None).risk.fraction == 0.05


def test_variables_without_the_prefix_are_ignored() -> None:
    config = load_config(None, {"TRADEWIRE_RISK__FRACTION": "0.9", "RISK__FRACTION": "0.9", "TRADEWIRE__": "x"})
    assert config.risk.fraction == 0.10


@pytest.mark.parametrize(
    ("name", "raw", "read"),
    [
        ("TRADEWIRE__RISK__ALLOW_SHORT", "true", lambda c: c.risk.allow_short is True),
        ("TRADEWIRE__DATAFEED__LOCKSTEP", "false", lambda c: c.datafeed.lockstep is False),
        ("TRADEWIRE__BUS__MAX_DELIVER", "3", lambda c: c.bus.max_deliver == 3),
        ("TRADEWIRE__BUS__CONNECT_TIMEOUT_S", "2.5", lambda c: c.bus.connect_timeout_s == 2.5),
        ("TRADEWIRE__BUS__URL", "nats://10.0.0.1:4222", lambda c: c.bus.url == "nats://10.0.0.1:4222"),
        ("TRADEWIRE__HTTP__HOST", "0.0.0.0", lambda c: c.http.host == "0.0.0.0"),
        ("TRADEWIRE__LEDGER__STARTING_CASH", "2500.25", lambda c: c.ledger.starting_cash == Decimal("2500.25")),
        ("TRADEWIRE__LEDGER__PATH", "/var/lib/tw/ledger.db", lambda c: c.ledger.path == "/var/lib/tw/ledger.db"),
        ("TRADEWIRE__RISK__SIZING", "kelly", lambda c: c.risk.sizing == "kelly"),
        ("TRADEWIRE__DATAFEED__LOCKSTEP_SERVICES", '["risk", "ledger"]',
         lambda c: c.datafeed.lockstep_services == ("risk", "ledger")),
        # a number given to a text field stays text (the documented ``speed`` multiple)
        ("TRADEWIRE__DATAFEED__SPEED", "60", lambda c: c.datafeed.speed == "60"),
        ("TRADEWIRE__DATAFEED__SPEED", "0.5", lambda c: c.datafeed.speed == "0.5"),
        ("TRADEWIRE__LEDGER__ACCOUNT", "123", lambda c: c.ledger.account == "123"),
        ("TRADEWIRE__LEDGER__ACCOUNT", '"quoted"', lambda c: c.ledger.account == "quoted"),
    ],
)
def test_environment_values_are_read_as_the_type_of_their_field(
    name: str, raw: str, read: Callable[[Config], bool]
) -> None:
    config = load_config(None, {name: raw})
    assert read(config), config


def test_apply_env_overrides_builds_nested_sections_case_insensitively() -> None:
    data = apply_env_overrides({"risk": {"fraction": 0.3}}, {"TRADEWIRE__Http__Ports__Risk": "9000"})
    assert data == {"risk": {"fraction": 0.3}, "http": {"ports": {"risk": "9000"}}}


def test_an_override_below_a_plain_value_is_an_error() -> None:
    with pytest.raises(ConfigError, match="TRADEWIRE__RISK__FRACTION__X: fraction is not a section"):
        load_config(None, {"TRADEWIRE__RISK__FRACTION": "0.1", "TRADEWIRE__RISK__FRACTION__X": "1"})


# --- errors name the field --------------------------------------------------------------------


def test_a_bad_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"\$\.risk\.max_position_pct") as info:
        load_config(None, {"TRADEWIRE__RISK__MAX_POSITION_PCT": "1.5"})
    assert "<= 1.0" in str(info.value)


def test_a_bad_value_in_the_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "[risk]\nmax_position_pct = -0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, NO_ENV)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid configuration")
    assert "$.risk.max_position_pct" in message


def test_a_value_of_the_wrong_type_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"\$\.http\.ports\.risk"):
        load_config(None, {"TRADEWIRE__HTTP__PORTS__RISK": "not-a-port"})
    with pytest.raises(ConfigError, match=r"\$\.http\.ports\.risk"):
        load_config(None, {"TRADEWIRE__HTTP__PORTS__RISK": "70000"})


def test_an_unknown_key_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "[risk]\nmax_postion_pct = 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown field `max_postion_pct` - at `\$\.risk`"):
        load_config(path, NO_ENV)


def test_an_unknown_section_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown field `riks`"):
        load_config(None, {"TRADEWIRE__RIKS__FRACTION": "0.1"})


@pytest.mark.parametrize("speed", ["fast", "0", "-2", "nan"])
def test_a_bad_replay_speed_is_refused(speed: str) -> None:
    with pytest.raises(ConfigError, match=r"speed must be 'max' or a positive number.* - at `\$\.datafeed`"):
        config_from_dict({"datafeed": {"speed": speed}})


def test_the_postgres_backend_needs_a_dsn() -> None:
    with pytest.raises(ConfigError, match=r"dsn is required when backend = 'postgres' - at `\$\.ledger`"):
        load_config(None, {"TRADEWIRE__LEDGER__BACKEND": "postgres"})
    config = load_config(None, {"TRADEWIRE__LEDGER__BACKEND": "postgres", "TRADEWIRE__LEDGER__DSN": "postgresql://db/tw"})
    assert config.ledger.dsn == "postgresql://db/tw"


def test_an_unsupported_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\$\.ledger\.backend"):
        load_config(None, {"TRADEWIRE__LEDGER__BACKEND": "mysql"})


def test_a_malformed_instrument_id_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, '[[risk.instruments]]\nid = "BTCUSDT"\n')
    with pytest.raises(ConfigError, match=r"\$\.risk\.instruments\[0\]\.id"):
        load_config(path, NO_ENV)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"config file not found: {missing}"):
        load_config(missing, NO_ENV)


def test_invalid_toml_is_reported_with_the_file_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "[risk\nfraction = \n")
    with pytest.raises(ConfigError, match="invalid TOML") as info:
        load_config(path, NO_ENV)
    assert str(path) in str(info.value)


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- the CLI ----------------------------------------------------------------------------------


def test_config_check_exits_0_for_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "[risk]\nfraction = 0.05\n")
    assert tradewire_main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: ok"


def test_config_check_exits_2_with_the_field_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "[risk]\nmax_position_pct = 2\n")
    assert tradewire_main(["config", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("tradewire: ")
    assert "$.risk.max_position_pct" in captured.err


def test_config_check_applies_environment_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "")
    monkeypatch.setenv("TRADEWIRE__RISK__MAX_POSITION_PCT", "0.2")
    assert tradewire_main(["config", "check", str(path)]) == 0
    monkeypatch.setenv("TRADEWIRE__RISK__MAX_POSITION_PCT", "7")
    assert tradewire_main(["config", "check", str(path)]) == 2
    assert "$.risk.max_position_pct" in capsys.readouterr().err


def test_config_check_exits_2_for_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tradewire_main(["config", "check", str(tmp_path / "missing.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_config_check_exits_2_for_invalid_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "not toml at all = = =")
    assert tradewire_main(["config", "check", str(path)]) == 2
    assert "invalid TOML" in capsys.readouterr().err


def test_config_to_toml_dict_is_plain_data_that_loads_back() -> None:
    config = load_config(DEMO, NO_ENV)
    data = config_to_toml_dict(config)
    assert data["risk"]["max_position_pct"] == 0.10
    assert config_from_dict(data) == config
