"""Configuration: one TOML file plus ``TRADEWIRE__SECTION__KEY`` environment overrides.

Decoded into frozen structs that forbid unknown fields, so a typo or a bad value stops the
service at start with a message naming the field (``$.risk.max_position_pct``).
Secrets never live here: they come from the environment or from secret files.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from tradewire_common.ids import InstrumentId, StrategyId

ENV_PREFIX = "TRADEWIRE__"

Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
Port = Annotated[int, Meta(ge=0, le=65535)]
NonNegDecimal = Decimal
PositiveDecimal = Decimal


class ConfigError(ValueError):
    """The configuration is invalid; the message names the field."""


class Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config section."""


class BusConfig(Section, frozen=True):
    #: ``nats://host:port``; empty means "start the bundled nats-server" (``tradewire up`` only).
    url: str = ""
    #: Path to a NATS credentials file for this service (per-service users).
    credentials_file: str = ""
    #: NATS user of this service (``tradewire nats-config`` names one per service); empty = no auth.
    user: str = ""
    #: File holding that user's password (a mounted secret). ``$TRADEWIRE_NATS_PASSWORD`` wins over
    #: it; the password itself is never part of the configuration, so it never shows in a dump.
    password_file: str = ""
    #: How long to wait for the broker at start before failing.
    connect_timeout_s: Annotated[float, Meta(gt=0)] = 10.0
    #: JetStream redelivery attempts before a message goes to the dead-letter subject.
    max_deliver: Annotated[int, Meta(ge=1)] = 5
    #: Copies of every stream and of the state KV bucket (1: a single server; 3: a 3-node cluster).
    stream_replicas: Annotated[int, Meta(ge=1, le=5)] = 1
    #: How long a JetStream publish is retried (same ``Nats-Msg-Id``) while the stream has no leader.
    publish_retry_s: Annotated[float, Meta(gt=0)] = 30.0


class HttpPorts(Section, frozen=True):
    datafeed: Port = 8101
    signals: Port = 8102
    risk: Port = 8103
    execution: Port = 8104
    ledger: Port = 8105
    notifier: Port = 8106


class HttpConfig(Section, frozen=True):
    host: str = "127.0.0.1"
    ports: HttpPorts = msgspec.field(default_factory=HttpPorts)


class ReplaySource(Section, frozen=True):
    """One bar file to replay as one instrument."""

    path: str
    instrument_id: InstrumentId
    #: Bar interval such as ``1m``; empty means "infer from the timestamps".
    interval: str = ""
    #: Replay at most this many bars (0 = all).
    limit: Annotated[int, Meta(ge=0)] = 0
    #: Prediction markets: a JSON file with the market's recorded resolution, published as ``MarketResolved``
    #: when the replay ends (``tradewire_datafeed.readers_resolution``; sources sharing it publish it once).
    resolution: str = ""


#: Live market-data channels (``datafeed.live[].channels``): ``bars`` (Bar on ``md.bar.*``), ``trades``
#: (TradeTick on ``md.trade.*``), ``quotes`` (Quote on ``md.quote.*``), ``books`` (BookSnapshot on ``md.book.*``).
LiveChannel = Literal["bars", "trades", "quotes", "books"]


class LiveFeedConfig(Section, frozen=True):
    """A live market-data feed from a venue (``tradewire_datafeed.live``): ccxt.pro websockets, REST polling
    while they fail. Public data only: no credentials."""

    #: Venue name used in instrument ids (``BTCUSDT.BINANCE``).
    venue: str
    #: Unified symbols (``BTC/USDT``); instrument symbols drop the ``/`` (``BTCUSDT``).
    symbols: tuple[str, ...]
    #: ccxt exchange id; empty = the venue name in lower case.
    exchange: str = ""
    channels: tuple[LiveChannel, ...] = ("bars",)
    #: Bar interval (a timeframe the venue offers, e.g. ``1m``); only closed bars are published.
    interval: str = "1m"
    #: Levels per side of published book snapshots.
    book_depth: Annotated[int, Meta(ge=1, le=1000)] = 10
    #: The venue's testnet/sandbox.
    sandbox: bool = False
    #: Base URL replacing the scheme and host of every API URL (a proxy; tests: a fake venue on 127.0.0.1).
    url_override: str = ""
    #: Use websockets (else REST polling only).
    websocket: bool = True
    #: REST polling period while the websocket is down (and with ``websocket = false``).
    poll_interval_s: Annotated[float, Meta(gt=0)] = 5.0
    #: Seconds before a failed websocket is tried again (REST polling meanwhile).
    reconnect_s: Annotated[float, Meta(gt=0)] = 30.0

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError(f"live feed {self.venue}: symbols are required")
        if self.url_override and not self.url_override.startswith(("http://", "https://")):
            raise ValueError(f"url_override must start with http:// or https://, got {self.url_override!r}")


