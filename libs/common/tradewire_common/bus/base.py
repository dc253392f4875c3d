"""The bus contract shared by the NATS and in-memory implementations.

Both run every message through the wire codec; a message that fails to decode or validate,
or whose handler keeps failing, becomes a ``DeadLetter`` on ``dlq.{service}`` with the reason
and the raw bytes, is counted, and the service keeps running. Nothing is dropped silently.
"""

from __future__ import annotations

import abc
import enum
import hashlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import msgspec

from tradewire_common import schemas, subjects
from tradewire_common.clock import Clock, LiveClock
from tradewire_common.ids import derive_id, new_id
from tradewire_common.logs import correlation_id
from tradewire_common.metrics import ServiceMetrics, subject_class
from tradewire_common.schemas import DeadLetter, Message

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded message as delivered to a handler."""

    subject: str
    message: Message
    headers: Mapping[str, str]
    #: How many times this message has been delivered (JetStream); 1 for core NATS.
    delivery: int = 1


Handler = Callable[[Envelope], Awaitable[None]]
#: Answers a control request; None sends no reply (a plain listener).
Responder = Callable[[bytes], Awaitable[bytes | None]]


class Subscription(abc.ABC):
    @abc.abstractmethod
    async def unsubscribe(self) -> None: ...


class Outcome(enum.Enum):
    ACK = "ack"
    RETRY = "retry"


class PermanentError(Exception):
    """Raised by a handler for input it can never process: dead-letter it without retrying."""


@dataclass
class BusStats:
    """Counts behind the lockstep replay's quiescence check (see ``tradewire_common.lockstep``)."""

    published: Counter[str] = field(default_factory=Counter)
    consumed: Counter[str] = field(default_factory=Counter)

    def to_builtins(self) -> dict[str, dict[str, int]]:
        return {"published": dict(self.published), "consumed": dict(self.consumed)}


