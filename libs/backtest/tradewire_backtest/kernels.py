"""Numba kernels of the vectorized engine: exact signal rules and an all-in trade simulator.

Every kernel is ``@njit(cache=True)`` and works on plain arrays and scalars (no Python objects in
the loops). Signals are ``int8`` arrays: ``+1`` BUY, ``-1`` SELL, ``0`` nothing, at the bar whose
close produced them. The rules are the event-mode strategies' (``tradewire_signals``) exactly.

Signal rules
------------
``sma_cross_signals(fixed, fast, slow)`` on int64 fixed-point closes (:func:`~tradewire_backtest.arrays.to_fixed`):
for ``i >= slow - 1`` let ``sign_i = sign(fast_sum_i * slow - slow_sum_i * fast)`` where the sums are
the last ``fast`` / ``slow`` closes ending at ``i`` (integer rolling sums, exact). BUY at ``i`` if
``sign_{i-1} <= 0 < sign_i``, SELL if ``sign_{i-1} >= 0 > sign_i``; the first possible signal is at
``i = slow``.

``rsi_signals(fixed, window, lower_num, lower_den, upper_num, upper_den)``: Cutler's RSI over the
last ``window`` close-to-close changes ending at ``i`` (``window + 1`` closes, so ``i >= window``):
``G = Σ max(Δ, 0)``, ``L = Σ max(-Δ, 0)`` in integers, undefined when ``G + L == 0``. With
``lower = lower_num / lower_den``: ``rsi < lower ⇔ 100 * lower_den * G < lower_num * (G + L)``
(likewise ``>`` for ``upper``). BUY at ``i`` if ``rsi_{i-1} >= lower`` and ``rsi_i < lower``, SELL if
``rsi_{i-1} <= upper`` and ``rsi_i > upper``, both RSIs defined.

``breakout_signals(high, low, close, window)``: for ``i >= window`` BUY if ``close_i >
max(high_{i-window} .. high_{i-1})``, else SELL if ``close_i < min(low_{i-window} .. low_{i-1})``.
Plain comparisons of the float64 prices (exact; monotone O(1)-amortised deques).

Simulation (``simulate`` and the fused ``sma_cross_long_fused``)
---------------------------------------------------------------
All-in positions, one at a time:

* long-only: BUY when flat enters long with all the cash, BUY when long is ignored; SELL when long
  exits the whole position, SELL when flat is ignored.
* long-short: BUY when short closes the short and then goes long all-in, BUY when flat goes long;
  SELL mirrors it (closes a long, then goes short all-in; when flat, goes short). Such a flip is
  one order (as risk's ``reverse_on_opposite`` sends it): the closing fill pays the one fixed fee,
  the opening fill only the proportional fee.

All-in quantity, computed at the signal bar ``i`` even when the fill is at the next open::

    qty = (cash - fixed_fee) / (close_i * (1 + slippage) * (1 + fee_rate))

fractional, or floored to whole units with ``whole_units``; no entry when ``qty <= 0`` (cash does not
cover the fixed fee, or less than one unit). ``cash`` is the cash at the signal; for a reversal
(close, then open the other way) it is the cash after closing at ``close_i`` with the slippage and
fees of a close fill, and the flip's opening part reserves no second fixed fee -- exactly the real
cash when filling at the close, an estimate at the signal bar when filling at the next open. There is
no minimum size or equity cut-off: a strategy whose equity shrinks to 1e-200 keeps trading.

Fills: at ``close_i`` (``fill_next_open=False``) or at ``open_{i+1}``, times ``1 + slippage`` for buys
and ``1 - slippage`` for sells; ``fee = qty * fill_px * fee_rate + fixed_fee`` per order (per fill,
except a flip's opening part). A signal on
the last bar with next-open fills does not fill. Cash: a buy pays ``qty * px + fee``, a sell
receives ``qty * px - fee`` (a short sale credits its proceeds); equity per bar ``= cash + qty *
close`` with ``qty`` signed.

Stops (``stop_loss`` / ``take_profit`` fractions, 0 = off), checked on every bar ``j`` after the bar
of the entry *signal* (so from the bar after a close fill, and on the bar of a next-open fill, after
its open), before that bar's signal; ``entry`` is the entry fill price (slippage included):

* long: if ``low_j <= entry * (1 - stop_loss)`` exit at ``min(open_j, entry * (1 - stop_loss))``
  (a gap down through the stop fills at the open); elif ``high_j >= entry * (1 + take_profit)``
  exit at ``max(open_j, entry * (1 + take_profit))``. The stop wins when both are in the bar's range.
* short: if ``high_j >= entry * (1 + stop_loss)`` exit at ``max(open_j, that)``; elif ``low_j <=
  entry * (1 - take_profit)`` exit at ``min(open_j, that)``.

Trailing stop (``trailing_stop``, a fraction, 0 = off; :func:`simulate_exits`): ``peak`` starts at
``entry`` and, after each bar ``j`` checked without an exit, takes ``high_j`` (long) or ``low_j``
(short) if better; a bar's own extreme therefore never moves the stop its low (high) is tested
against on that bar. Long: ``trail = peak * (1 - trailing_stop)``, short ``peak * (1 + trailing_stop)``.
With a stop loss too, the stop is the tighter of the two (long: ``max``, short: ``min``); it is then
tested as the stop above (gap: the open), before the take profit.

Time stop (``time_stop_ns`` > 0; :func:`simulate_exits`, with the bars' open times ``ts``): checked
first, on the same bars; if ``ts_j >= ts_entry + time_stop_ns``, where ``ts_entry`` is the time of the
entry fill's bar (the signal bar for a fill at the close, the next bar for a next-open fill), the
position exits at ``open_j``, before the other stops are looked at.

A stop exit is a fill like any other (slippage against the trader, fee). A signal on the same bar
then sees the new (flat) position.

Outputs: a ``TRADE_DTYPE`` record array (``entry_idx``, ``exit_idx`` (-1 while open), ``side`` (+1
long, -1 short), ``qty``, ``entry_px``, ``exit_px`` (0 while open), ``pnl`` (net of both fees;
``-entry fee`` while open, like event mode's round trips), ``fees``), the final equity, and the
equity curve (an empty array when ``want_equity`` is False: then nothing per bar is allocated).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "BUY",
    "SELL",
    "TRADE_DTYPE",
    "abs_max",
    "breakout_signals",
    "fx",
    "rsi_signals",
    "simulate",
    "simulate_exits",
    "sma_cross_long_fused",
    "sma_cross_signals",
    "to_fixed_into",
]

BUY = 1
SELL = -1

TRADE_DTYPE = np.dtype(
    [
        ("entry_idx", np.int64),
        ("exit_idx", np.int64),
        ("side", np.int64),
        ("qty", np.float64),
        ("entry_px", np.float64),
        ("exit_px", np.float64),
        ("pnl", np.float64),
        ("fees", np.float64),
    ]
)

# ---------------------------------------------------------------------------------- fixed point


@njit(cache=True)
def fx(x: float, scale: float) -> np.int64:
    """``x * scale`` rounded half-even to int64: the fixed-point rule of ``arrays.to_fixed``."""
    return np.int64(np.rint(x * scale))


@njit(cache=True)
def to_fixed_into(values: np.ndarray, scale: float, out: np.ndarray) -> None:
    for i in range(values.shape[0]):
        out[i] = fx(values[i], scale)


@njit(cache=True)
def abs_max(values: np.ndarray) -> float:
    """``max |values|`` (NaN if any value is NaN, 0 for an empty array), without a temporary."""
    m = 0.0
    for i in range(values.shape[0]):
        v: float = abs(values[i])
        if v != v:
            return v
        if v > m:
            m = v
    return m


# ---------------------------------------------------------------------------------- signals


@njit(cache=True)
def sma_cross_signals(fixed: np.ndarray, fast: int, slow: int) -> np.ndarray:
    n = fixed.shape[0]
    out = np.zeros(n, dtype=np.int8)
    if n < slow:
        return out
    fs = np.int64(0)
    ss = np.int64(0)
    for k in range(slow):
        ss += fixed[k]
        if k >= slow - fast:
            fs += fixed[k]
    d = fs * slow - ss * fast
    prev = int(d > 0) - int(d < 0)
    for i in range(slow, n):
        v = fixed[i]
        fs += v - fixed[i - fast]
        ss += v - fixed[i - slow]
        d = fs * slow - ss * fast
        s = int(d > 0) - int(d < 0)
        if s != prev:
            if prev <= 0 < s:
                out[i] = 1
            elif prev >= 0 > s:
                out[i] = -1
            prev = s
    return out


@njit(cache=True)
def rsi_signals(
    fixed: np.ndarray, window: int, lower_num: int, lower_den: int, upper_num: int, upper_den: int
) -> np.ndarray:
    n = fixed.shape[0]
    out = np.zeros(n, dtype=np.int8)
    if n <= window:
        return out
    g = np.int64(0)
    loss = np.int64(0)
    for k in range(1, window + 1):
        d = fixed[k] - fixed[k - 1]
        if d > 0:
            g += d
        else:
            loss -= d
    lo_mul = 100 * lower_den
    up_mul = 100 * upper_den
    defined = g + loss != 0
    below = lo_mul * g < lower_num * (g + loss)
    above = up_mul * g > upper_num * (g + loss)
    for i in range(window + 1, n):
        d = fixed[i] - fixed[i - 1]
        if d > 0:
            g += d
        else:
            loss -= d
        d = fixed[i - window] - fixed[i - window - 1]
        if d > 0:
            g -= d
        else:
            loss += d
        total = g + loss
        now_defined = total != 0
        now_below = lo_mul * g < lower_num * total
        now_above = up_mul * g > upper_num * total
        if now_defined and defined:
            if now_below and not below:
                out[i] = 1
            elif now_above and not above:
                out[i] = -1
        defined = now_defined
        below = now_below
        above = now_above
    return out


@njit(cache=True)
def breakout_signals(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int) -> np.ndarray:
    n = close.shape[0]
    out = np.zeros(n, dtype=np.int8)
    cap = window + 1
    qmax = np.empty(cap, dtype=np.int64)  # indices of decreasing highs (ring buffer)
    qmin = np.empty(cap, dtype=np.int64)  # indices of increasing lows
    hmax = 0
    smax = 0
    hmin = 0
    smin = 0
    for i in range(n):
        if i >= window:
            while smax > 0 and qmax[hmax] < i - window:
                hmax = hmax + 1 if hmax + 1 < cap else 0
                smax -= 1
            while smin > 0 and qmin[hmin] < i - window:
                hmin = hmin + 1 if hmin + 1 < cap else 0
                smin -= 1
            c = close[i]
            if c > high[qmax[hmax]]:
                out[i] = 1
            elif c < low[qmin[hmin]]:
                out[i] = -1
        h = high[i]
        while smax > 0:
            t = hmax + smax - 1
            if t >= cap:
                t -= cap
            if high[qmax[t]] <= h:
                smax -= 1
            else:
                break
        t = hmax + smax
        if t >= cap:
            t -= cap
        qmax[t] = i
        smax += 1
        lo = low[i]
        while smin > 0:
            t = hmin + smin - 1
            if t >= cap:
                t -= cap
            if low[qmin[t]] >= lo:
                smin -= 1
            else:
                break
        t = hmin + smin
        if t >= cap:
            t -= cap
        qmin[t] = i
        smin += 1
    return out


# ---------------------------------------------------------------------------------- simulation

#: Trades one bar can close at most (simulate: a next-open close, a stop, a close-fill reversal);
#: the bar loops run while the trade buffer has this much room, so they never call out to grow it.
_HEADROOM = 4


@njit(cache=True, inline="always")
def _put(tb: np.ndarray, k: int, entry_idx: int, exit_idx: int, side: int, qty: float, entry_px: float,
         exit_px: float, pnl: float, fees: float) -> None:
    tb[k, 0] = entry_idx
    tb[k, 1] = exit_idx
    tb[k, 2] = side
    tb[k, 3] = qty
    tb[k, 4] = entry_px
    tb[k, 5] = exit_px
    tb[k, 6] = pnl
    tb[k, 7] = fees


@njit(cache=True)
def _grow(tb: np.ndarray, k: int) -> np.ndarray:
    grown = np.empty((tb.shape[0] * 2, 8), dtype=np.float64)
    grown[:k] = tb[:k]
    return grown


@njit(cache=True)
def _records(tb: np.ndarray, k: int) -> np.ndarray:
    out = np.empty(k, dtype=TRADE_DTYPE)
    for r in range(k):
        out[r]["entry_idx"] = np.int64(tb[r, 0])
        out[r]["exit_idx"] = np.int64(tb[r, 1])
        out[r]["side"] = np.int64(tb[r, 2])
        out[r]["qty"] = tb[r, 3]
        out[r]["entry_px"] = tb[r, 4]
        out[r]["exit_px"] = tb[r, 5]
        out[r]["pnl"] = tb[r, 6]
        out[r]["fees"] = tb[r, 7]
    return out


@njit(cache=True, inline="always")
def _all_in_qty(cash: float, ref_px: float, fee_rate: float, fixed_fee: float, slippage: float,
                whole_units: bool) -> float:
    budget = cash - fixed_fee
    if budget <= 0.0:
        return 0.0
    qty = budget / (ref_px * (1.0 + slippage) * (1.0 + fee_rate))
    if whole_units:
        qty = np.floor(qty)
    return qty


@njit(cache=True, inline="always")
def _fill_px(px: float, side: int, slippage: float) -> float:
    """The fill price of a buy (``side > 0``) or a sell at the reference price ``px``."""
    return px * (1.0 + slippage) if side > 0 else px * (1.0 - slippage)


@njit(cache=True, inline="always")
def _cash_after_open(cash: float, side: int, qty: float, fill: float, fee: float) -> float:
    return cash - (qty * fill + fee) if side > 0 else cash + (qty * fill - fee)


@njit(cache=True, inline="always")
def _cash_after_close(cash: float, side: int, qty: float, fill: float, fee: float) -> float:
    """Cash after closing a position of ``side`` (a sell for a long, a buy for a short)."""
    return cash + (qty * fill - fee) if side > 0 else cash - (qty * fill + fee)


@njit(cache=True)
def simulate(
    signals: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    cash: float,
    fee_rate: float,
    fixed_fee: float,
    slippage: float,
    fill_next_open: bool,
    long_short: bool,
    whole_units: bool,
    stop_loss: float,
    take_profit: float,
    want_equity: bool,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Trades, final equity and (if ``want_equity``) the equity curve of ``signals``; see the module doc.

    Without trailing and time stops (:func:`simulate_exits` has them)."""
    return simulate_exits(signals, np.empty(0, dtype=np.int64), open_, high, low, close, cash, fee_rate, fixed_fee,
                          slippage, fill_next_open, long_short, whole_units, stop_loss, take_profit, 0.0, 0,
                          want_equity)


