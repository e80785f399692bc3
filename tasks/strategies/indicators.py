"""SMA, EMA, MACD and Wilder RSI as TA-Lib defines them, in numpy."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def as_prices(close):
    """Return close as a 1-D float64 array."""
    x = np.asarray(close, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"close must be a 1-D array, got {x.ndim} dimensions")
    return x


def _period(name, value, minimum):
    """Return value as an int period, or raise ValueError."""
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _first_number(x):
    """Index of the first non-NaN value, len(x) if none."""
    # TA-Lib's Python wrapper starts every indicator after leading NaNs.
    nan = np.isnan(x)
    return len(x) if nan.all() else int(nan.argmin())


def _ema(x, period, seed_end):
    """EMA of x seeded at seed_end with the mean of the period values ending there."""
    out = np.full(len(x), np.nan)
    if len(x) <= seed_end:
        return out
    values = x.tolist()
    k = 2.0 / (period + 1)
    prev = 0.0
    for v in values[seed_end - period + 1 : seed_end + 1]:
        prev += v  # summed in order, as TA-Lib does
    prev /= period
    out[seed_end] = prev
    out[seed_end + 1 :] = [prev := (v - prev) * k + prev for v in values[seed_end + 1 :]]
    return out


def sma(close, period):
    """Simple moving average; NaN for the first period-1 bars."""
    x = as_prices(close)
    period = _period("period", period, 1)
    out = np.full(len(x), np.nan)
    start = _first_number(x)
    if len(x) - start >= period:
        out[start + period - 1 :] = sliding_window_view(x[start:], period).sum(axis=1) / period
        # TA-Lib's running sum never recovers from a NaN; neither do we.
        out[start:][np.maximum.accumulate(np.isnan(x[start:]))] = np.nan
    return out


def ema(close, period):
    """Exponential moving average seeded with the SMA of the first period values."""
    x = as_prices(close)
    period = _period("period", period, 1)
    start = _first_number(x)
    out = np.full(len(x), np.nan)
    out[start:] = _ema(x[start:], period, period - 1)
    return out


def macd(close, fast=12, slow=26, signal=9):
    """Return (macd_line, signal_line, hist); all NaN before bar slow+signal-2."""
    x = as_prices(close)
    fast = _period("fast", fast, 2)
    slow = _period("slow", slow, 2)
    signal = _period("signal", signal, 1)
    if slow < fast:
        fast, slow = slow, fast  # TA-Lib swaps them too
    start = _first_number(x)
    y = x[start:]
    line = np.full(len(y), np.nan)
    sig = np.full(len(y), np.nan)
    first = slow - 1 + signal - 1
    if len(y) > first:
        # TA-Lib seeds the fast EMA on the fast bars ending where the slow one is seeded.
        line = _ema(y, fast, slow - 1) - _ema(y, slow, slow - 1)
        sig[slow - 1 :] = _ema(line[slow - 1 :], signal, signal - 1)
        line[:first] = np.nan
    outs = []
    for part in (line, sig, line - sig):
        out = np.full(len(x), np.nan)
        out[start:] = part
        outs.append(out)
    return tuple(outs)


def _wilder(values, period):
    """Wilder's average of values: the mean of the first period, then (prev*(period-1)+v)/period."""
    prev = 0.0
    for v in values[:period]:
        prev += v  # summed in order, as TA-Lib does
    prev /= period
    m = period - 1
    return [prev] + [prev := (prev * m + v) / period for v in values[period:]]


def rsi(close, period=14):
    """Wilder's RSI from bar period on; 0 where gains and losses are both 0 or NaN (as TA-Lib)."""
    x = as_prices(close)
    period = _period("period", period, 2)
    start = _first_number(x)
    out = np.full(len(x), np.nan)
    if len(x) - start <= period:
        return out
    change = np.diff(x[start:])
    # A NaN change counts as a gain, as in TA-Lib, so the average gain stays NaN from then on.
    falling = change < 0
    gain = np.array(_wilder(np.where(falling, 0.0, change).tolist(), period))
    loss = np.array(_wilder(np.where(falling, -change, 0.0).tolist(), period))
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out[start + period :] = np.where(total > 0.0, 100.0 * (gain / total), 0.0)
    return out
