"""Your own strategy class: loaded from the Python path by a `py:` spec, checked at start, run on closed bars."""

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backend.signal_schema import SignalType
from harness.exchange import CROSS_UP
from tasks.market.candles import Candles
from tasks.strategies import CandleStrategy, StrategyError, parse_strategies, parse_strategy

EXAMPLES = Path(__file__).resolve().parents[3] / "docs" / "examples"


def exchange_candles(closes: list[float]) -> Candles:
    """Bars shaped as the loopback exchange serves them: open at the previous close, high/low 0.1 % beyond."""
    close = np.array(closes)
    open_ = np.r_[close[0], close[:-1]]
    times = np.arange(len(close)) * 60_000
    high, low = np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999
    return Candles(times, open_, high, low, close, np.ones(len(close)), times + 59_999)


@pytest.fixture
def on_path(monkeypatch, tmp_path):
    """The documented example's folder and a scratch folder on sys.path, as PYTHONPATH puts them for a worker."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n in {"breakout", "mine", "broken", "clash"}]:
        del sys.modules[name]


def test_the_documented_example_breaks_out_where_the_close_leaves_the_channel(on_path):
    strategy = parse_strategy("py:breakout.Breakout:lookback=20")
    candles = exchange_candles(CROSS_UP)

    decisions = strategy.decisions(candles)

    assert strategy.spec == "py:breakout.Breakout:lookback=20"
    assert isinstance(strategy, CandleStrategy)
    assert [(d.index, d.type) for d in decisions] == [(30, SignalType.BUY)]
    assert decisions[-1].reason == "close broke above the high of the last 20 bars"
    assert decisions[-1].indicators == {"upper": pytest.approx(95.5955), "lower": pytest.approx(85.4145)}
    assert strategy.panes() == {"upper": "price", "lower": "price"}
    assert strategy.min_bars == 22 and strategy.fetch_bars == 22


def test_the_example_never_decides_with_later_bars(on_path, candles):
    strategy = parse_strategy("py:breakout.Breakout:lookback=10")
    full = strategy.decisions(candles)

    prefix = strategy.decisions(candles[:1500])

    assert len(full) > 20
    assert prefix == [d for d in full if d.index < 1500]
    assert min(d.index for d in full) >= strategy.min_bars - 1


def test_parameters_default_and_repeat_as_the_presets(on_path):
    strategies = parse_strategies("py:breakout.Breakout; py:breakout.Breakout:lookback=20.0; sma_cross")

    assert [s.spec for s in strategies] == ["py:breakout.Breakout:lookback=20", "sma_cross:fast=9,slow=21"]


def write(folder: Path, name: str, code: str) -> None:
    """A module NAME with CODE in FOLDER (which is on sys.path)."""
    (folder / f"{name}.py").write_text(textwrap.dedent(code))


def test_float_parameters_take_any_number_and_check_runs_at_start(on_path):
    write(
        on_path,
        "mine",
        """
        from tasks.strategies import CandleStrategy

        class Threshold(CandleStrategy):
            defaults = {"period": 5, "threshold": 0.5}
            min_bars = 2

            def check(self):
                if self.threshold > 10:
                    raise ValueError(f"threshold must be at most 10, got {self.threshold}")
        """,
    )

    assert parse_strategy("py:mine.Threshold:threshold=-1.25").params == {"period": 5, "threshold": -1.25}
    with pytest.raises(StrategyError, match="threshold must be at most 10, got 11.0"):
        parse_strategy("py:mine.Threshold:threshold=11")


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "py:nowhere.Breakout",
            "cannot import module 'nowhere' (No module named 'nowhere'); is its folder on PYTHONPATH?",
        ),
        ("py:breakout.Breakin", "module 'breakout' has no class 'Breakin'; it defines Breakout"),
        ("py:breakout.talib", "breakout.talib is not a subclass of tasks.strategies.CandleStrategy"),
        ("py:Breakout", "expected py:<module path>.<ClassName>, e.g. py:mypkg.breakout.Breakout; got 'Breakout'"),
        ("py:breakout.Breakout:lookback=2.5", "lookback must be a whole number >= 1, got 2.5"),
        ("py:breakout.Breakout:lookback=x", "lookback='x' is not a number"),
        ("py:breakout.Breakout:periods=3", "unknown parameter 'periods' for py:breakout.Breakout; valid: lookback"),
        ("py:breakout.Breakout:lookback=998", "needs 1000 bars before its first decision, more than the 999"),
        ("py:broken.Anything", "importing module 'broken' failed: ZeroDivisionError: division by zero"),
        ("py:clash.Clash", "parameter 'spec' of Clash would hide CandleStrategy.spec; name it differently"),
    ],
)
def test_a_bad_py_spec_names_what_is_wrong(on_path, spec, message):
    write(on_path, "broken", "1 / 0\n")
    write(
        on_path,
        "clash",
        """
        from tasks.strategies import CandleStrategy

        class Clash(CandleStrategy):
            defaults = {"spec": 20}
        """,
    )

    with pytest.raises(StrategyError) as error:
        parse_strategies(spec)

    assert str(error.value).startswith(f"invalid strategy {spec!r}: ")
    assert message in str(error.value)


def test_a_candle_strategy_is_given_candles_not_closes(on_path, closes):
    with pytest.raises(StrategyError, match="is given Candles, not an array of closes"):
        parse_strategy("py:breakout.Breakout").decisions(closes)


def test_the_docs_show_the_example_file_as_it_is():
    docs = (EXAMPLES.parent / "strategies.md").read_text()

    assert "```python\n" + (EXAMPLES / "breakout.py").read_text() + "```" in docs