@njit(cache=True)
def simulate_exits(
    signals: np.ndarray,
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    cash: float,
    fee_rate: float,
    fixed_fee: float,
    slippage: float,
    fill_next_open: bool,
    long_short: bool,
    whole_units: bool,
    stop_loss: float,
    take_profit: float,
    trailing_stop: float,
    time_stop_ns: int,
    want_equity: bool,
) -> tuple[np.ndarray, float, np.ndarray]:
    """:func:`simulate` with a trailing stop (a fraction, 0 = off) and a time stop (ns after the entry
    fill's bar time ``ts``, 0 = off; ``ts`` may be empty when it is off); see the module doc."""
    n = close.shape[0]
    equity = np.empty(n if want_equity else 0, dtype=np.float64)
    tb = np.empty((64, 8), dtype=np.float64)
    k = 0
    side = 0  # +1 long, -1 short, 0 flat
    qty = 0.0
    entry_px = 0.0
    entry_fee = 0.0
    entry_idx = -1
    entry_sig = -1
    entry_ts = np.int64(0)
    peak = 0.0  # trailing stop: the best price since entry (entry fill price, then the checked bars' highs/lows)
    pend_close = False
    pend_side = 0
    pend_qty = 0.0
    pend_sig = -1
    pend_flip = False
    stops = stop_loss > 0.0 or take_profit > 0.0 or trailing_stop > 0.0 or time_stop_ns > 0
    j = 0
    while j < n:
        if k + _HEADROOM > tb.shape[0]:
            tb = _grow(tb, k)
        room = tb.shape[0] - _HEADROOM
        while j < n and k <= room:
            if pend_close or pend_side != 0:
                px = open_[j]
                if pend_close:
                    fill = _fill_px(px, -side, slippage)
                    fee = qty * fill * fee_rate + fixed_fee
                    cash = _cash_after_close(cash, side, qty, fill, fee)
                    pnl = side * (fill - entry_px) * qty - (entry_fee + fee)
                    _put(tb, k, entry_idx, j, side, qty, entry_px, fill, pnl, entry_fee + fee)
                    k += 1
                    side = 0
                    qty = 0.0
                    pend_close = False
                if pend_side != 0:
                    fill = _fill_px(px, pend_side, slippage)
                    fee = pend_qty * fill * fee_rate + (0.0 if pend_flip else fixed_fee)
                    cash = _cash_after_open(cash, pend_side, pend_qty, fill, fee)
                    side = pend_side
                    qty = pend_qty
                    entry_px = fill
                    entry_fee = fee
                    entry_idx = j
                    entry_sig = pend_sig
                    if time_stop_ns > 0:
                        entry_ts = ts[j]
                    peak = fill
                    pend_side = 0
                    pend_flip = False
            if stops and side != 0 and j > entry_sig:
                hit = False
                level = 0.0
                if time_stop_ns > 0 and ts[j] >= entry_ts + time_stop_ns:
                    hit = True
                    level = open_[j]
                elif side > 0:
                    has_stop = False
                    stop = 0.0
                    if stop_loss > 0.0:
                        stop = entry_px * (1.0 - stop_loss)
                        has_stop = True
                    if trailing_stop > 0.0:
                        trail = peak * (1.0 - trailing_stop)
                        if not has_stop or trail > stop:
                            stop = trail
                            has_stop = True
                    if has_stop and low[j] <= stop:
                        hit = True
                        level = min(open_[j], stop)
                    if not hit and take_profit > 0.0:
                        target = entry_px * (1.0 + take_profit)
                        if high[j] >= target:
                            hit = True
                            level = max(open_[j], target)
                else:
                    has_stop = False
                    stop = 0.0
                    if stop_loss > 0.0:
                        stop = entry_px * (1.0 + stop_loss)
                        has_stop = True
                    if trailing_stop > 0.0:
                        trail = peak * (1.0 + trailing_stop)
                        if not has_stop or trail < stop:
                            stop = trail
                            has_stop = True
                    if has_stop and high[j] >= stop:
                        hit = True
                        level = max(open_[j], stop)
                    if not hit and take_profit > 0.0:
                        target = entry_px * (1.0 - take_profit)
                        if low[j] <= target:
                            hit = True
                            level = min(open_[j], target)
                if not hit and trailing_stop > 0.0:  # the bar's own extreme counts from the next bar on
                    if side > 0 and high[j] > peak:
                        peak = high[j]
                    elif side < 0 and low[j] < peak:
                        peak = low[j]
                if hit:
                    fill = _fill_px(level, -side, slippage)
                    fee = qty * fill * fee_rate + fixed_fee
                    cash = _cash_after_close(cash, side, qty, fill, fee)
                    pnl = side * (fill - entry_px) * qty - (entry_fee + fee)
                    _put(tb, k, entry_idx, j, side, qty, entry_px, fill, pnl, entry_fee + fee)
                    k += 1
                    side = 0
                    qty = 0.0
            s = signals[j]
            if s != 0:
                closing = side != 0 and s == -side
                opening = 0
                if side == 0:
                    if s > 0 or long_short:
                        opening = s
                elif closing and long_short:
                    opening = s
                if closing or opening != 0:
                    c = close[j]
                    if not fill_next_open:
                        if closing:
                            fill = _fill_px(c, -side, slippage)
                            fee = qty * fill * fee_rate + fixed_fee
                            cash = _cash_after_close(cash, side, qty, fill, fee)
                            pnl = side * (fill - entry_px) * qty - (entry_fee + fee)
                            _put(tb, k, entry_idx, j, side, qty, entry_px, fill, pnl, entry_fee + fee)
                            k += 1
                            side = 0
                            qty = 0.0
                        if opening != 0:
                            # a flip is one order: its one fixed fee was paid by the closing part
                            once = 0.0 if closing else fixed_fee
                            q = _all_in_qty(cash, c, fee_rate, once, slippage, whole_units)
                            if q > 0.0:
                                fill = _fill_px(c, opening, slippage)
                                fee = q * fill * fee_rate + once
                                cash = _cash_after_open(cash, opening, q, fill, fee)
                                side = opening
                                qty = q
                                entry_px = fill
                                entry_fee = fee
                                entry_idx = j
                                entry_sig = j
                                if time_stop_ns > 0:
                                    entry_ts = ts[j]
                                peak = fill
                    elif j + 1 < n:
                        pend_close = closing
                        if opening != 0:
                            budget = cash
                            if closing:  # the cash after closing at this close, as a close fill would
                                fill = _fill_px(c, -side, slippage)
                                budget = _cash_after_close(cash, side, qty, fill, qty * fill * fee_rate + fixed_fee)
                            q = _all_in_qty(budget, c, fee_rate, 0.0 if closing else fixed_fee, slippage,
                                            whole_units)
                            if q > 0.0:
                                pend_side = opening
                                pend_qty = q
                                pend_sig = j
                                pend_flip = closing
            if want_equity:
                equity[j] = cash + side * qty * close[j]
            j += 1
    final = cash
    if n > 0:
        final = cash + side * qty * close[n - 1]
    if side != 0:
        if k + 1 > tb.shape[0]:
            tb = _grow(tb, k)
        _put(tb, k, entry_idx, -1, side, qty, entry_px, 0.0, -entry_fee, entry_fee)
        k += 1
    return _records(tb, k), final, equity


