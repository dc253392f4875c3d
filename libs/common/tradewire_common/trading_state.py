"""Trading states per scope, shared by every service: names, KV keys, precedence and a read-only view.

A *scope* is ``global``, ``strategy:<id>`` (a configured strategy) or ``venue:<name>`` (a configured
venue); the scopes of a deployment come from its configuration, so they (and the metrics labelled
by them) are bounded. Each scope is ``ACTIVE``, ``REDUCING`` (only orders that reduce exposure, and
cancels) or ``HALTED`` (cancels only). The state that applies to an order is the **most restrictive**
of ``global``, its strategy's and its venue's.

Risk owns the states: it stores each in the JetStream KV bucket (key ``trading_state.global``,
``trading_state.strategy.<id>``, ``trading_state.venue.<name>``), so they survive restarts, and
publishes every change as a ``TradingStateChanged`` on ``risk.state``. Every other service keeps a
:class:`TradingStateView`: loaded from the KV bucket at start and kept current by those events.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import msgspec

from tradewire_common.ids import derive_id
from tradewire_common.schemas import TradingState, TradingStateChanged

if TYPE_CHECKING:
    from tradewire_common.bus import Bus
    from tradewire_common.config import Config

log = logging.getLogger(__name__)

GLOBAL = "global"
STRATEGY_PREFIX = "strategy:"
VENUE_PREFIX = "venue:"
#: KV keys of the trading states (risk may write ``trading_state.>``: see ``nats_auth``).
KEY_PREFIX = "trading_state"
KEY_GLOBAL = f"{KEY_PREFIX}.{GLOBAL}"

#: How restrictive each state is; the highest wins.
RANK: Mapping[TradingState, int] = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}

#: Client order ids of the closing orders the kill switch sends with ``flatten`` (reduce-only market
#: orders risk itself publishes); execution lets them through a HALTED scope and never cancels them.
FLATTEN_PREFIX = "tw-fl-"


class StoredState(msgspec.Struct, frozen=True):
    """One scope's state as stored in the KV bucket: who set it, when and why."""

    state: TradingState
    reason: str
    actor: str
    since_ns: int
    #: The circuit breaker that set it ("" for a person or a service request).
    trigger: str = ""


INITIAL = StoredState(TradingState.ACTIVE, "initial", "system", 0)


class HaltRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of a request on ``risk.halt`` (only the operator NATS user may publish there).

    Without ``state`` it only asks for the scope's current state. Risk answers with the scope's
    state as JSON (``{"scope", "state", "reason", "actor", "since_ns", "trigger"}``, plus
    ``flatten_orders`` when it sent closing orders), or ``{"error": ...}``.
    """

    state: TradingState | None = None
    reason: str = ""
    scope: str = GLOBAL
    flatten: bool = False


def strategy_scope(strategy_id: str) -> str:
    return STRATEGY_PREFIX + strategy_id


def venue_scope(venue: str) -> str:
    return VENUE_PREFIX + venue


def configured_scopes(config: Config) -> tuple[str, ...]:
    """Every scope of a deployment: global, each configured strategy, each configured venue."""
    scopes = [GLOBAL]
    scopes += [strategy_scope(s.id) for s in config.signals.strategies]
    scopes += [venue_scope(v.name) for v in config.execution.venues]
    return tuple(dict.fromkeys(scopes))


def order_scopes(strategy_id: str | None, venue: str | None) -> tuple[str, ...]:
    """The scopes whose states apply to an order of ``strategy_id`` at ``venue``."""
    scopes = [GLOBAL]
    if strategy_id:
        scopes.append(strategy_scope(strategy_id))
    if venue:
        scopes.append(venue_scope(venue))
    return tuple(scopes)


def _key_token(name: str) -> str:
    """A KV key token: characters keys cannot hold are escaped as ``=XX``."""
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: "".join(f"={b:02X}" for b in m.group().encode()), name)


def scope_key(scope: str) -> str:
    """The KV key of a scope's state (``trading_state.global`` / ``.strategy.<id>`` / ``.venue.<name>``)."""
    if scope == GLOBAL:
        return KEY_GLOBAL
    for prefix, kind in ((STRATEGY_PREFIX, "strategy"), (VENUE_PREFIX, "venue")):
        if scope.startswith(prefix) and len(scope) > len(prefix):
            return f"{KEY_PREFIX}.{kind}.{_key_token(scope[len(prefix):])}"
    raise ValueError(f"invalid scope {scope!r}: expected global, strategy:<id> or venue:<name>")


