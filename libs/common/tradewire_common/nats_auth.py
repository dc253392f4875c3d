"""Per-service NATS users: who may publish and subscribe what, derived from ``subjects``.

Each service connects as its own user, so a bug or a compromised strategy can only do what its
role needs: only ``risk`` may publish order commands (``signals`` cannot), only ``operator`` may
publish on ``risk.halt``. JetStream needs its API subjects too: every service may look up and
create the streams (whoever starts first lays them out; only the trusted services may update a
changed layout), consumers may create their durables and ack on the streams they read, and the
KV users may write only their own keys. Replies go to per-user inboxes (``_INBOX.<user>.>``).
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tradewire_common import subjects
from tradewire_common.config import ENV_PREFIX, BusConfig, ConfigError
from tradewire_common.registry import SERVICE_NAMES

#: The NATS users ``tradewire nats-config`` creates: the services and the operator (people and
#: the CLI: kill switch on ``risk.halt``, status queries).
ROLES: tuple[str, ...] = (*SERVICE_NAMES, "operator")
#: Users created only on request (``--monitor``): a read-only observer for dashboards and debugging.
OPTIONAL_ROLES: tuple[str, ...] = ("monitor",)
ALL_ROLES: tuple[str, ...] = (*ROLES, *OPTIONAL_ROLES)

#: Service side: the password of the user in ``bus.user`` (or ``$TRADEWIRE_NATS_PASSWORD_FILE``).
PASSWORD_ENV = "TRADEWIRE_NATS_PASSWORD"
USER_ENV = f"{ENV_PREFIX}BUS__USER"
PASSWORD_FILE_ENV = f"{ENV_PREFIX}BUS__PASSWORD_FILE"

#: KV key prefixes each role writes (risk: ``trading_state.*`` and ``risk.*`` (the approval queue,
#: promotion stages), datafeed: ``replay.progress.*``, execution: ``paper.<venue>.state``); tests check
#: them against the services' own key builders.
KV_KEY_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "datafeed": ("replay",),
    "risk": ("trading_state", "risk"),
    "execution": ("paper",),
    "notifier": ("notifier",),
}

# NATS's own API subjects (not Tradewire's): JetStream requests, acks, flow control, KV writes.
_JS_API = "$JS.API"
_KV_STREAM = f"KV_{subjects.STATE_BUCKET}"
#: nats-server parses an environment value as a config value: a password must read as a string.
_PASSWORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{15,}")


@dataclass(frozen=True)
class Permissions:
    """Allow lists (anything else is denied) and whether replies to received requests are allowed."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    allow_responses: bool = False

    def may_publish(self, subject: str) -> bool:
        return any(covers(allowed, subject) for allowed in self.publish)

    def may_subscribe(self, subject: str) -> bool:
        return any(covers(allowed, subject) for allowed in self.subscribe)


def covers(allowed: str, subject: str) -> bool:
    """Whether permission ``allowed`` admits ``subject`` (itself possibly a wildcard pattern)."""
    a = allowed.split(".")
    s = subject.split(".")
    for i, tok in enumerate(a):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok == "*" and s[i] == ">") or (tok not in ("*", s[i])):
            return False
    return len(a) == len(s)


def _js(*tokens: str) -> str:
    return ".".join((_JS_API, *tokens))


def _stream_setup(*, update: bool) -> list[str]:
    """What ``NatsBus.ensure_streams`` sends: look up and create every stream and the KV bucket."""
    names = [spec.name for spec in subjects.STREAMS] + [_KV_STREAM]
    out = [_js("STREAM", verb, name) for name in names for verb in ("INFO", "CREATE")]
    if update:
        # the KV bucket's stream too, so a one-server layout moves to the cluster's replica count
        out += [_js("STREAM", "UPDATE", name) for name in names]
    return out


