"""An in-memory bus with NATS semantics, for fast tests and the backtester.

Same wildcards, queue groups (one member per group gets each message, round robin), per
subscription ordering, JetStream-like streams for stream subjects (``Nats-Msg-Id`` de-duplication,
durable consumers that resume after a re-subscribe and redeliver on failure), a KV bucket,
and every message goes through the codec as bytes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

from tradewire_common import subjects
from tradewire_common.bus.base import Bus, Handler, Outcome, Responder, Subscription


@dataclass
class _Stored:
    seq: int
    subject: str
    data: bytes
    headers: dict[str, str]


@dataclass
class _Stream:
    spec: subjects.StreamSpec
    messages: list[_Stored] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)
    #: durable name -> index of the next message to deliver
    cursors: dict[str, int] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryBroker:
    """The shared 'server' that several MemoryBus clients (one per service) connect to."""

    def __init__(self) -> None:
        self.core_subs: list[_CoreSub] = []
        self.streams = {spec.name: _Stream(spec) for spec in subjects.STREAMS}
        self.kv: dict[str, bytes] = {}
        self._rr = itertools.count()
        self._seq = itertools.count(1)

    def publish_core(self, subject: str, data: bytes, headers: dict[str, str], reply: str = "") -> None:
        groups: dict[str, list[_CoreSub]] = {}
        for sub in self.core_subs:
            if not subjects.matches(sub.pattern, subject):
                continue
            if sub.queue:
                groups.setdefault(sub.queue, []).append(sub)
            else:
                sub.pending += 1
                sub.queue_in.put_nowait((subject, data, headers, reply))
        for members in groups.values():
            member = members[next(self._rr) % len(members)]
            member.pending += 1
            member.queue_in.put_nowait((subject, data, headers, reply))

    def quiet(self) -> bool:
        """Nothing queued or being handled anywhere (control-plane subjects aside)."""
        for sub in self.core_subs:
            if sub.pending and not sub.pattern.startswith(("ctl.", "_INBOX.")):
                return False
        for stream in self.streams.values():
            if any(cursor < len(stream.messages) for cursor in stream.cursors.values()):
                return False
        return True

    def store(self, stream: _Stream, subject: str, data: bytes, headers: dict[str, str]) -> bool:
        """Append to the stream; False when the ``Nats-Msg-Id`` was seen (a dropped duplicate)."""
        msg_id = headers.get("Nats-Msg-Id")
        if msg_id is not None:
            if msg_id in stream.seen_ids:
                return False
            stream.seen_ids.add(msg_id)
        stream.messages.append(_Stored(next(self._seq), subject, data, headers))
        stream.changed.set()
        return True


class _CoreSub(Subscription):
    def __init__(self, broker: MemoryBroker, pattern: str, queue: str | None) -> None:
        self.broker = broker
        self.pattern = pattern
        self.queue = queue
        self.queue_in: asyncio.Queue[tuple[str, bytes, dict[str, str], str]] = asyncio.Queue()
        #: delivered but not yet handled
        self.pending = 0
        self.task: asyncio.Task[None] | None = None

    async def unsubscribe(self) -> None:
        if self in self.broker.core_subs:
            self.broker.core_subs.remove(self)
        # drain what was already delivered, then stop
        await self.queue_in.join()
        if self.task is not None:
            self.task.cancel()


class _DurableSub(Subscription):
    def __init__(self, task: asyncio.Task[None], stop: asyncio.Event) -> None:
        self.task = task
        self.stop = stop

    async def unsubscribe(self) -> None:
        self.stop.set()
        await asyncio.gather(self.task, return_exceptions=True)


class MemoryBus(Bus):
    """One service's connection to a :class:`MemoryBroker`."""

    def __init__(self, service: str, broker: MemoryBroker, **kwargs: object) -> None:
        super().__init__(service, **kwargs)  # type: ignore[arg-type]
        self.broker = broker
        self._subs: list[Subscription] = []
        self._inbox = itertools.count()

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        for sub in reversed(self._subs):
            await sub.unsubscribe()
        self._subs.clear()

    async def publish_raw(self, subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> None:
        hdrs = dict(headers or {})
        spec = subjects.stream_for(subject)
        stored = True
        if spec is not None:
            stored = self.broker.store(self.broker.streams[spec.name], subject, data, hdrs)
        self.broker.publish_core(subject, data, hdrs)
        self._count_published(subject, duplicate=not stored)

    async def _subscribe(
        self, subject: str, handler: Handler, *, queue: str | None, durable: str | None
    ) -> Subscription:
        if durable is None:
            sub = _CoreSub(self.broker, subject, queue)

            async def run_core() -> None:
                while True:
                    subj, data, headers, _reply = await sub.queue_in.get()
                    try:
                        await self.dispatch(subject, handler, subj, data, headers, 1)
                    finally:
                        sub.pending -= 1
                        sub.queue_in.task_done()

            sub.task = asyncio.create_task(run_core(), name=f"{self.service}:{subject}")
            self.broker.core_subs.append(sub)
            self._subs.append(sub)
            return sub
        spec = subjects.stream_for_pattern(subject)
        assert spec is not None
        stream = self.broker.streams[spec.name]
        key = f"{durable}:{subject}"
        stream.cursors.setdefault(key, 0)
        stop = asyncio.Event()

        async def run_durable() -> None:
            deliveries: dict[int, int] = {}
            while not stop.is_set():
                index = stream.cursors[key]
                if index >= len(stream.messages):
                    stream.changed.clear()
                    waiter = asyncio.create_task(stream.changed.wait())
                    stopper = asyncio.create_task(stop.wait())
                    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    stopper.cancel()
                    continue
                stored = stream.messages[index]
                if not subjects.matches(subject, stored.subject):
                    stream.cursors[key] = index + 1
                    continue
                n = deliveries.get(stored.seq, 0) + 1
                deliveries[stored.seq] = n
                outcome = await self.dispatch(
                    subject, handler, stored.subject, stored.data, stored.headers, n, durable=True
                )
                if outcome is Outcome.ACK:
                    deliveries.pop(stored.seq, None)
                    stream.cursors[key] = index + 1
                else:
                    await asyncio.sleep(0.01)

        task = asyncio.create_task(run_durable(), name=f"{self.service}:{durable}")
        dsub = _DurableSub(task, stop)
        self._subs.append(dsub)
        return dsub

    async def kv_get(self, key: str) -> bytes | None:
        return self.broker.kv.get(key)

    async def kv_put(self, key: str, value: bytes) -> None:
        self.broker.kv[key] = value

    async def serve(self, subject: str, responder: Responder) -> Subscription:
        sub = _CoreSub(self.broker, subject, None)

        async def run() -> None:
            while True:
                _subj, data, _headers, reply = await sub.queue_in.get()
                try:
                    answer = await responder(data)
                    if reply and answer is not None:
                        self.broker.publish_core(reply, answer, {})
                finally:
                    sub.pending -= 1
                    sub.queue_in.task_done()

        sub.task = asyncio.create_task(run())
        self.broker.core_subs.append(sub)
        self._subs.append(sub)
        return sub

    async def gather(self, subject: str, data: bytes, *, expected: int, timeout: float) -> list[bytes]:
        inbox = f"_INBOX.{self.service}.{next(self._inbox)}"
        sub = _CoreSub(self.broker, inbox, None)
        self.broker.core_subs.append(sub)
        replies: list[bytes] = []
        try:
            self.broker.publish_core(subject, data, {}, reply=inbox)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while len(replies) < expected:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(sub.queue_in.get(), remaining)
                except TimeoutError:
                    break
                replies.append(item[1])
        finally:
            self.broker.core_subs.remove(sub)
        return replies

    async def wait_idle(self, timeout: float) -> bool | None:
        """Until the whole in-memory broker is quiet (exact: it sees every queue and cursor)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.broker.quiet():
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0)
        return True
