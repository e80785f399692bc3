"""Candles: closed OHLCV bars as numpy arrays, and timeframe arithmetic."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_TIMEFRAME = re.compile(r"^([1-9][0-9]{0,3})([smhdw])$")


def timeframe_ms(timeframe: str) -> int:
    """Length of one bar in milliseconds, e.g. "1m" -> 60000; raise ValueError for an unknown one."""
    match = _TIMEFRAME.match(timeframe) if isinstance(timeframe, str) else None
    if not match:
        raise ValueError(
            f"timeframe {timeframe!r} is not understood; use a number and a unit s/m/h/d/w, e.g. 1s, 1m, 1h, 1d"
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@dataclass(frozen=True, eq=False)
class Candles:
    """Bars oldest first; times are epoch ms, close_time is the bar's last millisecond (Binance style)."""

    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    close_time: np.ndarray

    def __post_init__(self) -> None:
        # Coerce and freeze the arrays so a Candles can be shared between threads safely.
        n = None
        for name in ("open_time", "open", "high", "low", "close", "volume", "close_time"):
            dtype = np.int64 if name.endswith("_time") else np.float64
            array = np.array(getattr(self, name), dtype=dtype)
            if array.ndim != 1:
                raise ValueError(f"Candles.{name} must be one-dimensional, got shape {array.shape}")
            if n is not None and len(array) != n:
                raise ValueError(f"Candles.{name} has {len(array)} values, open_time has {n}")
            n = len(array)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.open_time)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Candles):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, name), getattr(other, name))
            for name in ("open_time", "open", "high", "low", "close", "volume", "close_time")
        )

    def tail(self, n: int) -> Candles:
        """The last n bars (all of them when there are fewer)."""
        start = max(len(self) - max(n, 0), 0)
        return self[start:]

    def __getitem__(self, index: slice) -> Candles:
        if not isinstance(index, slice):
            raise TypeError("Candles can only be sliced, e.g. candles[-50:]")
        return Candles(
            self.open_time[index],
            self.open[index],
            self.high[index],
            self.low[index],
            self.close[index],
            self.volume[index],
            self.close_time[index],
        )

    @classmethod
    def empty(cls) -> Candles:
        """No bars."""
        return cls(*([np.array([])] * 7))