def _consume(stream: str) -> list[str]:
    """Create/look up durable push consumers on ``stream`` and ack (or answer flow control) there."""
    return [
        _js("CONSUMER", "INFO", stream, "*"),
        _js("CONSUMER", "CREATE", stream, ">"),
        _js("CONSUMER", "DURABLE", "CREATE", stream, "*"),
        f"$JS.ACK.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _stream_of(pattern: str) -> str:
    spec = subjects.stream_for_pattern(pattern)
    if spec is None:
        raise ValueError(f"{pattern!r} is not a stream subject")
    return spec.name


def _kv_read() -> list[str]:
    return [_js("STREAM", "MSG", "GET", _KV_STREAM), _js("DIRECT", "GET", _KV_STREAM, ">")]


def _kv_write(role: str) -> list[str]:
    return [f"$KV.{subjects.STATE_BUCKET}.{prefix}.>" for prefix in KV_KEY_PREFIXES.get(role, ())]


def _read_only_api() -> list[str]:
    return [_js("INFO"), _js("STREAM", "NAMES"), _js("STREAM", "LIST"), _js("STREAM", "INFO", "*"),
            _js("CONSUMER", "NAMES", "*"), _js("CONSUMER", "LIST", "*"), _js("CONSUMER", "INFO", "*", "*")]


#: Everything a read-only observer may watch (core subscriptions also see JetStream subjects).
_OBSERVABLE = (
    subjects.ALL_MARKET_DATA, subjects.ALL_SIGNALS, subjects.ALL_STRATEGY_ERRORS, subjects.ALL_ORDER_COMMANDS,
    subjects.ALL_ORDER_EVENTS, subjects.PORTFOLIO_SNAPSHOT, subjects.RISK_STATE, subjects.RISK_HALT,
    subjects.ALL_ALERTS, subjects.ALL_DEAD_LETTERS, subjects.REPLAY, subjects.STATS_REPORT, subjects.ALL_GOVERNANCE,
    subjects.ALL_RESOLUTIONS,
)


#: Roles that may create a missing stream but never reconfigure one.
_NO_STREAM_UPDATES = ("signals", "notifier")


def _service(role: str, publish: Iterable[str], subscribe: Iterable[str]) -> Permissions:
    """A service's own subjects plus what every service does: answer ``ctl.stats``, push its
    counters, dead-letter, lay out the streams (signals and the notifier, which talks to the internet,
    may not change an existing layout), and see the trading state (read it from the KV bucket at start,
    follow ``risk.state``)."""
    update = role not in _NO_STREAM_UPDATES
    pub = [*publish, subjects.STATS_REPORT, subjects.dead_letter(role), *_stream_setup(update=update), *_kv_read()]
    sub = [*subscribe, subjects.STATS, subjects.inbox_prefix(role) + ".>", subjects.RISK_STATE]
    return Permissions(_unique(pub), _unique(sub), allow_responses=True)


def role_permissions(role: str) -> Permissions:
    """The permissions of one role (see ``ALL_ROLES``)."""
    if role == "datafeed":
        return _service(role, [subjects.ALL_MARKET_DATA, subjects.REPLAY, subjects.STATS, subjects.ALL_ALERTS,
                               subjects.ALL_RESOLUTIONS, *_kv_read(), *_kv_write(role)],
                        [subjects.STATS_REPORT])
    if role == "signals":
        # prediction strategies read quotes, books and trades, and stop on a market's resolution
        return _service(role, [subjects.ALL_SIGNALS, subjects.ALL_STRATEGY_ERRORS, subjects.ALL_STRATEGY_PARAMS],
                        [subjects.ALL_BARS, subjects.ALL_QUOTES, subjects.ALL_BOOKS, subjects.ALL_TRADES,
                         subjects.ALL_RESOLUTIONS])
    if role == "risk":
        return _service(role, [subjects.ALL_ORDER_COMMANDS, subjects.STRATEGY_ORDER_EVENTS, subjects.RISK_STATE,
                               subjects.PORTFOLIO_REQUEST, subjects.ALL_ALERTS, subjects.ALL_STRATEGY_STAGES,
                               *_kv_read(), *_kv_write(role),
                               *_consume(_stream_of(subjects.ALL_SIGNALS)),
                               # the risk context's durable consumer of order events and watermarks
                               *_consume(_stream_of(subjects.ALL_ORDER_EVENTS))],
                        # the kill switch on risk.halt; the circuit breakers' inputs (core subscriptions);
                        # the risk context's bars (ATR) and order events
                        [subjects.PORTFOLIO_SNAPSHOT, subjects.RISK_HALT, subjects.ALL_BARS,
                         subjects.STRATEGY_ORDER_EVENTS, subjects.ALL_VENUE_STATUS, subjects.ALL_ORDER_EVENTS,
                         subjects.ALL_QUOTES, subjects.ALL_BOOKS, subjects.ALL_RESOLUTIONS])
    if role == "execution":
        # venue adapters may learn a resolution first (settled positions); the paper venue fills
        # prediction markets against quotes, books and trades and stops at a resolution
        return _service(role, [subjects.ALL_ORDER_EVENTS, subjects.ALL_ALERTS, subjects.ALL_RESOLUTIONS,
                               *_kv_read(), *_kv_write(role), *_consume(_stream_of(subjects.ALL_ORDER_COMMANDS))],
                        [subjects.ALL_BARS, subjects.ALL_QUOTES, subjects.ALL_BOOKS, subjects.ALL_TRADES,
                         subjects.ALL_RESOLUTIONS])
    if role == "ledger":
        consumed = [c for spec in subjects.STREAMS for c in _consume(spec.name)]
        # bars, quotes and books mark positions and move the snapshot watermark
        return _service(role, [subjects.PORTFOLIO_SNAPSHOT, subjects.ALL_ALERTS, *consumed],
                        [subjects.ALL_BARS, subjects.ALL_QUOTES, subjects.ALL_BOOKS, subjects.PORTFOLIO_REQUEST])
    if role == "notifier":
        # durable consumers of alerts, strategy order events and the trading state; its own price
        # alerts on alert.*; its rules in the KV bucket; market data and snapshots as core subscriptions
        consumed = [c for p in (subjects.ALL_ALERTS, subjects.STRATEGY_ORDER_EVENTS, subjects.RISK_STATE)
                    for c in _consume(_stream_of(p))]
        return _service(role, [subjects.ALL_ALERTS, *_kv_read(), *_kv_write(role), *consumed],
                        [subjects.ALL_BARS, subjects.ALL_QUOTES, subjects.ALL_TRADES, subjects.PORTFOLIO_SNAPSHOT])
    inbox = subjects.inbox_prefix(role) + ".>"
    if role == "operator":
        return Permissions(
            _unique([subjects.RISK_HALT, subjects.STATS, subjects.PORTFOLIO_REQUEST, *_read_only_api(), *_kv_read()]),
            _unique([*_OBSERVABLE, inbox]),
        )
    if role == "monitor":
        return Permissions(_unique(_read_only_api()), _unique([*_OBSERVABLE, inbox]))
    raise ValueError(f"unknown NATS role {role!r}; known: {', '.join(ALL_ROLES)}")


def permission_table(roles: Iterable[str] = ROLES) -> dict[str, Permissions]:
    return {role: role_permissions(role) for role in roles}


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# --- passwords ---------------------------------------------------------------------------------


def password_env(role: str) -> str:
    """Broker side: the environment variable ``nats.conf`` reads ``role``'s password from."""
    return f"{PASSWORD_ENV}_{role.upper()}"


def new_password() -> str:
    """A random password nats-server reads back as a plain string (starts with a letter)."""
    return "tw" + secrets.token_urlsafe(32)


def check_password(role: str, password: str) -> None:
    """Refuse a broker-side password nats-server would misread (a number, a boolean, ``-x``...)."""
    if not _PASSWORD_RE.fullmatch(password):
        raise ConfigError(f"{password_env(role)}: use at least 16 letters, digits, '_' or '-', starting with a letter")


@dataclass(frozen=True)
class ClientAuth:
    """A service's NATS login; the password never appears in a repr or a log line."""

    user: str
    password: str = field(repr=False)


def client_auth(bus: BusConfig, environ: Mapping[str, str] | None = None) -> ClientAuth | None:
    """The login of ``bus.user``: password from ``$TRADEWIRE_NATS_PASSWORD``, else the file named
    by ``$TRADEWIRE_NATS_PASSWORD_FILE`` or ``bus.password_file``. None when ``bus.user`` is empty."""
    if not bus.user:
        return None
    env = os.environ if environ is None else environ
    password = env.get(PASSWORD_ENV, "")
    path = env.get(f"{PASSWORD_ENV}_FILE", "") or bus.password_file
    if not password and path:
        try:
            password = Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"bus.password_file: cannot read {path}: {exc.strerror}") from None
    if not password:
        raise ConfigError(f"bus.user is {bus.user!r} but there is no password: set {PASSWORD_ENV} "
                          f"or bus.password_file")
    return ClientAuth(bus.user, password)


def client_auth_from_env(environ: Mapping[str, str] | None = None) -> ClientAuth | None:
    """``client_auth`` from the environment alone (``TRADEWIRE__BUS__USER``...), for a bus built
    without its configuration."""
    env = os.environ if environ is None else environ
    bus = BusConfig(user=env.get(USER_ENV, "").strip(), password_file=env.get(PASSWORD_FILE_ENV, "").strip())
    return client_auth(bus, env)
