"""An offline, deterministic market: a seeded random walk with trend and range regimes that follows the clock."""

from __future__ import annotations

import hashlib
import math
import time

import numpy as np

from tasks.market.base import MarketDataError, MarketSource, check_limit
from tasks.market.candles import Candles, timeframe_ms

# Each cycle: TREND_BARS from one pivot price to the next (up or down by a random amount), then RANGE_BARS
# of noise around the new pivot. Short regimes make moving-average crosses frequent (sma 9/21: every ~20 bars).
TREND_BARS = 24
RANGE_BARS = 16
CYCLE_BARS = TREND_BARS + RANGE_BARS
PIVOT_JUMP = 9.0  # pivot noise, in per-bar standard deviations
SWINGS = ((120.0, 97.0), (25.0, 23.0))  # slow waves: (amplitude in per-bar sd, period in cycles)
MAX_LIMIT = 100_000
_MASK64 = 0xFFFFFFFFFFFFFFFF


class SimulatedSource(MarketSource):
    """Bars that depend only on (seed, symbol, timeframe, bar index), so every process sees the same history."""

    name = "simulated"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fetch(self, symbol: str, timeframe: str, limit: int, now_ms: int | None = None) -> Candles:
        """The `limit` bars up to the last one closed at `now_ms` (bar k spans [k*tf, (k+1)*tf) since the epoch)."""
        check_limit(limit, MAX_LIMIT)
        try:
            bar_ms = timeframe_ms(timeframe)
        except ValueError as exc:
            raise MarketDataError(f"simulated feed, {symbol}: {exc}") from None
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        last = now_ms // bar_ms - 1
        first = max(last - limit + 1, 1)
        if last < first:
            return Candles.empty()
        return _bars(self.seed, symbol, bar_ms, first, last)


def base_price(symbol: str) -> float:
    """A plausible price level per symbol: BTCUSDT 60000, others spread from 0.1 to ~3000 by a hash."""
    if symbol == "BTCUSDT":
        return 60_000.0
    u = _hash64(f"price\0{symbol}") / 2**64
    return float(f"{10 ** (-1 + 4.5 * u):.4g}")


def _bars(seed: int, symbol: str, bar_ms: int, first: int, last: int) -> Candles:
    vol = min(max(0.0008 * math.sqrt(bar_ms / 60_000), 0.00005), 0.02)  # per-bar log sd, ~0.08 % on 1m
    price = base_price(symbol)
    key = f"{seed}\0{symbol}\0{bar_ms}"
    k = np.arange(first - 1, last + 1, dtype=np.int64)  # one bar early: its close is the first open
    log_close = _log_close(key, k, math.log(price), vol)
    tick = 10.0 ** (math.floor(math.log10(price)) - 6)
    close = np.round(np.exp(log_close) / tick) * tick
    open_, close, k = close[:-1], close[1:], k[1:]
    wick_up = np.abs(_normal(key + "\0high", k)) * vol * 0.5
    wick_down = np.abs(_normal(key + "\0low", k)) * vol * 0.5
    high = np.ceil(np.maximum(open_, close) * np.exp(wick_up) / tick) * tick
    low = np.floor(np.minimum(open_, close) * np.exp(-wick_down) / tick) * tick
    move = np.abs(np.log(close / open_)) / vol
    volume = np.round(2e6 / price * (bar_ms / 60_000) * np.exp(0.4 * _normal(key + "\0volume", k)) * (1 + move), 4)
    open_time = k * bar_ms
    return Candles(open_time, open_, high, low, close, volume, open_time + bar_ms - 1)


def _log_close(key: str, k: np.ndarray, log_base: float, vol: float) -> np.ndarray:
    """Log close of bars k, computed cycle by cycle so each value is the same whatever window is asked for."""
    j0, j1 = int(k[0]) // CYCLE_BARS, int(k[-1]) // CYCLE_BARS
    cycles = np.arange(j0, j1 + 2, dtype=np.int64)
    pivot = log_base + vol * (PIVOT_JUMP * _normal(key + "\0pivot", cycles) + _swing(key, cycles))
    start, end = pivot[:-1, None], pivot[1:, None]
    bars = np.arange(j0 * CYCLE_BARS, (j1 + 1) * CYCLE_BARS, dtype=np.int64)
    noise = _normal(key + "\0noise", bars).reshape(-1, CYCLE_BARS)
    s = np.arange(1, TREND_BARS + 1) / TREND_BARS
    walk = np.cumsum(noise[:, :TREND_BARS], axis=1)
    trend = start + (end - start) * s + vol * (walk - s * walk[:, -1:])  # a Brownian bridge between pivots
    r = np.arange(1, RANGE_BARS + 1) / RANGE_BARS
    walk = np.cumsum(noise[:, TREND_BARS:], axis=1)
    ranging = end + vol * (walk - r * walk[:, -1:])
    path = np.concatenate([trend, ranging], axis=1).ravel()
    return path[k - j0 * CYCLE_BARS]


def _swing(key: str, cycles: np.ndarray) -> np.ndarray:
    """Slow waves so prices wander over days without drifting away."""
    total = np.zeros(len(cycles))
    for i, (amplitude, period) in enumerate(SWINGS):
        phase = 2 * math.pi * _hash64(f"{key}\0phase{i}") / 2**64
        total += amplitude * np.sin(2 * math.pi * cycles / period + phase)
    return total


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread uint64 hash (wraps on overflow by design)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniform(key: str, index: np.ndarray) -> np.ndarray:
    """Uniform numbers in (0, 1), one per index, fixed by (key, index)."""
    bits = _mix(_mix(index.astype(np.int64).view(np.uint64)) ^ np.uint64(_hash64(key) & _MASK64))
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53


def _normal(key: str, index: np.ndarray) -> np.ndarray:
    """Standard normal numbers, one per index, fixed by (key, index) (Box-Muller)."""
    u1, u2 = _uniform(key + "\0a", index), _uniform(key + "\0b", index)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)
