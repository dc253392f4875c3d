"""Automation levels and promotions end to end over a real broker: a semi-auto strategy's orders wait in
risk's approval queue (listed by the CLI, approved -> filled in the ledger, rejected and expired -> denied and
recorded, re-checked against a HALTED state, surviving a risk restart), and promotions go through their gates
(the paper gate reading the strategy's paper fills from the real ledger) and are recorded in the ledger.

The test drives the market itself: ETH bars and signals published on the broker, so what waits, fills and
expires is known exactly. The replay configured makes the automation clock event time: the TTL and the paper
period run with the bars' times.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.support.inproc import InProcessStack
from tests.support.nats_server import NatsServer
from tests.support.stack import demo_config
from tradewire_common import subjects
from tradewire_common.bus import NatsBus
from tradewire_common.cli.main import main
from tradewire_common.config import load_config
from tradewire_common.ids import derive_id
from tradewire_common.schemas import Bar, OrderType, Side, Signal

TOKEN = "approvals-flow-token"
ETH = "ETHUSDT.BINANCE"
MINUTE = 60 * 10**9
T = 1_640_995_200 * 10**9  # 2022-01-01T00:00Z
D = Decimal
TTL_S = 180
#: generous bound on waiting for the system's asynchronous reaction (never hit when things work)
WAIT_S = 60.0

EXTRA = f"""
[[risk.instruments]]
id = "{ETH}"
quantity_step = "0.00001"
min_quantity = "0.00001"

[approvals]
ttl_s = {TTL_S}