#: Prediction-market venues (``tradewire_datafeed.prediction`` and ``tradewire_execution.venues``).
PredictionVenueName = Literal["polymarket", "kalshi", "manifold"]


class PredictionFeedConfig(Section, frozen=True):
    """A prediction-market data feed (``tradewire_datafeed.prediction``): order books (snapshots, then deltas
    where the venue streams them, healed by a REST snapshot after a gap), trades and resolutions of the
    configured markets. Public data only."""

    #: Venue name used in instrument ids (``...-YES.KALSHI``).
    venue: str
    adapter: PredictionVenueName
    #: The venue's market ids: Polymarket condition ids, Kalshi tickers, Manifold contract ids.
    markets: tuple[str, ...]
    #: Book levels per side of published snapshots.
    book_depth: Annotated[int, Meta(ge=1, le=1000)] = 10
    #: The venue's demo/sandbox environment (Kalshi's demo).
    sandbox: bool = False
    #: Base URL replacing the scheme and host of every API URL (tests: a fake venue on 127.0.0.1).
    url_override: str = ""
    websocket: bool = True
    poll_interval_s: Annotated[float, Meta(gt=0)] = 5.0
    reconnect_s: Annotated[float, Meta(gt=0)] = 30.0

    def __post_init__(self) -> None:
        if not self.markets:
            raise ValueError(f"prediction feed {self.venue}: markets are required")
        if self.url_override and not self.url_override.startswith(("http://", "https://")):
            raise ValueError(f"url_override must start with http:// or https://, got {self.url_override!r}")


class DatafeedConfig(Section, frozen=True):
    replay: tuple[ReplaySource, ...] = ()
    #: Live market-data feeds (published as they come; no lockstep, no replay progress).
    live: tuple[LiveFeedConfig, ...] = ()
    #: Prediction-market feeds (books, trades, resolutions).
    prediction: tuple[PredictionFeedConfig, ...] = ()
    #: ``"max"`` or a multiple of real time (e.g. ``60`` = one minute of bars per second).
    speed: str | float = "max"
    #: At ``max`` speed, wait for the whole pipeline to go quiet after each bar, so that results
    #: are deterministic (the same fills as a backtest), at some cost in throughput.
    lockstep: bool = True
    #: Services whose quiescence the lockstep replay waits for.
    lockstep_services: tuple[str, ...] = ("signals", "risk", "execution", "ledger")
    #: Seconds to wait for the pipeline per bar before warning and moving on.
    lockstep_timeout_s: Annotated[float, Meta(gt=0)] = 30.0
    #: Seconds to wait at start for the lockstep services to answer.
    startup_timeout_s: Annotated[float, Meta(gt=0)] = 60.0

    def __post_init__(self) -> None:
        if self.speed != "max":
            try:
                value = float(self.speed)
            except ValueError:
                raise ValueError(f"speed must be 'max' or a positive number, got {self.speed!r}") from None
            if not value > 0:
                raise ValueError(f"speed must be 'max' or a positive number, got {self.speed!r}")


#: Automation levels of a strategy (``signals.strategies[].automation``).
Automation = Literal["alert", "semi-auto", "full-auto", "adaptive"]
#: Promotion stages, in order: ``backtest`` -> ``paper`` -> ``live-small`` -> ``live``.
Stage = Literal["backtest", "paper", "live-small", "live"]
STAGES: tuple[Stage, ...] = ("backtest", "paper", "live-small", "live")
#: Which time approvals and promotions use: ``event`` (the latest event time risk has seen: replays),
#: ``wall`` (the clock: live), ``auto`` (``event`` when ``datafeed.replay`` is set, else ``wall``).
AutomationClock = Literal["auto", "event", "wall"]


class ParamBound(Section, frozen=True):
    """The range an adaptive strategy's parameter may be moved to (both ends allowed)."""

    min: float
    max: float

    def __post_init__(self) -> None:
        if not self.min <= self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")


class StrategyConfig(Section, frozen=True):
    """One strategy instance: ``kind`` names a registered strategy; ``params`` its own fields."""

    id: StrategyId
    kind: str
    instruments: tuple[InstrumentId, ...]
    #: Checked against the strategy's own parameter struct at start (unknown keys are errors).
    params: dict[str, int | float | str | bool] = msgspec.field(default_factory=dict)
    #: Bar interval the strategy listens to.
    interval: str = "*"
    #: How far the strategy trades on its own (enforced by risk, see ``tradewire_risk.automation``):
    #: ``alert`` (its signals become Alert notifications, no order), ``semi-auto`` (orders wait in risk's
    #: approval queue for a person), ``full-auto`` (orders go straight on after the checks) or ``adaptive``
    #: (full-auto, and its parameters may be changed at run time within ``param_bounds``).
    automation: Automation = "full-auto"
    #: ``adaptive`` only: the range each parameter may be moved to at run time (a re-optimisation);
    #: a parameter without bounds never changes at run time.
    param_bounds: dict[str, ParamBound] = msgspec.field(default_factory=dict)
    #: Promotion stage before any promotion is recorded (None: ``promotion.initial_stage``).
    initial_stage: Stage | None = None

    def __post_init__(self) -> None:
        if self.param_bounds and self.automation != "adaptive":
            raise ValueError(f"param_bounds only apply to automation = 'adaptive' (strategy {self.id} is "
                             f"{self.automation!r})")
        for name, bound in self.param_bounds.items():
            value = self.params.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and not bound.min <= value <= bound.max:
                raise ValueError(f"params.{name} = {value} is outside param_bounds.{name} [{bound.min}, {bound.max}]")


