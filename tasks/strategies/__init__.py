"""Indicators and trading strategies: pure functions of closing prices, no I/O."""

from .base import Decision, Strategy, StrategyError, register
from .crosses import EmaCross, MacdCross, RsiBands, SmaCross
from .spec import parse_strategies, parse_strategy

__all__ = [
    "Decision",
    "Strategy",
    "StrategyError",
    "register",
    "SmaCross",
    "EmaCross",
    "MacdCross",
    "RsiBands",
    "parse_strategies",
    "parse_strategy",
]
