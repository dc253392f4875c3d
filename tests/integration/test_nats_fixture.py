"""The shared ``nats_server`` fixture gives a real broker with JetStream that survives restarts."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client
from nats.js.api import StorageType

from tests.support.nats_server import NatsServer


async def _connect(url: str) -> Client:
    return await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.load(resp)


def test_fixture_urls_point_at_loopback_ports_chosen_by_the_server(nats_server: NatsServer) -> None:
    assert nats_server.url == f"nats://127.0.0.1:{nats_server.port}"
    assert nats_server.monitor_url == f"http://127.0.0.1:{nats_server.monitor_port}"
    assert nats_server.port > 0 and nats_server.monitor_port > 0
    assert nats_server.port != nats_server.monitor_port


async def test_a_published_message_reaches_a_subscriber(nats_url: str) -> None:
    nc = await _connect(nats_url)
    try:
        subject = f"test.fixture.{uuid.uuid4().hex}"
        sub = await nc.subscribe(subject)
        await nc.publish(subject, b"hello", headers={"k": "v"})
        msg = await sub.next_msg(timeout=2)
        assert msg.subject == subject
        assert msg.data == b"hello"
        assert msg.headers == {"k": "v"}
    finally:
        await nc.close()


async def test_jetstream_is_enabled_and_stores_under_the_fixture_store_dir(nats_server: NatsServer) -> None:
    nc = await _connect(nats_server.url)
    try:
        info = await nc.jetstream().account_info()
        assert info.limits is not None
    finally:
        await nc.close()
    varz = await asyncio.to_thread(_get_json, f"{nats_server.monitor_url}/varz")
    assert Path(varz["jetstream"]["config"]["store_dir"]).parent == nats_server.store_dir


async def test_restart_keeps_the_url_and_the_stream_messages(nats_server: NatsServer) -> None:
    stream = f"FIXTURE_{uuid.uuid4().hex[:12].upper()}"
    payloads = [f"msg-{i}".encode() for i in range(3)]
    url_before, pid_before = nats_server.url, nats_server.pid

    nc = await _connect(url_before)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"], storage=StorageType.FILE)
        seqs = [(await js.publish(f"{stream}.x", data)).seq for data in payloads]
    finally:
        await nc.close()

    await asyncio.to_thread(nats_server.restart)
    assert nats_server.pid != pid_before
    assert nats_server.url == url_before

    nc = await _connect(nats_server.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        assert info.state.messages == len(payloads)
        assert [(await js.get_msg(stream, seq)).data for seq in seqs] == payloads
        await js.delete_stream(stream)
    finally:
        await nc.close()
