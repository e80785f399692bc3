"""The built-in strategies fire exactly where TA-Lib's lines cross."""

import math

import numpy as np
import pytest

from tasks.strategies import parse_strategy

talib = pytest.importorskip("talib")


def line_crosses(a, b):
    """(index, type) where a - b changes sign, found with a plain loop."""
    found = []
    for i in range(1, len(a)):
        prev, cur = a[i - 1] - b[i - 1], a[i] - b[i]
        if not (math.isfinite(prev) and math.isfinite(cur)):
            continue
        if prev <= 0 < cur:
            found.append((i, "BUY"))
        elif prev >= 0 > cur:
            found.append((i, "SELL"))
    return found


def band_crosses(r, lower, upper):
    """(index, type) where r crosses up through lower or down through upper."""
    found = []
    for i in range(1, len(r)):
        prev, cur = r[i - 1], r[i]
        if not (math.isfinite(prev) and math.isfinite(cur)):
            continue
        if prev <= lower < cur:
            found.append((i, "BUY"))
        elif prev >= upper > cur:
            found.append((i, "SELL"))
    return found


EXPECTED = {
    "sma_cross:fast=9,slow=21": lambda x: line_crosses(talib.SMA(x, 9), talib.SMA(x, 21)),
    "sma_cross:fast=1,slow=50": lambda x: line_crosses(talib.SMA(x, 1), talib.SMA(x, 50)),
    "ema_cross:fast=9,slow=21": lambda x: line_crosses(talib.EMA(x, 9), talib.EMA(x, 21)),
    "ema_cross:fast=20,slow=100": lambda x: line_crosses(talib.EMA(x, 20), talib.EMA(x, 100)),
    "macd:fast=12,slow=26,signal=9": lambda x: line_crosses(*talib.MACD(x, 12, 26, 9)[:2]),
    "macd:fast=5,slow=35,signal=5": lambda x: line_crosses(*talib.MACD(x, 5, 35, 5)[:2]),
    "rsi:period=14,lower=30,upper=70": lambda x: band_crosses(talib.RSI(x, 14), 30, 70),
    "rsi:period=7,lower=25.5,upper=80": lambda x: band_crosses(talib.RSI(x, 7), 25.5, 80),
}


@pytest.mark.parametrize("spec", EXPECTED)
def test_decisions_are_the_crosses_of_talib_lines(closes, spec):
    expected = EXPECTED[spec](closes)

    got = [(d.index, d.type) for d in parse_strategy(spec).decisions(closes)]

    assert len(expected) > 5
    assert got == expected


def test_decision_explains_itself_with_plain_float_values(closes):
    first = parse_strategy("sma_cross:fast=9,slow=21").decisions(closes)[0]
    i = first.index

    assert first.reason == f"SMA(9) crossed {'above' if first.type == 'BUY' else 'below'} SMA(21)"
    assert set(first.indicators) == {"sma_fast", "sma_slow"}
    assert all(type(v) is float for v in first.indicators.values())
    assert first.indicators["sma_fast"] == pytest.approx(talib.SMA(closes, 9)[i], rel=1e-9)
    assert first.indicators["sma_slow"] == pytest.approx(talib.SMA(closes, 21)[i], rel=1e-9)


@pytest.mark.parametrize(
    "spec, buy, sell, keys",
    [
        ("ema_cross", "EMA(9) crossed above EMA(21)", "EMA(9) crossed below EMA(21)", {"ema_fast", "ema_slow"}),
        (
            "macd",
            "MACD(12,26) crossed above signal(9)",
            "MACD(12,26) crossed below signal(9)",
            {"macd", "signal", "hist"},
        ),
        ("rsi:lower=25.5", "RSI(14) crossed up through 25.5", "RSI(14) crossed down through 70", {"rsi"}),
    ],
)
def test_reasons_and_indicator_names(closes, spec, buy, sell, keys):
    decisions = parse_strategy(spec).decisions(closes)

    assert {d.reason for d in decisions} == {buy, sell}
    assert all(set(d.indicators) == keys for d in decisions)


@pytest.mark.parametrize(
    "spec, min_bars",
    [
        ("sma_cross", 22),
        ("ema_cross", 22),
        ("macd", 35),
        ("rsi", 16),
        ("sma_cross:fast=3,slow=50", 51),
    ],
)
def test_no_decision_before_min_bars(closes, spec, min_bars):
    strategy = parse_strategy(spec)

    assert strategy.min_bars == min_bars
    assert min(d.index for d in strategy.decisions(closes)) >= min_bars - 1
    assert min_bars <= strategy.fetch_bars <= 999


@pytest.mark.parametrize("spec", ["ema_cross", "macd", "rsi"])
def test_recursive_strategies_fetch_a_few_hundred_bars(spec):
    assert 200 <= parse_strategy(spec).fetch_bars <= 999


def test_lookback_fits_one_exchange_request():
    assert parse_strategy("ema_cross:fast=50,slow=400").fetch_bars == 999
    assert parse_strategy("sma_cross:slow=998").fetch_bars == 999


# Without the tie tolerance the SMA cases SELL as soon as the market goes flat,
# because the two equal averages differ by rounding noise.
@pytest.mark.parametrize(
    "spec, price",
    [
        ("sma_cross", 61234.57),
        ("sma_cross:fast=3,slow=10", 100.1),
        ("ema_cross", 61234.57),
    ],
)
def test_rounding_noise_on_a_flat_market_is_no_cross(spec, price):
    rising_then_flat = np.r_[np.linspace(0.9 * price, price, 40), np.full(200, price)]

    assert parse_strategy(spec).decisions(rising_then_flat) == []


@pytest.mark.parametrize("spec", ["sma_cross", "ema_cross", "macd", "rsi"])
def test_decisions_from_a_start_bar_are_the_tail_of_all_decisions(closes, spec):
    strategy = parse_strategy(spec)
    everything = strategy.decisions(closes)
    start = everything[len(everything) // 2].index

    assert strategy.decisions(closes, start=start) == [d for d in everything if d.index >= start]