class SignalsConfig(Section, frozen=True):
    strategies: tuple[StrategyConfig, ...] = ()


class InstrumentSpec(Section, frozen=True):
    """Trading rules of an instrument (precision and the venue's per-order limits)."""

    id: InstrumentId
    #: Order quantities are multiples of this (sizing rounds down to it).
    quantity_step: Decimal = Decimal("0.000001")
    #: Smallest order quantity; a smaller entry is ``SIZE_ZERO`` (a full close is always allowed).
    min_quantity: Decimal = Decimal("0.000001")
    #: Limit and trigger prices must be multiples of this (else ``INVALID_ORDER``; never rounded).
    price_tick: Decimal = Decimal("0.00000001")
    #: False: risk denies every order in the instrument, closes included (``INSTRUMENT_NOT_TRADABLE``).
    tradable: bool = True
    #: Largest order quantity (None = no limit): entries are clipped to it, closes trimmed to it.
    max_quantity: Decimal | None = None
    #: Smallest order notional (quantity * order price; None = none): a smaller entry or partial
    #: reduction is ``SIZE_ZERO`` (a full close is always allowed).
    min_notional: Decimal | None = None
    #: Largest order notional (None = no limit): entries are clipped to it (``INVALID_ORDER`` when less
    #: than ``min_quantity`` is left), closes trimmed to it.
    max_notional: Decimal | None = None
    #: ``binary``: an outcome contract of a prediction market, priced as a probability in (0, 1) and paying
    #: 0..1 at resolution; ``spot``: everything else.
    kind: Literal["spot", "binary"] = "spot"
    #: Binary: the venue's market id the outcome belongs to (``MarketResolved.market_id``).
    market_id: str = ""
    #: Binary: the other outcome of the same market (YES <-> NO); a YES and a NO position together are
    #: complements (each pair pays exactly 1), so only the unpaired part counts as exposure.
    complement: InstrumentId | None = None

    def __post_init__(self) -> None:
        for name in ("quantity_step", "min_quantity", "price_tick", "max_quantity", "min_notional", "max_notional"):
            value = getattr(self, name)
            if value is not None and (not value.is_finite() or value <= 0):
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_quantity is not None and self.max_quantity < self.min_quantity:
            raise ValueError(f"max_quantity {self.max_quantity} is below min_quantity {self.min_quantity}")
        if self.max_notional is not None and self.min_notional is not None and self.max_notional < self.min_notional:
            raise ValueError(f"max_notional {self.max_notional} is below min_notional {self.min_notional}")
        if self.kind != "binary" and (self.market_id or self.complement):
            raise ValueError("market_id and complement only apply to kind = 'binary'")
        if self.complement == self.id:
            raise ValueError(f"instrument {self.id} cannot be its own complement")


BreakerState = Literal["REDUCING", "HALTED"]


class BreakersConfig(Section, frozen=True):
    """Automatic circuit breakers (``risk.breakers``; rules in ``tradewire_risk.breakers``).

    Each is off at its default (0 / false). A breaker that trips moves its scope to its ``*_state``
    (``REDUCING`` or ``HALTED``), logs, publishes a ``TradingStateChanged`` naming it and an ``Alert``;
    it never releases itself (a person does, with a reason). Fractions are of equity; exactly at a
    limit does not trip, beyond it does.
    """

    #: Global: equity down more than this fraction from the start-of-UTC-day equity.
    daily_loss_pct: Fraction = 0.0
    daily_loss_state: BreakerState = "HALTED"
    #: Global: equity down more than this fraction from its peak.
    drawdown_pct: Fraction = 0.0
    drawdown_state: BreakerState = "HALTED"
    #: Global: equity down more than ``loss_spike_pct`` from its highest value within ``loss_spike_window_s``.
    loss_spike_pct: Fraction = 0.0
    loss_spike_window_s: Annotated[float, Meta(gt=0)] = 300.0
    loss_spike_state: BreakerState = "HALTED"
    #: Global: a position's notional above this fraction of equity (e.g. after a fill bigger than
    #: intended; may exceed 1 with leverage).
    position_spike_pct: Annotated[float, Meta(ge=0)] = 0.0
    position_spike_state: BreakerState = "REDUCING"
    #: The instrument's venue: no bar for more than this many bar intervals (or ``stale_data_s``
    #: seconds, when set) for an instrument with a position or a configured strategy.
    stale_data_intervals: Annotated[int, Meta(ge=0)] = 0
    stale_data_s: Annotated[float, Meta(ge=0)] = 0.0
    #: ``event``: time is the newest bar's (replays); ``wall``: the clock (live); ``auto``: ``event``
    #: when ``datafeed.replay`` is set, else ``wall``.
    stale_data_clock: Literal["auto", "event", "wall"] = "auto"
    stale_data_state: BreakerState = "REDUCING"
    #: Per venue: rejected / submitted orders above this fraction within ``reject_rate_window_s``,
    #: once at least ``reject_rate_min_orders`` orders were sent in the window.
    reject_rate: Fraction = 0.0
    reject_rate_window_s: Annotated[float, Meta(gt=0)] = 300.0
    reject_rate_min_orders: Annotated[int, Meta(ge=1)] = 5
    reject_rate_state: BreakerState = "HALTED"
    #: Per venue: execution reports the venue disconnected.
    venue_disconnected: bool = False
    venue_disconnected_state: BreakerState = "HALTED"
    #: Per strategy: more than this many orders within a minute (event time).
    max_orders_per_minute: Annotated[int, Meta(ge=0)] = 0
    runaway_orders_state: BreakerState = "HALTED"


