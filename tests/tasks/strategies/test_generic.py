"""Generic specs over any TA-Lib function: canonical form, clear errors, and the crosses of TA-Lib's own lines."""

import numpy as np
import pytest
import talib

from tasks.strategies import Cross, Level, StrategyError, parse_strategies, parse_strategy
from tests.tasks.strategies.test_crosses import band_crosses, line_crosses


@pytest.mark.parametrize(
    "text, spec",
    [
        ("cross:fast=EMA(9),slow=SMA(50)", "cross:fast=EMA(9),slow=SMA(50)"),
        (" cross : slow = sma( 50 ) , fast = ema(9.0) ", "cross:fast=EMA(9),slow=SMA(50)"),
        ("cross:fast=EMA(),slow=close", "cross:fast=EMA(30),slow=close"),
        ("cross:fast=close,slow=BBANDS(20,2,2).upperband", "cross:fast=close,slow=BBANDS(20,2,2,0).upperband"),
        ("cross:fast=close,slow=bbands(20,2.5).UPPERBAND", "cross:fast=close,slow=BBANDS(20,2.5,2,0).upperband"),
        ("cross:fast=EMA(9).real,slow=KAMA", "cross:fast=EMA(9),slow=KAMA(30)"),
        ("level:of=RSI(14),lower=30,upper=70", "level:of=RSI(14),lower=30,upper=70"),
        ("level:of=cci(20),lower=-100,upper=100.0", "level:of=CCI(20),lower=-100,upper=100"),
        ("level:of=MFI,lower=20.5,upper=80", "level:of=MFI(14),lower=20.5,upper=80"),
    ],
)
def test_canonical_spec(text, spec):
    assert parse_strategy(text).spec == spec
    assert parse_strategy(spec).spec == spec


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "cross:fast=EMAX(9),slow=close",
            "EMAX is not a TA-Lib function (nor open, high, low, close or volume); did you mean EMA",
        ),
        ("cross:fast=BBANDS(20),slow=close", "BBANDS has outputs upperband, middleband, lowerband"),
        ("cross:fast=BBANDS(20).upper,slow=close", "BBANDS has no output 'upper'; BBANDS has outputs upperband"),
        ("cross:fast=EMA(9,3),slow=close", "EMA takes 1 argument (timeperiod=30), got 2"),
        ("cross:fast=BBANDS(20,,2).upperband,slow=close", "argument nbdevup is empty"),
        ("cross:fast=EMA(x),slow=close", "EMA argument timeperiod='x' is not a number"),
        ("cross:fast=EMA(2.5),slow=close", "timeperiod must be a whole number, got 2.5"),
        (
            "cross:fast=EMA(0),slow=close",
            "TA-Lib refuses EMA(0): an argument is out of range (defaults: timeperiod=30)",
        ),
        ("cross:fast=EMA(9),slow=close,speed=3", "unknown parameter 'speed'; valid: fast, slow"),
        ("cross:fast=EMA(9)", "missing slow; expected fast=…, slow=…"),
        ("cross:fast=EMA(9,slow=close", "a '(' without its ')'"),
        ("cross:fast=EMA(9)),slow=close", "a ')' without its '('"),
        ("cross:fast=EMA(9),slow=EMA(9.0)", "EMA(9) is compared with itself"),
        ("cross:fast=9,slow=close", "'9' is not a series; expected close, FUNC(periods…) or FUNC(periods…).output"),
        ("cross:fast=MAVP,slow=close", "MAVP reads periods, which bars do not have"),
        ("cross:fast=SMA(999),slow=close", "needs 1000 bars before its first decision, more than the 999"),
        ("level:of=RSI(14),lower=70,upper=30", "lower (70) must be less than upper (30)"),
        ("level:of=RSI(14),lower=low,upper=70", "lower='low' is not a number"),
        ("level:of=MACD,lower=-1,upper=1", "MACD(12,26,9) has several outputs; name one, e.g. MACD(12,26,9).macd"),
        ("crossing:fast=EMA(9)", "valid: sma_cross:fast=9,slow=21; ema_cross"),
    ],
)
def test_invalid_spec_names_the_bad_part_and_what_is_allowed(text, message):
    with pytest.raises(StrategyError) as error:
        parse_strategies(text)

    assert message in str(error.value)
    assert str(error.value).startswith("invalid strategy")


def test_level_rsi_gives_exactly_the_signals_of_the_rsi_preset(candles):
    preset = parse_strategy("rsi:period=14,lower=30,upper=70").decisions(candles)

    generic = parse_strategy("level:of=RSI(14),lower=30,upper=70").decisions(candles)

    assert len(preset) > 20
    assert [(d.index, d.type, d.reason) for d in generic] == [(d.index, d.type, d.reason) for d in preset]
    assert [d.indicators["RSI(14)"] for d in generic] == [d.indicators["rsi"] for d in preset]


def test_cross_of_the_macd_lines_gives_the_signals_of_the_macd_preset(candles):
    preset = parse_strategy("macd").decisions(candles)

    generic = parse_strategy("cross:fast=MACD(12,26,9).macd,slow=MACD(12,26,9).macdsignal").decisions(candles)

    assert [(d.index, d.type) for d in generic] == [(d.index, d.type) for d in preset]


