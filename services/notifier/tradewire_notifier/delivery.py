"""Delivery through apprise: one URL list for Telegram, Discord, Slack, e-mail, ntfy, webhooks...

A notification passes, in order: the ``kinds`` filter, the age check (a backlog after an outage is
not delivered), whether any URL is configured, de-duplication (the same kind, title and body within
``dedup_window_s``) and a rate limit per kind (a token bucket of ``rate_limit_per_minute``). It is
then queued once per URL: every URL has its own queue and worker, so a dead endpoint retrying with
backoff never delays the others.
A failed delivery is retried ``retries`` times, then recorded; nothing here raises into the service.

Every outcome is counted (``tradewire_notifier_notifications_total{kind,outcome}``, per attempt
``delivery_attempts_total{outcome}``), kept for ``GET /v1/deliveries`` and logged. URLs carry
secrets (bot tokens, passwords): they are shown only as apprise's privacy form cut after the host,
apprise's own logging is silenced, and the error texts taken from its results are scrubbed of
every long fragment of the configured URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import apprise

from tradewire_common.config import ConfigError, NotificationKind, NotifierConfig
from tradewire_common.metrics import ServiceMetrics

log = logging.getLogger(__name__)

#: ``$TRADEWIRE_NOTIFIER_URLS`` (or the file named by ``$TRADEWIRE_NOTIFIER_URLS_FILE``): apprise URLs.
URLS_ENV = "TRADEWIRE_NOTIFIER_URLS"
#: Outcomes of a notification (the ``outcome`` label).
OUTCOMES = ("delivered", "partial", "failed", "no_targets", "disabled", "stale", "deduplicated", "rate_limited",
            "dropped")
#: apprise's notification types by our severity.
NOTIFY_TYPES = {"info": apprise.NotifyType.INFO, "success": apprise.NotifyType.SUCCESS,
                "warning": apprise.NotifyType.WARNING, "failure": apprise.NotifyType.FAILURE}
_FRAGMENT_SPLIT = re.compile(r"[/:@?&=#,.+;\s]+")
QUEUE_SIZE = 500


def level_of(severity: str) -> str:
    """Our four levels (apprise's notify types) from an Alert or Alertmanager severity."""
    s = severity.lower()
    if s in ("critical", "error", "fatal", "page", "emergency", "failure", "firing_critical"):
        return "failure"
    if s in ("warning", "warn"):
        return "warning"
    if s in ("resolved", "ok", "success"):
        return "success"
    return "info"


@dataclass(frozen=True)
class Notification:
    kind: NotificationKind
    title: str
    body: str
    #: ``info``, ``success``, ``warning`` or ``failure``.
    level: str = "info"
    #: De-duplication key; empty means kind + title + body.
    key: str = ""
    #: When the cause was created (ns): older than ``max_event_age_s`` on arrival means stale. 0: now.
    created_ns: int = 0


def parse_urls(text: str) -> list[str]:
    """URLs separated by white space or new lines; lines starting with ``#`` are comments."""
    urls: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            urls.extend(line.split())
    return urls


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None


def load_urls(config: NotifierConfig, environ: Mapping[str, str] | None = None) -> list[str]:
    """``notifier.urls``, then ``$TRADEWIRE_NOTIFIER_URLS`` (or the file named by ``$TRADEWIRE_NOTIFIER_URLS_FILE``),
    then ``notifier.urls_file``; an unreadable file is a configuration error."""
    env = os.environ if environ is None else environ
    urls = list(config.urls)
    path = env.get(f"{URLS_ENV}_FILE", "")
    urls += parse_urls(env.get(URLS_ENV, "") or (_read(path, f"{URLS_ENV}_FILE") if path else ""))
    if config.urls_file:
        urls += parse_urls(_read(config.urls_file, "notifier.urls_file"))
    return list(dict.fromkeys(urls))


def secret_fragments(urls: Sequence[str]) -> list[str]:
    """Every fragment of the URLs long enough to be (part of) a secret, longest first."""
    found: set[str] = set()
    for url in urls:
        _, _, rest = url.partition("://")
        found.update(part for part in _FRAGMENT_SPLIT.split(rest) if len(part) >= 6)
        try:
            password = urlsplit(url).password or ""
        except ValueError:
            password = ""
        if len(password) >= 4:
            found.add(password)
    return sorted(found, key=len, reverse=True)


class Scrubber:
    """Replaces the configured URLs' secret fragments in a text by ``***``."""

    def __init__(self, urls: Sequence[str]) -> None:
        self.fragments = secret_fragments(urls)

    def __call__(self, text: str) -> str:
        for fragment in self.fragments:
            if fragment in text:
                text = text.replace(fragment, "***")
        return text


def display(plugin: Any) -> str:
    """A URL as shown in logs and ``/v1/deliveries``: apprise's privacy form, up to the host."""
    private = plugin.url(privacy=True)
    scheme, _, rest = private.partition("://")
    host, sep, _path = rest.partition("/")
    host = host.partition("?")[0]
    return f"{plugin.service_name} {scheme}://{host}" + ("/…" if sep else "")


class Target:
    """One apprise URL."""

    def __init__(self, index: int, url: str) -> None:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            scheme = url.partition("://")[0] if "://" in url else "(no scheme)"
            raise ConfigError(f"notifier URL #{index} ({scheme}://…) is not a valid apprise URL")
        self.index = index
        self.label = display(plugin)
        self.apprise = apprise.Apprise()
        self.apprise.add(plugin)

    async def send(self, notification: Notification) -> tuple[bool, list[str]]:
        """One attempt; returns success and apprise's warning/error lines (unscrubbed)."""
        result = await self.apprise.async_notify(
            body=notification.body or notification.title, title=notification.title,
            notify_type=NOTIFY_TYPES.get(notification.level, apprise.NotifyType.INFO),
        )
        errors: list[str] = []
        for item in getattr(result, "results", ()):
            for entry in item.logs():
                level = getattr(entry, "level", "WARNING")
                number = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
                if not isinstance(number, int) or number >= logging.WARNING:
                    errors.append(str(getattr(entry, "message", entry)))
        return bool(result), errors


@dataclass
class TargetResult:
    target: str
    ok: bool | None = None
    attempts: int = 0
    error: str = ""

    def to_builtins(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "attempts": self.attempts, "error": self.error}


@dataclass
class DeliveryRecord:
    """One notification's way through the dispatcher (what ``GET /v1/deliveries`` shows)."""

    seq: int
    notification: Notification
    queued_at_ns: int
    outcome: str = "pending"
    finished_at_ns: int = 0
    targets: list[TargetResult] = field(default_factory=list)
    waiting: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def to_builtins(self) -> dict[str, Any]:
        n = self.notification
        return {"seq": self.seq, "kind": n.kind, "level": n.level, "title": n.title, "body": n.body,
                "outcome": self.outcome, "queued_at_ns": self.queued_at_ns, "finished_at_ns": self.finished_at_ns,
                "targets": [t.to_builtins() for t in self.targets]}


class _Bucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.rate = per_minute / 60.0
        self.at = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Dispatcher:
    """Filters, de-duplicates, rate-limits and delivers notifications to every URL."""

    def __init__(
        self, config: NotifierConfig, urls: Sequence[str], metrics: ServiceMetrics, *,
        now_ns: Callable[[], int] = time.time_ns, monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.kinds = frozenset(config.kinds)
        self.now_ns = now_ns
        self.monotonic = monotonic
        self.sleep = sleep
        self.scrub = Scrubber(urls)
        self.targets = [Target(i, url) for i, url in enumerate(urls)]
        self.history: deque[DeliveryRecord] = deque(maxlen=config.history)
        self._seq = 0
        self._seen: dict[str, float] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._queues: list[asyncio.Queue[DeliveryRecord]] = []
        self._workers: list[asyncio.Task[None]] = []
        self.notifications = metrics.counter(
            "notifications_total", "Notifications by kind and outcome (delivered, failed, rate_limited...)",
            ("kind", "outcome"))
        self.attempts = metrics.counter(
            "delivery_attempts_total", "Delivery attempts to one URL (retries included)", ("outcome",))
        self.duration = metrics.histogram(
            "delivery_duration_seconds", "Time from queueing a notification to its last URL's answer",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0))
        self.queued = metrics.gauge("queued_messages", "Notifications waiting for their URL's worker, over all URLs")
        self.queued.set_function(lambda: sum(q.qsize() for q in self._queues))
        metrics.gauge("delivery_targets_value", "Apprise URLs configured").set(len(self.targets))
        for kind in config.kinds:  # at 0 from the start, so increase() sees the first failure
            for outcome in ("delivered", "failed"):
                self.notifications.labels(kind, outcome)
        for outcome in ("success", "failure"):
            self.attempts.labels(outcome)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._workers:
            return
        for target in self.targets:
            queue: asyncio.Queue[DeliveryRecord] = asyncio.Queue(QUEUE_SIZE)
            self._queues.append(queue)
            self._workers.append(asyncio.create_task(self._work(target, queue), name=f"notify-{target.index}"))

    async def stop(self, drain_s: float = 5.0) -> None:
        """Give queued deliveries ``drain_s`` to finish, then stop the workers."""
        if self._queues:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(q.join() for q in self._queues)), drain_s)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()
        self._queues.clear()

    # --- submission --------------------------------------------------------------------------
    def submit(self, notification: Notification) -> DeliveryRecord | None:
        """Filter and queue; returns the record (None for a kind that is not delivered)."""
        n = notification
        if n.kind not in self.kinds:
            self.notifications.labels(n.kind, "disabled").inc()
            return None
        now_ns = self.now_ns()
        self._seq += 1
        record = DeliveryRecord(self._seq, n, now_ns)
        self.history.append(record)
        if n.created_ns and now_ns - n.created_ns > self.config.max_event_age_s * 1e9:
            return self._finish(record, "stale")
        if not self.targets:
            return self._finish(record, "no_targets")
        now = self.monotonic()
        key = n.key or "\x1f".join((n.kind, n.title, n.body))
        self._seen = {k: t for k, t in self._seen.items() if now - t < self.config.dedup_window_s}
        if key in self._seen:
            return self._finish(record, "deduplicated")
        bucket = self._buckets.setdefault(n.kind, _Bucket(self.config.rate_limit_per_minute, now))
        if not bucket.take(now):
            return self._finish(record, "rate_limited")
        self._seen[key] = now
        record.targets = [TargetResult(t.label) for t in self.targets]
        record.waiting = len(self.targets)
        self.start()
        for index, queue in enumerate(self._queues):
            try:
                queue.put_nowait(record)
            except asyncio.QueueFull:
                self._target_done(record, index, ok=False, error="queue full: dropped")
        return record

    def _finish(self, record: DeliveryRecord, outcome: str) -> DeliveryRecord:
        record.outcome = outcome
        record.finished_at_ns = self.now_ns()
        record.done.set()
        self.notifications.labels(record.notification.kind, outcome).inc()
        n = record.notification
        extra = {"kind": n.kind, "outcome": outcome, "title": n.title[:200]}
        if outcome in ("failed", "partial"):
            failures = [f"{t.target}: {t.error}" for t in record.targets if not t.ok]
            log.warning("notification not delivered everywhere", extra={**extra, "failures": failures})
        elif outcome == "delivered":
            log.info("notification delivered", extra=extra)
        elif outcome == "no_targets":
            log.debug("notification not sent: no notifier URLs configured", extra=extra)
        else:
            log.info("notification not sent: %s", outcome, extra=extra)
        return record

    def _target_done(self, record: DeliveryRecord, index: int, *, ok: bool, error: str = "",
                     attempts: int = 0) -> None:
        result = record.targets[index]
        result.ok, result.error, result.attempts = ok, error, attempts
        record.waiting -= 1
        if record.waiting > 0:
            return
        good = sum(1 for t in record.targets if t.ok)
        outcome = "delivered" if good == len(record.targets) else "failed" if good == 0 else "partial"
        if all(t.error == "queue full: dropped" for t in record.targets):
            outcome = "dropped"
        self.duration.observe(max(0, self.now_ns() - record.queued_at_ns) / 1e9)
        self._finish(record, outcome)

    # --- the per-URL worker ------------------------------------------------------------------
    async def _work(self, target: Target, queue: asyncio.Queue[DeliveryRecord]) -> None:
        while True:
            record = await queue.get()
            try:
                ok, error, attempts = await self._deliver(target, record.notification)
                self._target_done(record, target.index, ok=ok, error=error, attempts=attempts)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one delivery end the worker
                log.error("delivery worker error", extra={"target": target.label, "error": self.scrub(repr(exc))})
                self._target_done(record, target.index, ok=False, error=self.scrub(repr(exc))[:500])
            finally:
                queue.task_done()

    async def _deliver(self, target: Target, notification: Notification) -> tuple[bool, str, int]:
        error = ""
        delay = self.config.retry_backoff_s
        attempts = 1 + self.config.retries
        for attempt in range(1, attempts + 1):
            try:
                ok, lines = await target.send(notification)
                error = "; ".join(lines) or ("" if ok else "apprise reported a failure")
            except Exception as exc:
                ok, error = False, repr(exc)
            error = self.scrub(error)[:500]
            self.attempts.labels("success" if ok else "failure").inc()
            if ok:
                return True, "", attempt
            if attempt < attempts:
                log.warning("delivery failed, retrying", extra={"target": target.label, "attempt": attempt,
                                                                "error": error})
                await self.sleep(delay)
                delay *= 2
        return False, error, attempts

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest delivery records, newest first."""
        items = list(self.history)[-limit:] if limit > 0 else []
        return [r.to_builtins() for r in reversed(items)]


def quiet_apprise() -> None:
    """Keep apprise's logging (URLs partly masked) and urllib3's debug lines (request paths with bot
    tokens) out of the service's log. apprise still records its warnings in each result, which the
    dispatcher reads and scrubs."""
    logger = logging.getLogger("apprise")
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())
    for name in ("urllib3", "requests_oauthlib", "oauthlib"):  # their warnings can name request paths
        logging.getLogger(name).setLevel(logging.ERROR)
