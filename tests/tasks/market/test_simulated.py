"""SimulatedSource: deterministic, clock-following, plausible, with frequent moving-average crosses."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.exchange import NOW_MS
from tasks.market import MarketDataError, SimulatedSource

REPO = Path(__file__).resolve().parents[3]


def sma(values, n):
    sums = np.cumsum(np.insert(values, 0, 0.0))
    return (sums[n:] - sums[:-n]) / n


def sma_crosses(close, fast=9, slow=21):
    """Number of sign changes of SMA(fast) - SMA(slow), as docs/architecture.md defines a cross."""
    diff = sma(close, fast)[slow - fast :] - sma(close, slow)
    prev, cur = diff[:-1], diff[1:]
    return int(np.sum((prev <= 0) & (cur > 0)) + np.sum((prev >= 0) & (cur < 0)))


def test_the_last_bar_is_the_last_one_closed_at_now():
    candles = SimulatedSource(seed=1).fetch("BTCUSDT", "1m", 100, now_ms=NOW_MS)

    assert len(candles) == 100
    assert candles.close_time[-1] < NOW_MS <= candles.close_time[-1] + 60_000
    assert np.all(np.diff(candles.open_time) == 60_000)
    assert np.all(candles.close_time == candles.open_time + 59_999)


def test_a_bar_closes_exactly_at_its_boundary():
    boundary = NOW_MS // 60_000 * 60_000

    candles = SimulatedSource().fetch("BTCUSDT", "1m", 3, now_ms=boundary)

    assert candles.open_time[-1] == boundary - 60_000


def test_bars_depend_only_on_seed_symbol_and_index():
    source = SimulatedSource(seed=7)

    wide = source.fetch("ETHUSDT", "1m", 500, now_ms=NOW_MS)
    narrow = SimulatedSource(seed=7).fetch("ETHUSDT", "1m", 50, now_ms=NOW_MS)
    later = source.fetch("ETHUSDT", "1m", 500, now_ms=NOW_MS + 3 * 60_000)

    assert narrow == wide.tail(50)
    assert later[:-3] == wide[3:]
    assert later.open_time[-1] == wide.open_time[-1] + 3 * 60_000


def test_another_process_computes_the_same_history():
    code = (
        "import hashlib; from tasks.market import SimulatedSource;"
        f"c = SimulatedSource(seed=7).fetch('ETHUSDT', '1m', 300, now_ms={NOW_MS});"
        "print(hashlib.sha256(c.close.tobytes() + c.high.tobytes() + c.open_time.tobytes()).hexdigest())"
    )
    here = SimulatedSource(seed=7).fetch("ETHUSDT", "1m", 300, now_ms=NOW_MS)

    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()

    assert there == hashlib.sha256(here.close.tobytes() + here.high.tobytes() + here.open_time.tobytes()).hexdigest()


def test_seeds_and_symbols_give_different_markets():
    a = SimulatedSource(seed=1).fetch("ETHUSDT", "1m", 50, now_ms=NOW_MS)
    b = SimulatedSource(seed=2).fetch("ETHUSDT", "1m", 50, now_ms=NOW_MS)
    c = SimulatedSource(seed=1).fetch("SOLUSDT", "1m", 50, now_ms=NOW_MS)

    assert not np.array_equal(a.close, b.close)
    assert not np.allclose(a.close / a.close[0], c.close / c.close[0])


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "DOGEUSDT"])
def test_bars_are_plausible(symbol):
    candles = SimulatedSource(seed=3).fetch(symbol, "1m", 5000, now_ms=NOW_MS)

    assert np.all(np.isfinite(candles.close)) and np.all(candles.low > 0)
    assert np.all(candles.high >= np.maximum(candles.open, candles.close))
    assert np.all(candles.low <= np.minimum(candles.open, candles.close))
    assert np.all(candles.open[1:] == candles.close[:-1])
    assert np.all(candles.volume > 0)
    moves = np.abs(np.diff(np.log(candles.close)))
    assert moves.max() < 0.02  # no 2 % jumps from one minute to the next
    if symbol == "BTCUSDT":
        assert candles.close.min() > 30_000 and candles.close.max() < 120_000


@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT", "XRPUSDT"])
def test_sma_9_21_crosses_every_10_to_30_bars(symbol):
    candles = SimulatedSource(seed=11).fetch(symbol, "1m", 6000, now_ms=NOW_MS)

    bars_per_signal = len(candles) / sma_crosses(candles.close)

    assert 10 <= bars_per_signal <= 30


def test_fast_demo_timeframes_follow_the_clock():
    candles = SimulatedSource().fetch("BTCUSDT", "5s", 20, now_ms=NOW_MS)

    assert np.all(np.diff(candles.open_time) == 5_000)
    assert candles.close_time[-1] < NOW_MS <= candles.close_time[-1] + 5_000


def test_an_unknown_timeframe_is_a_market_data_error():
    with pytest.raises(MarketDataError, match="timeframe '7x'"):
        SimulatedSource().fetch("BTCUSDT", "7x", 10, now_ms=NOW_MS)


def test_the_source_is_named_simulated():
    assert SimulatedSource().name == "simulated"