class RiskConfig(Section, frozen=True):
    #: ``fixed_fraction`` of equity per entry, fractional ``kelly``, ``volatility_target`` (ATR-based),
    #: ``binary_kelly`` (prediction-market contracts priced in (0, 1)), or ``all_in`` (all cash into
    #: each entry, no position/exposure limits: for comparing with other backtesters only).
    sizing: Literal["fixed_fraction", "kelly", "volatility_target", "binary_kelly", "all_in"] = "fixed_fraction"
    #: Expected execution costs that ``all_in`` sizing reserves for (fee and slippage bps, fixed fee).
    cost_fee_bps: Annotated[float, Meta(ge=0, le=10_000)] = 0.0
    cost_slippage_bps: Annotated[float, Meta(ge=0, le=10_000)] = 0.0
    cost_fixed_fee: Decimal = Decimal(0)
    #: Fraction of equity per entry for ``fixed_fraction``.
    fraction: Fraction = 0.10
    #: Multiplier on the full Kelly fraction (0.5 = half Kelly).
    kelly_fraction: Fraction = 0.5
    #: Defaults for Kelly when a signal carries no edge estimate.
    win_probability: Fraction = 0.55
    payoff_ratio: Annotated[float, Meta(gt=0)] = 1.0
    #: Max position per instrument as a fraction of equity.
    max_position_pct: Fraction = 0.10
    #: Max gross exposure over all positions as a fraction of equity.
    max_exposure_pct: Fraction = 0.25
    #: Allow short positions (SELL with no long position opens a short).
    allow_short: bool = False
    #: With ``allow_short``: a signal against the position closes it and opens the other way in one
    #: order (a flip, as the vectorized backtester's long-short mode); otherwise it only closes.
    reverse_on_opposite: bool = False
    #: Default exits attached to every entry as a bracket (fractions of the entry price; 0 = none);
    #: a signal's own ``stop_loss_pct``/``take_profit_pct`` override them.
    stop_loss_pct: Annotated[float, Meta(ge=0, lt=1)] = 0.0
    take_profit_pct: Annotated[float, Meta(ge=0, lt=1)] = 0.0
    #: Default trailing stop (a fraction below the best price since entry) and time stop (seconds after
    #: the entry fill) attached likewise (0 = none); a signal's own values override them.
    trailing_stop_pct: Annotated[float, Meta(ge=0, lt=1)] = 0.0
    time_stop_s: Annotated[int, Meta(ge=0)] = 0
    # -- sizing, beyond the fraction and the Kelly inputs above ------------------------------------
    #: Cap on the Kelly fraction after ``kelly_fraction`` (``kelly`` and ``binary_kelly``; 1 = no cap).
    kelly_cap: Fraction = 1.0
    #: ``kelly``: once a strategy has closed this many round trips, its live record's win rate and
    #: win/loss ratio replace the signal's estimate (0 = never; a record without a win or a loss is not used).
    kelly_min_trades: Annotated[int, Meta(ge=0)] = 0
    #: ``volatility_target``: ``quantity = target_risk_fraction * equity / (atr_multiple * ATR)``, ATR the
    #: mean true range of the instrument's last ``atr_window`` bars (of ``atr_interval``; empty = the one
    #: interval risk sees for it), computed by risk from the bars it receives.
    target_risk_fraction: Fraction = 0.01
    atr_window: Annotated[int, Meta(ge=1, le=10_000)] = 14
    atr_multiple: Annotated[float, Meta(gt=0, le=1_000)] = 2.0
    atr_interval: str = ""
    #: Ramp-up: a strategy's entry size is scaled from ``ramp_up_start_fraction`` linearly up to 1 over its
    #: first ``ramp_up_days`` days (from its first fill) or ``ramp_up_trades`` trades (orders with a fill),
    #: whichever ends first; 0 turns that measure off (both 0 = no ramp-up).
    ramp_up_days: Annotated[float, Meta(ge=0)] = 0.0
    ramp_up_trades: Annotated[int, Meta(ge=0)] = 0
    ramp_up_start_fraction: Fraction = 0.25
    # -- pre-trade checks (each off at its default) ---------------------------------------------------
    #: Deny instruments missing from ``instruments`` (``UNKNOWN_INSTRUMENT``); off: default precision.
    require_known_instruments: bool = False
    #: Fat-finger band, a fraction: a limit or trigger price further than this from the last price (the
    #: latest bar close risk saw for the instrument, else the signal's price), or a signal price that far
    #: from the latest bar close, is ``PRICE_BAND``. Exactly at the band passes. 0 = off.
    price_band_pct: Fraction = 0.0
    #: Max notional of one order (quantity * order price: limit, else trigger, else the signal's price);
    #: entries are clipped to it (``MAX_ORDER_NOTIONAL`` when less than ``min_quantity`` is left). 0 = none.
    max_order_notional: Decimal = Decimal(0)
    #: Max open orders (risk's orders not yet filled, cancelled, expired or rejected), in total and per
    #: strategy: an entry that would exceed one is ``MAX_OPEN_ORDERS``. 0 = no limit.
    max_open_orders: Annotated[int, Meta(ge=0)] = 0
    max_open_orders_per_strategy: Annotated[int, Meta(ge=0)] = 0
    #: Max orders per strategy / per venue with event times in the last 60 s (``ts > t - 60 s``): an entry
    #: that would exceed one is ``RATE_LIMIT``. 0 = no limit.
    max_orders_per_minute_per_strategy: Annotated[int, Meta(ge=0)] = 0
    max_orders_per_minute_per_venue: Annotated[int, Meta(ge=0)] = 0
    #: Equity more than this fraction below the start-of-UTC-day equity (the last equity before the day
    #: began): entries are ``DAILY_LOSS_LIMIT``, reductions pass. 0 = off.
    daily_loss_limit_pct: Fraction = 0.0
    #: Equity more than this fraction below its peak: entries are ``MAX_DRAWDOWN``, reductions pass. 0 = off.
    max_drawdown_pct: Fraction = 0.0
    #: Per strategy id, the fraction of equity its positions (marked at the last price) plus its open
    #: entry orders may use; entries are clipped to the room left (``STRATEGY_ALLOCATION`` when none).
    #: Strategies not listed have no allocation limit.
    strategy_allocations: dict[StrategyId, Fraction] = msgspec.field(default_factory=dict)
    #: Free balance: the cash check subtracts the notional of open BUY orders from cash.
    reserve_open_orders: bool = False
    #: A reduce-only order must also fit in the position minus the open reduce-only orders on its side
    #: (it is trimmed to that, ``REDUCE_ONLY`` when nothing is left); off: only in the position.
    reduce_only_nets_open_orders: bool = False
    #: The ledger's HTTP address (``http://ledger:8105``): risk rebuilds its open orders, per-strategy
    #: fills and equity history from ``/v1/orders``, ``/v1/fills`` and ``/v1/equity`` at start, so the
    #: checks above survive a restart. Empty: start from nothing (backtests, a fresh ledger).
    ledger_url: str = ""
    instruments: tuple[InstrumentSpec, ...] = ()
    #: Seconds to wait for a portfolio snapshot that covers a signal's time before denying it.
    portfolio_wait_s: Annotated[float, Meta(gt=0)] = 5.0
    breakers: BreakersConfig = msgspec.field(default_factory=BreakersConfig)

    def __post_init__(self) -> None:
        if not self.max_order_notional.is_finite() or self.max_order_notional < 0:
            raise ValueError(f"max_order_notional must be a non-negative number, got {self.max_order_notional}")
        if self.ledger_url and not self.ledger_url.startswith(("http://", "https://")):
            raise ValueError(f"ledger_url must start with http:// or https://, got {self.ledger_url!r}")


