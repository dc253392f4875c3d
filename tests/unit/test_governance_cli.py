"""``tradewire approvals``, ``promote`` and ``strategies`` without a running risk service: the backtest report
file, missing tokens, an unreachable risk, bad arguments. (The commands against a real risk service are in
tests/integration/test_approvals_flow.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.ports import free_tcp_port
from tradewire_common.cli.governance import read_report
from tradewire_common.cli.main import main

SUMMARY = {"mode": "event", "strategy": "sma_cross", "bars": 100, "total_return": 0.01}


@pytest.fixture(autouse=True)
def _no_tradewire_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("TRADEWIRE"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no var/runs/latest, no config/tradewire.toml


def test_the_report_is_the_last_json_object_of_the_backtest_output(tmp_path: Path) -> None:
    path = tmp_path / "bt.txt"
    path.write_text("loading data...\n[1, 2]\n" + json.dumps(SUMMARY) + "\n\n")
    assert read_report(path) == SUMMARY
    path.write_text(json.dumps(SUMMARY, indent=2))  # a pretty-printed file as a whole
    assert read_report(path) == SUMMARY


@pytest.mark.parametrize("text", ["", "no json here\n", "[1, 2]\n"])
def test_a_file_without_a_json_object_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bt.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match="holds no JSON object"):
        read_report(path)


def test_promote_with_a_missing_report_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["promote", "s", "--to", "paper", "--reason", "r", "--backtest-report", str(tmp_path / "none.json")])
    assert code == 2 and "cannot read" in capsys.readouterr().err


def test_actions_need_the_api_token(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["approvals", "approve", "tw-1", "--url", "http://127.0.0.1:9"]) == 1
    assert "no API token" in capsys.readouterr().err


def test_an_unreachable_risk_service_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_tcp_port()}"
    assert main(["approvals", "list", "--url", url]) == 1
    assert f"cannot reach risk at {url}" in capsys.readouterr().err
    assert main(["strategies", "--url", url]) == 1


def test_stages_and_a_reject_reason_are_checked_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as bad_stage:
        main(["promote", "s", "--to", "production", "--reason", "r"])
    assert bad_stage.value.code == 2 and "invalid choice: 'production'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["approvals", "reject", "tw-1"])
    assert "--reason" in capsys.readouterr().err
