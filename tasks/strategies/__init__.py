"""Indicators (TA-Lib) and trading strategies: pure functions of closed bars, no I/O."""

from .base import Decision, Strategy, StrategyError, register
from .crosses import EmaCross, MacdCross, RsiBands, SmaCross
from .custom import CandleStrategy
from .generic import Cross, Level
from .spec import parse_strategies, parse_strategy

__all__ = [
    "CandleStrategy",
    "Cross",
    "Decision",
    "Level",
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
