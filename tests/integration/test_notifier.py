"""The notifier over a real broker: token-protected control endpoints, rules that survive restarts,
a rule added with ``tradewire alert add`` firing on a replay through the whole pipeline, fills and
kill switch changes notified, Alertmanager's webhook delivered by e-mail (a real SMTP server), and
delivery failures visible without stopping anything."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.notifier_sinks import smtp_server, webhook_receiver
from tests.support.ports import free_tcp_port
from tests.support.stack import DEMO_CSV, demo_config
from tests.unit.test_notifier_messages import ALERTMANAGER_FIRING
from tradewire_common import subjects
from tradewire_common.bus import NatsBus
from tradewire_common.cli.main import main
from tradewire_common.config import Config, load_config
from tradewire_common.ids import derive_id
from tradewire_common.schemas import Bar
from tradewire_notifier.messages import num

TOKEN = "notifier-test-token"
BTC = "BTCUSDT.BINANCE"
PIPELINE = ("ledger", "execution", "risk", "signals")


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", TOKEN)
    for name in ("TRADEWIRE_API_TOKEN_FILE", "TRADEWIRE_NOTIFIER_URLS", "TRADEWIRE_NOTIFIER_URLS_FILE",
                 "TRADEWIRE_NOTIFIER_WEBHOOK_TOKEN", "TRADEWIRE_NOTIFIER_WEBHOOK_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)


def stack_config(tmp_path: Path, *, urls: tuple[str, ...] = (), kinds: tuple[str, ...] | None = None,
                 limit: int = 300, retries: int = 3) -> Config:
    notifier = [f"urls = {json.dumps(list(urls))}", "rate_limit_per_minute = 10000", "retry_backoff_s = 0.02",
                f"retries = {retries}", 'daily_summary_time = ""']
    if kinds is not None:
        notifier.append(f"kinds = {json.dumps(list(kinds))}")
    text = demo_config(limit=limit, extra=f'path = "{tmp_path / "ledger.db"}"') + "\n[notifier]\n" + "\n".join(notifier)
    path = tmp_path / "tw.toml"
    path.write_text(text)
    return load_config(path, environ={})


@asynccontextmanager
async def running(config: Config, nats_url: str,
                  names: tuple[str, ...] = ("notifier",)) -> AsyncIterator[InProcessStack]:
    stack = InProcessStack(config, nats_url)
    try:
        for name in names:
            await stack.start_service(name)
        yield stack
    finally:
        if "notifier" in stack.running:
            await stack.stop_service("notifier")
        await stack.close()


async def request(stack: InProcessStack, method: str, path: str, *, token: str | None = None,
                  body: object = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.request(method, stack.url("notifier") + path, json=body, headers=headers)


async def eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll until ``check()`` returns something truthy (no assertion on how long it took)."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(0.05)


def bar(n: int, close: str) -> Bar:
    price = Decimal(close)
    return Bar(id=derive_id("notifier-it-bar", n), ts_event=1_700_000_000_000_000_000 + n * 60_000_000_000,
               ts_init=time.time_ns(), instrument_id=BTC, interval="1m", open=price, high=price, low=price,
               close=price, volume=Decimal(1))


@asynccontextmanager
async def feed(nats_url: str) -> AsyncIterator[NatsBus]:
    bus = NatsBus("test_feed", nats_url, auth=None)
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.close()


async def publish_bars(bus: NatsBus, closes: list[tuple[int, str]]) -> None:
    for n, close in closes:
        await bus.publish(subjects.bar("BINANCE", "BTCUSDT", "1m"), bar(n, close))


async def test_changes_need_the_token_and_reads_do_not(tmp_path: Path, fresh_nats: NatsServer) -> None:
    async with running(stack_config(tmp_path), fresh_nats.url) as stack:
        rule = {"instrument_id": BTC, "condition": "above 70000"}
        for token in (None, "wrong"):
            assert (await request(stack, "POST", "/v1/alerts", token=token, body=rule)).status_code == 401
            assert (await request(stack, "DELETE", "/v1/alerts/x", token=token)).status_code == 401
            assert (await request(stack, "POST", "/v1/test-notification", token=token)).status_code == 401
            assert (await request(stack, "POST", "/v1/daily-summary", token=token)).status_code == 401
            assert (await request(stack, "POST", "/v1/alertmanager", token=token,
                                  body=ALERTMANAGER_FIRING)).status_code == 401
        assert (await request(stack, "GET", "/v1/alerts")).json() == {"rules": []}
        assert (await request(stack, "GET", "/v1/deliveries")).json() == {"targets": [], "deliveries": []}

        bad = await request(stack, "POST", "/v1/alerts", token=TOKEN, body={**rule, "condition": "above seventy"})
        assert bad.status_code == 422 and "neither a number nor a series" in bad.json()["detail"]
        added = await request(stack, "POST", "/v1/alerts", token=TOKEN, body=rule)
        assert added.status_code == 201
        rule_id = added.json()["rule"]["id"]
        assert (await request(stack, "DELETE", f"/v1/alerts/{rule_id}", token=TOKEN)).json() == {"removed": rule_id}
        assert (await request(stack, "DELETE", f"/v1/alerts/{rule_id}", token=TOKEN)).status_code == 404


async def test_rules_and_their_state_survive_restarts_of_the_notifier_and_the_broker(
    tmp_path: Path, fresh_nats: NatsServer,
) -> None:
    with webhook_receiver() as hook:
        config = stack_config(tmp_path, urls=(hook.url(),), kinds=("price_alert",))
        async with running(config, fresh_nats.url) as stack:
            for condition in ("above 100", "rsi:14 below 30"):
                body = {"instrument_id": BTC, "condition": condition, "interval": "1m", "severity": "warning"}
                assert (await request(stack, "POST", "/v1/alerts", token=TOKEN, body=body)).status_code == 201
            async with feed(fresh_nats.url) as bus:
                await publish_bars(bus, [(1, "99"), (2, "101")])
                await eventually(lambda: len(hook.payloads()) == 1)
            before = (await request(stack, "GET", "/v1/alerts")).json()["rules"]
            assert [r["fired"] for r in before] == [1, 0]

            await stack.restart_service("notifier")
            assert (await request(stack, "GET", "/v1/alerts")).json()["rules"] == before

            await stack.stop_service("notifier")
            fresh_nats.restart()
            await stack.start_service("notifier")
            assert (await request(stack, "GET", "/v1/alerts")).json()["rules"] == before
            async with feed(fresh_nats.url) as bus:
                await publish_bars(bus, [(3, "102"), (4, "99"), (5, "103")])  # still above, falls, rises again
                await eventually(lambda: len(hook.payloads()) == 2)
        assert [p["title"] for p in hook.payloads()] == ["BTCUSDT.BINANCE price above 100"] * 2
        assert all(p["type"] == "warning" for p in hook.payloads())
        assert "102" not in hook.payloads()[1]["message"] and "price = 103" in hook.payloads()[1]["message"]


def demo_closes(limit: int) -> list[tuple[str, Decimal]]:
    with DEMO_CSV.open() as f:
        return [(row["timestamp"], Decimal(row["close"])) for _, row in zip(range(limit), csv.DictReader(f),
                                                                              strict=False)]


def crossings_above(closes: list[Decimal], level: Decimal) -> list[int]:
    return [i for i in range(1, len(closes)) if closes[i - 1] <= level < closes[i]]


async def test_a_rule_added_with_the_cli_fires_on_a_replay_over_nats_and_fills_are_notified(
    tmp_path: Path, fresh_nats: NatsServer, capsys: pytest.CaptureFixture[str],
) -> None:
    limit = 400
    bars = demo_closes(limit)
    closes = [c for _, c in bars]
    # a level the demo crosses upwards a few times (an independent count of the crossings)
    level = next(q for q in sorted(set(closes)) if 2 <= len(crossings_above(closes, q)) <= 6)
    expected = crossings_above(closes, level)
    shown = num(level)  # rules keep numbers without trailing zeros
    with webhook_receiver() as hook:
        config = stack_config(tmp_path, urls=(hook.url(),), kinds=("price_alert", "fill", "daily_summary"),
                              limit=limit)
        async with running(config, fresh_nats.url, (*PIPELINE, "notifier")) as stack:
            url = ["--url", stack.url("notifier"), "--config", str(tmp_path / "tw.toml")]
            assert await asyncio.to_thread(main, ["alert", "add", BTC, "crosses_above", str(level),
                                                  "--severity", "warning", "--note", "breakout", *url]) == 0
            assert capsys.readouterr().out.startswith("added ")
            assert await asyncio.to_thread(main, ["alert", "list", "--json", *url]) == 0
            listed = json.loads(capsys.readouterr().out)["rules"]
            assert [(r["instrument_id"], r["condition"], r["severity"]) for r in listed] == [
                (BTC, f"price crosses_above {shown}", "warning")]

            await stack.start_service("datafeed")
            await stack.wait_replay_done()
            fills = (await stack.get("ledger", "/v1/summary")).json()["fills"]
            assert fills > 0

            def titled(prefix: str) -> list[dict[str, Any]]:
                return [p for p in hook.payloads() if p["title"].startswith(prefix)]

            await eventually(lambda: len(titled(BTC)) == len(expected) and len(titled("Filled")) == fills)
            rules = (await request(stack, "GET", "/v1/alerts")).json()["rules"]
            summary = await request(stack, "POST", "/v1/daily-summary", token=TOKEN)
            assert summary.status_code == 200
            await eventually(lambda: titled("Tradewire daily summary"))
            equity = (await stack.get("ledger", "/v1/summary")).json()["final_equity"]

            assert await asyncio.to_thread(main, ["alert", "remove", listed[0]["id"], *url]) == 0
            assert capsys.readouterr().out.strip() == f"removed {listed[0]['id']}"
            assert (await request(stack, "GET", "/v1/alerts")).json() == {"rules": []}

    alerts = titled(BTC)
    assert {p["title"] for p in alerts} == {f"{BTC} price crosses_above {shown}"}
    stamps = [datetime.fromisoformat(bars[i][0]).replace(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
              for i in expected]
    assert [p["message"].split(" of ")[1].split(" (rule")[0] for p in alerts] == stamps
    assert all(p["message"].endswith("\nbreakout") and p["type"] == "warning" for p in alerts)
    assert rules[0]["fired"] == len(expected)
    summary_text = titled("Tradewire daily summary")[0]["message"]
    assert f"equity {num(Decimal(str(equity)), 2)}," in summary_text
    assert f"Since the last summary: {fills} fills, {len(expected)} price alerts" in summary_text
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        recorded = [json.loads(p) for (p,) in db.execute("SELECT payload FROM messages WHERE type = 'Alert'")]
    assert sorted(a["title"] for a in recorded) == [f"{BTC} price crosses_above {shown}"] * len(expected)


async def test_the_cli_reports_what_the_notifier_refused(
    tmp_path: Path, fresh_nats: NatsServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running(stack_config(tmp_path), fresh_nats.url) as stack:
        url = ["--url", stack.url("notifier"), "--config", str(tmp_path / "tw.toml")]
        assert await asyncio.to_thread(main, ["alert", "add", BTC, "above", "seventy", *url]) == 1
        assert "notifier answered 422: 'seventy' is neither a number nor a series" in capsys.readouterr().err
        assert await asyncio.to_thread(main, ["alert", "remove", "no-such-rule", *url]) == 1
        assert "notifier answered 404: no rule 'no-such-rule'" in capsys.readouterr().err
        monkeypatch.delenv("TRADEWIRE_API_TOKEN")
        assert await asyncio.to_thread(main, ["alert", "add", BTC, "above", "1", *url]) == 1
        assert "tradewire alert: no API token: set TRADEWIRE_API_TOKEN" in capsys.readouterr().err
        assert await asyncio.to_thread(main, ["alert", "list", *url]) == 0
        assert capsys.readouterr().out.strip() == "no price alert rules"
    closed = ["--url", f"http://127.0.0.1:{free_tcp_port()}", "--config", str(tmp_path / "tw.toml")]
    assert await asyncio.to_thread(main, ["alert", "list", *closed]) == 1
    assert "cannot reach notifier at http://127.0.0.1:" in capsys.readouterr().err


async def test_alertmanager_webhook_is_delivered_by_email_with_the_password_from_the_environment(
    tmp_path: Path, fresh_nats: NatsServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "Am-smtp-Passw0rd-9f8e7d"
    with smtp_server(user="alerts", password=password) as smtp:
        monkeypatch.setenv("TRADEWIRE_NOTIFIER_URLS", smtp.url(user="alerts", password=password))
        monkeypatch.setenv("TRADEWIRE_NOTIFIER_WEBHOOK_TOKEN", "alertmanager-only-token")
        async with running(stack_config(tmp_path), fresh_nats.url) as stack:
            answer = await request(stack, "POST", "/v1/alertmanager", token="alertmanager-only-token",
                                   body=ALERTMANAGER_FIRING)
            assert answer.status_code == 200 and answer.json()["kind"] == "alertmanager"
            await eventually(lambda: smtp.mailbox.messages)
            resolved = {**ALERTMANAGER_FIRING, "status": "resolved",
                        "alerts": [{**a, "status": "resolved"} for a in ALERTMANAGER_FIRING["alerts"]]}  # type: ignore[attr-defined]
            assert (await request(stack, "POST", "/v1/alertmanager", token=TOKEN, body=resolved)).status_code == 200
            await eventually(lambda: len(smtp.mailbox.messages) == 2)
            garbage = await request(stack, "POST", "/v1/alertmanager", token=TOKEN, body=["not", "a", "payload"])
            assert garbage.status_code == 422
            deliveries = (await request(stack, "GET", "/v1/deliveries")).text
    assert [m["Subject"] for m in smtp.mailbox.messages] == ["[FIRING:2] ServiceDown risk",
                                                             "[RESOLVED] ServiceDown risk"]
    assert "risk is down: risk:8103 has not answered for 1m" in smtp.mailbox.texts()[0]
    assert password not in deliveries and '"outcome":"delivered"' in deliveries.replace(" ", "")


async def test_a_kill_switch_engaged_at_risk_reaches_the_webhook(tmp_path: Path, fresh_nats: NatsServer) -> None:
    with webhook_receiver() as hook:
        config = stack_config(tmp_path, urls=(hook.url(),))
        async with running(config, fresh_nats.url, ("risk", "notifier")) as stack:
            engaged = await stack.post("risk", "/v1/kill-switch", {"state": "HALTED", "reason": "runaway"}, token=TOKEN)
            assert engaged.status_code == 200
            await eventually(lambda: hook.payloads())
    [payload] = hook.payloads()
    assert (payload["title"], payload["type"]) == ("Trading HALTED (was ACTIVE)", "failure")
    assert payload["message"].startswith("global: ACTIVE -> HALTED by api-token: runaway")


async def test_delivery_failures_are_visible_and_the_notifier_carries_on(
    tmp_path: Path, fresh_nats: NatsServer,
) -> None:
    dead = f"json://127.0.0.1:{free_tcp_port()}/hook"
    async with running(stack_config(tmp_path, urls=(dead,), retries=1), fresh_nats.url) as stack:
        probe = await request(stack, "POST", "/v1/test-notification", token=TOKEN, body={"title": "hello"})
        assert probe.status_code == 200
        result = probe.json()
        assert result["outcome"] == "failed" and result["targets"][0]["attempts"] == 2
        assert "connection error" in result["targets"][0]["error"].lower()

        body = {"instrument_id": BTC, "condition": "below 50"}
        assert (await request(stack, "POST", "/v1/alerts", token=TOKEN, body=body)).status_code == 201
        async with feed(fresh_nats.url) as bus:
            await publish_bars(bus, [(1, "49")])

        async def alert_failed() -> bool:
            items = (await request(stack, "GET", "/v1/deliveries")).json()["deliveries"]
            return any(d["kind"] == "price_alert" and d["outcome"] == "failed" for d in items)

        await eventually(alert_failed)
        assert (await stack.get("notifier", "/readyz")).status_code == 200
        metrics = (await stack.get("notifier", "/metrics")).text
    assert 'tradewire_notifier_notifications_total{kind="alert",outcome="failed"} 1.0' in metrics
    assert 'tradewire_notifier_notifications_total{kind="price_alert",outcome="failed"} 1.0' in metrics
    assert "tradewire_notifier_price_alerts_total 1.0" in metrics
    assert "tradewire_notifier_alert_rules_value 1.0" in metrics
