"""The Strategy base class, its registry, and the Decision it returns."""

from __future__ import annotations

import math
import numbers
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from backend.signal_schema import SignalType

from .indicators import as_prices

if TYPE_CHECKING:
    from tasks.market.candles import Candles

# Binance returns at most 1000 klines per request and the scan spends one on the still-open bar.
MAX_LOOKBACK = 999
# Seed weight below which a recursive average no longer depends on where the data began,
# so the live scan (a window of bars) and the backtest (all bars) agree.
SETTLED_WEIGHT = 1e-9
# |a - b| at or below this fraction of the scale counts as a tie (0): on a flat market the
# two lines are equal and only rounding noise, whose sign depends on summation order, is left.
TIE = 1e-12
# A parameter's value as a spec writes it.
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")

REGISTRY: dict[str, type[Strategy]] = {}


class StrategyError(ValueError):
    """A strategy spec or one of its parameters is invalid."""


@dataclass(frozen=True)
class Decision:
    """A BUY or SELL at bar `index`, with the reason and the indicator values behind it."""

    index: int
    type: SignalType
    reason: str
    indicators: dict[str, float | None] = field(hash=False)


def register(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make cls usable in specs under cls.name."""
    REGISTRY[cls.name] = cls
    return cls


def crossings(d: np.ndarray, scale: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Masks (up, down): d went from <= 0 to > 0, or from >= 0 to < 0, at that bar."""
    d = np.where(np.abs(d) <= TIE * np.abs(scale), 0.0, d)
    prev, cur = d[:-1], d[1:]
    finite = np.isfinite(prev) & np.isfinite(cur)
    up = np.zeros(len(d), dtype=bool)
    down = np.zeros(len(d), dtype=bool)
    up[1:] = finite & (prev <= 0) & (cur > 0)
    down[1:] = finite & (prev >= 0) & (cur < 0)
    return up, down


def level_crossings(x: np.ndarray, lower: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    """Masks (buy, sell): x crossed up through lower, or down through upper (the rsi rule)."""
    # Ties are judged against the levels' scale, whatever the price (RSI lives on 0-100).
    scale = max(abs(lower), abs(upper))
    buy, _ = crossings(x - lower, scale)
    _, sell = crossings(x - upper, scale)
    return buy, sell


def closes(candles: Candles | np.ndarray) -> np.ndarray:
    """The closes of CANDLES (a Candles, or already an array of closes) as a 1-D float array."""
    return as_prices(candles if isinstance(candles, np.ndarray) else candles.close)


def flat_candles(n: int) -> Candles:
    """N flat bars (every price 1): what a strategy's series are named, learnt without data."""
    from tasks.market.candles import Candles

    ones = np.ones(n)
    return Candles(np.arange(n) * 60_000, ones, ones, ones, ones, ones, np.arange(n) * 60_000 + 59_999)


def settle_bars(alpha: float) -> int:
    """Bars after which a seed smoothed with factor alpha weighs less than SETTLED_WEIGHT."""
    return 0 if alpha >= 1 else math.ceil(math.log(SETTLED_WEIGHT) / math.log(1 - alpha))


def format_number(value: float) -> str:
    """Shortest text for a parameter: 30 rather than 30.0."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _real(value: object) -> float | None:
    """VALUE as a float when it is a finite real number (a bool is not one), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _shown(value: object) -> str:
    """Value as a user wrote it, for error messages."""
    number = _real(value)
    return format_number(number) if number is not None else repr(value)


def _rounded(value: float) -> float | None:
    """A plain float with 10 significant digits, whatever the price scale; None where undefined (JSON null)."""
    value = float(value)
    return float(f"{value:.10g}") if math.isfinite(value) else None


class Strategy(ABC):
    """Turns closed bars (Candles, or an array of closes for the presets) into BUY/SELL decisions.

    Your own strategies derive from `tasks.strategies.CandleStrategy` (docs/strategies.md).
    """

    name: str  # set by each class; a `py:` instance carries the path it was loaded by
    # Parameter defaults in canonical order; an int default marks a period (a whole number).
    defaults: ClassVar[dict[str, int | float]]
    min_period: ClassVar[int] = 1

    def __init__(self, **params: object) -> None:
        for key in params:
            if key not in self.defaults:
                raise StrategyError(f"unknown parameter {key!r} for {self.name}; valid: {', '.join(self.defaults)}")
        self.params = {key: self._checked(key, params.get(key, default)) for key, default in self.defaults.items()}
        for key, value in self.params.items():
            setattr(self, key, value)
        self._check()
        self._check_fits()

    def _check_fits(self) -> None:
        """Raise StrategyError if the first decision needs more bars than a scan can fetch."""
        if self.min_bars > MAX_LOOKBACK:
            raise StrategyError(
                f"{self.spec} needs {self.min_bars} bars before its first decision, "
                f"more than the {MAX_LOOKBACK} a scan can fetch; use smaller periods"
            )

    def _checked(self, key: str, value: object) -> int | float:
        """Return value as the parameter's type, or raise StrategyError."""
        number = _real(value)
        if isinstance(self.defaults[key], int):
            if number is None or number != int(number) or number < self.min_period:
                raise StrategyError(f"{key} must be a whole number >= {self.min_period}, got {_shown(value)}")
            return int(number)
        if number is None or number <= 0:
            raise StrategyError(f"{key} must be a number > 0, got {_shown(value)}")
        return number

    def _check(self) -> None:
        """Raise StrategyError if the parameters do not fit together."""

    @property
    def spec(self) -> str:
        """Canonical spec: name, then every parameter in definition order."""
        params = ",".join(f"{k}={format_number(v)}" for k, v in self.params.items())
        return f"{self.name}:{params}" if params else self.name

    @property
    @abstractmethod
    def min_bars(self) -> int:
        """Bars needed before a decision is possible."""

    def _settle_bars(self) -> int:
        """Extra bars a recursive average needs to forget its seed; 0 when none is used."""
        return 0

    @property
    def fetch_bars(self) -> int:
        """Recommended number of bars to fetch for a live decision (at most MAX_LOOKBACK)."""
        return min(MAX_LOOKBACK, self.min_bars + self._settle_bars())

    def _lines(self, close: np.ndarray) -> dict[str, np.ndarray]:
        """Indicator series by name over the closes; a strategy reading more than closes overrides series()."""
        raise NotImplementedError(f"{type(self).__name__} defines neither series() nor _lines()")

    def _events(self, lines: dict[str, np.ndarray], close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Masks (buy, sell) over the bars of lines (close gives the price scale)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither _signals() nor _events()")

    def _signals(self, candles: Candles | np.ndarray, lines: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Masks (buy, sell) over the bars of CANDLES, given their series LINES."""
        return self._events(lines, closes(candles))

    @abstractmethod
    def _reason(self, kind: SignalType) -> str:
        """Human text for a decision of this kind."""

    def _decision(self, lines: dict[str, np.ndarray], index: int, kind: SignalType) -> Decision:
        """Decision of this kind at bar index, with the values of lines there."""
        values = {key: _rounded(line[index]) for key, line in lines.items()}
        return Decision(index, kind, self._reason(kind), values)

    def series(self, candles: Candles | np.ndarray) -> dict[str, np.ndarray]:
        """Indicator series by name over CANDLES (a Candles, or an array of closes), NaN where undefined.

        These are the lines a chart draws and the keys of Decision.indicators.
        """
        return self._lines(closes(candles))

    def panes(self) -> dict[str, str]:
        """Where a chart draws each series: "price" over the candles, else the label of a pane below them.

        Series sharing a label share a pane. By default all of a strategy's series share one pane named by its spec.
        """
        return dict.fromkeys(self.series(flat_candles(max(self.min_bars, 2))), self.spec)

    def decisions(
        self, candles: Candles | np.ndarray, start: int = 0, series: dict[str, np.ndarray] | None = None
    ) -> list[Decision]:
        """Every decision at bars start.. of CANDLES (a Candles, or an array of closes), oldest first.

        Indicators still use all bars. SERIES, when the caller already has them, are `self.series(candles)`.
        """
        lines = self.series(candles) if series is None else series
        buy, sell = self._signals(candles, lines)
        fired = np.flatnonzero(buy | sell)
        return [
            self._decision(lines, i, SignalType.BUY if buy[i] else SignalType.SELL)
            for i in fired[fired >= start].tolist()
        ]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"
