"""Kill-switch latency: from the HTTP call that engages it to the last acknowledgement of HALTED.

Starts ``tradewire up`` (bundled nats-server with a user per service, every service as a process),
then repeats: POST /v1/kill-switch HALTED (bearer token, a reason unique to the round) on a
kept-alive connection, wait until every acknowledgement below is observed, then release it the
same way (measured too).

The acknowledgements, each timed from sending the POST:

* **risk answers 200** only after risk switched its in-process state (from then on every signal is
  denied), stored it in the KV bucket and had JetStream store the ``TradingStateChanged`` on
  ``risk.state`` (a PubAck). Risk owns the state: its answer is its acknowledgement.
* **every other service applies it**: each follows ``risk.state`` and, having applied the change
  (its ``/readyz`` and ``trading_state_observed_value`` show it from then on), logs
  ``trading state of global is HALTED (<reason> by <actor>)``. Timed by that line's timestamp in the
  service's JSON log (wall clock, whole milliseconds: taken as the end of its millisecond, so up to
  1 ms late, never early). Reading logs loads no service, where polling ``/readyz`` on five services
  every millisecond delayed risk's answer about fourfold. After each round, one ``/readyz`` per
  service checks that it shows the state.
* **each durable consumer of ``risk.state``** (the ledger's ``ledger-state``, which writes the event
  to its store before acking; listed from the stream) acks it: its ``ack_floor`` reaching the
  event's sequence (``$JS.API.CONSUMER.INFO`` as the ``operator`` user, ``--poll-ms`` apart: up to
  one interval plus one round trip late).

"Last acknowledgement" is the latest of them all. Also printed: when the event reached a core
subscriber of ``risk.state`` (this script).

    .venv/bin/python tests/bench/kill_switch_latency.py                    # idle stack, 200 rounds
    .venv/bin/python tests/bench/kill_switch_latency.py --bars 45031       # during a demo replay, 200 bars/s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js import JetStreamContext

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.support.stack import SERVICES, demo_config, stack_env  # noqa: E402
from tradewire_common import subjects  # noqa: E402

STREAM = subjects.stream_for(subjects.RISK_STATE).name  # type: ignore[union-attr]
IDLE_CONFIG = '[ledger]\nstarting_cash = "10000"\n'  # no replay, no strategy: nothing else happening
#: The service that owns the trading state (its HTTP answer is its acknowledgement).
OWNER = "risk"
LOG_POLL_S = 0.002


@dataclass
class Round:
    """One engage (or release): milliseconds from sending the POST to each observation."""

    http_ms: float = math.nan
    event_ms: float = math.nan
    #: service -> it logged having applied the state
    applied_ms: dict[str, float] = field(default_factory=dict)
    #: durable consumer of risk.state -> it acked the event
    acks_ms: dict[str, float] = field(default_factory=dict)

    @property
    def last_ms(self) -> float:
        return max(self.http_ms, *self.applied_ms.values(), *self.acks_ms.values())


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (never below the value a p-th share of rounds reached)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> str:
    return "  ".join(f"{name} {percentile(values, p):7.2f}" for name, p in
                     (("p50", 50), ("p90", 90), ("p99", 99))) + f"  max {max(values):7.2f}"


class LogTail:
    """New complete lines of a growing log file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size
        self.partial = b""

    def lines(self) -> list[str]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in complete]


