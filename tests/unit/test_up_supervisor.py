"""``tradewire up``'s children: what each is started with and in which order."""

from __future__ import annotations

from pathlib import Path

from tradewire_common.cli.up import RISK_LEDGER_URL_ENV, START_ORDER, Supervisor
from tradewire_common.config import config_from_dict
from tradewire_common.registry import SERVICE_NAMES


def test_every_registered_service_is_started_sinks_first_and_the_ledger_before_risk() -> None:
    assert sorted(START_ORDER) == sorted(SERVICE_NAMES)
    assert START_ORDER[0] == "notifier" and START_ORDER[-1] == "datafeed"
    assert START_ORDER.index("ledger") < START_ORDER.index("risk")


def test_risk_rebuilds_from_this_runs_ledger_and_no_other_service_gets_the_address(tmp_path: Path) -> None:
    config = config_from_dict({"http": {"ports": {"ledger": 18105}}})
    supervisor = Supervisor(config, None, tmp_path)
    assert supervisor.child_env({}, "risk")[RISK_LEDGER_URL_ENV] == "http://127.0.0.1:18105"
    for name in SERVICE_NAMES:
        if name != "risk":
            assert RISK_LEDGER_URL_ENV not in supervisor.child_env({}, name), name


def test_a_configured_ledger_url_is_kept(tmp_path: Path) -> None:
    configured = Supervisor(config_from_dict({"risk": {"ledger_url": "http://books:9000"}}), None, tmp_path)
    assert RISK_LEDGER_URL_ENV not in configured.child_env({}, "risk")  # the config file's value stands
    from_env = Supervisor(config_from_dict({}), None, tmp_path)
    env = from_env.child_env({RISK_LEDGER_URL_ENV: "http://elsewhere:8105"}, "risk")
    assert env[RISK_LEDGER_URL_ENV] == "http://elsewhere:8105"
