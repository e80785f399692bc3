"""A Donchian breakout, your own strategy: `PYTHONPATH=docs/examples STRATEGIES=py:breakout.Breakout:lookback=20`."""

import numpy as np
import talib

from tasks.strategies import CandleStrategy


def _previous(values: np.ndarray) -> np.ndarray:
    """VALUES one bar later: bar i sees what bar i-1 had (NaN at the first bar)."""
    return np.concatenate(([np.nan], values[:-1]))


class Breakout(CandleStrategy):
    """BUY when the close breaks above the highest high of the `lookback` bars before, SELL below their lowest low."""

    defaults = {"lookback": 20}  # an int default: lookback must be a whole number >= 1

    @property
    def min_bars(self) -> int:
        return self.lookback + 2  # the channel of the bars before, and one bar more to see the break begin

    def series(self, candles):
        high = _previous(talib.MAX(candles.high, self.lookback))
        low = _previous(talib.MIN(candles.low, self.lookback))
        return {"upper": high, "lower": low}

    def signals(self, candles, series):
        above, below = candles.close > series["upper"], candles.close < series["lower"]
        # Only the bar where the close first gets out of the channel, not every bar it stays out.
        return above & ~_previous(above).astype(bool), below & ~_previous(below).astype(bool)

    def reason(self, kind):
        side = "above the high" if kind == "BUY" else "below the low"
        return f"close broke {side} of the last {self.lookback} bars"

    def panes(self):
        return {"upper": "price", "lower": "price"}
