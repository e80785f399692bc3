"""Candles: closed OHLCV bars as numpy arrays; timeframe_ms, the contract's bar length (backend/signal_schema.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.signal_schema import timeframe_ms

__all__ = ["Candles", "timeframe_ms"]


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
