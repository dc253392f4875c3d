"""The NATS implementation: core NATS for market data and control, JetStream for the trading flow.

Stream subjects are published through JetStream with ``Nats-Msg-Id`` (the message id), retried
with the same id when the broker does not answer, so a retry can never duplicate. In a cluster a
stream has no leader for a few seconds after its leader died: publishes are retried with backoff for
up to ``publish_retry_s`` (inside the streams' duplicate window), so they ride out the election. Durable
subscriptions are push consumers with explicit acks: a message is acknowledged only after its
handler returned (after the ledger persisted it), and a failed handler is retried with a delay
until ``max_deliver``, then dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from tradewire_common import subjects
from tradewire_common.bus.base import Bus, Handler, Outcome, Responder, Subscription, _retry_key
from tradewire_common.ids import new_id
from tradewire_common.nats_auth import ClientAuth, client_auth_from_env

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    # 503 "JetStream system temporarily unavailable": the stream or meta group is electing a leader
    nats.js.errors.ServiceUnavailableError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    asyncio.TimeoutError,
)
#: The streams' de-duplication window at least (a redelivered input's outputs are dropped within it).
DUPLICATE_WINDOW_S = 120.0
#: Longest pause between two attempts of a JetStream publish.
MAX_RETRY_DELAY_S = 0.5


class _RecentSequences:
    """The stream sequences a durable subscription of this process received, the latest ``limit``.

    A redelivery (after a lost ack, a consumer leader change) of one of them was handled here already;
    one not among them never reached this process."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._seqs: dict[int, None] = {}  # insertion-ordered: the oldest is evicted first

    def add(self, seq: int) -> bool:
        """Remember ``seq``; True if it is new."""
        if seq in self._seqs:
            return False
        self._seqs[seq] = None
        if len(self._seqs) > self.limit:
            del self._seqs[next(iter(self._seqs))]
        return True


class _NatsSub(Subscription):
    def __init__(self, sub: Any) -> None:
        self.sub = sub

    async def unsubscribe(self) -> None:
        try:
            await self.sub.drain()
        except (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError):
            pass


