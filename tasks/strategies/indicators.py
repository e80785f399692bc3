"""The presets' indicators (SMA, EMA, MACD, Wilder RSI): TA-Lib's functions, with their periods checked."""

from collections.abc import Sequence

import numpy as np
import talib

Prices = np.ndarray | Sequence[float]


def as_prices(close: Prices) -> np.ndarray:
    """Return close as a 1-D float64 array."""
    x = np.asarray(close, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"close must be a 1-D array, got {x.ndim} dimensions")
    return x


def _period(name: str, value: float, minimum: int) -> int:
    """Return value as an int period, or raise ValueError."""
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def sma(close: Prices, period: int) -> np.ndarray:
    """Simple moving average; NaN for the first period-1 bars."""
    return talib.SMA(as_prices(close), _period("period", period, 1))


def ema(close: Prices, period: int) -> np.ndarray:
    """Exponential moving average seeded with the SMA of the first period values."""
    return talib.EMA(as_prices(close), _period("period", period, 1))


def macd(close: Prices, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (macd_line, signal_line, hist); all NaN before bar max(fast, slow)+signal-2."""
    return talib.MACD(
        as_prices(close), _period("fast", fast, 2), _period("slow", slow, 2), _period("signal", signal, 1)
    )


def rsi(close: Prices, period: int = 14) -> np.ndarray:
    """Wilder's RSI from bar period on; 0 where gains and losses are both 0."""
    return talib.RSI(as_prices(close), _period("period", period, 2))
