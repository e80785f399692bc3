"""Candles and timeframe arithmetic."""

import numpy as np
import pytest

from tasks.market import Candles, timeframe_ms


def make(n):
    t = np.arange(n, dtype=np.int64) * 60_000
    prices = np.arange(1, n + 1, dtype=float)
    return Candles(t, prices, prices + 1, prices - 0.5, prices, np.ones(n), t + 59_999)


@pytest.mark.parametrize(
    "timeframe, ms",
    [
        ("1s", 1_000),
        ("5s", 5_000),
        ("10s", 10_000),
        ("1m", 60_000),
        ("15m", 900_000),
        ("1h", 3_600_000),
        ("12h", 43_200_000),
        ("1d", 86_400_000),
        ("1w", 604_800_000),
    ],
)
def test_timeframe_ms(timeframe, ms):
    assert timeframe_ms(timeframe) == ms


@pytest.mark.parametrize("timeframe", ["", "m", "0m", "1x", "1M", "1 m", None])
def test_unknown_timeframes_are_refused(timeframe):
    with pytest.raises(ValueError, match="timeframe"):
        timeframe_ms(timeframe)


def test_candles_have_a_length_and_typed_read_only_arrays():
    candles = make(5)

    assert len(candles) == 5
    assert candles.open_time.dtype == np.int64 and candles.close_time.dtype == np.int64
    assert candles.close.dtype == np.float64
    with pytest.raises(ValueError):
        candles.close[0] = 99.0
    with pytest.raises(AttributeError):
        candles.close = np.zeros(5)


def test_tail_and_slices_keep_the_newest_bars():
    candles = make(5)

    assert candles.tail(2).close.tolist() == [4.0, 5.0]
    assert len(candles.tail(10)) == 5 and len(candles.tail(0)) == 0
    assert candles[1:3] == make(5)[1:3]
    assert candles[1:3] != candles[0:2]
    assert len(Candles.empty()) == 0


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="close"):
        Candles([1, 2], [1, 2], [1, 2], [1, 2], [1], [1, 2], [3, 4])