EXPECTED = {
    "cross:fast=EMA(9),slow=SMA(50)": lambda c: line_crosses(talib.EMA(c.close, 9), talib.SMA(c.close, 50)),
    "cross:fast=close,slow=KAMA(10)": lambda c: line_crosses(c.close, talib.KAMA(c.close, 10)),
    "cross:fast=close,slow=BBANDS(20,2,2,0).upperband": lambda c: line_crosses(
        c.close, talib.BBANDS(c.close, 20, 2, 2, 0)[0]
    ),
    "cross:fast=STOCH(5,3,0,3,0).slowk,slow=STOCH(5,3,0,3,0).slowd": lambda c: line_crosses(
        *talib.STOCH(c.high, c.low, c.close, 5, 3, 0, 3, 0)
    ),
    "level:of=MFI(14),lower=20,upper=80": lambda c: band_crosses(
        talib.MFI(c.high, c.low, c.close, c.volume, 14), 20, 80
    ),
    "level:of=CCI(20),lower=-100,upper=100": lambda c: band_crosses(talib.CCI(c.high, c.low, c.close, 20), -100, 100),
}


@pytest.mark.parametrize("spec", EXPECTED)
def test_decisions_are_the_crosses_of_talib_lines_on_ohlcv(candles, spec):
    expected = EXPECTED[spec](candles)

    got = [(d.index, d.type) for d in parse_strategy(spec).decisions(candles)]

    assert len(expected) > 5
    assert got == expected


def test_reason_and_indicators_say_what_crossed_with_its_values(candles):
    decision = parse_strategy("cross:fast=EMA(9),slow=SMA(50)").decisions(candles)[0]
    i = decision.index

    assert decision.reason == f"EMA(9) crossed {'above' if decision.type == 'BUY' else 'below'} SMA(50)"
    assert decision.indicators == {
        "EMA(9)": pytest.approx(talib.EMA(candles.close, 9)[i], rel=1e-9),
        "SMA(50)": pytest.approx(talib.SMA(candles.close, 50)[i], rel=1e-9),
    }
    level = parse_strategy("level:of=CCI(20),lower=-100,upper=100").decisions(candles)
    assert {d.reason for d in level} == {"CCI(20) crossed up through -100", "CCI(20) crossed down through 100"}


@pytest.mark.parametrize(
    "spec, panes",
    [
        ("cross:fast=EMA(9),slow=close", {"EMA(9)": "price", "close": "price"}),
        (
            "cross:fast=MACD(12,26,9).macd,slow=MACD(12,26,9).macdsignal",
            {"MACD(12,26,9).macd": "MACD(12,26,9)", "MACD(12,26,9).macdsignal": "MACD(12,26,9)"},
        ),
        ("level:of=RSI(14),lower=30,upper=70", {"RSI(14)": "RSI(14)"}),
    ],
)
def test_panes_put_overlap_studies_on_price_and_the_rest_below(candles, spec, panes):
    strategy = parse_strategy(spec)

    assert strategy.panes() == panes
    assert set(strategy.series(candles)) == set(panes)


@pytest.mark.parametrize(
    "spec",
    [
        "cross:fast=EMA(9),slow=SMA(50)",
        "level:of=RSI(14),lower=30,upper=70",
        "cross:fast=MACD(12,26,9).macd,slow=MACD(12,26,9).macdsignal",
        "cross:fast=T3(5,0.7),slow=close",
        "level:of=ADX(14),lower=20,upper=40",
    ],
)
def test_a_live_window_of_lookback_bars_decides_as_the_whole_history(candles, spec):
    strategy = parse_strategy(spec)
    everything = {d.index: d for d in strategy.decisions(candles)}

    ends = range(strategy.fetch_bars, len(candles), 7)
    live = {
        end: strategy.decisions(candles[end + 1 - strategy.fetch_bars : end + 1], start=strategy.fetch_bars - 1)
        for end in ends
    }

    assert strategy.min_bars < strategy.fetch_bars < 999
    assert sum(map(len, live.values())) > 5
    for end, decisions in live.items():
        assert [(d.type, d.reason) for d in decisions] == (
            [(everything[end].type, everything[end].reason)] if end in everything else []
        ), end


def test_warm_up_is_talib_lookback_plus_settle_bars():
    assert parse_strategy("cross:fast=SMA(9),slow=SMA(50)").fetch_bars == 51  # no recursion: lookback 49 + 2
    assert parse_strategy("level:of=RSI(14),lower=30,upper=70").fetch_bars == parse_strategy("rsi").fetch_bars
    assert parse_strategy("cross:fast=EMA(9),slow=EMA(21)").fetch_bars == parse_strategy("ema_cross").fetch_bars
    assert parse_strategy("cross:fast=KAMA(10),slow=close").fetch_bars == 999  # rate unknown: all a scan fetches


def test_a_function_reading_high_low_needs_candles(closes):
    assert parse_strategy("cross:fast=EMA(9),slow=close").decisions(closes)
    with pytest.raises(StrategyError, match=r"MFI\(14\) reads (high|low|volume): give it Candles"):
        parse_strategy("level:of=MFI(14),lower=20,upper=80").decisions(closes)


def test_the_classes_are_exported():
    assert isinstance(parse_strategy("cross:fast=EMA(9),slow=close"), Cross)
    assert isinstance(parse_strategy("level:of=RSI(14),lower=30,upper=70"), Level)
    assert np.isnan(parse_strategy("cross:fast=EMA(9),slow=close").series(np.arange(5.0))["EMA(9)"]).all()


def test_threads_computing_at_once_get_their_own_results(candles):
    from concurrent.futures import ThreadPoolExecutor

    strategy = parse_strategy("cross:fast=MACD(12,26,9).macd,slow=MACD(12,26,9).macdsignal")
    windows = [candles[i * 300 : i * 300 + 600] for i in range(8)]
    alone = [strategy.decisions(w) for w in windows]

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(strategy.decisions, windows * 4))

    assert together == alone * 4