class ApprovalsConfig(Section, frozen=True):
    """Risk's approval queue for ``semi-auto`` strategies (``tradewire_risk.approvals``)."""

    #: An order not approved within this many seconds expires (``APPROVAL_EXPIRED``).
    ttl_s: Annotated[float, Meta(gt=0)] = 300.0
    #: Time of the TTL (see ``AutomationClock``): event time in replays, wall time live.
    clock: AutomationClock = "auto"
    #: Orders waiting at most; a further one is denied (``APPROVAL_QUEUE_FULL``).
    max_pending: Annotated[int, Meta(ge=1, le=1000)] = 100


class PromotionConfig(Section, frozen=True):
    """Promotion gates: ``backtest`` -> ``paper`` -> ``live-small`` -> ``live`` (``tradewire_risk.promotion``)."""

    #: Stage of a strategy with no recorded promotion (and no ``initial_stage`` of its own). ``paper``:
    #: paper trading works out of the box; live venues need a promotion.
    initial_stage: Stage = "paper"
    #: Venue names that count as live besides every venue whose adapter is not ``paper``.
    live_venues: tuple[str, ...] = ()
    #: Days (of ``clock`` time) at ``paper`` before a promotion to ``live-small``.
    paper_days: Annotated[float, Meta(ge=0)] = 14.0
    #: Largest allowed ``|paper return - backtest return|`` over the paper period (fractions: 0.05 = 5 points).
    tolerance: Annotated[float, Meta(ge=0)] = 0.05
    #: A backtest report carrying ``start_ns``/``end_ns`` must start and end within this many seconds of
    #: the paper period's start and end.
    period_slack_s: Annotated[float, Meta(ge=0)] = 86_400.0
    #: Days (of ``clock`` time) at ``live-small`` before a promotion to ``live``.
    live_small_days: Annotated[float, Meta(ge=0)] = 30.0
    #: At ``live-small``: the most capital (positions plus open entry orders, at their prices) the strategy
    #: may use on live venues; entries are clipped to the room left (``STAGE_CAPITAL_CAP`` when none).
    live_small_capital: Decimal = Decimal("1000")
    #: Time of stage records and gate periods (see ``AutomationClock``).
    clock: AutomationClock = "auto"

    def __post_init__(self) -> None:
        if not self.live_small_capital.is_finite() or self.live_small_capital <= 0:
            raise ValueError(f"live_small_capital must be positive, got {self.live_small_capital}")


