"""The five services in this test's event loop, each with its own NATS connection and HTTP port."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import httpx

from tests.support.ports import free_tcp_port
from tradewire_common.config import Config
from tradewire_common.registry import service_factory
from tradewire_common.service import Service, nats_bus_for, serve_forever

START_ORDER = ("ledger", "execution", "risk", "signals", "datafeed")


@dataclass
class Running:
    service: Service
    port: int
    stop: asyncio.Event
    task: asyncio.Task[None]


@dataclass
class InProcessStack:
    config: Config
    nats_url: str
    running: dict[str, Running] = field(default_factory=dict)

    async def start(self, names: tuple[str, ...] = START_ORDER) -> None:
        for name in names:
            await self.start_service(name)

    async def start_service(self, name: str, timeout: float = 20.0) -> Service:
        bus = nats_bus_for(name, self.config, self.nats_url)
        service = service_factory(name)(self.config, bus, None)
        port = free_tcp_port()
        stop = asyncio.Event()
        task = asyncio.create_task(serve_forever(service, host="127.0.0.1", port=port, stop=stop))
        self.running[name] = Running(service, port, stop, task)
        async with asyncio.timeout(timeout):
            while not service.ready:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        return service

    async def stop_service(self, name: str) -> None:
        running = self.running.pop(name)
        running.stop.set()
        await asyncio.wait_for(running.task, 20)

    async def restart_service(self, name: str) -> Service:
        await self.stop_service(name)
        return await self.start_service(name)

    async def close(self) -> None:
        for name in reversed(list(self.running)):  # also services started by name (the notifier)
            await self.stop_service(name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.running[name].port}"

    def service(self, name: str) -> Service:
        return self.running[name].service

    async def get(self, name: str, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(self.url(name) + path)

    async def post(self, name: str, path: str, body: object, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(self.url(name) + path, json=body, headers=headers)

    async def wait_replay_done(self, timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):
            while not (await self.get("datafeed", "/v1/replay")).json()["done"]:
                await asyncio.sleep(0.05)
