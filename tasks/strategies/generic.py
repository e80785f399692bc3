"""Generic specs over any TA-Lib function: `cross:fast=<A>,slow=<B>` and `level:of=<A>,lower=L,upper=U`."""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.signal_schema import SignalType
from tasks.market.candles import Candles

from .base import NUMBER, Strategy, StrategyError, closes, crossings, format_number, level_crossings
from .operands import Operand, needs_output, parse_operand


def split_args(text: str) -> list[str]:
    """TEXT split at the commas outside parentheses: `fast=EMA(9),slow=BBANDS(20,2)` -> two items."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise StrategyError(f"a ')' without its '(' in {text.strip()!r}")
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise StrategyError(f"a '(' without its ')' in {text.strip()!r}")
    return [item for item in [*items, text[start:]] if item.strip()]


def key_values(text: str, keys: tuple[str, ...] | None, owner: str = "") -> dict[str, str]:
    """The key=value items of TEXT (commas inside parentheses kept), keys lower case, none given twice.

    With KEYS, every key must be one of them (OWNER names whose parameters they are in the error).
    """
    given: dict[str, str] = {}
    for item in split_args(text):
        key, equals, value = (part.strip() for part in item.partition("="))
        key = key.lower()
        if not equals or not key:
            raise StrategyError(f"expected key=value, got {item.strip()!r}")
        if keys is not None and key not in keys:
            where = f" for {owner}" if owner else ""
            raise StrategyError(f"unknown parameter {key!r}{where}; valid: {', '.join(keys)}")
        if key in given:
            raise StrategyError(f"parameter {key!r} given twice")
        given[key] = value
    return given


def named_args(text: str, keys: tuple[str, ...]) -> dict[str, str]:
    """The key=value items of TEXT, every one of KEYS given exactly once."""
    given = key_values(text, keys)
    missing = [key for key in keys if key not in given]
    if missing:
        raise StrategyError(f"missing {', '.join(missing)}; expected {', '.join(f'{k}=…' for k in keys)}")
    return given


class _OperandStrategy(Strategy):
    """A strategy over TA-Lib operands: warm-up, series and panes from them."""

    operands: tuple[Operand, ...]
    defaults = {}

    def __init__(self, *operands: Operand) -> None:
        """Bind the operands; raise StrategyError if they cannot be compared or need too many bars."""
        for operand in operands:
            needs_output(operand)
        if len({o.label for o in operands}) < len(operands):
            raise StrategyError(f"{operands[0].label} is compared with itself; name two different series")
        self.operands = operands
        self.params = {}
        self._check_fits()

    @property
    def min_bars(self) -> int:
        # The first value is at bar `lookback`; a cross needs it and the bar before defined.
        return max(o.lookback for o in self.operands) + 2

    def _settle_bars(self) -> int:
        return max(o.settle for o in self.operands)

    def series(self, candles: Candles | np.ndarray) -> dict[str, np.ndarray]:
        computed: dict[str, Any] = {}
        return {o.label: o.compute(candles, computed) for o in self.operands}

    def panes(self) -> dict[str, str]:
        return {o.label: o.pane for o in self.operands}


class Cross(_OperandStrategy):
    """BUY when series fast crosses above series slow, SELL when it crosses below."""

    name = "cross"

    @classmethod
    def parse(cls, args: str) -> Cross:
        """`fast=EMA(9),slow=SMA(50)` -> Cross."""
        given = named_args(args, ("fast", "slow"))
        return cls(parse_operand(given["fast"]), parse_operand(given["slow"]))

    @property
    def spec(self) -> str:
        fast, slow = self.operands
        return f"cross:fast={fast.label},slow={slow.label}"

    def _signals(self, candles: Candles | np.ndarray, lines: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        a, b = (lines[o.label] for o in self.operands)
        # Ties are judged against the larger of the price and the two series (oscillators sit near 0).
        scale = np.fmax(np.abs(closes(candles)), np.fmax(np.abs(a), np.abs(b)))
        return crossings(a - b, scale)

    def _reason(self, kind: SignalType) -> str:
        fast, slow = self.operands
        return f"{fast.label} crossed {'above' if kind == SignalType.BUY else 'below'} {slow.label}"


class Level(_OperandStrategy):
    """BUY when series `of` crosses up through lower, SELL when it crosses down through upper."""

    name = "level"

    def __init__(self, of: Operand, lower: float, upper: float) -> None:
        """Bind the series and its levels; lower must be below upper."""
        if not lower < upper:
            raise StrategyError(f"lower ({format_number(lower)}) must be less than upper ({format_number(upper)})")
        self.lower, self.upper = lower, upper
        super().__init__(of)

    @classmethod
    def parse(cls, args: str) -> Level:
        """`of=RSI(14),lower=30,upper=70` -> Level."""
        given = named_args(args, ("of", "lower", "upper"))
        levels = []
        for key in ("lower", "upper"):
            if not NUMBER.fullmatch(given[key]):
                raise StrategyError(f"{key}={given[key]!r} is not a number")
            levels.append(float(given[key]))
        return cls(parse_operand(given["of"]), *levels)

    @property
    def spec(self) -> str:
        return f"level:of={self.operands[0].label},lower={format_number(self.lower)},upper={format_number(self.upper)}"

    def _signals(self, candles: Candles | np.ndarray, lines: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return level_crossings(lines[self.operands[0].label], self.lower, self.upper)

    def _reason(self, kind: SignalType) -> str:
        label = self.operands[0].label
        if kind == SignalType.BUY:
            return f"{label} crossed up through {format_number(self.lower)}"
        return f"{label} crossed down through {format_number(self.upper)}"
