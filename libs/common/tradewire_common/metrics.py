"""Prometheus metrics helpers: one registry per service, names ``tradewire_<service>_<noun>_<unit>``.

A registry per service (not the global one) lets several services share a process in tests
and in the backtester without name clashes. Labels are bounded: never ids, prices or clients.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@functools.lru_cache(maxsize=65536)
def subject_class(subject: str) -> str:
    """A bounded label for a subject: its first two tokens (``md.bar``, ``ord.evt``)."""
    return ".".join(subject.split(".")[:2])


class ServiceMetrics:
    """The metrics of one service; ``counter``/``gauge``/``histogram`` prefix the name."""

    def __init__(self, service: str) -> None:
        if not _NAME.match(service):
            raise ValueError(f"invalid service name for metrics: {service!r}")
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.start_time = self.gauge("start_time_seconds", "Unix time the process started")
        self.start_time.set(time.time())
        self._in_children: dict[str, Any] = {}
        self._out_children: dict[str, Any] = {}

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

    def _name(self, noun_unit: str) -> str:
        if not _NAME.match(noun_unit):
            raise ValueError(f"invalid metric name part {noun_unit!r}")
        return f"tradewire_{self.service}_{noun_unit}"

    def counter(self, noun_unit: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        name = self._name(noun_unit)
        if name.endswith("_total"):
            name = name[: -len("_total")]
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(self, noun_unit: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(self._name(noun_unit), doc, labels, registry=self.registry)

    def histogram(
        self, noun_unit: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] | None = None
    ) -> Histogram:
        if buckets is None:
            return Histogram(self._name(noun_unit), doc, labels, registry=self.registry)
        return Histogram(self._name(noun_unit), doc, labels, registry=self.registry, buckets=buckets)

    def render(self) -> bytes:
        return generate_latest(self.registry)