#: Venue adapters by name (``tradewire_execution.venues``). Others extend this Literal with their own adapter
#: (``"alpaca"``, ``"tradier"``, ``"ibkr"``, ...) and register it in ``tradewire_execution/venues/__init__.py``.
VenueAdapterName = Literal["paper", "ccxt", "alpaca", "tradier", "ibkr", "polymarket", "kalshi", "manifold"]
#: ``paper``: simulated by the paper venue (whatever the adapter); ``sandbox``: the adapter against the venue's
#: testnet/sandbox; ``live``: real orders, which also needs ``tradewire up/run --live``.
VenueMode = Literal["paper", "sandbox", "live"]


class VenueConfig(Section, frozen=True):
    """One venue of the execution service (live adapters: ``tradewire_execution.live``)."""

    name: str
    adapter: VenueAdapterName = "paper"
    mode: VenueMode = "paper"
    #: ccxt exchange id (``binance``, ``coinbase``, ``kraken``, ...); empty = the venue name in lower case.
    exchange: str = ""
    #: Unified symbols traded there (``BTC/USDT``); markets are loaded for these only (spot).
    symbols: tuple[str, ...] = ()
    #: Requests per second the adapter allows itself (token bucket, burst = one second); 0 = the venue's
    #: published limit as the client library declares it.
    rate_limit_per_s: Annotated[float, Meta(ge=0)] = 0.0
    #: Credentials come from ``{prefix}_API_KEY``, ``{prefix}_API_SECRET`` (and ``_PASSWORD``, ``_UID``), each
    #: or its ``_FILE`` twin naming a secret file; empty = ``TRADEWIRE_{NAME}``.
    credentials_env_prefix: str = ""
    #: Base URL that replaces the scheme and host of every API URL of the adapter (a proxy; tests: a fake
    #: venue on 127.0.0.1). Empty: the venue's own (or sandbox) URLs.
    url_override: str = ""
    #: Order updates from the venue's websocket (ccxt.pro) when true, else REST polling only; polling is
    #: also the fallback while the websocket is down.
    websocket: bool = True
    poll_interval_s: Annotated[float, Meta(gt=0)] = 2.0
    #: Reconciliation with the ledger every this many seconds (and at start); 0 = only at start.
    reconcile_interval_s: Annotated[float, Meta(ge=0)] = 60.0
    #: Seconds after sending an order whose answer was lost (timeout, 5xx, dropped connection) after which
    #: the venue's "no such order" is definitive (beyond the venue's receive window it can no longer accept it).
    in_flight_grace_s: Annotated[float, Meta(gt=0)] = 15.0
    #: Largest |venue balance - ledger position| of a traded base currency that is not a mismatch.
    position_tolerance: Decimal = Decimal("0.00000001")
    #: Venues that sign orders for a chain (Polymarket): its EVM chain id (137 Polygon, 80002 Amoy testnet).
    chain_id: Annotated[int, Meta(gt=0)] = 137
    #: Attached exits (bracket orders) placed natively at the venue when it supports them; false: execution's
    #: exit emulator keeps them (e.g. Alpaca refuses entries whose brackets include trailing or time stops).
    native_brackets: bool = True

    def __post_init__(self) -> None:
        if self.adapter != "paper" and self.mode != "paper" and not self.symbols:
            raise ValueError(f"venue {self.name}: symbols are required for a {self.mode} {self.adapter} venue")
        if self.url_override and not self.url_override.startswith(("http://", "https://")):
            raise ValueError(f"url_override must start with http:// or https://, got {self.url_override!r}")


