"""The live venue framework: :class:`LiveVenueAdapter` implements the :class:`VenueAdapter` contract once for
every real venue; a concrete adapter (ccxt, alpaca, ...) only implements the venue calls (``venue_*``).

**What a concrete adapter implements** (each raises the exceptions below, never a library's own):

* :meth:`~LiveVenueAdapter.venue_place` sends a new order with the command's ``client_order_id`` as the
  venue's client order id and returns what the venue answered (a :class:`VenueOrder`);
* :meth:`~LiveVenueAdapter.venue_cancel`, :meth:`~LiveVenueAdapter.venue_order` (by client order id),
  :meth:`~LiveVenueAdapter.venue_open_orders`, :meth:`~LiveVenueAdapter.venue_order_fills`,
  :meth:`~LiveVenueAdapter.venue_fills` (recent fills since a time), :meth:`~LiveVenueAdapter.venue_balances`;
* optionally :meth:`~LiveVenueAdapter.venue_stream`, the venue's order-update stream (websocket); without one,
  or while it is down, the framework polls;
* :meth:`~LiveVenueAdapter.connect` / :meth:`~LiveVenueAdapter.disconnect`.

Exceptions: :class:`VenueRefused` is a *definitive* refusal (the venue answered no: invalid order, not
enough funds, post-only would cross...); :class:`DuplicateClientOrderId` says the id is already there;
:class:`OrderNotFoundAtVenue` is the venue's "no such order"; :class:`NotSent` says the request was
definitely not processed (429 with ``Retry-After``, connection refused before sending); :class:`Ambiguous`
(a ``ConnectionError``) says it may have been processed (timeout, 5xx, connection dropped after sending).
Anything else an adapter raises while placing an order counts as ambiguous.

**What the framework guarantees** (the ``VenueAdapter`` contract, for every live venue):

* **Idempotent by client order id.** A client order id already tracked, or closed recently (the last
  :data:`CLOSED_KEPT` are remembered and saved), returns ``[]`` and never reaches the venue again.
* **Journal before sending.** A new order is tracked and the host saves the adapter's state *before* the
  create request leaves, so a crash mid-request restarts with the order in flight, never forgotten.
* **Never a blind retry of a create.** After a timeout, 5xx or dropped connection the order stays *in flight*
  (``submit`` returns ``[]``: only ``OrderSubmitted`` is published) and is resolved by querying the venue by
  client order id (at once, then every ``poll_interval_s``, and at start after a restart): found means
  ``OrderAccepted`` (and its fills); the venue's "no such order" becomes ``OrderRejected`` only once it is
  definitive, i.e. at least ``in_flight_grace_s`` after the send (beyond the venue's receive window it can no
  longer accept the request). A create is sent again only after :class:`NotSent` (the venue said it did not
  process it), after its ``Retry-After``, at most :data:`NOT_SENT_RETRIES` times; then it is rejected.
* **Rejections only on a definitive answer**: :class:`VenueRefused`, a missing capability (checked before
  anything is sent), the venue's own "rejected" status, or the definitive not-found above.
* **Fills de-duplicated by trade id**, per order, whichever path reports them (the create's answer, the
  stream, polling, reconciliation); each becomes one ``OrderFilled`` with ``partial``/``leaves_qty`` from the
  cumulative quantity. An order whose venue status shows more filled than the fills seen gets its fills fetched
  (:meth:`~LiveVenueAdapter.venue_order_fills`) before it may close.
* **Provisional fills** (Polymarket reports a match before it is final on chain): a :class:`VenueFill` with
  ``status="provisional"`` becomes ``OrderFilled(provisional=True)``; the same trade id seen later as
  ``"final"`` becomes one ``FillConfirmed``, as ``"failed"`` one ``FillReversed`` (and the order's filled
  quantity goes back down). Each of the three is emitted at most once per trade id, across restarts (the
  unsettled trade ids are in the saved state, also of closed orders); polling fetches the fills of orders with
  unsettled ones. A trade first seen ``"failed"`` is ignored; first seen ``"final"``, it is a plain fill. An order
  *filled* by provisional fills stays open here until they settle (a reversal may put it back on the book).
* **Closing events**: ``OrderCanceled`` (cancelled, or the venue expired the rest of an ``IOC``/``FOK``
  order, as the paper venue says it) and ``OrderExpired`` (``DAY``/``GTD`` expiry), with the filled quantity,
  after every fill of the order.
* **Derived ids**: ``OrderAccepted``/``OrderRejected``/``OrderCanceled``/``OrderExpired`` from the client order
  id, ``OrderFilled`` from the venue, client order id and trade id: a repeat publishes the same ids.
* **Reducing latch.** :meth:`~LiveVenueAdapter.set_reducing` (reconciliation's unexplained mismatch) makes
  the adapter refuse every order that is not reduce-only (``OrderRejected``) until a person sets the venue
  scope ACTIVE again.

**Concurrency.** The service calls ``submit``/``cancel`` holding its lock; the adapter's own tasks (stream,
polling, in-flight resolution, reconciliation) fetch from the venue without it and take ``host.lock`` to
apply what they learnt and publish it, so events of one order are computed and published in order. Applying
a stale snapshot is harmless: quantities only grow, each fact is emitted once.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from decimal import Decimal
from typing import Literal, Protocol, TypeVar

import msgspec

from tradewire_common.ids import derive_id
from tradewire_common.schemas import (
    Bar,
    CancelOrder,
    FillConfirmed,
    FillReversed,
    Liquidity,
    MarketResolved,
    OrderAccepted,
    OrderCanceled,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    ReplaceOrder,
    Side,
    SubmitOrder,
    TimeInForce,
)
from tradewire_execution.live.credentials import Credentials
from tradewire_execution.live.ratelimit import TokenBucket
from tradewire_execution.venue import (
    CAP_DAY,
    CAP_FOK,
    CAP_GTC,
    CAP_IOC,
    CAP_LIMIT,
    CAP_MARKET,
    CAP_REDUCE_ONLY,
    CAP_STOP,
    CAP_STOP_LIMIT,
    VenueAdapter,
)
from tradewire_execution.venue import CAP_GTD as CAP_GTD  # defined there; adapters import them from here too
from tradewire_execution.venue import CAP_POST_ONLY as CAP_POST_ONLY

log = logging.getLogger(__name__)

#: Client order ids of closed orders remembered (idempotency across redeliveries and restarts).
CLOSED_KEPT = 5000
#: Closed orders kept whole (with their trade ids) for late fills and reconciliation.
CLOSED_ORDERS_KEPT = 200
#: Creates sent again after the venue said it did not process them (429), before rejecting.
NOT_SENT_RETRIES = 3
#: With the order stream up, the open orders are still polled every this many maintenance rounds.
STREAM_POLL_EVERY = 10
#: Query retries after a rate-limit answer.
QUERY_RETRIES = 3
ZERO = Decimal(0)

OrderStatus = Literal["open", "filled", "canceled", "expired", "rejected"]
#: ``final``: nothing follows (most venues); ``provisional``: matched, not final yet; ``failed``: undone.
FillStatus = Literal["final", "provisional", "failed"]
CLOSED_STATUSES: frozenset[str] = frozenset({"filled", "canceled", "expired", "rejected"})
TrackStatus = Literal["pending", "in_flight", "open", "closed"]
T = TypeVar("T")


# --- what the venue says ---------------------------------------------------------------------------------


class VenueOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One order as the venue reports it."""

    client_order_id: str
    venue_order_id: str
    status: OrderStatus
    #: Cumulative filled quantity.
    filled_qty: Decimal = ZERO
    #: Instrument symbol (``BTCUSDT``), side, quantity, type and price: for orders Tradewire does not know.
    symbol: str = ""
    side: Side | None = None
    quantity: Decimal | None = None
    order_type: OrderType | None = None
    limit_price: Decimal | None = None
    ts_ns: int = 0
    reason: str = ""


