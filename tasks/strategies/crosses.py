"""The built-in strategies: moving-average, MACD and RSI crosses."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np

from backend.signal_schema import SignalType

from .base import Strategy, StrategyError, crossings, format_number, level_crossings, register, settle_bars
from .indicators import ema, macd, rsi, sma


class _LineCross(Strategy):
    """BUY when the first line crosses above the second, SELL when it crosses below."""

    fast: int
    slow: int

    def _check(self) -> None:
        if self.fast >= self.slow:
            raise StrategyError(f"fast ({self.fast}) must be less than slow ({self.slow})")

    @abstractmethod
    def _labels(self) -> tuple[str, str]:
        """Names of the two lines for the reason text."""

    def _events(self, lines: dict[str, np.ndarray], close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = list(lines.values())[:2]
        return crossings(a - b, close)

    def _reason(self, kind: SignalType) -> str:
        a, b = self._labels()
        return f"{a} crossed {'above' if kind == SignalType.BUY else 'below'} {b}"


class _AverageCross(_LineCross):
    """A fast moving average crossing a slow one."""

    defaults = {"fast": 9, "slow": 21}
    label: ClassVar[str]

    @abstractmethod
    def _average(self, close: np.ndarray, period: int) -> np.ndarray:
        """The moving average of CLOSE over PERIOD bars."""

    @property
    def min_bars(self) -> int:
        return self.slow + 1

    def _labels(self) -> tuple[str, str]:
        return f"{self.label}({self.fast})", f"{self.label}({self.slow})"

    def panes(self) -> dict[str, str]:
        return dict.fromkeys((f"{self.label.lower()}_fast", f"{self.label.lower()}_slow"), "price")

    def _lines(self, close: np.ndarray) -> dict[str, np.ndarray]:
        prefix = self.label.lower()
        return {f"{prefix}_fast": self._average(close, self.fast), f"{prefix}_slow": self._average(close, self.slow)}


@register
class SmaCross(_AverageCross):
    """SMA(fast) crossing SMA(slow)."""

    name = "sma_cross"
    label = "SMA"

    def _average(self, close: np.ndarray, period: int) -> np.ndarray:
        return sma(close, period)


@register
class EmaCross(_AverageCross):
    """EMA(fast) crossing EMA(slow)."""

    name = "ema_cross"
    label = "EMA"

    def _average(self, close: np.ndarray, period: int) -> np.ndarray:
        return ema(close, period)

    def _settle_bars(self) -> int:
        return settle_bars(2 / (self.slow + 1))


@register
class MacdCross(_LineCross):
    """The MACD line crossing its signal line."""

    name = "macd"
    defaults = {"fast": 12, "slow": 26, "signal": 9}
    min_period = 2  # TA-Lib's smallest MACD period
    signal: int

    @property
    def min_bars(self) -> int:
        return self.slow + self.signal

    def _settle_bars(self) -> int:
        return settle_bars(2 / (max(self.slow, self.signal) + 1))

    def _labels(self) -> tuple[str, str]:
        return f"MACD({self.fast},{self.slow})", f"signal({self.signal})"

    def panes(self) -> dict[str, str]:
        return dict.fromkeys(("macd", "signal", "hist"), f"MACD({self.fast},{self.slow},{self.signal})")

    def _lines(self, close: np.ndarray) -> dict[str, np.ndarray]:
        line, signal, hist = macd(close, self.fast, self.slow, self.signal)
        return {"macd": line, "signal": signal, "hist": hist}


@register
class RsiBands(Strategy):
    """BUY when RSI crosses up through lower, SELL when it crosses down through upper."""

    name = "rsi"
    defaults = {"period": 14, "lower": 30.0, "upper": 70.0}
    min_period = 2  # TA-Lib's smallest RSI period
    period: int
    lower: float
    upper: float

    def _check(self) -> None:
        if not (self.lower < 100 and self.upper < 100):
            raise StrategyError(
                f"lower and upper must lie strictly between 0 and 100, "
                f"got lower={format_number(self.lower)}, upper={format_number(self.upper)}"
            )
        if self.lower >= self.upper:
            raise StrategyError(
                f"lower ({format_number(self.lower)}) must be less than upper ({format_number(self.upper)})"
            )

    @property
    def min_bars(self) -> int:
        return self.period + 2

    def _settle_bars(self) -> int:
        return settle_bars(1 / self.period)

    def panes(self) -> dict[str, str]:
        return {"rsi": f"RSI({self.period})"}

    def _lines(self, close: np.ndarray) -> dict[str, np.ndarray]:
        return {"rsi": rsi(close, self.period)}

    def _events(self, lines: dict[str, np.ndarray], close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return level_crossings(lines["rsi"], self.lower, self.upper)

    def _reason(self, kind: SignalType) -> str:
        if kind == SignalType.BUY:
            return f"RSI({self.period}) crossed up through {format_number(self.lower)}"
        return f"RSI({self.period}) crossed down through {format_number(self.upper)}"