class NatsBus(Bus):
    def __init__(
        self, service: str, url: str, *, credentials_file: str = "", auth: ClientAuth | Literal["env"] | None = "env",
        connect_timeout: float = 10.0, publish_retry_s: float = 30.0, publish_attempts: int | None = None,
        stream_replicas: int = 1, **kwargs: Any,
    ) -> None:
        """``auth``: the login (None: anonymous); ``"env"`` reads it from the service-side environment
        (``TRADEWIRE__BUS__USER`` with ``TRADEWIRE_NATS_PASSWORD``, or anonymous when unset).

        ``url`` may list several servers, comma-separated (the nodes of a cluster). A JetStream publish
        is retried for up to ``publish_retry_s`` (and at most ``publish_attempts`` times, if given);
        ``stream_replicas`` is the number of copies of each stream and of the KV bucket."""
        super().__init__(service, **kwargs)
        self.url = url
        self.servers = [u.strip() for u in url.split(",") if u.strip()]
        self.credentials_file = credentials_file
        self.auth = client_auth_from_env() if auth == "env" else auth
        #: The broker's latest refusals (authorization or permissions violations), newest last.
        self.refusals: deque[str] = deque(maxlen=32)
        self.connect_timeout = connect_timeout
        self.publish_attempts = publish_attempts
        self.publish_retry_s = publish_retry_s
        self.stream_replicas = stream_replicas
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._subs: list[Subscription] = []
        self._refused: asyncio.Future[str] | None = None

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise RuntimeError("bus not connected")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("bus not connected")
        return self._js

    async def connect(self) -> None:
        options: dict[str, Any] = {
            "servers": self.servers,
            "name": self.service,
            "connect_timeout": min(self.connect_timeout, 5.0),
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "allow_reconnect": True,
            "error_cb": self._on_error,
        }
        if self.credentials_file:
            options["user_credentials"] = self.credentials_file
        if self.auth is not None:
            options.update(user=self.auth.user, password=self.auth.password,
                           inbox_prefix=subjects.inbox_prefix(self.auth.user))
        refused = self._refused = asyncio.get_running_loop().create_future()
        nc = Client()
        # nats-py retries the first connection forever (also with a wrong password): bound it by
        # connect_timeout, and give up at once when the broker refuses the login.
        attempt = asyncio.ensure_future(nc.connect(**options))
        done, _ = await asyncio.wait({attempt, refused}, timeout=self.connect_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if attempt not in done:
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
            await nc.close()
            if refused.done():
                user = self.auth.user if self.auth else "(anonymous)"
                raise ConnectionError(f"NATS at {self.url} refused user {user}: {refused.result()}")
            raise ConnectionError(f"cannot reach NATS at {self.url} within {self.connect_timeout:g}s")
        attempt.result()
        self._nc = nc
        self._js = self.nc.jetstream(timeout=5.0)
        try:
            await self.ensure_streams()
        except nats.errors.TimeoutError as exc:
            why = f" (last refusal: {self.refusals[-1]})" if self.refusals else ""
            raise ConnectionError(f"JetStream at {self.url} did not answer while laying out the streams{why}") from exc

    async def _on_error(self, exc: Exception) -> None:
        """nats-py's error callback: a refused login ends ``connect``; refusals are logged."""
        text = str(exc)
        if isinstance(exc, nats.errors.AuthorizationError) or "authorization violation" in text.lower():
            self.refusals.append("authorization violation (wrong user or password?)")
            if self._refused is not None and not self._refused.done():
                self._refused.set_result(self.refusals[-1])
            log.error("NATS refused the login", extra={"url": self.url})
        elif "permissions violation" in text.lower():
            self.refusals.append(text)
            log.error("NATS refused an operation of this service's user", extra={"error": text})
        else:
            log.warning("NATS connection error", extra={"error": repr(exc)})

    @property
    def duplicate_window_s(self) -> float:
        """The streams' de-duplication window: covers every retry of a publish, with room to spare."""
        return max(DUPLICATE_WINDOW_S, self.publish_retry_s + 60.0)

    async def ensure_streams(self) -> None:
        """Create (or update) the JetStream streams and the state KV bucket; idempotent."""
        for spec in subjects.STREAMS:
            config = api.StreamConfig(
                name=spec.name,
                subjects=list(spec.subjects),
                storage=api.StorageType.FILE,
                retention=api.RetentionPolicy.LIMITS,
                duplicate_window=self.duplicate_window_s,
                max_age=30 * 24 * 3600.0,
                num_replicas=self.stream_replicas,
            )
            try:
                await self.js.add_stream(config)
            except nats.js.errors.BadRequestError:
                await self.js.update_stream(config)
        try:
            self._kv = await self.js.key_value(subjects.STATE_BUCKET)
        except nats.js.errors.BucketNotFoundError:
            try:
                self._kv = await self.js.create_key_value(
                    bucket=subjects.STATE_BUCKET, history=10, replicas=self.stream_replicas
                )
            except nats.js.errors.BadRequestError:
                self._kv = await self.js.key_value(subjects.STATE_BUCKET)
        else:
            # a bucket laid out for another cluster size (e.g. R1 before the move to a cluster)
            info = await self.js.stream_info(f"KV_{subjects.STATE_BUCKET}")
            if (info.config.num_replicas or 1) != self.stream_replicas:
                info.config.num_replicas = self.stream_replicas
                try:
                    await self.js.update_stream(info.config)
                except (nats.errors.TimeoutError, nats.js.errors.APIError) as exc:  # e.g. not permitted
                    log.warning("cannot move the state bucket to %d replicas", self.stream_replicas,
                                extra={"bucket": subjects.STATE_BUCKET, "error": repr(exc)})

    async def close(self) -> None:
        for sub in reversed(self._subs):
            await sub.unsubscribe()
        self._subs.clear()
        if self._nc is not None and not self._nc.is_closed:
            try:
                await self._nc.drain()
            except (nats.errors.ConnectionClosedError, nats.errors.FlushTimeoutError):
                pass
            if not self._nc.is_closed:
                await self._nc.close()

    async def publish_raw(self, subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> None:
        hdrs = dict(headers or {})
        spec = subjects.stream_for(subject)
        if spec is None:
            await self.nc.publish(subject, data, headers=hdrs or None)
            self._count_published(subject)
            return
        # Every attempt carries the same Nats-Msg-Id, so no retry can store the message twice.
        hdrs.setdefault("Nats-Msg-Id", new_id())
        ack, attempts = await self._until_answered(
            subject, lambda: self.js.publish(subject, data, headers=hdrs, stream=spec.name)
        )
        # A duplicate ack on a retry is our own earlier attempt, stored although its ack was lost:
        # this call did publish the message, so it counts (lockstep compares it with consumers).
        self._count_published(subject, duplicate=bool(ack.duplicate) and attempts == 1)

    async def _until_answered(self, subject: str, attempt_once: Callable[[], Awaitable[_T]]) -> tuple[_T, int]:
        """Run a JetStream request until it is answered: retried with backoff on the errors of a
        leaderless stream or a reconnecting client, for up to ``publish_retry_s`` (and at most
        ``publish_attempts`` attempts, if set); returns the answer and the number of attempts."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.publish_retry_s
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await attempt_once()
                break
            except _RETRYABLE as exc:
                out_of_attempts = self.publish_attempts is not None and attempt >= self.publish_attempts
                if out_of_attempts or loop.time() + delay > deadline:
                    log.error("JetStream request failed", extra={
                        "subject": subject, "attempts": attempt, "seconds": round(loop.time() - started, 3),
                        "error": repr(exc)})
                    raise
                self.metrics.publish_retries.inc()
                if attempt == 1:
                    log.warning("JetStream request retrying", extra={"subject": subject, "error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY_S)
        if attempt > 1:
            log.warning("JetStream request went through after retries", extra={
                "subject": subject, "retries": attempt - 1, "seconds": round(loop.time() - started, 3)})
        return result, attempt

    async def _subscribe(
        self, subject: str, handler: Handler, *, queue: str | None, durable: str | None
    ) -> Subscription:
        if durable is None:

            async def on_core(msg: Msg) -> None:
                await self.dispatch(subject, handler, msg.subject, msg.data, msg.headers, 1)

            sub = await self.nc.subscribe(subject, queue=queue or "", cb=on_core)
            wrapped: Subscription = _NatsSub(sub)
            self._subs.append(wrapped)
            return wrapped

        spec = subjects.stream_for_pattern(subject)
        assert spec is not None
        seen = _RecentSequences()

        async def on_durable(msg: Msg) -> None:
            delivery = msg.metadata.num_delivered if msg.metadata else 1
            if durable and msg.metadata is not None and msg.metadata.num_pending is not None:
                self.metrics.set_consumer_pending(durable, msg.metadata.num_pending)
            seq = msg.metadata.sequence.stream if msg.metadata and msg.metadata.sequence else None
            if seq is not None and seen.add(seq) and delivery > 1:
                # Delivered before, but never to this process: lost in flight when the consumer's
                # leader died (the new leader redelivers after ack_wait), or taken by a process that
                # stopped before acking it. Count it as consumed once acked, like a retried message.
                self._retrying.add(_retry_key(subject, msg.subject, msg.data, msg.headers or {}))
            outcome = await self.dispatch(
                subject, handler, msg.subject, msg.data, msg.headers, delivery, durable=True
            )
            if outcome is Outcome.ACK:
                await msg.ack()
            else:
                await msg.nak(delay=min(0.2 * delivery, 5.0))

        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=30.0,
            max_ack_pending=10_000,
            deliver_policy=api.DeliverPolicy.ALL,
            filter_subject=subject,
        )
        jsub = await self.js.subscribe(
            subject, queue=queue, durable=durable, stream=spec.name, cb=on_durable, manual_ack=True,
            config=config, pending_msgs_limit=100_000,
        )
        wrapped = _NatsSub(jsub)
        self._subs.append(wrapped)
        return wrapped

    async def kv_get(self, key: str) -> bytes | None:
        kv = self._kv
        assert kv is not None
        try:
            entry, _ = await self._until_answered(f"$KV.{subjects.STATE_BUCKET}.{key}", lambda: kv.get(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        return entry.value

    async def kv_put(self, key: str, value: bytes) -> None:
        """Put a value, retried like a publish (a put that went through twice stores the same value)."""
        kv = self._kv
        assert kv is not None
        await self._until_answered(f"$KV.{subjects.STATE_BUCKET}.{key}", lambda: kv.put(key, value))

    async def serve(self, subject: str, responder: Responder) -> Subscription:
        async def on_request(msg: Msg) -> None:
            answer = await responder(msg.data)
            if msg.reply and answer is not None:
                await msg.respond(answer)

        sub = _NatsSub(await self.nc.subscribe(subject, cb=on_request))
        self._subs.append(sub)
        return sub

    async def gather(self, subject: str, data: bytes, *, expected: int, timeout: float) -> list[bytes]:
        inbox = self.nc.new_inbox()
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        async def on_reply(msg: Msg) -> None:
            if not msg.data and msg.headers and msg.headers.get("Status") == "503":
                return  # the server's "no responders" status, not a reply
            replies.put_nowait(msg.data)

        sub = await self.nc.subscribe(inbox, cb=on_reply)
        out: list[bytes] = []
        try:
            await self.nc.publish(subject, data, reply=inbox)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while len(out) < expected:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    out.append(await asyncio.wait_for(replies.get(), remaining))
                except TimeoutError:
                    break
        finally:
            await sub.unsubscribe()
        return out