class VenueFill(msgspec.Struct, frozen=True, kw_only=True):
    """One execution as the venue reports it; ``trade_id`` is unique at the venue."""

    trade_id: str
    venue_order_id: str
    client_order_id: str = ""
    symbol: str = ""
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal = ZERO
    fee_currency: str = ""
    liquidity: Liquidity = Liquidity.TAKER
    ts_ns: int
    status: FillStatus = "final"


class VenueError(Exception):
    """Base of the venue answers an adapter raises."""


class VenueRefused(VenueError):
    """A definitive "no" from the venue (the order was not and will not be placed)."""


class DuplicateClientOrderId(VenueError):
    """The venue already has an order with this client order id."""


class OrderNotFoundAtVenue(VenueError):
    """The venue has no order with this id."""


class NotSent(ConnectionError):
    """The request was definitely not processed (rate limited, connection refused before sending)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimited(NotSent):
    """429/418: too many requests; ``retry_after_s`` from the answer's ``Retry-After``."""


class Ambiguous(ConnectionError):
    """The request may have been processed (timeout, 5xx, connection dropped after sending)."""


# --- what the adapter keeps ------------------------------------------------------------------------------


class TrackedOrder(msgspec.Struct, kw_only=True):
    """An order this adapter placed (or adopted) and follows until it closes."""

    order: SubmitOrder
    status: TrackStatus
    venue_order_id: str = ""
    #: Wall time (ns) the create was last sent; 0 = not sent.
    sent_ns: int = 0
    #: "No such order" answers while in flight.
    not_found: int = 0
    filled: Decimal = ZERO
    trade_ids: list[str] = msgspec.field(default_factory=list)
    #: Why the order was cancelled by us (the CancelOrder's reason).
    cancel_reason: str = ""
    adopted: bool = False
    #: Trade id -> quantity of provisional fills not yet confirmed or reversed.
    provisional: dict[str, Decimal] = msgspec.field(default_factory=dict)
    #: Cancel/replace journal (:mod:`tradewire_execution.live.replace`): on a replacement, the order it replaces
    #: and the quantity that order had filled (placed cancel-then-new); on the old order, its replacement.
    replaces: str = ""
    carried: Decimal = ZERO
    replaced_by: str = ""
    replacement: SubmitOrder | None = None


class LiveState(msgspec.Struct, kw_only=True):
    """What a live adapter saves in KV (``paper.<venue>.state``): the venue holds the truth about orders, but
    only this says which orders are Tradewire's and which creates are still unanswered."""

    version: int = 1
    orders: list[TrackedOrder] = msgspec.field(default_factory=list)
    closed: list[str] = msgspec.field(default_factory=list)
    reducing: str = ""


# --- the service side ------------------------------------------------------------------------------------