class PaperConfig(Section, frozen=True):
    """The paper venue's simulation (the rules are in ``tradewire_execution.paper``'s docstring)."""

    #: Market orders fill at the ``next_open`` after the signal bar, or at the signal bar's ``close``.
    fill_at: Literal["next_open", "close"] = "next_open"
    slippage_bps: Annotated[float, Meta(ge=0, le=10_000)] = 0.0
    #: Taker fee rate.
    fee_bps: Annotated[float, Meta(ge=0, le=10_000)] = 10.0
    #: Maker fee rate (fills resting at a limit); None = ``fee_bps``.
    maker_fee_bps: Annotated[float, Meta(ge=0, le=10_000)] | None = None
    #: Fixed fee charged once per order, added to the fee of the order's first fill.
    fee_per_order: Decimal = Decimal(0)
    #: ``fixed_bps``: taker fills slip ``slippage_bps``; ``sqrt_impact``: plus
    #: ``impact_coefficient * sqrt(fill_qty / bar.volume)``, at most ``max_impact_bps``.
    slippage_model: Literal["fixed_bps", "sqrt_impact"] = "fixed_bps"
    impact_coefficient: Annotated[float, Meta(ge=0, le=1_000)] = 0.1
    max_impact_bps: Annotated[float, Meta(ge=0, lt=10_000)] = 1_000.0
    #: Milliseconds from the signal bar's close until an order reaches the venue (0 = at the close).
    latency_ms: Annotated[int, Meta(ge=0)] = 0
    #: At most this share of a bar's volume fills per bar; the rest fills on later bars.
    max_volume_share: Annotated[float, Meta(gt=0, le=1)] = 1.0
    quantity_step: Decimal = Decimal("0.000001")
    fee_currency: str = "USD"
    #: Emulate brackets (attached stop loss, take profit, trailing and time stops) in the venue with the
    #: backtester's rules; false: the venue has no brackets and execution's exit emulator keeps them.
    native_brackets: bool = True

    def __post_init__(self) -> None:
        if not self.fee_per_order.is_finite() or self.fee_per_order < 0:
            raise ValueError(f"fee_per_order must be a non-negative number, got {self.fee_per_order}")


class ExecutionConfig(Section, frozen=True):
    venues: tuple[VenueConfig, ...] = (VenueConfig(name="BINANCE"),)
    paper: PaperConfig = msgspec.field(default_factory=PaperConfig)
    #: The ledger's HTTP address: live venues reconcile their orders, fills and positions with it.
    ledger_url: str = ""
    #: Risk's HTTP address: an unexplained reconciliation mismatch asks it (with the API token) to set the
    #: venue's scope REDUCING. Empty: execution only refuses the venue's non-reducing orders itself and alerts.
    risk_url: str = ""

    def __post_init__(self) -> None:
        for name in ("ledger_url", "risk_url"):
            url = getattr(self, name)
            if url and not url.startswith(("http://", "https://")):
                raise ValueError(f"{name} must start with http:// or https://, got {url!r}")


class LedgerConfig(Section, frozen=True):
    backend: Literal["sqlite", "postgres"] = "sqlite"
    #: SQLite file (WAL mode).
    path: str = "var/ledger.db"
    #: PostgreSQL DSN; the password belongs in the environment (PGPASSWORD) or a secret file.
    dsn: str = ""
    account: str = "paper"
    starting_cash: Decimal = Decimal("10000")
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not self.starting_cash.is_finite() or self.starting_cash < 0:
            raise ValueError(f"starting_cash must be a non-negative number, got {self.starting_cash}")
        if self.backend == "postgres" and not self.dsn:
            raise ValueError("dsn is required when backend = 'postgres'")


#: What the notifier can deliver (``notifier.kinds``): ``price_alert`` (its own price alert rules),
#: ``alert`` (Alert events of the other services), ``fill``, ``order_rejected``, ``denial_burst`` (many
#: OrderDenied in a short time), ``trading_state`` (kill switch), ``daily_summary``, ``alertmanager``.
NotificationKind = Literal[
    "price_alert", "alert", "fill", "order_rejected", "denial_burst", "trading_state", "daily_summary",
    "alertmanager",
]
NOTIFICATION_KINDS: tuple[NotificationKind, ...] = (
    "price_alert", "alert", "fill", "order_rejected", "denial_burst", "trading_state", "daily_summary",
    "alertmanager",
)


