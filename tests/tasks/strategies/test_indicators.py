"""Each indicator equals TA-Lib's after warm-up, with NaN in the same places."""

import numpy as np
import pytest

from tasks.strategies import indicators

talib = pytest.importorskip("talib")

RTOL = 1e-9


def assert_matches(ours: np.ndarray, reference: np.ndarray, floor=0.0) -> None:
    """Same length, same NaN positions, equal within RTOL of max(|reference|, floor) elsewhere."""
    assert ours.shape == reference.shape
    assert np.array_equal(np.isnan(ours), np.isnan(reference))
    valid = ~np.isnan(reference)
    assert valid.any()
    scale = np.maximum(np.abs(reference), floor)[valid]
    assert np.all(np.abs(ours[valid] - reference[valid]) <= RTOL * scale)


@pytest.mark.parametrize("period", [1, 2, 9, 21, 200])
def test_sma_matches_talib(closes, period):
    assert_matches(indicators.sma(closes, period), talib.SMA(closes, period))


@pytest.mark.parametrize("period", [1, 2, 9, 21, 200])
def test_ema_matches_talib(closes, period):
    assert_matches(indicators.ema(closes, period), talib.EMA(closes, period))


@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_matches_talib(closes, period):
    result = indicators.rsi(closes, period)

    assert_matches(result, talib.RSI(closes, period))
    assert np.flatnonzero(~np.isnan(result))[0] == period


@pytest.mark.parametrize("fast, slow, signal", [(12, 26, 9), (5, 35, 5), (2, 3, 1), (26, 12, 9)])
def test_macd_matches_talib(closes, fast, slow, signal):
    ours = indicators.macd(closes, fast, slow, signal)
    reference = talib.MACD(closes, fast, slow, signal)

    # MACD is a difference of two price-sized EMAs: its rounding error is a fraction of the
    # price, not of itself, so values near zero are compared against a thousandth of the price.
    for mine, theirs in zip(ours, reference):
        assert_matches(mine, theirs, floor=1e-3 * closes)
    assert np.flatnonzero(~np.isnan(ours[0]))[0] == max(fast, slow) - 1 + signal - 1


def test_leading_nans_are_skipped_as_talib_does(closes):
    gappy = closes[:300].copy()
    gappy[:7] = np.nan

    assert_matches(indicators.sma(gappy, 9), talib.SMA(gappy, 9))
    assert_matches(indicators.ema(gappy, 9), talib.EMA(gappy, 9))
    assert_matches(indicators.rsi(gappy, 14), talib.RSI(gappy, 14))
    for mine, theirs in zip(indicators.macd(gappy), talib.MACD(gappy)):
        assert_matches(mine, theirs, floor=1e-3 * closes[:300])


def test_flat_prices_give_rsi_zero_as_talib_does():
    flat = np.full(40, 5.0)

    assert np.array_equal(indicators.rsi(flat, 14)[14:], talib.RSI(flat, 14)[14:])
    assert np.all(indicators.rsi(flat, 14)[14:] == 0.0)


def test_too_short_input_is_all_nan():
    short = np.array([1.0, 2.0, 3.0])

    assert np.isnan(indicators.sma(short, 4)).all()
    assert np.isnan(indicators.ema(short, 4)).all()
    assert np.isnan(indicators.rsi(short, 3)).all()
    assert all(np.isnan(part).all() for part in indicators.macd(short, 2, 3, 2))


@pytest.mark.parametrize(
    "call",
    [
        lambda x: indicators.sma(x, 0),
        lambda x: indicators.ema(x, 2.5),
        lambda x: indicators.rsi(x, 1),
        lambda x: indicators.macd(x, 1, 26, 9),
        lambda x: indicators.sma(x.reshape(2, -1), 3),
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call(np.arange(10.0))