def most_restrictive(states: Iterable[TradingState]) -> TradingState:
    """The most restrictive of ``states`` (ACTIVE when there are none)."""
    return max(states, key=RANK.__getitem__, default=TradingState.ACTIVE)


def permits(state: TradingState, *, reduce_only: bool = False, cancel: bool = False) -> bool:
    """Whether ``state`` lets an action through: ACTIVE everything, REDUCING cancels and orders that
    only reduce exposure, HALTED cancels only."""
    if cancel:
        return True
    if state is TradingState.ACTIVE:
        return True
    return state is TradingState.REDUCING and reduce_only


def flatten_client_order_id(change_id: str, instrument_id: str) -> str:
    """Deterministic client order id of the kill switch's closing order for one instrument."""
    return FLATTEN_PREFIX + derive_id("flatten", change_id, instrument_id)[:24]


def is_flatten_order(client_order_id: str) -> bool:
    return client_order_id.startswith(FLATTEN_PREFIX)


async def load_state(bus: Bus, scope: str = GLOBAL) -> StoredState:
    """A scope's stored state (ACTIVE ``initial`` when none was ever stored)."""
    raw = await bus.kv_get(scope_key(scope))
    if raw is None:
        return INITIAL
    return msgspec.json.decode(raw, type=StoredState)


class TradingStateView:
    """The trading state of each configured scope as this service knows it (read-only: risk owns it)."""

    def __init__(self, scopes: Iterable[str]) -> None:
        self.states: dict[str, StoredState] = dict.fromkeys(scopes, INITIAL)
        if GLOBAL not in self.states:
            self.states = {GLOBAL: INITIAL, **self.states}

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.states)

    async def load(self, bus: Bus) -> None:
        """Read every scope from the KV bucket (a value older than what an event already said is kept out)."""
        for scope in self.states:
            try:
                stored = await load_state(bus, scope)
            except msgspec.DecodeError:
                log.error("undecodable trading state in KV for %s; keeping %s", scope, self.states[scope].state)
                continue
            if stored.since_ns >= self.states[scope].since_ns:
                self.states[scope] = stored

    def apply(self, change: TradingStateChanged) -> bool:
        """Take a ``TradingStateChanged`` (unknown scopes and stale events are ignored); True if taken."""
        current = self.states.get(change.scope)
        if current is None or change.ts_event < current.since_ns:
            return False
        self.states[change.scope] = StoredState(change.state, change.reason, change.actor, change.ts_event,
                                                change.trigger)
        return True

    def get(self, scope: str) -> StoredState:
        return self.states.get(scope, INITIAL)

    def effective(self, strategy_id: str | None = None, venue: str | None = None) -> TradingState:
        """The most restrictive state of global, the strategy's and the venue's."""
        return most_restrictive(self.get(scope).state for scope in order_scopes(strategy_id, venue))

    def binding_scope(self, strategy_id: str | None = None, venue: str | None = None) -> str:
        """The scope whose state is the effective one (the broadest on a tie)."""
        scopes = order_scopes(strategy_id, venue)
        return max(scopes, key=lambda s: (RANK[self.get(s).state], -scopes.index(s)))

    def summary(self) -> dict[str, str]:
        """``{scope: state}`` for every scope."""
        return {scope: stored.state.value for scope, stored in self.states.items()}