class Bus(abc.ABC):
    """Publish/subscribe with durable, de-duplicated streams for the trading flow."""

    def __init__(
        self, service: str, metrics: ServiceMetrics | None = None, *, clock: Clock | None = None,
        max_deliver: int = 5,
    ) -> None:
        self.service = service
        self.metrics = metrics or ServiceMetrics(service)
        self.clock = clock or LiveClock()
        self.max_deliver = max_deliver
        self.stats = BusStats()
        #: Durable messages whose handler asked for a retry: counted as consumed when finally acked.
        self._retrying: set[tuple[str, str, str]] = set()
        #: Identifies this process's counters (a restarted service starts new ones).
        self.instance = new_id()[:16]
        #: Set by the service once it is ready; reported with the counters.
        self.ready = False
        #: Push counters on ``ctl.stats.report`` after each handled message. Off until someone polls
        #: ``ctl.stats`` (a lockstep replay driver), so live deployments do not pay for it.
        self.report_stats = False

    # --- to implement -------------------------------------------------------------------------
    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None:
        """Drain subscriptions (finish in-flight handlers) and disconnect."""

    @abc.abstractmethod
    async def publish_raw(self, subject: str, data: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Publish bytes as they are (JetStream for stream subjects, with ``Nats-Msg-Id`` if given)."""

    @abc.abstractmethod
    async def _subscribe(
        self, subject: str, handler: Handler, *, queue: str | None, durable: str | None
    ) -> Subscription: ...

    @abc.abstractmethod
    async def kv_get(self, key: str) -> bytes | None: ...

    @abc.abstractmethod
    async def kv_put(self, key: str, value: bytes) -> None: ...

    @abc.abstractmethod
    async def serve(self, subject: str, responder: Responder) -> Subscription:
        """Answer core request/reply on ``subject`` (control plane); a None answer sends nothing."""

    async def wait_idle(self, timeout: float) -> bool | None:
        """Wait until nothing is in flight anywhere, if this bus can know that (None: it cannot)."""
        return None

    @abc.abstractmethod
    async def gather(self, subject: str, data: bytes, *, expected: int, timeout: float) -> list[bytes]:
        """Scatter a request, gather up to ``expected`` replies within ``timeout``."""

    # --- shared behaviour ---------------------------------------------------------------------
    async def publish(self, subject: str, message: Message) -> None:
        """Encode and publish; stream subjects are de-duplicated by the message id."""
        await self.publish_raw(subject, schemas.encode(message), {"Nats-Msg-Id": message.id})

    def _count_published(self, subject: str, *, duplicate: bool = False) -> None:
        if not duplicate and not subject.startswith("ctl.stats"):
            self.stats.published[subject] += 1
        self.metrics.count_out(subject)

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str | None = None, durable: str | None = None
    ) -> Subscription:
        """Subscribe ``handler``. ``durable`` (stream subjects only) survives restarts and
        redelivers unacknowledged messages; ``queue`` shares the work among instances."""
        if durable is not None and subjects.stream_for_pattern(subject) is None:
            raise ValueError(f"durable subscription needs a stream subject, got {subject!r}")
        if durable is not None or subjects.stream_for_pattern(subject) is None:
            # report the pattern from the start, so "consumed nothing yet" is visible to lockstep
            self.stats.consumed.setdefault(subject, 0)
        return await self._subscribe(subject, handler, queue=queue, durable=durable)

    async def dispatch(
        self, pattern: str, handler: Handler, subject: str, data: bytes,
        headers: Mapping[str, str] | None, delivery: int, *, durable: bool = False,
    ) -> Outcome:
        """Decode, run the handler, dead-letter what cannot be processed. Returns ACK or RETRY."""
        hdrs = dict(headers or {})
        self.metrics.count_in(subject)
        try:
            message = schemas.decode(data)
        except msgspec.DecodeError as exc:  # ValidationError is a subclass
            await self.dead_letter(subject, data, hdrs, f"undecodable: {exc}", reason_label="decode")
            self._count_consumed(pattern, delivery, durable)
            await self.report()
            return Outcome.ACK
        token = correlation_id.set(message.correlation_id or message.id)
        try:
            await handler(Envelope(subject, message, hdrs, delivery))
        except PermanentError as exc:
            await self.dead_letter(subject, data, hdrs, f"rejected: {exc}", reason_label="rejected")
        except Exception as exc:
            self.metrics.handler_errors.labels(subject_class(subject)).inc()
            if durable and delivery < self.max_deliver:
                log.warning("handler failed, will retry", extra={"subject": subject, "error": repr(exc)})
                self._retrying.add(_retry_key(pattern, subject, data, hdrs))
                return Outcome.RETRY
            log.exception("handler failed, dead-lettering", extra={"subject": subject})
            await self.dead_letter(
                subject, data, hdrs, f"handler failed after {delivery} deliveries: {exc!r}", reason_label="handler"
            )
        finally:
            correlation_id.reset(token)
        retried = False
        if self._retrying:
            key = _retry_key(pattern, subject, data, hdrs)
            retried = key in self._retrying
            self._retrying.discard(key)
        self._count_consumed(pattern, delivery, durable, retried=retried)
        await self.report()
        return Outcome.ACK

    async def report(self) -> None:
        """Push this instance's counters (an atomic snapshot taken after a handler finished)."""
        if self.report_stats:
            await self.publish_raw(subjects.STATS_REPORT, stats_reply(self))

    def _count_consumed(self, pattern: str, delivery: int, durable: bool, *, retried: bool = False) -> None:
        # Core subscribers of stream subjects also see duplicates the stream dropped, so only
        # durable consumers of stream subjects take part in the quiescence count. A message is
        # counted once: on its first delivery, or on the delivery that finally acked a message
        # this bus asked to retry (a redelivery of an already acked message is not counted).
        if (delivery == 1 or retried) and (durable or subjects.stream_for_pattern(pattern) is None):
            self.stats.consumed[pattern] += 1

    async def dead_letter(
        self, subject: str, data: bytes, headers: Mapping[str, str], reason: str, *, reason_label: str
    ) -> None:
        digest = hashlib.sha256(data).hexdigest()
        now = self.clock.now_ns()
        letter = DeadLetter(
            id=derive_id("dlq", self.service, subject, digest),
            ts_event=now,
            ts_init=now,
            service=self.service,
            subject=subject,
            reason=reason[:2000],
            raw=data,
            headers={k: v for k, v in headers.items() if k.lower() != "authorization"},
        )
        self.metrics.dead_letters.labels(reason_label).inc()
        log.error("dead letter", extra={"subject": subject, "reason": reason[:300]})
        await self.publish(subjects.dead_letter(self.service), letter)


def _retry_key(pattern: str, subject: str, data: bytes, headers: Mapping[str, str]) -> tuple[str, str, str]:
    return pattern, subject, headers.get("Nats-Msg-Id") or hashlib.sha256(data).hexdigest()


def stats_reply(bus: Bus) -> bytes:
    """The body a service answers ``ctl.stats`` (and pushes on ``ctl.stats.report``) with."""
    body = {"service": bus.service, "instance": bus.instance, "ready": bus.ready, **bus.stats.to_builtins()}
    return msgspec.json.encode(body)