@njit(cache=True)
def sma_cross_long_fused(
    close: np.ndarray,
    open_: np.ndarray,
    scale: float,
    fast: int,
    slow: int,
    cash: float,
    fee_rate: float,
    fixed_fee: float,
    slippage: float,
    fill_next_open: bool,
    whole_units: bool,
    want_equity: bool,
) -> tuple[np.ndarray, float, np.ndarray]:
    """SMA cross, long-only, in one pass: signals computed inline while simulating.

    Reads ``close`` (and ``open_`` for next-open fills; pass ``close`` otherwise) and converts each
    close to fixed point on the fly with :func:`fx` (the same rounding as ``to_fixed`` at ``scale``),
    keeping the last ``slow`` fixed values in a ring buffer: nothing per bar is allocated unless
    ``want_equity``. Same results as ``simulate(sma_cross_signals(...), ...)`` without stops.
    """
    n = close.shape[0]
    equity = np.empty(n if want_equity else 0, dtype=np.float64)
    tb = np.empty((64, 8), dtype=np.float64)
    k = 0
    qty = 0.0
    entry_px = 0.0
    entry_fee = 0.0
    entry_idx = -1
    pend = 0  # +1 buy at the next open, -1 sell at the next open
    pend_qty = 0.0
    ring = np.empty(max(slow, 1), dtype=np.int64)
    fs = np.int64(0)
    ss = np.int64(0)
    m = min(slow, n)
    for i in range(m):
        v = fx(close[i], scale)
        ring[i] = v
        ss += v
        if i >= slow - fast:
            fs += v
        if want_equity:
            equity[i] = cash
    if n < slow:
        return _records(tb, 0), cash, equity
    d = fs * slow - ss * fast
    prev = int(d > 0) - int(d < 0)
    pos = 0  # ring index of close i - slow
    lag = slow - fast  # ring index of close i - fast
    i = slow
    while i < n:
        if k + _HEADROOM > tb.shape[0]:
            tb = _grow(tb, k)
        room = tb.shape[0] - _HEADROOM
        while i < n and k <= room:
            if pend != 0:
                px = open_[i]
                if pend > 0:
                    fill = px * (1.0 + slippage)
                    fee = pend_qty * fill * fee_rate + fixed_fee
                    cash = cash - (pend_qty * fill + fee)
                    qty = pend_qty
                    entry_px = fill
                    entry_fee = fee
                    entry_idx = i
                else:
                    fill = px * (1.0 - slippage)
                    fee = qty * fill * fee_rate + fixed_fee
                    cash = cash + (qty * fill - fee)
                    pnl = (fill - entry_px) * qty - (entry_fee + fee)
                    _put(tb, k, entry_idx, i, 1, qty, entry_px, fill, pnl, entry_fee + fee)
                    k += 1
                    qty = 0.0
                pend = 0
            v = fx(close[i], scale)
            fs += v - ring[lag]
            ss += v - ring[pos]
            ring[pos] = v
            pos += 1
            if pos == slow:
                pos = 0
            lag += 1
            if lag == slow:
                lag = 0
            d = fs * slow - ss * fast
            s = int(d > 0) - int(d < 0)
            if s != prev:
                if prev <= 0 < s:
                    if qty == 0.0:
                        c = close[i]
                        q = _all_in_qty(cash, c, fee_rate, fixed_fee, slippage, whole_units)
                        if q > 0.0:
                            if not fill_next_open:
                                fill = c * (1.0 + slippage)
                                fee = q * fill * fee_rate + fixed_fee
                                cash = cash - (q * fill + fee)
                                qty = q
                                entry_px = fill
                                entry_fee = fee
                                entry_idx = i
                            elif i + 1 < n:
                                pend = 1
                                pend_qty = q
                elif prev >= 0 > s:
                    if qty > 0.0:
                        if not fill_next_open:
                            fill = close[i] * (1.0 - slippage)
                            fee = qty * fill * fee_rate + fixed_fee
                            cash = cash + (qty * fill - fee)
                            pnl = (fill - entry_px) * qty - (entry_fee + fee)
                            _put(tb, k, entry_idx, i, 1, qty, entry_px, fill, pnl, entry_fee + fee)
                            k += 1
                            qty = 0.0
                        elif i + 1 < n:
                            pend = -1
                prev = s
            if want_equity:
                equity[i] = cash + qty * close[i]
            i += 1
    final = cash + qty * close[n - 1]
    if qty != 0.0:
        if k + 1 > tb.shape[0]:
            tb = _grow(tb, k)
        _put(tb, k, entry_idx, -1, 1, qty, entry_px, 0.0, -entry_fee, entry_fee)
        k += 1
    return _records(tb, k), final, equity
