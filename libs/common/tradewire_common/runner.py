"""Run one service process: config, logging, bus, HTTP, signals."""

from __future__ import annotations

import logging

from tradewire_common.config import Config
from tradewire_common.logs import setup_logging
from tradewire_common.metrics import ServiceMetrics
from tradewire_common.registry import service_factory
from tradewire_common.service import nats_bus_for, serve_forever

log = logging.getLogger(__name__)


async def run_service(name: str, config: Config, *, nats_url: str = "") -> int:
    setup_logging(name, config.logging.level, config.logging.json)
    url = nats_url or config.bus.url
    if not url:
        log.error("no broker: pass --nats URL or set bus.url (TRADEWIRE__BUS__URL)")
        return 2
    factory = service_factory(name)
    bus = nats_bus_for(name, config, url)
    bus.metrics = ServiceMetrics(name)
    service = factory(config, bus, None)
    port: int = getattr(config.http.ports, name)
    try:
        await serve_forever(service, host=config.http.host, port=port)
    except ConnectionError as exc:
        log.error("cannot start: %s", exc)
        return 3
    return 0