class NotifierConfig(Section, frozen=True):
    """The notifier service: where notifications go (apprise URLs), which ones, and how often."""

    #: Apprise URLs without secrets (``json://alerts-bridge:8080/hook``, ``ntfy://ntfy.sh/my-topic``).
    #: URLs carrying tokens or passwords belong in ``$TRADEWIRE_NOTIFIER_URLS`` or in the file named by
    #: ``$TRADEWIRE_NOTIFIER_URLS_FILE`` or by ``urls_file`` (URLs separated by white space or new lines,
    #: ``#`` starts a comment); every source is used.
    urls: tuple[str, ...] = ()
    #: A secret file with more apprise URLs (a mounted secret).
    urls_file: str = ""
    #: The kinds of notification delivered; the others are counted and dropped.
    kinds: tuple[NotificationKind, ...] = NOTIFICATION_KINDS
    #: The same notification (kind, title and body) again within this many seconds is not sent again.
    dedup_window_s: Annotated[float, Meta(ge=0)] = 300.0
    #: At most this many notifications per minute (a token bucket over all kinds); the rest are dropped.
    rate_limit_per_minute: Annotated[int, Meta(ge=1)] = 30
    #: Retries per URL after a failed delivery, ``retry_backoff_s`` apart (doubling each time).
    retries: Annotated[int, Meta(ge=0, le=10)] = 3
    retry_backoff_s: Annotated[float, Meta(ge=0)] = 2.0
    #: Events older than this when they arrive (a backlog after an outage) are not delivered.
    max_event_age_s: Annotated[float, Meta(gt=0)] = 3600.0
    #: ``HH:MM`` (UTC) of the daily portfolio summary; empty = no summary.
    daily_summary_time: str = "00:00"
    #: A ``denial_burst`` notification: this many OrderDenied within this many seconds (event time).
    denial_burst_count: Annotated[int, Meta(ge=1)] = 5
    denial_burst_window_s: Annotated[float, Meta(gt=0)] = 60.0
    #: Price alert rules kept at most.
    max_rules: Annotated[int, Meta(ge=1, le=10_000)] = 1000
    #: Delivery results kept for ``GET /v1/deliveries``.
    history: Annotated[int, Meta(ge=1, le=10_000)] = 200

    def __post_init__(self) -> None:
        if self.daily_summary_time:
            hour, sep, minute = self.daily_summary_time.partition(":")
            if not (sep and hour.isdigit() and minute.isdigit() and len(minute) == 2 and int(hour) < 24
                    and int(minute) < 60):
                raise ValueError(f"daily_summary_time must be HH:MM (UTC) or empty, got {self.daily_summary_time!r}")


class LoggingConfig(Section, frozen=True):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json: bool = True


class Config(Section, frozen=True):
    bus: BusConfig = msgspec.field(default_factory=BusConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    datafeed: DatafeedConfig = msgspec.field(default_factory=DatafeedConfig)
    signals: SignalsConfig = msgspec.field(default_factory=SignalsConfig)
    risk: RiskConfig = msgspec.field(default_factory=RiskConfig)
    execution: ExecutionConfig = msgspec.field(default_factory=ExecutionConfig)
    ledger: LedgerConfig = msgspec.field(default_factory=LedgerConfig)
    notifier: NotifierConfig = msgspec.field(default_factory=NotifierConfig)
    approvals: ApprovalsConfig = msgspec.field(default_factory=ApprovalsConfig)
    promotion: PromotionConfig = msgspec.field(default_factory=PromotionConfig)


def _parse_env_value(raw: str) -> Any:
    """Read an override as a TOML string, array or table (``"a"``, ``["a"]``), else as plain text.

    Scalars (``0.2``, ``9000``, ``true``) stay text: the lax decoding turns text into the field's
    number or bool, and a text field (``datafeed.speed = 60``) keeps it as text.
    """
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    return value if isinstance(value, str | list | dict) else raw.strip()


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Apply ``TRADEWIRE__SECTION__KEY=value`` (nested with more ``__``) onto ``data``."""
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__") if part]
        if not path:
            continue
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment {name}: {part} is not a section")
            node = child
        node[path[-1]] = _parse_env_value(raw)
    return data


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration; raises ConfigError naming the bad field."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {p}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: invalid TOML: {exc}") from None
    data = apply_env_overrides(data, os.environ if environ is None else environ)
    return config_from_dict(data, source=str(path) if path else "defaults")


def config_from_dict(data: Mapping[str, Any], *, source: str = "config") -> Config:
    try:
        return msgspec.convert(data, Config, strict=False, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: invalid configuration: {exc}") from None


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Decimal and isinstance(value, int | float | str):
        return Decimal(str(value))
    raise NotImplementedError


def config_to_toml_dict(config: Config) -> dict[str, Any]:
    """Plain builtins view of a config (for ``tradewire config show``)."""
    result: dict[str, Any] = msgspec.to_builtins(config)
    return result