[promotion]
paper_days = 0.002
tolerance = 0.001
"""


def write_config(tmp_path: Path, *, automation: str) -> Path:
    text = demo_config(limit=20, extra=f'path = "{tmp_path / "ledger.db"}"') + EXTRA
    params = "params = { fast = 10, slow = 30 }"
    for old, new in ((params, f'{params}\nautomation = "{automation}"'),
                     ("max_position_pct = 0.10", "max_position_pct = 1.0"),
                     ("max_exposure_pct = 0.25", "max_exposure_pct = 1.0")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / "tw.toml"
    path.write_text(text)
    return path


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEWIRE_API_TOKEN", TOKEN)
    monkeypatch.delenv("TRADEWIRE_API_TOKEN_FILE", raising=False)


class Market:
    """Publishes ETH bars and sma_cross signals the way the datafeed and the strategy would."""

    def __init__(self, bus: NatsBus) -> None:
        self.bus = bus
        self.n = 0
        self.published: set[int] = set()

    async def bar(self, ts: int, price: str = "3000") -> None:
        """One bar per minute: a bar already published is not sent again."""
        if ts in self.published:
            return
        self.published.add(ts)
        p = D(price)
        await self.bus.publish(subjects.bar("BINANCE", "ETHUSDT", "1m"), Bar(
            id=derive_id("approvals-bar", ts), ts_event=ts, ts_init=ts, instrument_id=ETH, interval="1m", open=p,
            high=p, low=p, close=p, volume=D("1000")))

    async def signal(self, ts: int, side: Side = Side.BUY) -> Signal:
        self.n += 1
        signal = Signal(id=derive_id("approvals-signal", self.n, ts), ts_event=ts, ts_init=ts, strategy_id="sma_cross",
                        instrument_id=ETH, side=side, price=D("3000"), confidence=1.0, reason=f"test {self.n}",
                        order_type=OrderType.MARKET)
        await self.bus.publish(subjects.signal("sma_cross"), signal)
        return signal


@pytest.fixture
async def market(fresh_nats: NatsServer) -> AsyncIterator[Market]:
    bus = NatsBus("driver", fresh_nats.url, auth=None)
    await bus.connect()
    try:
        yield Market(bus)
    finally:
        await bus.close()


async def wait_until(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not await check():
            await asyncio.sleep(0.05)


async def pending(stack: InProcessStack) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = (await stack.get("risk", "/v1/approvals")).json()["pending"]
    return result


async def order_status(stack: InProcessStack, coid: str) -> str | None:
    orders = (await stack.get("ledger", "/v1/orders?limit=1000")).json()
    return next((o["status"] for o in orders if o["client_order_id"] == coid), None)


def risk_event_time(stack: InProcessStack) -> int:
    snapshot = stack.service("risk").snapshot  # type: ignore[attr-defined]
    return 0 if snapshot is None else int(snapshot.as_of)


def ledger_rows(tmp_path: Path, kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        rows = db.execute("SELECT payload FROM messages WHERE type = ? ORDER BY ts_init, id", (kind,)).fetchall()
    return [json.loads(p) for (p,) in rows]


def run_dir(stack: InProcessStack, tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir(exist_ok=True)
    (path / "endpoints.json").write_text(json.dumps({"services": {n: stack.url(n) for n in stack.running}}))
    return path


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    def run() -> int:
        try:
            return main(list(args))
        except SystemExit as exc:  # argparse refusing the arguments
            return int(exc.code or 0)

    code = await asyncio.to_thread(run)
    out, err = capsys.readouterr()
    return code, out, err


async def park(stack: InProcessStack, market: Market, ts: int, waiting: int) -> dict[str, Any]:
    """A bar and a BUY signal at ``ts``; the order that then waits (``waiting`` in all)."""
    await market.bar(ts)
    signal = await market.signal(ts)

    async def parked() -> bool:
        return len(await pending(stack)) == waiting

    await wait_until(parked)
    [item] = [i for i in await pending(stack) if i["signal_id"] == signal.id]
    return item


async def test_semi_auto_orders_wait_for_a_person_end_to_end(
    fresh_nats: NatsServer, market: Market, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config_path = write_config(tmp_path, automation="semi-auto")
    stack = InProcessStack(load_config(config_path, environ={}), fresh_nats.url)
    await stack.start(("ledger", "execution", "risk"))
    try:
        args = ("--config", str(config_path), "--run-dir", str(run_dir(stack, tmp_path)))

        # 1. the order waits; the CLI lists it; nothing reaches execution
        first = await park(stack, market, T, 1)
        assert (first["side"], first["strategy_id"], first["clock"]) == ("BUY", "sma_cross", "event")
        assert first["expires_at_ns"] == T + TTL_S * 10**9
        code, out, _ = await cli(capsys, "approvals", "list", *args)
        assert code == 0 and out.startswith(f"{first['id']}  sma_cross: BUY {first['quantity']} {ETH} MARKET")
        assert await order_status(stack, first["id"]) is None

        # 2. approving needs the token; approved, it is sent and fills on the next bar
        url = f"/v1/approvals/{first['id']}/approve"
        assert (await stack.post("risk", url, {})).status_code == 401
        code, out, _ = await cli(capsys, "approvals", "approve", first["id"], "--reason", "checked the chart", *args)
        assert (code, out.strip()) == (0, f"approved and sent: BUY {first['quantity']} {ETH}")
        await market.bar(T + MINUTE)

        async def filled() -> bool:
            return await order_status(stack, first["id"]) == "FILLED"

        await wait_until(filled)

        # 3. rejected: denied with who and why
        second = await park(stack, market, T + MINUTE, 1)
        code, _, err = await cli(capsys, "approvals", "reject", second["id"], *args)  # --reason is required
        assert code == 2 and "--reason" in err
        rejected = await stack.post("risk", f"/v1/approvals/{second['id']}/reject", {"reason": "too late in the day"},
                                    token=TOKEN)
        assert rejected.status_code == 200 and rejected.json()["denial"]["reason_code"] == "APPROVAL_REJECTED"

        # 4. expiry after the TTL of event time (the bars' times): alive one ns before, gone at it
        third = await park(stack, market, T + 2 * MINUTE, 1)
        expiry = T + 2 * MINUTE + TTL_S * 10**9
        for minute in (3, 4):
            await market.bar(T + minute * MINUTE)
        await wait_until(lambda: _at_least(stack, T + 4 * MINUTE))
        assert [i["id"] for i in await pending(stack)] == [third["id"]]
        await market.bar(expiry)
        await wait_until(lambda: _at_least(stack, expiry))
        assert await pending(stack) == []  # the listing sweeps first
        late = await stack.post("risk", f"/v1/approvals/{third['id']}/approve", {}, token=TOKEN)
        assert late.status_code == 409 and "already decided: EXPIRED by risk" in late.text

        # 5. approval is checked again: a HALTED state denies it then
        fourth = await park(stack, market, expiry, 1)
        halted = await stack.post("risk", "/v1/kill-switch", {"state": "HALTED", "reason": "incident"}, token=TOKEN)
        assert halted.status_code == 200
        code, out, _ = await cli(capsys, "approvals", "approve", fourth["id"], *args)
        assert code == 1 and "denied at the re-check: TRADING_HALTED" in out
        released = await stack.post("risk", "/v1/kill-switch", {"state": "ACTIVE", "reason": "over"}, token=TOKEN)
        assert released.status_code == 200

        # 6. the queue survives a risk restart; the restored order is approved and fills
        fifth = await park(stack, market, expiry + MINUTE, 1)
        await stack.restart_service("risk")
        run_dir(stack, tmp_path)  # risk's new port
        assert [i["id"] for i in await pending(stack)] == [fifth["id"]]
        approved = await stack.post("risk", f"/v1/approvals/{fifth['id']}/approve", {"reason": "after restart"},
                                    token=TOKEN)
        assert approved.status_code == 200 and approved.json()["outcome"] == "SUBMITTED"
        await market.bar(expiry + 2 * MINUTE)

        async def fifth_filled() -> bool:
            return await order_status(stack, fifth["id"]) == "FILLED"

        await wait_until(fifth_filled)
        statuses = {item["id"]: await order_status(stack, item["id"]) for item in (second, third, fourth)}
        assert statuses == {second["id"]: "DENIED", third["id"]: "DENIED", fourth["id"]: "DENIED"}
    finally:
        await stack.close()

    parked = ledger_rows(tmp_path, "OrderPendingApproval")
    assert [p["client_order_id"] for p in parked] == [i["id"] for i in (first, second, third, fourth, fifth)]
    decided = [(d["client_order_id"], d["decision"], d["actor"], d["reason"])
               for d in ledger_rows(tmp_path, "OrderApprovalDecided")]
    assert decided == [
        (first["id"], "APPROVED", "api-token", "checked the chart"),
        (second["id"], "REJECTED", "api-token", "too late in the day"),
        (third["id"], "EXPIRED", "risk", f"not approved within {TTL_S} s (event time)"),
        (fourth["id"], "APPROVED", "api-token", ""),
        (fifth["id"], "APPROVED", "api-token", "after restart"),
    ]
    denials = {d["client_order_id"]: (d["reason_code"], d["ts_event"]) for d in ledger_rows(tmp_path, "OrderDenied")}
    assert denials == {second["id"]: ("APPROVAL_REJECTED", T + MINUTE), third["id"]: ("APPROVAL_EXPIRED", expiry),
                       fourth["id"]: ("TRADING_HALTED", expiry)}
    submits = ledger_rows(tmp_path, "SubmitOrder")
    assert [(s["client_order_id"], s["ts_event"]) for s in submits] == [
        (first["id"], T), (fifth["id"], expiry + MINUTE)]


async def _at_least(stack: InProcessStack, ts: int) -> bool:
    return risk_event_time(stack) >= ts


async def test_promotions_pass_their_gates_and_are_recorded_in_the_ledger(
    fresh_nats: NatsServer, market: Market, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config_path = write_config(tmp_path, automation="full-auto")
    config = load_config(config_path, environ={})
    stack = InProcessStack(config, fresh_nats.url)
    await stack.start(("ledger",))
    # risk reads the paper results from this ledger
    stack.config = msgspec.structs.replace(config, risk=msgspec.structs.replace(
        config.risk, ledger_url=stack.url("ledger")))
    await stack.start(("execution", "risk"))
    try:
        args = ("--config", str(config_path), "--run-dir", str(run_dir(stack, tmp_path)))
        report = tmp_path / "backtest.txt"
        await market.bar(T)
        await wait_until(lambda: _at_least(stack, T))

        code, out, _ = await cli(capsys, "strategies", *args)
        assert (code, out.split()[:6]) == (0, ["sma_cross", "sma_cross", "automation", "full-auto", "stage", "paper"])
        body = {"to": "backtest", "reason": "x"}
        assert (await stack.post("risk", "/v1/strategies/sma_cross/promote", body)).status_code == 401

        # demoted to backtest: no order leaves risk; back to paper only with a backtest
        code, out, _ = await cli(capsys, "promote", "sma_cross", "--to", "backtest", "--reason", "review", *args)
        assert (code, out.strip()) == (0, "sma_cross: paper -> backtest (review)")
        await market.signal(T)

        async def denied() -> bool:
            return bool((await stack.get("ledger", "/v1/summary")).json()["denials"] == 1)

        await wait_until(denied)
        code, _, err = await cli(capsys, "promote", "sma_cross", "--to", "paper", "--reason", "ok", *args)
        assert code == 1 and "needs a recorded backtest" in err
        backtest = {"mode": "event", "strategy": "sma_cross", "bars": 1000, "trades": 3, "total_return": 0.5}
        report.write_text("progress 100%\n" + json.dumps(backtest) + "\n")
        code, out, _ = await cli(capsys, "promote", "sma_cross", "--to", "paper", "--reason", "backtest ok",
                                 "--backtest-report", str(report), *args)
        assert code == 0, out

        # paper trading: a BUY at T+1m fills at T+2m; the paper period needs 0.002 days (172.8 s) of bars
        await market.bar(T + MINUTE)
        await market.signal(T + MINUTE)
        for minute in (2, 3, 4):
            await market.bar(T + minute * MINUTE)
        await wait_until(lambda: _at_least(stack, T + 4 * MINUTE))
        code, _, err = await cli(capsys, "promote", "sma_cross", "--to", "live-small", "--reason", "paper ok",
                                 "--backtest-report", str(report), *args)
        assert code == 1 and "differs from the backtest's 0.500000" in err
        report.write_text(json.dumps({**backtest, "total_return": 0.0}))
        code, out, _ = await cli(capsys, "promote", "sma_cross", "--to", "live-small", "--reason", "paper ok",
                                 "--backtest-report", str(report), "--json", *args)
        assert code == 0, out
        evidence = json.loads(out)["history"][-1]["evidence"]
        assert (evidence["paper_fills"], evidence["period_start_ns"], evidence["period_end_ns"]) == (
            "1", str(T), str(T + 4 * MINUTE))
        assert -0.001 <= float(evidence["paper_return"]) < 0  # fees and slippage of one entry, price unchanged

        async def recorded() -> bool:
            return len((await stack.get("ledger", "/v1/promotions?strategy_id=sma_cross")).json()) == 3

        await wait_until(recorded)
        promotions = (await stack.get("ledger", "/v1/promotions?strategy_id=sma_cross")).json()
        assert [(p["previous"], p["stage"], p["reason"], p["actor"]) for p in promotions] == [
            ("paper", "backtest", "review", "api-token"), ("backtest", "paper", "backtest ok", "api-token"),
            ("paper", "live-small", "paper ok", "api-token")]
        assert json.loads(promotions[1]["backtest_report"]) == backtest
        assert promotions[2]["evidence"] == evidence
        assert (await stack.get("ledger", "/v1/promotions?strategy_id=other")).json() == []
    finally:
        await stack.close()

    [denial] = ledger_rows(tmp_path, "OrderDenied")
    assert denial["reason_code"] == "STAGE_BACKTEST_ONLY"


async def test_adaptive_parameters_change_over_http_only_within_their_bounds(
    fresh_nats: NatsServer, tmp_path: Path,
) -> None:
    text = write_config(tmp_path, automation="adaptive").read_text().replace(
        'automation = "adaptive"', 'automation = "adaptive"\nparam_bounds = { fast = { min = 5, max = 20 } }')
    path = tmp_path / "adaptive.toml"
    path.write_text(text)
    stack = InProcessStack(load_config(path, environ={}), fresh_nats.url)
    await stack.start(("ledger", "signals"))
    try:
        url = "/v1/strategies/sma_cross/params"
        change = {"params": {"fast": 12}, "reason": "weekly re-optimisation"}
        assert (await stack.post("signals", url, change)).status_code == 401
        outside = await stack.post("signals", url, {**change, "params": {"fast": 21}}, token=TOKEN)
        assert outside.status_code == 409 and "outside its bounds [5, 20]" in outside.text
        unbounded = await stack.post("signals", url, {**change, "params": {"slow": 40}}, token=TOKEN)
        assert unbounded.status_code == 409 and "has no param_bounds" in unbounded.text
        assert (await stack.post("signals", url, {"params": {"fast": 12}}, token=TOKEN)).status_code == 422
        applied = await stack.post("signals", url, change, token=TOKEN)
        assert applied.status_code == 200 and applied.json()["params"] == {"fast": 12, "slow": 30}
        [listed] = (await stack.get("signals", "/v1/strategies")).json()["strategies"]
        assert (listed["automation"], listed["params"]) == ("adaptive", {"fast": 12, "slow": 30})

        async def recorded() -> bool:
            return bool(await asyncio.to_thread(ledger_rows, tmp_path, "StrategyParamsChanged"))

        await wait_until(recorded)
    finally:
        await stack.close()
    [event] = ledger_rows(tmp_path, "StrategyParamsChanged")
    assert (event["params"], event["previous"], event["actor"]) == (
        {"fast": 12, "slow": 30}, {"fast": 10, "slow": 30}, "api-token")
