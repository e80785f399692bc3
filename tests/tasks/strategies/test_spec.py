"""Strategy specs: canonical form, defaults, and a clear error for each mistake."""

import pytest

from tasks.strategies import EmaCross, MacdCross, RsiBands, SmaCross, StrategyError, parse_strategies, parse_strategy


def test_parse_fills_defaults_in_canonical_order():
    strategies = parse_strategies("sma_cross:fast=5; rsi")

    assert [s.spec for s in strategies] == ["sma_cross:fast=5,slow=21", "rsi:period=14,lower=30,upper=70"]
    assert [type(s) for s in strategies] == [SmaCross, RsiBands]


@pytest.mark.parametrize(
    "text, spec",
    [
        ("sma_cross", "sma_cross:fast=9,slow=21"),
        ("ema_cross", "ema_cross:fast=9,slow=21"),
        ("macd", "macd:fast=12,slow=26,signal=9"),
        ("rsi", "rsi:period=14,lower=30,upper=70"),
        ("macd:signal=5,fast=8", "macd:fast=8,slow=26,signal=5"),
        ("  EMA_CROSS : slow = 30.0 , ", "ema_cross:fast=9,slow=30"),
        ("rsi:lower=25.5,upper=74.25", "rsi:period=14,lower=25.5,upper=74.25"),
        ("sma_cross:", "sma_cross:fast=9,slow=21"),
    ],
)
def test_canonical_spec(text, spec):
    assert parse_strategy(text).spec == spec


def test_repeats_and_blank_parts_are_dropped():
    strategies = parse_strategies("sma_cross; ;sma_cross:fast=9,slow=21; macd;")

    assert [s.spec for s in strategies] == ["sma_cross:fast=9,slow=21", "macd:fast=12,slow=26,signal=9"]


def test_classes_take_parameters_directly():
    assert EmaCross(slow=50).spec == "ema_cross:fast=9,slow=50"
    assert MacdCross().params == {"fast": 12, "slow": 26, "signal": 9}
    assert SmaCross(fast=3).fast == 3


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no strategy given"),
        (" ; ", "no strategy given"),
        (":fast=3", "no strategy name"),
        ("smacross", "unknown strategy 'smacross'; valid: sma_cross:fast=9,slow=21; ema_cross"),
        ("sma_cross:fats=3", "unknown parameter 'fats' for sma_cross; valid: fast, slow"),
        ("sma_cross:fast", "expected key=value, got 'fast'"),
        ("sma_cross:fast=3,fast=4", "parameter 'fast' given twice"),
        ("sma_cross:fast=abc", "fast='abc' is not a number"),
        ("sma_cross:fast=nan", "fast='nan' is not a number"),
        ("sma_cross:fast=0", "fast must be a whole number >= 1, got 0"),
        ("ema_cross:slow=-4", "slow must be a whole number >= 1, got -4"),
        ("sma_cross:fast=2.5", "fast must be a whole number >= 1, got 2.5"),
        ("sma_cross:fast=21", "fast (21) must be less than slow (21)"),
        ("macd:fast=30", "fast (30) must be less than slow (26)"),
        ("macd:fast=1,slow=5", "fast must be a whole number >= 2, got 1"),
        ("rsi:period=1", "period must be a whole number >= 2, got 1"),
        ("rsi:lower=0", "lower must be a number > 0, got 0"),
        ("rsi:lower=-10", "lower must be a number > 0, got -10"),
        ("rsi:upper=100", "lower and upper must lie strictly between 0 and 100, got lower=30, upper=100"),
        ("rsi:lower=80", "lower (80) must be less than upper (70)"),
        ("rsi:lower=70", "lower (70) must be less than upper (70)"),
        ("sma_cross:slow=999", "needs 1000 bars before its first decision, more than the 999"),
    ],
)
def test_invalid_spec_says_what_is_wrong(text, message):
    with pytest.raises(StrategyError) as error:
        parse_strategies(text)

    assert message in str(error.value)
    assert isinstance(error.value, ValueError)


def test_error_names_the_offending_spec():
    with pytest.raises(StrategyError, match=r"^invalid strategy 'rsi:lower=80'"):
        parse_strategies("sma_cross; rsi:lower=80")


@pytest.mark.parametrize("params", [{"fast": "5"}, {"fast": True}, {"fast": float("inf")}, {"speed": 3}])
def test_direct_construction_validates_too(params):
    with pytest.raises(StrategyError):
        SmaCross(**params)
