"""Prometheus metrics helpers: one registry per service, names ``tradewire_<service>_<noun>_<unit>``.

A registry per service (not the global one) lets several services share a process in tests
and in the backtester without name clashes. Labels are bounded: never ids, prices or clients
(checked when a metric is defined), and never a scrape target label (``service``, ``job``,
``instance``), which Prometheus would rename to ``exported_*``.

Every service exports, besides its own metrics: messages in/out per subject class, dead letters,
handler errors, JetStream publish retries, readiness, process start time and uptime, JetStream
consumer backlog, and the process collector (CPU, memory, file descriptors).

A counter series that first appears at 1 has not ``increase()``d: counters that alerts watch are
created at 0 for their known labels where the service knows them (strategy errors, rejects), and
the dead-letter alert also catches series that are new in its window.

Restarts are not counted by the process itself (a new process starts from zero): Prometheus
derives them with ``changes(tradewire_<service>_start_time_seconds[30m])``.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Target labels set by the scrape: a metric label of the same name would be renamed ``exported_*``.
RESERVED_LABELS = frozenset({"service", "job", "instance"})
#: Label names that would carry unbounded values (order, trade or client ids, prices).
_UNBOUNDED_LABEL = re.compile(r"(^|_)(id|ids|price|client)($|_)")
#: Latency buckets (seconds) from sub-millisecond in-process hops to half a minute.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@functools.lru_cache(maxsize=65536)
def subject_class(subject: str) -> str:
    """A bounded label for a subject: its first two tokens (``md.bar``, ``ord.evt``)."""
    return ".".join(subject.split(".")[:2])


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """What a metric was defined with (the catalog and the label checks read these)."""

    name: str
    kind: str
    labels: tuple[str, ...]
    doc: str


def check_labels(name: str, labels: tuple[str, ...]) -> None:
    """Refuse label names that clash with target labels or would hold unbounded values."""
    for label in labels:
        if label in RESERVED_LABELS:
            raise ValueError(f"{name}: label {label!r} clashes with a scrape target label")
        if _UNBOUNDED_LABEL.search(label):
            raise ValueError(f"{name}: label {label!r} would be unbounded (ids and prices are not labels)")


class ServiceMetrics:
    """The metrics of one service; ``counter``/``gauge``/``histogram`` prefix the name."""

    def __init__(self, service: str) -> None:
        if not _NAME.match(service):
            raise ValueError(f"invalid service name for metrics: {service!r}")
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        #: Every metric defined through this object, by full name.
        self.specs: dict[str, MetricSpec] = {}
        self.messages_in = self.counter(
            "messages_in_total", "Messages delivered to this service", ("subject_class",)
        )
        self.messages_out = self.counter(
            "messages_out_total", "Messages published by this service", ("subject_class",)
        )
        self.dead_letters = self.counter(
            "dead_letters_total", "Messages sent to the dead-letter subject", ("reason",)
        )
        self.handler_errors = self.counter(
            "handler_errors_total", "Handler failures (retried or dead-lettered)", ("subject_class",)
        )
        self.publish_retries = self.counter(
            "publish_retries_total", "JetStream publishes retried with the same Nats-Msg-Id"
        )
        self.up = self.gauge("up_info", "1 while the service is ready")
        self.start_time = self.gauge(
            "start_time_seconds", "Unix time the process started (restarts: changes() of this series)"
        )
        started = time.time()
        self.start_time.set(started)
        self.uptime = self.gauge("uptime_seconds", "Seconds since the process started")
        self.uptime.set_function(lambda: time.time() - started)
        self.consumer_pending = self.gauge(
            "consumer_pending_messages",
            "JetStream messages still waiting for a durable consumer, as of its latest delivery",
            ("consumer",),
        )
        ProcessCollector(namespace=f"tradewire_{service}", registry=self.registry)
        self._in_children: dict[str, Any] = {}
        self._out_children: dict[str, Any] = {}
        self._pending_children: dict[str, Any] = {}

    def count_in(self, subject: str) -> None:
        """Count a delivered message (label children cached: this is on every message's path)."""
        child = self._in_children.get(subject)
        if child is None:
            child = self._in_children[subject] = self.messages_in.labels(subject_class(subject))
        child.inc()

    def count_out(self, subject: str) -> None:
        child = self._out_children.get(subject)
        if child is None:
            child = self._out_children[subject] = self.messages_out.labels(subject_class(subject))
        child.inc()

    def set_consumer_pending(self, consumer: str, pending: int) -> None:
        """Record a durable consumer's backlog (the bus calls this with each JetStream delivery's
        ``num_pending``; consumer names are fixed in code, so the label is bounded)."""
        child = self._pending_children.get(consumer)
        if child is None:
            child = self._pending_children[consumer] = self.consumer_pending.labels(consumer)
        child.set(pending)

    def _name(self, noun_unit: str) -> str:
        if not _NAME.match(noun_unit):
            raise ValueError(f"invalid metric name part {noun_unit!r}")
        return f"tradewire_{self.service}_{noun_unit}"

    def _define(self, name: str, kind: str, labels: tuple[str, ...], doc: str) -> None:
        check_labels(name, labels)
        self.specs[name] = MetricSpec(name, kind, tuple(labels), doc)

    def counter(self, noun_unit: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        name = self._name(noun_unit)
        if name.endswith("_total"):
            name = name[: -len("_total")]
        self._define(name, "counter", labels, doc)
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(self, noun_unit: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        name = self._name(noun_unit)
        self._define(name, "gauge", labels, doc)
        return Gauge(name, doc, labels, registry=self.registry)

    def histogram(
        self, noun_unit: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] | None = None
    ) -> Histogram:
        name = self._name(noun_unit)
        self._define(name, "histogram", labels, doc)
        if buckets is None:
            return Histogram(name, doc, labels, registry=self.registry)
        return Histogram(name, doc, labels, registry=self.registry, buckets=buckets)

    def render(self) -> bytes:
        return generate_latest(self.registry)
