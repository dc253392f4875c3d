"""Delivery through apprise to real local destinations: an SMTP server (aiosmtpd, with a login) via
``mailto://`` and an HTTP webhook receiver via ``json://``. Retries, failures that never raise,
de-duplication, the rate limit, stale backlogs, metrics, and URL secrets kept out of every output."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.support.notifier_sinks import smtp_server, webhook_receiver
from tests.support.ports import free_tcp_port
from tradewire_common.config import ConfigError, NotifierConfig
from tradewire_common.metrics import ServiceMetrics
from tradewire_notifier.delivery import (
    DeliveryRecord,
    Dispatcher,
    Notification,
    Scrubber,
    Target,
    load_urls,
    parse_urls,
    quiet_apprise,
)

PASSWORD = "Sm7pPassw0rd-never-logged"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


@pytest.fixture(autouse=True)
def _quiet() -> None:
    quiet_apprise()


def dispatcher(urls: list[str], **overrides: object) -> Dispatcher:
    config = NotifierConfig(**{"retry_backoff_s": 0.01, **overrides})  # type: ignore[arg-type]
    return Dispatcher(config, urls, ServiceMetrics("notifier"))


async def finished(record: DeliveryRecord | None) -> DeliveryRecord:
    assert record is not None
    await asyncio.wait_for(record.done.wait(), 60)
    return record


def sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_an_email_reaches_a_real_smtp_server_with_the_password_from_the_environment(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with smtp_server(user="tradewire", password=PASSWORD) as smtp:
        urls = load_urls(NotifierConfig(), {"TRADEWIRE_NOTIFIER_URLS": smtp.url(user="tradewire", password=PASSWORD)})
        d = dispatcher(urls)
        try:
            record = await finished(d.submit(Notification("price_alert", "BTCUSDT.BINANCE price above 70000",
                                                          "price = 70010.5 on the 1m bar", "warning")))
        finally:
            await d.stop()
        assert record.outcome == "delivered"
        assert smtp.mailbox.logins == [("tradewire", PASSWORD)]
        assert smtp.mailbox.texts() == ["BTCUSDT.BINANCE price above 70000\nprice = 70010.5 on the 1m bar"]
        assert smtp.mailbox.messages[0]["To"] == "ops@example.com"
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # aiosmtpd's own debug log aside
    assert ours and PASSWORD not in "".join(r.getMessage() + str(r.__dict__) for r in ours)
    assert PASSWORD not in str(d.recent())
    assert record.targets[0].target == f"E-Mail mailto://tradewire:****@localhost:{smtp.port}/…"


async def test_a_webhook_gets_apprise_json_with_title_body_and_type() -> None:
    with webhook_receiver() as hook:
        d = dispatcher([hook.url()])
        try:
            record = await finished(d.submit(Notification("trading_state", "Trading HALTED (was ACTIVE)",
                                                          "global: by operator", "failure")))
        finally:
            await d.stop()
    assert record.outcome == "delivered"
    assert [(p["title"], p["message"], p["type"]) for p in hook.payloads()] == [
        ("Trading HALTED (was ACTIVE)", "global: by operator", "failure")]
    assert record.to_builtins()["targets"] == [
        {"target": f"JSON json://127.0.0.1:{hook.port}/…", "ok": True, "attempts": 1, "error": ""}]


async def test_a_failing_endpoint_is_retried_until_it_accepts() -> None:
    with webhook_receiver(fail_first=2) as hook:
        d = dispatcher([hook.url()], retries=3)
        try:
            record = await finished(d.submit(Notification("fill", "Filled", "BUY 1")))
        finally:
            await d.stop()
    assert hook.statuses == [500, 500, 200]
    assert record.outcome == "delivered" and record.targets[0].attempts == 3
    assert sample(d.metrics, "tradewire_notifier_delivery_attempts_total", outcome="failure") == 2
    assert sample(d.metrics, "tradewire_notifier_delivery_attempts_total", outcome="success") == 1


async def test_a_dead_endpoint_fails_after_its_retries_without_holding_up_the_others() -> None:
    dead = f"json://127.0.0.1:{free_tcp_port()}/hook"
    with webhook_receiver() as hook:
        d = dispatcher([dead, hook.url()], retries=2)
        try:
            record = await finished(d.submit(Notification("alert", "[CRITICAL] broker down", "x", "failure")))
        finally:
            await d.stop()
    assert record.outcome == "partial"
    bad, good = record.targets
    assert (bad.ok, bad.attempts) == (False, 3) and "connection error" in bad.error.lower()
    assert (good.ok, good.attempts) == (True, 1)
    assert len(hook.payloads()) == 1
    assert sample(d.metrics, "tradewire_notifier_notifications_total", kind="alert", outcome="partial") == 1
    assert sample(d.metrics, "tradewire_notifier_delivery_attempts_total", outcome="failure") == 3


async def test_every_url_failing_is_a_failed_notification_and_nothing_raises() -> None:
    d = dispatcher([f"json://127.0.0.1:{free_tcp_port()}/a"], retries=0)
    try:
        record = await finished(d.submit(Notification("fill", "Filled", "BUY 1")))
        assert record.outcome == "failed"
        again = await finished(d.submit(Notification("fill", "Filled", "BUY 2")))  # the worker lives on
        assert again.outcome == "failed"
    finally:
        await d.stop()
    assert sample(d.metrics, "tradewire_notifier_notifications_total", kind="fill", outcome="failed") == 2


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def verdict(record: DeliveryRecord | None) -> str:
    """What the dispatcher decided at once: a drop, or "sent" (queued for the URLs)."""
    assert record is not None
    return record.outcome if record.done.is_set() else "sent"


async def test_the_same_notification_within_the_window_is_sent_once() -> None:
    clock = FakeMonotonic()
    with webhook_receiver() as hook:
        d = Dispatcher(NotifierConfig(dedup_window_s=300), [hook.url()], ServiceMetrics("notifier"), monotonic=clock)
        note = Notification("alert", "disk full", "ledger")
        records = [d.submit(note)]
        clock.now += 299
        records.append(d.submit(note))
        records.append(d.submit(Notification("alert", "disk full", "risk")))
        clock.now += 2
        records.append(d.submit(note))
        assert [verdict(r) for r in records] == ["sent", "deduplicated", "sent", "sent"]
        await d.stop()
    assert [p["message"] for p in hook.payloads()] == ["ledger", "risk", "ledger"]


async def test_the_rate_limit_is_per_kind_and_refills_over_a_minute() -> None:
    clock = FakeMonotonic()
    with webhook_receiver() as hook:
        d = Dispatcher(NotifierConfig(rate_limit_per_minute=2), [hook.url()], ServiceMetrics("notifier"),
                       monotonic=clock)

        def send(kind: str, n: int) -> str:
            return verdict(d.submit(Notification(kind, f"{kind} {n}", "")))  # type: ignore[arg-type]

        assert [send("fill", n) for n in range(3)] == ["sent", "sent", "rate_limited"]
        assert send("trading_state", 0) == "sent"  # fills do not use up the kill switch's budget
        clock.now += 30  # one token back
        assert [send("fill", n) for n in range(3, 5)] == ["sent", "rate_limited"]
        await d.stop()
    assert sorted(p["title"] for p in hook.payloads()) == ["fill 0", "fill 1", "fill 3", "trading_state 0"]
    assert sample(d.metrics, "tradewire_notifier_notifications_total", kind="fill", outcome="rate_limited") == 2
    assert sample(d.metrics, "tradewire_notifier_notifications_total", kind="fill", outcome="delivered") == 3


def test_without_urls_nothing_is_rate_limited_or_deduplicated_only_counted() -> None:
    d = Dispatcher(NotifierConfig(rate_limit_per_minute=1, dedup_window_s=300), [], ServiceMetrics("notifier"))
    assert [verdict(d.submit(Notification("fill", "same", ""))) for _ in range(3)] == ["no_targets"] * 3


def test_old_events_and_kinds_not_configured_are_not_delivered() -> None:
    now = 10**18
    d = Dispatcher(NotifierConfig(kinds=("price_alert",), max_event_age_s=60), [], ServiceMetrics("notifier"),
                   now_ns=lambda: now)
    stale = d.submit(Notification("price_alert", "old", "", created_ns=now - 61 * 10**9))
    fresh = d.submit(Notification("price_alert", "new", "", created_ns=now - 59 * 10**9))
    assert stale is not None and stale.outcome == "stale"
    assert fresh is not None and fresh.outcome == "no_targets"
    assert d.submit(Notification("fill", "not wanted", "")) is None
    assert sample(d.metrics, "tradewire_notifier_notifications_total", kind="fill", outcome="disabled") == 1
    assert [r["title"] for r in d.recent()] == ["new", "old"]


def test_urls_come_from_the_config_the_environment_and_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "urls"
    secret.write_text("# ops\nntfy://ntfy.example.com/tradewire\n\njson://127.0.0.1:9/a json://127.0.0.1:9/b\n")
    env_file = tmp_path / "env-urls"
    env_file.write_text(f"tgram://{BOT_TOKEN}/12345\n")
    config = NotifierConfig(urls=("json://127.0.0.1:9/a",), urls_file=str(secret))
    assert load_urls(config, {"TRADEWIRE_NOTIFIER_URLS_FILE": str(env_file)}) == [
        "json://127.0.0.1:9/a", f"tgram://{BOT_TOKEN}/12345", "ntfy://ntfy.example.com/tradewire",
        "json://127.0.0.1:9/b"]
    assert parse_urls("slack://A/B/C/#general") == ["slack://A/B/C/#general"]


def test_a_bad_url_stops_the_start_without_showing_the_url() -> None:
    with pytest.raises(ConfigError, match=r"notifier URL #0 \(nosuchservice://…\) is not a valid apprise URL") as err:
        Target(0, f"nosuchservice://{BOT_TOKEN}@x")
    assert BOT_TOKEN.split(":")[1] not in str(err.value)


def test_an_unreadable_url_file_is_a_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=r"TRADEWIRE_NOTIFIER_URLS_FILE: cannot read .*nope"):
        load_urls(NotifierConfig(), {"TRADEWIRE_NOTIFIER_URLS_FILE": str(missing)})
    with pytest.raises(ConfigError, match=r"notifier\.urls_file: cannot read"):
        load_urls(NotifierConfig(urls_file=str(missing)), {})


def test_targets_are_shown_without_their_secrets() -> None:
    target = Target(0, f"tgram://{BOT_TOKEN}/12345")
    assert target.label.startswith("Telegram tgram://") and BOT_TOKEN.split(":")[1] not in target.label
    hook = Target(1, "json://hooks.example.com/very-secret-path-token")
    assert hook.label == "JSON json://hooks.example.com/…"


def test_error_texts_are_scrubbed_of_url_secrets() -> None:
    scrub = Scrubber([f"tgram://{BOT_TOKEN}/12345", f"mailto://bob:{PASSWORD}@smtp.example.com?to=a@example.com",
                      "json://hooks.example.com/very-secret-path-token"])
    text = (f"POST https://api.telegram.org/bot{BOT_TOKEN}/sendMessage failed; login bob:{PASSWORD}; "
            "POST /very-secret-path-token 403")
    scrubbed = scrub(text)
    for secret in (BOT_TOKEN.split(":")[1], PASSWORD, "very-secret-path-token"):
        assert secret not in scrubbed
    assert scrubbed.startswith("POST https://api.telegram.org/bot")