class AdapterHost(Protocol):
    """What a live adapter needs from the execution service (see ``ExecutionService``)."""

    @property
    def lock(self) -> asyncio.Lock: ...

    async def adapter_events(self, venue: str, events: Sequence[OrderEvent]) -> None:
        """Publish events the adapter learnt by itself (the caller holds ``lock``), then save its state."""

    async def adapter_state_changed(self, venue: str) -> None:
        """Save the adapter's state now (before a create leaves)."""

    async def adapter_status(self, venue: str, connected: bool, reason: str) -> None:
        """The venue connection went down or came back."""

    async def adapter_alert(self, venue: str, severity: str, title: str, body: str) -> None:
        """Publish an ``Alert``."""

    async def adapter_resolved(self, venue: str, resolved: MarketResolved) -> None:
        """Publish a prediction market's resolution the adapter learnt (e.g. a settled position), durably on
        ``pm.resolved.<venue>`` (its id derives from venue and market, so repeats are dropped)."""


class CollectingHost:
    """A host for an adapter used on its own (tools, unit tests): keeps what it is told."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.events: list[OrderEvent] = []
        self.saves = 0
        self.statuses: list[tuple[bool, str]] = []
        self.alerts: list[tuple[str, str, str]] = []
        self.resolutions: list[MarketResolved] = []

    @property
    def lock(self) -> asyncio.Lock:
        return self._lock

    async def adapter_events(self, venue: str, events: Sequence[OrderEvent]) -> None:
        self.events.extend(events)
        self.saves += 1

    async def adapter_state_changed(self, venue: str) -> None:
        self.saves += 1

    async def adapter_status(self, venue: str, connected: bool, reason: str) -> None:
        self.statuses.append((connected, reason))

    async def adapter_alert(self, venue: str, severity: str, title: str, body: str) -> None:
        self.alerts.append((severity, title, body))

    async def adapter_resolved(self, venue: str, resolved: MarketResolved) -> None:
        self.resolutions.append(resolved)


class ReconcilerLike(Protocol):
    async def run(self) -> object: ...


# --- the adapter ------------------------------------------------------------------------------------------


class LiveVenueAdapter(VenueAdapter):
    """A real venue (see the module docstring). Subclasses implement the ``venue_*`` calls."""

    #: Spot venues have no short positions, so a reduce-only order is sent as a plain one (a SELL can only
    #: sell what is held); venues with positions need ``CAP_REDUCE_ONLY`` for it.
    spot: bool = True

    def __init__(
        self, name: str, *, capabilities: Iterable[str], limiter: TokenBucket | None = None,
        credentials: Credentials | None = None, in_flight_grace_s: float = 15.0, poll_interval_s: float = 2.0,
        websocket: bool = True, wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.name = name
        self.capabilities = frozenset(capabilities)
        self.limiter = limiter or TokenBucket(0)
        self.credentials = credentials or Credentials()
        self.in_flight_grace_ns = int(in_flight_grace_s * 1e9)
        self.poll_interval_s = poll_interval_s
        self.websocket = websocket
        self.wall_ns = wall_ns
        self.host: AdapterHost = CollectingHost()
        self.reconciler: ReconcilerLike | None = None
        self.reconcile_interval_s = 0.0
        self.state_revision = 0
        self._orders: dict[str, TrackedOrder] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._closed_orders: OrderedDict[str, TrackedOrder] = OrderedDict()
        self.reducing_reason = ""
        self.connected = True
        self.stream_up = False
        self._tasks: list[asyncio.Task[None]] = []
        self.creates_sent = 0

    # --- venue calls (implemented per venue) --------------------------------------------------------------

    async def connect(self) -> None:
        """Open sessions, load markets (restricted to what is configured)."""

    async def disconnect(self) -> None:
        """Close sessions; safe to call twice."""

    @abc.abstractmethod
    async def venue_place(self, order: SubmitOrder) -> VenueOrder:
        """Send ``order`` with its client order id; the venue's answer."""

    @abc.abstractmethod
    async def venue_cancel(self, order: SubmitOrder, venue_order_id: str) -> VenueOrder:
        """Cancel; the order's state after the cancel. ``OrderNotFoundAtVenue`` if it is not open there."""

    @abc.abstractmethod
    async def venue_order(self, order: SubmitOrder) -> VenueOrder:
        """The order, looked up by client order id; ``OrderNotFoundAtVenue`` if the venue has none."""

    @abc.abstractmethod
    async def venue_open_orders(self) -> list[VenueOrder]:
        """Every open order in the configured symbols."""

    @abc.abstractmethod
    async def venue_order_fills(self, order: SubmitOrder, venue_order_id: str) -> list[VenueFill]:
        """Every fill of one order."""

    @abc.abstractmethod
    async def venue_fills(self, since_ns: int) -> list[VenueFill]:
        """The account's fills in the configured symbols since ``since_ns``."""

    @abc.abstractmethod
    async def venue_balances(self) -> dict[str, Decimal]:
        """Total balance per currency (spot) or signed position per instrument symbol (derivatives)."""

    async def venue_replace(self, order: SubmitOrder, venue_order_id: str, new: SubmitOrder) -> VenueOrder:
        """A native amend of ``order`` into ``new`` (adapters listing ``CAP_AMEND``); the new order's state."""
        raise NotImplementedError

    def venue_stream(self) -> AsyncIterator[tuple[list[VenueOrder], list[VenueFill]]]:
        """Order updates as they happen (websocket); ``NotImplementedError``: poll instead."""
        raise NotImplementedError

    def position_keys(self) -> dict[str, str]:
        """Instrument id -> its key in :meth:`venue_balances`, for reconciliation's position check (spot: the
        base currency). Empty (the default): positions are not compared."""
        return {}

    def scrub(self, text: str) -> str:
        """Text safe to log or publish (no credentials, no signatures)."""
        return self.credentials.scrub(text)

    # --- the VenueAdapter contract ------------------------------------------------------------------------

    def attach(self, host: AdapterHost) -> None:
        self.host = host

    async def start(self) -> None:
        """Connect, resolve what was in flight before a restart, catch up with the venue, start following it."""
        await self.connect()
        await self.resolve_in_flight()
        await self.poll_once()
        if self.reconciler is not None:
            await self._reconcile()
        if self.websocket:
            self._tasks.append(asyncio.create_task(self._stream_forever(), name=f"{self.name}-stream"))
        self._tasks.append(asyncio.create_task(self._maintain_forever(), name=f"{self.name}-maintain"))
        if self.reconciler is not None and self.reconcile_interval_s > 0:
            self._tasks.append(asyncio.create_task(self._reconcile_forever(), name=f"{self.name}-reconcile"))

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.disconnect()

    async def on_bar(self, bar: Bar, now_ns: int) -> list[OrderEvent]:
        return []  # a real venue fills by itself

    def open_orders(self) -> list[str]:
        return [coid for coid, t in self._orders.items() if t.status != "closed"]

    def tracked(self, client_order_id: str) -> TrackedOrder | None:
        return self._orders.get(client_order_id) or self._closed_orders.get(client_order_id)

    def tracked_orders(self) -> list[TrackedOrder]:
        return list(self._orders.values())

    def cancellable(self, strategy: str | None) -> list[tuple[str, str, str, int]]:
        """``(client order id, strategy, instrument, event time)`` of the working orders (of one strategy)."""
        return [(coid, t.order.strategy_id, t.order.instrument_id, t.order.ts_event)
                for coid, t in self._orders.items()
                if strategy is None or t.order.strategy_id == strategy]

    def refusal(self, order: SubmitOrder) -> str:
        """Why this adapter cannot take ``order`` (checked before anything is sent), or ""."""
        caps = self.capabilities
        if self.reducing_reason and not order.reduce_only:
            return f"venue {self.name} is REDUCING ({self.reducing_reason}): only reduce-only orders pass"
        needed = {OrderType.MARKET: CAP_MARKET, OrderType.LIMIT: CAP_LIMIT, OrderType.STOP_MARKET: CAP_STOP,
                  OrderType.STOP_LIMIT: CAP_STOP_LIMIT}[order.order_type]
        if needed not in caps:
            return f"venue {self.name} does not support {order.order_type} orders"
        if order.order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            tif = {TimeInForce.GTC: CAP_GTC, TimeInForce.IOC: CAP_IOC, TimeInForce.FOK: CAP_FOK,
                   TimeInForce.DAY: CAP_DAY, TimeInForce.GTD: CAP_GTD}[order.time_in_force]
            if tif not in caps:
                return f"venue {self.name} does not support time in force {order.time_in_force}"
        if order.reduce_only and CAP_REDUCE_ONLY not in caps and not self.spot:
            return f"venue {self.name} does not support reduce-only orders"
        if getattr(order, "post_only", False) and CAP_POST_ONLY not in caps:
            return f"venue {self.name} does not support post-only orders"
        return ""

    async def submit(self, order: SubmitOrder, now_ns: int) -> list[OrderEvent]:
        coid = order.client_order_id
        if coid in self._orders or coid in self._closed:
            return []
        tracked = TrackedOrder(order=order, status="pending")
        refusal = self.refusal(order)
        if refusal:
            return self._reject(tracked, refusal, now_ns)
        self._orders[coid] = tracked
        self._bump()
        await self.host.adapter_state_changed(self.name)  # journaled before the request leaves
        return await self._send_create(tracked, now_ns)

    async def cancel(self, command: CancelOrder, now_ns: int) -> list[OrderEvent]:
        tracked = self._orders.get(command.client_order_id)
        if tracked is None:
            return []
        tracked.cancel_reason = command.reason
        try:
            answer = await self._call(lambda: self.venue_cancel(tracked.order, tracked.venue_order_id))
        except (OrderNotFoundAtVenue, VenueRefused) as exc:
            # closed meanwhile (filled, expired) or never placed: its own state says how it ended
            log.info("venue %s: cancel of %s: %s; asking for its state", self.name, command.client_order_id,
                     self.scrub(str(exc)))
            try:
                answer = await self._call(lambda: self.venue_order(tracked.order))
            except OrderNotFoundAtVenue:
                if tracked.status in ("pending", "in_flight"):
                    return self._not_found(tracked, now_ns)
                log.error("venue %s: open order %s is unknown to the venue; left to reconciliation", self.name,
                          command.client_order_id)
                return []
        self._connected_again()
        return await self._apply_order(tracked, answer, [], now_ns)

    async def replace(self, command: ReplaceOrder, now_ns: int) -> list[OrderEvent]:
        """Cancel/replace (:mod:`tradewire_execution.live.replace`)."""
        from tradewire_execution.live.replace import replace_order

        return await replace_order(self, command, now_ns)

    def set_reducing(self, reason: str) -> None:
        if self.reducing_reason != reason:
            self.reducing_reason = reason
            self._bump()

    def clear_reducing(self) -> None:
        if self.reducing_reason:
            log.warning("venue %s: the reducing latch is cleared", self.name)
            self.reducing_reason = ""
            self._bump()

    # --- state ----------------------------------------------------------------------------------------

    def export_state(self) -> bytes:
        orders = list(self._orders.values()) + list(self._closed_orders.values())
        return msgspec.json.encode(LiveState(orders=orders, closed=list(self._closed), reducing=self.reducing_reason))

    def restore_state(self, data: bytes) -> None:
        try:
            state = msgspec.json.decode(data, type=LiveState)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a live venue state: {exc}") from exc
        self._closed = OrderedDict.fromkeys(state.closed)
        self._orders = {t.order.client_order_id: t for t in state.orders if t.status != "closed"}
        self._closed_orders = OrderedDict((t.order.client_order_id, t) for t in state.orders if t.status == "closed")
        self.reducing_reason = state.reducing

    def _bump(self) -> None:
        self.state_revision += 1

    # --- creating -------------------------------------------------------------------------------------

    async def _send_create(self, tracked: TrackedOrder, now_ns: int) -> list[OrderEvent]:
        coid = tracked.order.client_order_id
        for attempt in range(NOT_SENT_RETRIES + 1):
            await self.limiter.acquire()
            tracked.status = "in_flight"
            tracked.sent_ns = self.wall_ns()
            self.creates_sent += 1
            try:
                answer = await self.venue_place(tracked.order)
            except DuplicateClientOrderId:
                log.warning("venue %s: %s already placed; resolving by query", self.name, coid)
                return await self._resolve(tracked, now_ns)
            except VenueRefused as exc:
                return self._reject(tracked, self.scrub(str(exc)), now_ns)
            except NotSent as exc:
                waited = self.limiter.penalize(exc.retry_after_s) if isinstance(exc, RateLimited) else None
                log.warning("venue %s: create of %s not processed (%s); %s", self.name, coid, self.scrub(str(exc)),
                            f"sent again after {waited:.3f}s" if waited is not None else "sent again",
                            extra={"venue": self.name, "client_order_id": coid, "attempt": attempt + 1})
                if not isinstance(exc, RateLimited):
                    await self._disconnected(f"create not sent: {exc}")
                    await asyncio.sleep(min(1.0, self.poll_interval_s))
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # sent, outcome unknown: in flight until the venue tells
                log.warning("venue %s: create of %s sent without a definitive answer (%s: %s); in flight, "
                            "resolved by query", self.name, coid, type(exc).__name__, self.scrub(str(exc)),
                            extra={"venue": self.name, "client_order_id": coid})
                self._bump()
                if isinstance(exc, ConnectionError):
                    await self._disconnected(f"{type(exc).__name__}: {exc}")
                return await self._resolve(tracked, now_ns, quiet=True)
            self._connected_again()
            return await self._apply_order(tracked, answer, [], now_ns)
        return self._reject(tracked, f"not placed: the venue refused to process it {NOT_SENT_RETRIES + 1} times "
                                     "(rate limited or unreachable)", now_ns)

    async def _resolve(self, tracked: TrackedOrder, now_ns: int, *, quiet: bool = False) -> list[OrderEvent]:
        """Ask the venue about an order in flight; returns the events of what it says (``[]``: still unknown)."""
        try:
            answer = await self._call(lambda: self.venue_order(tracked.order))
        except OrderNotFoundAtVenue:
            return self._not_found(tracked, now_ns)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not quiet:
                log.warning("venue %s: cannot resolve %s yet: %s", self.name, tracked.order.client_order_id,
                            self.scrub(str(exc)))
            return []
        self._connected_again()
        return await self._apply_order(tracked, answer, [], now_ns)

    def _not_found(self, tracked: TrackedOrder, now_ns: int) -> list[OrderEvent]:
        tracked.not_found += 1
        age = self.wall_ns() - tracked.sent_ns
        if tracked.sent_ns and age >= self.in_flight_grace_ns:
            return self._reject(tracked, f"not placed: the venue has no order {tracked.order.client_order_id} "
                                         f"{age / 1e9:.1f}s after it was sent (no answer to the create)", now_ns)
        return []

    async def resolve_in_flight(self) -> None:
        """Resolve every order whose create is unanswered (after a restart: also the ones never answered)."""
        for coid in [c for c, t in self._orders.items() if t.status in ("pending", "in_flight")]:
            async with self.host.lock:  # one order at a time, in order with the service's own calls
                tracked = self._orders.get(coid)
                if tracked is None or tracked.status not in ("pending", "in_flight"):
                    continue
                if tracked.status == "pending":  # journaled, then the process stopped: it may have been sent
                    tracked.status = "in_flight"
                    tracked.sent_ns = tracked.sent_ns or self.wall_ns()
                events = await self._resolve(tracked, self.wall_ns())
                await self._emit(events, locked=True)
        if any(t.replaced_by for t in self._orders.values()):
            from tradewire_execution.live.replace import continue_replaces

            await continue_replaces(self)

    # --- applying what the venue says ---------------------------------------------------------------------

    async def _apply_order(
        self, tracked: TrackedOrder, answer: VenueOrder, fills: Sequence[VenueFill], now_ns: int,
    ) -> list[OrderEvent]:
        """Events for the difference between what we knew of an order and what the venue says now."""
        if answer.status == "rejected" and tracked.status in ("pending", "in_flight"):
            return self._reject(tracked, answer.reason or "rejected by the venue", now_ns)
        new = self._unseen(tracked, fills)
        seen_qty = tracked.filled + sum((f.quantity for f in new), ZERO)
        if answer.filled_qty > seen_qty:
            try:
                more = await self._call(lambda: self.venue_order_fills(tracked.order, answer.venue_order_id))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("venue %s: fills of %s not fetched yet: %s", self.name, tracked.order.client_order_id,
                            self.scrub(str(exc)))
                more = []
            new += self._unseen(tracked, [*new, *more])[len(new):]
            settled = self._settle(tracked, more, now_ns)
            return settled + self._apply_now(tracked, answer, new, now_ns)
        return self._apply_now(tracked, answer, new, now_ns)

    def _unseen(self, tracked: TrackedOrder, fills: Sequence[VenueFill]) -> list[VenueFill]:
        out: list[VenueFill] = []
        seen = set(tracked.trade_ids)
        for fill in fills:
            if fill.trade_id not in seen and fill.status != "failed":
                seen.add(fill.trade_id)
                out.append(fill)
        return out

    def _apply_now(
        self, tracked: TrackedOrder, answer: VenueOrder, new: Sequence[VenueFill], now_ns: int,
    ) -> list[OrderEvent]:
        """The synchronous part: state changes and events (no await, so nothing interleaves)."""
        order = tracked.order
        events: list[OrderEvent] = []
        if tracked.status in ("pending", "in_flight") and tracked.replaces:
            from tradewire_execution.live.replace import replaced

            tracked.status = "open"
            tracked.venue_order_id = answer.venue_order_id
            events.append(replaced(self, tracked, answer, now_ns))
        elif tracked.status in ("pending", "in_flight"):
            tracked.status = "open"
            tracked.venue_order_id = answer.venue_order_id
            events.append(OrderAccepted(
                id=derive_id("OrderAccepted", order.client_order_id), ts_event=answer.ts_ns or now_ns,
                ts_init=now_ns, correlation_id=order.correlation_id, strategy_id=order.strategy_id,
                instrument_id=order.instrument_id, client_order_id=order.client_order_id,
                venue_order_id=answer.venue_order_id or order.client_order_id))
        elif not tracked.venue_order_id and answer.venue_order_id:
            tracked.venue_order_id = answer.venue_order_id
        for fill in sorted(new, key=lambda f: (f.ts_ns, f.trade_id)):
            if fill.status != "failed":  # (reconciliation passes fills unfiltered) a failed match never counts
                events.append(self._fill(tracked, fill, now_ns))
        if answer.status in CLOSED_STATUSES and tracked.status != "closed":
            if answer.status == "filled" and tracked.provisional:
                pass  # filled by fills that may still fail: followed until they settle
            elif tracked.filled >= answer.filled_qty:
                events += self._close(tracked, answer, now_ns)
            else:
                log.info("venue %s: %s is %s with %s filled, %s seen; waiting for its fills", self.name,
                         order.client_order_id, answer.status, answer.filled_qty, tracked.filled)
        if events:
            self._bump()
        return events

    def _fill(self, tracked: TrackedOrder, fill: VenueFill, now_ns: int) -> OrderFilled:
        order = tracked.order
        tracked.trade_ids.append(fill.trade_id)
        tracked.filled += fill.quantity
        if fill.status == "provisional":
            tracked.provisional[fill.trade_id] = fill.quantity
        leaves = max(ZERO, order.quantity - tracked.filled)
        return self.fill_event(tracked, fill, now_ns, leaves=leaves)

    def fill_event(self, tracked: TrackedOrder, fill: VenueFill, now_ns: int, *, leaves: Decimal) -> OrderFilled:
        """The ``OrderFilled`` of one venue fill (the same id whenever it is published again)."""
        order = tracked.order
        return OrderFilled(
            id=derive_id("OrderFilled", self.name, order.client_order_id, fill.trade_id), ts_event=fill.ts_ns,
            ts_init=now_ns, correlation_id=order.correlation_id, strategy_id=order.strategy_id,
            instrument_id=order.instrument_id, client_order_id=order.client_order_id,
            venue_order_id=fill.venue_order_id or tracked.venue_order_id, trade_id=fill.trade_id, side=order.side,
            last_qty=fill.quantity, last_px=fill.price, fee=abs(fill.fee), fee_currency=fill.fee_currency or "",
            liquidity=fill.liquidity, partial=leaves > 0, leaves_qty=leaves, provisional=fill.status == "provisional")

    def _settle(self, tracked: TrackedOrder, fills: Sequence[VenueFill], now_ns: int) -> list[OrderEvent]:
        """``FillConfirmed`` / ``FillReversed`` for provisional fills the venue now reports final / failed."""
        order = tracked.order
        events: list[OrderEvent] = []
        for fill in fills:
            qty = tracked.provisional.get(fill.trade_id)
            if qty is None or fill.status == "provisional":
                continue
            del tracked.provisional[fill.trade_id]
            common = dict(ts_event=fill.ts_ns or now_ns, ts_init=now_ns, correlation_id=order.correlation_id,
                          strategy_id=order.strategy_id, instrument_id=order.instrument_id,
                          client_order_id=order.client_order_id,
                          venue_order_id=fill.venue_order_id or tracked.venue_order_id, trade_id=fill.trade_id)
            if fill.status == "final":
                events.append(FillConfirmed(id=derive_id("FillConfirmed", self.name, order.client_order_id,
                                                         fill.trade_id), **common))  # type: ignore[arg-type]
                continue
            tracked.filled -= qty
            log.warning("venue %s: fill %s of %s failed at the venue; reversed", self.name, fill.trade_id,
                        order.client_order_id)
            events.append(FillReversed(
                id=derive_id("FillReversed", self.name, order.client_order_id, fill.trade_id), side=order.side,
                last_qty=qty, last_px=fill.price, fee=abs(fill.fee), reason="the venue failed the match",
                **common))  # type: ignore[arg-type]
        if events:
            self._bump()
        return events

    def _close(self, tracked: TrackedOrder, answer: VenueOrder, now_ns: int) -> list[OrderEvent]:
        order = tracked.order
        common = dict(ts_event=answer.ts_ns or now_ns, ts_init=now_ns, correlation_id=order.correlation_id,
                      strategy_id=order.strategy_id, instrument_id=order.instrument_id,
                      client_order_id=order.client_order_id)
        events: list[OrderEvent] = []
        if answer.status == "canceled" or (answer.status == "expired"
                                           and order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)):
            reason = tracked.cancel_reason or answer.reason or (
                f"{order.time_in_force} remainder cancelled by the venue" if answer.status == "expired"
                else "cancelled at the venue")
            events.append(OrderCanceled(id=derive_id("OrderCanceled", order.client_order_id), reason=reason[:500],
                                        filled_qty=tracked.filled, **common))  # type: ignore[arg-type]
        elif answer.status == "expired":
            events.append(OrderExpired(id=derive_id("OrderExpired", order.client_order_id),
                                       reason=(answer.reason or f"{order.time_in_force} order expired")[:500],
                                       filled_qty=tracked.filled, **common))  # type: ignore[arg-type]
        elif answer.status == "rejected":  # rejected after being accepted (some venues do)
            events.append(OrderCanceled(id=derive_id("OrderCanceled", order.client_order_id),
                                        reason=("rejected by the venue: " + answer.reason)[:500],
                                        filled_qty=tracked.filled, **common))  # type: ignore[arg-type]
        self._forget(tracked)
        return events

    def _reject(self, tracked: TrackedOrder, reason: str, now_ns: int) -> list[OrderEvent]:
        order = tracked.order
        log.warning("venue %s: %s rejected: %s", self.name, order.client_order_id, reason,
                    extra={"venue": self.name, "client_order_id": order.client_order_id})
        self._forget(tracked)
        self._bump()
        before: list[OrderEvent] = []
        if tracked.replaces:
            from tradewire_execution.live.replace import replacement_rejected

            before = replacement_rejected(self, tracked, reason, now_ns)
        return [*before, OrderRejected(
            id=derive_id("OrderRejected", order.client_order_id, "venue"), ts_event=order.ts_event, ts_init=now_ns,
            correlation_id=order.correlation_id, strategy_id=order.strategy_id, instrument_id=order.instrument_id,
            client_order_id=order.client_order_id, reason=reason[:500])]

    def _forget(self, tracked: TrackedOrder) -> None:
        coid = tracked.order.client_order_id
        tracked.status = "closed"
        self._orders.pop(coid, None)
        self._closed[coid] = None
        self._closed_orders[coid] = tracked
        while len(self._closed) > CLOSED_KEPT:
            self._closed.popitem(last=False)
        while len(self._closed_orders) > CLOSED_ORDERS_KEPT:
            self._closed_orders.popitem(last=False)

    def adopt(self, order: SubmitOrder, venue_order_id: str, *, trade_ids: Iterable[str] = (),
              filled: Decimal = ZERO) -> TrackedOrder:
        """Follow an order this adapter did not place (reconciliation: known to the ledger, lost here)."""
        tracked = TrackedOrder(order=order, status="open", venue_order_id=venue_order_id, adopted=True,
                               trade_ids=list(trade_ids), filled=filled)
        self._orders[order.client_order_id] = tracked
        self._closed.pop(order.client_order_id, None)
        self._bump()
        return tracked

    # --- following the venue ------------------------------------------------------------------------------

    async def ingest(self, orders: Sequence[VenueOrder], fills: Sequence[VenueFill]) -> list[OrderEvent]:
        """Apply order updates and fills (stream or polling) and publish their events; returns them."""
        async with self.host.lock:
            now = self.wall_ns()
            events: list[OrderEvent] = []
            by_coid: dict[str, list[VenueFill]] = {}
            for fill in fills:
                coid = fill.client_order_id or self._coid_of(fill.venue_order_id)
                if coid:
                    by_coid.setdefault(coid, []).append(fill)
            for coid, group in by_coid.items():  # provisional fills settled (also of closed orders)
                known = self.tracked(coid)
                if known is not None and known.provisional:
                    events += self._settle(known, group, now)
            for answer in orders:
                tracked = self._orders.get(answer.client_order_id)
                if tracked is None:
                    continue  # not ours, or closed already: reconciliation looks at strangers
                events += await self._apply_order(tracked, answer, by_coid.pop(answer.client_order_id, []), now)
            for coid, extra in by_coid.items():  # fills without an order update
                tracked = self._orders.get(coid)
                if tracked is None:
                    continue
                filled = tracked.filled + sum((f.quantity for f in self._unseen(tracked, extra)), ZERO)
                status: OrderStatus = "filled" if filled >= tracked.order.quantity else "open"
                snapshot = VenueOrder(client_order_id=coid, venue_order_id=tracked.venue_order_id, status=status,
                                      filled_qty=filled)
                events += self._apply_now(tracked, snapshot, self._unseen(tracked, extra), now)
            await self._emit(events, locked=True)
        return events

    def _coid_of(self, venue_order_id: str) -> str:
        for coid, tracked in (*self._orders.items(), *self._closed_orders.items()):
            if tracked.venue_order_id == venue_order_id:
                return coid
        return ""

    async def _poll_unsettled(self) -> None:
        """Fetch the fills of orders (open or closed) with provisional fills, to learn how they settled."""
        for tracked in [t for t in (*self._orders.values(), *self._closed_orders.values()) if t.provisional]:
            order = tracked.order
            try:
                fills = await self._call(functools.partial(self.venue_order_fills, order, tracked.venue_order_id))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("venue %s: fills of %s not fetched: %s", self.name, order.client_order_id,
                            self.scrub(str(exc)))
                continue
            mine = [msgspec.structs.replace(f, client_order_id=order.client_order_id) for f in fills]
            await self.ingest([], mine)

    async def poll_once(self) -> None:
        """One REST round: open orders, and the state of every tracked order no longer open."""
        await self._poll_unsettled()
        working = [t for t in self._orders.values() if t.status == "open"]
        if not working:
            return
        try:
            open_now = {o.client_order_id: o for o in await self._call(self.venue_open_orders)}
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._disconnected(f"polling open orders: {exc}")
            return
        self._connected_again()
        answers: list[VenueOrder] = []
        for tracked in working:
            answer = open_now.get(tracked.order.client_order_id)
            if answer is None:  # closed since: how?
                try:
                    answer = await self._call(self._order_query(tracked.order))
                except OrderNotFoundAtVenue:
                    log.error("venue %s: open order %s is unknown to the venue", self.name,
                              tracked.order.client_order_id)
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await self._disconnected(f"polling {tracked.order.client_order_id}: {exc}")
                    return
            if answer.filled_qty > tracked.filled or answer.status in CLOSED_STATUSES:
                answers.append(answer)
        if answers:
            await self.ingest(answers, [])

    def _order_query(self, order: SubmitOrder) -> Callable[[], Awaitable[VenueOrder]]:
        return lambda: self.venue_order(order)

    async def _emit(self, events: Sequence[OrderEvent], *, locked: bool = False) -> None:
        if not events:
            return
        if locked:
            await self.host.adapter_events(self.name, events)
            return
        async with self.host.lock:
            await self.host.adapter_events(self.name, events)

    async def _stream_forever(self) -> None:
        """Follow the venue's order stream; while it is down the maintenance loop polls (see ``stream_up``)."""
        backoff = self.poll_interval_s
        while True:
            try:
                stream = self.venue_stream()
            except NotImplementedError:
                self.stream_up = False
                return
            try:
                self.stream_up = True
                async for orders, fills in stream:
                    backoff = self.poll_interval_s
                    await self.ingest(orders, fills)
                raise ConnectionError("order stream ended")
            except asyncio.CancelledError:
                raise
            except NotImplementedError:
                self.stream_up = False
                return
            except Exception as exc:
                self.stream_up = False
                log.warning("venue %s: order stream failed (%s); polling every %.1fs until it is back",
                            self.name, self.scrub(f"{type(exc).__name__}: {exc}"), self.poll_interval_s)
            finally:
                with contextlib.suppress(Exception):
                    await stream.aclose()  # type: ignore[attr-defined]
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 60.0)
            with contextlib.suppress(Exception):
                await self.poll_once()  # what happened while it was down

    async def _maintain_forever(self) -> None:
        rounds = 0
        while True:
            await asyncio.sleep(self.poll_interval_s)
            rounds += 1
            try:
                await self.resolve_in_flight()
                # while the stream is up, a slower poll still catches what it missed (e.g. before it subscribed)
                if not self.stream_up or rounds % STREAM_POLL_EVERY == 0:
                    await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("venue %s: maintenance round failed", self.name)

    async def _reconcile_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_interval_s)
            await self._reconcile()

    async def _reconcile(self) -> None:
        if self.reconciler is None:
            return
        try:
            await self.reconciler.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("venue %s: reconciliation failed: %s", self.name, self.scrub(str(exc)))

    # --- calls and connection -------------------------------------------------------------------------

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """A query through the rate limiter; a rate-limit answer waits its Retry-After and asks again."""
        for attempt in range(QUERY_RETRIES + 1):
            await self.limiter.acquire()
            try:
                return await fn()
            except RateLimited as exc:
                if attempt == QUERY_RETRIES:
                    raise
                waited = self.limiter.penalize(exc.retry_after_s)
                log.warning("venue %s: rate limited; waiting %.3fs", self.name, waited)
        raise AssertionError("unreachable")

    async def _disconnected(self, reason: str) -> None:
        if self.connected:
            self.connected = False
            await self.host.adapter_status(self.name, False, self.scrub(reason)[:500])

    def _connected_again(self) -> None:
        if not self.connected:
            self.connected = True
            task = asyncio.get_running_loop().create_task(
                self.host.adapter_status(self.name, True, "a venue call succeeded"))
            self._tasks.append(task)
