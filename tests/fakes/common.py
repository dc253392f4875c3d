"""Plumbing the aiohttp venue fakes share (Binance, Coinbase, Kraken): serving on 127.0.0.1, injected faults,
cutting a connection. Each fake keeps its own wire format, request record and fault kinds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class Fault:
    """The next ``times`` requests to ``path`` (and ``method``; ``""`` is any method) meet fault ``kind``; what
    a kind does is the fake's (``delay_s`` for latency kinds, ``retry_after`` the header of a 429)."""

    method: str
    path: str
    kind: str
    times: int = 1
    delay_s: float = 0.0
    retry_after: str = "1"


def take_fault(faults: list[Fault], method: str, path: str) -> Fault | None:
    """The first pending fault for this request, one of its ``times`` used up; None if there is none."""
    for fault in faults:
        if fault.method in ("", method) and fault.path == path and fault.times > 0:
            fault.times -= 1
            return fault
    return None


def drop(request: web.Request) -> web.Response:
    """Cut the connection (the client sees no answer); the response returned is never sent."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


async def fault_after_processing(fault: Fault | None, request: web.Request,
                                 unavailable: Callable[[], web.Response]) -> web.Response | None:
    """The faults that strike once the request was processed: ``latency`` (answered ``delay_s`` later), ``drop``
    (connection cut) and ``503`` (the venue's ``unavailable`` answer); None: answer normally."""
    if fault is None:
        return None
    if fault.kind == "latency":
        await asyncio.sleep(fault.delay_s)
    if fault.kind == "drop":
        return drop(request)
    if fault.kind == "503":
        return unavailable()
    return None


class LoopbackFake:
    """A fake venue's aiohttp server on 127.0.0.1 (``port`` 0: a free one), with the requests it recorded
    (records with a ``path``). Mixed into the fakes' dataclasses, which own ``port`` and ``requests``."""

    port: int
    requests: list[Any]
    _runner: web.AppRunner | None

    async def serve(self, app: web.Application) -> None:
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]