def log_time(line: str) -> float:
    """A JSON log line's timestamp (epoch seconds), at the end of its millisecond."""
    stamp = datetime.strptime(json.loads(line)["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return stamp.timestamp() + 0.001


class Observer:
    """The operator's NATS connection: sees risk.state events and polls the consumers' ack floors."""

    def __init__(self, url: str, password: str, poll_s: float) -> None:
        self.url, self.password, self.poll_s = url, password, poll_s
        self.events: asyncio.Queue[float] = asyncio.Queue()
        self.nc: Any = None
        self.js: JetStreamContext | None = None
        self.consumers: list[str] = []

    async def start(self) -> None:
        self.nc = await nats.connect(self.url, user="operator", password=self.password,
                                     inbox_prefix=subjects.inbox_prefix("operator"))
        self.js = self.nc.jetstream()

        async def on_event(_msg: Any) -> None:
            self.events.put_nowait(time.perf_counter())

        await self.nc.subscribe(subjects.RISK_STATE, cb=on_event)
        await self.nc.flush()
        assert self.js is not None
        self.consumers = sorted(c.name for c in await self.js.consumers_info(STREAM))

    async def last_seq(self) -> int:
        assert self.js is not None
        info = await self.js.stream_info(STREAM)
        seq: int = info.state.last_seq
        return seq

    async def ack_floor(self, consumer: str) -> int:
        assert self.js is not None
        info = await self.js.consumer_info(STREAM, consumer)
        return int(info.ack_floor.stream_seq if info.ack_floor else 0)

    async def poll_rtt_ms(self, n: int = 200) -> float:
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            await self.ack_floor(self.consumers[0])
            samples.append((time.perf_counter() - t) * 1000)
        return percentile(samples, 50)

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


@dataclass
class Bench:
    services: dict[str, str]
    token: str
    observer: Observer
    logs: dict[str, LogTail]  # the services other than the owner
    client: httpx.AsyncClient
    timeout: float

    async def one_round(self, state: str, reason: str) -> Round:
        target = await self.observer.last_seq() + 1  # only risk publishes on risk.state
        while not self.observer.events.empty():
            self.observer.events.get_nowait()
        for tail in self.logs.values():
            tail.lines()  # skip what came before
        result = Round()
        needle = f"trading state of global is {state} ({reason} by "
        t0_wall = time.time()
        t0 = time.perf_counter()

        async def post() -> None:
            response = await self.client.post(
                self.services[OWNER] + "/v1/kill-switch", json={"state": state, "reason": reason},
                headers={"Authorization": f"Bearer {self.token}"})
            result.http_ms = (time.perf_counter() - t0) * 1000
            response.raise_for_status()
            if response.json()["state"] != state:
                raise RuntimeError(f"risk answered {response.json()}")

        async def event() -> None:
            result.event_ms = (await self.observer.events.get() - t0) * 1000

        async def applied(name: str) -> None:
            while True:
                for line in self.logs[name].lines():
                    if needle in line:
                        result.applied_ms[name] = (log_time(line) - t0_wall) * 1000
                        return
                await asyncio.sleep(LOG_POLL_S)

        async def acked(consumer: str) -> None:
            while await self.observer.ack_floor(consumer) < target:
                await asyncio.sleep(self.observer.poll_s)
            result.acks_ms[consumer] = (time.perf_counter() - t0) * 1000

        await asyncio.wait_for(asyncio.gather(
            post(), event(), *(applied(n) for n in self.logs), *(acked(c) for c in self.observer.consumers),
        ), self.timeout)
        for name, url in self.services.items():  # not timed: each service shows what it logged
            shown = (await self.client.get(url + "/readyz")).json()["trading_state"]["global"]
            if shown != state:
                raise RuntimeError(f"{name} /readyz shows {shown} after acknowledging {state}")
        return result


async def bench(info: dict[str, Any], password: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    services: dict[str, str] = info["services"]
    observer = Observer(info["nats"], password, args.poll_ms / 1000)
    await observer.start()
    logs_dir = Path(info["run_dir"]) / "logs"
    logs = {name: LogTail(logs_dir / f"{name}.log") for name in services if name != OWNER}
    rounds: dict[str, list[Round]] = {"HALTED": [], "ACTIVE": []}
    try:
        async with httpx.AsyncClient(timeout=args.timeout) as client:
            readyz = {name: (await client.get(url + "/readyz")).json() for name, url in services.items()}
            missing = [name for name, body in readyz.items() if "trading_state" not in body]
            if missing:
                raise SystemExit(f"/readyz shows no trading state on {', '.join(missing)}: this stack predates "
                                 "services following risk.state")
            rtt = await observer.poll_rtt_ms() if observer.consumers else math.nan
            b = Bench(services, token, observer, logs, client, args.timeout)
            for i in range(args.warmup + args.rounds):
                for state in ("HALTED", "ACTIVE"):
                    r = await b.one_round(state, f"kill-switch latency benchmark, round {i} {state}")
                    if i >= args.warmup:
                        rounds[state].append(r)
    finally:
        await observer.close()
    return {"consumers": observer.consumers, "appliers": sorted(logs), "poll_rtt_ms": rtt, "rounds": rounds}


def start_up(tmp: Path, bars: int, bars_per_s: float) -> tuple[subprocess.Popen[bytes], Path, dict[str, str]]:
    config = tmp / "tw.toml"
    if bars > 0:
        # paced (N x real time for 1-minute bars), not lockstep: the load must not depend on the
        # benchmark, and a lockstep feed waits for quiet, which the kill-switch events keep breaking
        speed = bars_per_s * 60
        assert 'speed = "max"' in demo_config(limit=bars)
        config.write_text(demo_config(limit=bars).replace('speed = "max"', f'speed = "{speed:g}"'))
    else:
        config.write_text(IDLE_CONFIG)
    env = stack_env(tmp)
    run_dir = tmp / "run"
    with (tmp / "up.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradewire_common.cli.main", "up", "--config", str(config),
             "--run-dir", str(run_dir)],
            cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, run_dir, env


def wait_ready(proc: subprocess.Popen[bytes], run_dir: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"tradewire up exited with {proc.returncode}; see {run_dir.parent / 'up.log'}")
        endpoints = run_dir / "endpoints.json"
        if endpoints.exists():
            info: dict[str, Any] = json.loads(endpoints.read_text())
            try:
                if all(httpx.get(url + "/readyz", timeout=2).status_code == 200 for url in info["services"].values()):
                    assert set(SERVICES) <= set(info["services"])
                    return info
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise SystemExit(f"tradewire up not ready after {timeout:.0f}s")


def replay_status(info: dict[str, Any]) -> dict[str, Any]:
    status: dict[str, Any] = httpx.get(info["services"]["datafeed"] + "/v1/replay", timeout=5).json()
    return status


def stop_up(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    options = [("rounds", args.rounds), ("bars", args.bars), ("poll_ms", args.poll_ms)]
    if args.bars:
        options.insert(2, ("bars_per_s", args.bars_per_s))
    command = "    .venv/bin/python tests/bench/kill_switch_latency.py " + " ".join(
        f"--{k.replace('_', '-')} {v:g}" for k, v in options)
    load = f"during a replay of the demo at {args.bars_per_s:g} bars/s" if args.bars else "idle: no replay"
    print(f"kill switch over tradewire up, {load}; {args.rounds} rounds after {args.warmup} warm-up; ms from the POST")
    print(f"durable consumers of {STREAM}: {', '.join(result['consumers']) or 'none'}; their ack floors polled "
          f"{args.poll_ms:g} ms apart (one poll's round trip, p50 idle: {result['poll_rtt_ms']:.2f} ms)")
    if "replay" in result:
        print(f"replay: {result['replay']}")
    for state, verb in (("HALTED", "engage"), ("ACTIVE", "release")):
        rounds: list[Round] = result["rounds"][state]
        print(f"\n{verb} ({state})")
        print(f"  {'risk answers 200':<30}{summary([r.http_ms for r in rounds])}")
        print(f"  {'event reaches a subscriber':<30}{summary([r.event_ms for r in rounds])}")
        for name in result["appliers"]:
            print(f"  {name + ' applied it':<30}{summary([r.applied_ms[name] for r in rounds])}")
        for consumer in result["consumers"]:
            print(f"  {consumer + ' acked it':<30}{summary([r.acks_ms[consumer] for r in rounds])}")
        print(f"  {'last acknowledgement':<30}{summary([r.last_ms for r in rounds])}")
    print(f"\nreproduce:\n{command}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=200, help="engage/release rounds measured")
    parser.add_argument("--warmup", type=int, default=5, help="rounds run first and not counted")
    parser.add_argument("--bars", type=int, default=0, help="replay this many demo bars meanwhile (0: idle stack)")
    parser.add_argument("--bars-per-s", type=float, default=200.0, help="pace of that replay")
    parser.add_argument("--poll-ms", type=float, default=1.0, help="pause between ack-floor polls")
    parser.add_argument("--timeout", type=float, default=30.0, help="per round, before giving up")
    parser.add_argument("--json", type=Path, help="also write every round's figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tw-ks-bench-") as tmp:
        proc, run_dir, env = start_up(Path(tmp), args.bars, args.bars_per_s)
        try:
            info = wait_ready(proc, run_dir, timeout=120)
            password = Path(info["nats_operator_password_file"]).read_text().strip()
            before = replay_status(info)
            result = asyncio.run(bench(info, password, env["TRADEWIRE_API_TOKEN"], args))
            after = replay_status(info)
            if args.bars:  # the load lasted the whole measurement only if the replay had not finished
                result["replay"] = (f"{before.get('bars_published')} bars published when the measurement began, "
                                    f"{after.get('bars_published')} when it ended (done: {after.get('done')})")
        finally:
            stop_up(proc)
    report(result, args)
    if args.json:
        args.json.write_text(json.dumps({state: [vars(r) for r in rounds]
                                         for state, rounds in result["rounds"].items()}, indent=1))


if __name__ == "__main__":
    main()
