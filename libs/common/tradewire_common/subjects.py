"""The one place that builds NATS subject strings, and the JetStream layout behind them.

Tokens are escaped so that a symbol containing ``.``, ``*``, ``>``, ``%`` or white space can never
change a subject's shape: each such character becomes ``%XX`` (upper-case hex).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

_ESCAPE = {c: f"%{ord(c):02X}" for c in ".*>% \t\r\n"}


def escape_token(token: str) -> str:
    """Escape one subject token; empty tokens are refused."""
    if not token:
        raise ValueError("subject token must not be empty")
    return "".join(_ESCAPE.get(c, c) for c in token)


def unescape_token(token: str) -> str:
    """Inverse of :func:`escape_token`."""
    out: list[str] = []
    i = 0
    while i < len(token):
        if token[i] == "%" and i + 3 <= len(token):
            out.append(chr(int(token[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(token[i])
            i += 1
    return "".join(out)


def _join(*tokens: str) -> str:
    return ".".join(escape_token(t) for t in tokens)


# --- market data (core NATS: latest matters, losses are tolerable) -----------------------------


def bar(venue: str, symbol: str, interval: str) -> str:
    return "md.bar." + _join(venue, symbol, interval)


def quote(venue: str, symbol: str) -> str:
    return "md.quote." + _join(venue, symbol)


def trade(venue: str, symbol: str) -> str:
    return "md.trade." + _join(venue, symbol)


def book(venue: str, symbol: str) -> str:
    return "md.book." + _join(venue, symbol)


ALL_MARKET_DATA = "md.>"
ALL_BARS = "md.bar.>"
ALL_QUOTES = "md.quote.>"
ALL_TRADES = "md.trade.>"
ALL_BOOKS = "md.book.>"


# --- prediction markets (JetStream: a resolution settles positions and must not be lost) --------


def resolution(venue: str) -> str:
    """``MarketResolved`` of a venue's prediction markets (datafeed, execution or a replay publishes)."""
    return "pm.resolved." + escape_token(venue)


ALL_RESOLUTIONS = "pm.resolved.*"


# --- trading flow (JetStream: durable, de-duplicated by Nats-Msg-Id) ---------------------------


def signal(strategy: str) -> str:
    return "sig." + escape_token(strategy)


def strategy_error(strategy: str) -> str:
    return "err.strategy." + escape_token(strategy)


def order_command(venue: str) -> str:
    """SubmitOrder/CancelOrder for a venue; only risk may publish here."""
    return "ord.cmd." + escape_token(venue)


def order_event(strategy: str) -> str:
    return "ord.evt." + escape_token(strategy)


def execution_watermark(venue: str) -> str:
    # Lives in the order-event stream so one ordered consumer sees fills then the watermark.
    return "ord.evt._wm." + escape_token(venue)


def venue_status(venue: str) -> str:
    """Execution's ``VenueStatus`` (connected or not): in the order-event stream, like the watermarks."""
    return "ord.evt._venue." + escape_token(venue)


ALL_SIGNALS = "sig.*"
ALL_STRATEGY_ERRORS = "err.strategy.*"
ALL_ORDER_COMMANDS = "ord.cmd.*"
ALL_ORDER_EVENTS = "ord.evt.>"
#: Order events of strategies only (one token), without execution's ``ord.evt._wm.*`` watermarks.
STRATEGY_ORDER_EVENTS = "ord.evt.*"
ALL_VENUE_STATUS = "ord.evt._venue.*"
PORTFOLIO_SNAPSHOT = "pf.snapshot"
RISK_STATE = "risk.state"
RISK_HALT = "risk.halt"


def alert(severity: str) -> str:
    return "alert." + escape_token(severity)


ALL_ALERTS = "alert.*"


def dead_letter(service: str) -> str:
    return "dlq." + escape_token(service)


ALL_DEAD_LETTERS = "dlq.*"


# --- governance (JetStream): promotion stages and run-time parameter changes, recorded by the ledger ----


def strategy_stage(strategy: str) -> str:
    """``StrategyStageChanged`` (promotions and demotions); only risk publishes here."""
    return "gov.stage." + escape_token(strategy)


def strategy_params(strategy: str) -> str:
    """``StrategyParamsChanged`` (an adaptive strategy's parameters); only signals publishes here."""
    return "gov.params." + escape_token(strategy)


ALL_STRATEGY_STAGES = "gov.stage.*"
ALL_STRATEGY_PARAMS = "gov.params.*"
ALL_GOVERNANCE = "gov.>"

# --- control plane (core NATS request/reply) ---------------------------------------------------
REPLAY = "ctl.replay"
STATS = "ctl.stats"
#: Request/reply: the ledger answers with its latest PortfolioSnapshot (risk asks at start).
PORTFOLIO_REQUEST = "ctl.portfolio"
#: Every service pushes its counters here after each handled message (lockstep replays listen).
STATS_REPORT = "ctl.stats.report"


def inbox_prefix(user: str) -> str:
    """Reply subjects of one NATS user: with per-user inboxes no user can read another's replies."""
    return "_INBOX." + escape_token(user)


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream: its name and the subjects it captures."""

    name: str
    subjects: tuple[str, ...]


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("TW_SIGNALS", ("sig.*", "err.strategy.*")),
    StreamSpec("TW_ORDER_COMMANDS", ("ord.cmd.*",)),
    StreamSpec("TW_ORDER_EVENTS", ("ord.evt.>",)),
    StreamSpec("TW_STATE", ("risk.state",)),
    StreamSpec("TW_ALERTS", ("alert.*",)),
    StreamSpec("TW_DEAD_LETTERS", ("dlq.*",)),
    StreamSpec("TW_CONTROL", ("ctl.replay",)),
    StreamSpec("TW_GOVERNANCE", ("gov.>",)),
    StreamSpec("TW_RESOLUTIONS", ("pm.resolved.*",)),
)

#: The JetStream key-value bucket holding the trading state (survives restarts).
STATE_BUCKET = "tradewire_state"


@functools.lru_cache(maxsize=65536)
def matches(pattern: str, subject: str) -> bool:
    """NATS wildcard match: ``*`` one token, ``>`` one or more trailing tokens."""
    p = pattern.split(".")
    s = subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s):
            return False
        if tok != "*" and tok != s[i]:
            return False
    return len(p) == len(s)


@functools.lru_cache(maxsize=65536)
def stream_for(subject: str) -> StreamSpec | None:
    """The stream that captures ``subject``, or None for core-NATS subjects."""
    for spec in STREAMS:
        if any(matches(pattern, subject) for pattern in spec.subjects):
            return spec
    return None


@functools.lru_cache(maxsize=4096)
def stream_for_pattern(pattern: str) -> StreamSpec | None:
    """The stream that captures every subject a subscription ``pattern`` can match."""
    probe = ".".join("x" if tok in ("*", ">") else tok for tok in pattern.split("."))
    return stream_for(probe)
