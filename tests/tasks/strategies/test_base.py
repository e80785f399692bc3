"""Behaviour every strategy inherits: live decisions, no look-ahead, the registry."""

import dataclasses

import numpy as np
import pytest

from backend.signal_schema import SignalType
from tasks.strategies import Decision, Strategy, parse_strategies, parse_strategy, register
from tasks.strategies.base import REGISTRY, crossings

SPECS = [
    "sma_cross:fast=5,slow=12",
    "ema_cross:fast=5,slow=12",
    "macd:fast=5,slow=12,signal=4",
    "rsi:period=5,lower=40,upper=60",
]


@pytest.mark.parametrize("spec", SPECS)
def test_the_last_bar_of_every_prefix_decides_as_in_the_whole_series(short_closes, spec):
    strategy = parse_strategy(spec)
    by_index = {d.index: d for d in strategy.decisions(short_closes)}

    live = [strategy.decisions(short_closes[: end + 1], start=end) for end in range(len(short_closes))]

    assert len(by_index) > 5
    assert live == [[by_index[i]] if i in by_index else [] for i in range(len(short_closes))]


@pytest.mark.parametrize("spec", SPECS)
def test_later_bars_never_change_earlier_decisions(short_closes, spec):
    strategy = parse_strategy(spec)
    full = strategy.decisions(short_closes)

    earlier = strategy.decisions(short_closes[:250])

    assert earlier == [d for d in full if d.index < 250]


def test_crossings_needs_finite_values_on_both_bars():
    d = np.array([np.nan, 1.0, -1.0, np.inf, -1.0, 0.0, 2.0, 0.0, -3.0])

    up, down = crossings(d, 1.0)

    assert np.flatnonzero(up).tolist() == [6]
    assert np.flatnonzero(down).tolist() == [2, 8]


def test_decision_is_frozen_and_hashable():
    decision = Decision(3, SignalType.BUY, "why", {"x": 1.0})

    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.type = SignalType.SELL
    assert decision in {decision}


@pytest.fixture
def registry():
    """The registry, restored after the test."""
    saved = dict(REGISTRY)
    yield REGISTRY
    REGISTRY.clear()
    REGISTRY.update(saved)


def test_one_decorated_class_adds_a_strategy(registry, short_closes):
    @register
    class Breakout(Strategy):
        """BUY when the close rises above the previous high of `period` closes."""

        name = "breakout"
        defaults = {"period": 20}

        @property
        def min_bars(self):
            return self.period + 2

        def _lines(self, close):
            high = np.full(len(close), np.nan)
            for i in range(self.period, len(close)):
                high[i] = close[i - self.period : i].max()
            return {"close": close, "high": high}

        def _events(self, lines, close):
            up, _ = crossings(lines["close"] - lines["high"], close)
            return up, np.zeros(len(close), dtype=bool)

        def _reason(self, kind):
            return f"close broke above its {self.period}-bar high"

    strategies = parse_strategies("breakout:period=10; sma_cross")

    assert [s.spec for s in strategies] == ["breakout:period=10", "sma_cross:fast=9,slow=21"]
    assert all(d.type == SignalType.BUY for d in strategies[0].decisions(short_closes))
    assert "breakout:period=20" in str(pytest.raises(ValueError, parse_strategy, "nope").value)


def test_panes_put_averages_on_price_and_oscillators_below():
    strategies = parse_strategies("sma_cross;macd;rsi")
    assert strategies[0].panes() == {"sma_fast": "price", "sma_slow": "price"}
    assert set(strategies[1].panes().values()) == {"MACD(12,26,9)"}
    assert strategies[2].panes() == {"rsi": "RSI(14)"}
    for strategy in strategies:
        assert set(strategy.panes()) == set(strategy.series(np.linspace(1, 2, 60)))
