"""The series a generic spec compares: `close`, `FUNC(args…)` or `FUNC(args…).output`, computed with TA-Lib."""

from __future__ import annotations

import difflib
import math
import os
import re
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import talib
from talib import abstract

from tasks.market.candles import Candles

from .base import MAX_LOOKBACK, NUMBER, StrategyError, closes, format_number, settle_bars

PRICES = ("open", "high", "low", "close", "volume")
_OPERAND = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*))?", re.S)
# Smoothing of TA-Lib's recursive functions by family: alpha = 2/(p+1) (EMA) or 1/p (Wilder), chained k times.
_EMA_FAMILY = {"EMA": 1, "DEMA": 2, "TEMA": 3, "TRIX": 3, "T3": 6, "MACD": 1, "MACDFIX": 1, "MACDEXT": 1}
_EMA_FAMILY |= {"APO": 1, "PPO": 1, "ADOSC": 1}
_WILDER = {"RSI", "RMA", "ATR", "NATR", "CMO", "DX", "ADX", "ADXR", "PLUS_DI", "MINUS_DI", "PLUS_DM", "MINUS_DM"}
_WILDER |= {"STOCHRSI"}
# TA-Lib's MA types (matype): 1 EMA, 3 DEMA, 4 TEMA, 6 KAMA, 7 MAMA and 8 T3 remember every bar they saw.
_RECURSIVE_MATYPES = {1: 1, 3: 2, 4: 3, 6: 0, 7: 0, 8: 6}
_THREAD = threading.local()
# TA-Lib bundles stubs that leave out its abstract API.
Function: Any = abstract.Function  # type: ignore[attr-defined]


@cache
def _info(name: str) -> dict[str, Any]:
    """TA-Lib's description of function NAME (inputs, parameters, outputs, group, flags)."""
    return Function(name).info


def talib_functions() -> list[str]:
    """Every TA-Lib function name."""
    return list(talib.get_functions())  # type: ignore[no-untyped-call]  # the stubs leave it untyped


@dataclass(frozen=True)
class Operand:
    """One series of a spec: a price column, or an output of a TA-Lib function with every argument filled in."""

    function: str | None
    args: tuple[float, ...] = ()
    output: str | None = None
    price: str = "close"

    @property
    def call(self) -> str:
        """`EMA(9)`, `BBANDS(20,2,2,0)`: the function with its arguments (the price column's name for a price)."""
        if self.function is None:
            return self.price
        return f"{self.function}({','.join(format_number(a) for a in self.args)})"

    @property
    def label(self) -> str:
        """Canonical text: `close`, `EMA(9)`, `BBANDS(20,2,2,0).upperband`."""
        return self.call + (f".{self.output}" if self.output else "")

    @property
    def params(self) -> dict[str, int | float]:
        """The TA-Lib parameters by name."""
        if self.function is None:
            return {}
        return dict(zip(_info(self.function)["parameters"], self.args))

    @property
    def inputs(self) -> list[str]:
        """The price columns TA-Lib reads for this series (its default price inputs)."""
        if self.function is None:
            return [self.price]
        names: list[str] = []
        for value in _info(self.function)["input_names"].values():
            names += value if isinstance(value, list) else [value]
        return names

    @property
    def lookback(self) -> int:
        """Bars TA-Lib needs before the first value (0 for a price)."""
        if self.function is None:
            return 0
        return Function(self.function, **self.params).lookback

    @property
    def settle(self) -> int:
        """Extra bars a recursive function needs to forget where the data began (live window = whole history)."""
        if self.function is None:
            return 0
        alpha, chained = self._smoothing()
        if alpha is None:
            return 0
        return MAX_LOOKBACK if alpha == 0 else chained * settle_bars(alpha)

    def _smoothing(self) -> tuple[float | None, int]:
        """(alpha, times) of the slowest recursive smoothing inside; alpha 0 when unknown, None when none."""
        params = self.params
        periods = [v for k, v in params.items() if "period" in k and "min" not in k]
        period = max(periods, default=0)
        matypes = [_RECURSIVE_MATYPES[int(v)] for k, v in params.items() if "matype" in k and v in _RECURSIVE_MATYPES]
        if self.function in _EMA_FAMILY and period:
            return 2 / (period + 1), max([_EMA_FAMILY[self.function], *matypes])
        if self.function in _WILDER and period:
            return 1 / period, 1
        if self.function == "MAMA":
            return params["slowlimit"], 1
        if matypes:
            return (2 / (period + 1), max(matypes)) if period and min(matypes) else (0.0, 1)
        if "Function has an unstable period" in _info(self.function)["function_flags"]:
            return 0.0, 1  # recursive, rate unknown (KAMA, Hilbert transforms, …): fetch all a scan may
        return None, 0

    @property
    def pane(self) -> str:
        """Where a chart draws it: "price" for prices and TA-Lib's Overlap Studies, else a pane named by the call."""
        if self.function is None or _info(self.function)["group"] == "Overlap Studies":
            return "price" if self.price != "volume" else "volume"
        return self.call

    def compute(self, candles: Candles | np.ndarray, computed: dict[str, Any] | None = None) -> np.ndarray:
        """The series over CANDLES (a Candles, or an array of closes when only the close is read).

        COMPUTED, when given, keeps each function call's result so outputs of one call are computed once.
        """
        columns = {}
        for name in set(self.inputs):
            if name == "close":
                columns[name] = closes(candles)
            elif hasattr(candles, name):
                columns[name] = np.asarray(getattr(candles, name), dtype=np.float64)
            else:
                raise StrategyError(f"{self.label} reads {name}: give it Candles, not an array of closes")
        if self.function is None:
            return columns[self.price]
        computed = {} if computed is None else computed
        if self.call not in computed:
            n = len(next(iter(columns.values())))
            for name in PRICES:
                columns.setdefault(name, np.zeros(n))  # abstract functions check every column they might read
            computed[self.call] = self._function()(columns)
        result = computed[self.call]
        if isinstance(result, list):
            result = result[_info(self.function)["output_names"].index(self.output)]
        return np.asarray(result, dtype=np.float64)

    def _function(self) -> Any:
        """This thread's TA-Lib abstract Function for the call (one holds its inputs while it runs)."""
        functions = _THREAD.__dict__.setdefault("functions", {})
        if self.call not in functions:
            functions[self.call] = Function(self.function, **self.params)
        return functions[self.call]


def parse_operand(text: str) -> Operand:
    """Parse `close`, `ema(9)`, `BBANDS(20, 2).upperBand` into an Operand with canonical names and every argument."""
    match = _OPERAND.fullmatch(text.strip())
    if not match:
        raise StrategyError(
            f"{text.strip()!r} is not a series; expected close, FUNC(periods…) or FUNC(periods…).output, "
            "e.g. EMA(9) or BBANDS(20,2,2,0).upperband"
        )
    name, args_text, output = match.groups()
    if name.lower() in PRICES and args_text is None and output is None:
        return Operand(None, price=name.lower())
    name = name.upper()
    if name not in talib_functions():
        close = sorted(
            difflib.get_close_matches(name, talib_functions(), n=3), key=lambda f: -len(os.path.commonprefix([f, name]))
        )
        hint = f"did you mean {' or '.join(close)}?" if close else "talib.get_functions() lists them all"
        raise StrategyError(f"{name} is not a TA-Lib function (nor open, high, low, close or volume); {hint}")
    info = _info(name)
    missing = [column for column in Operand(name, tuple(info["parameters"].values())).inputs if column not in PRICES]
    if missing:
        raise StrategyError(f"{name} reads {', '.join(missing)}, which bars do not have; use another function")
    args = _arguments(name, info["parameters"], args_text or "")
    outputs = info["output_names"]
    if output is not None:
        if output.lower() not in outputs:
            raise StrategyError(f"{name} has no output {output!r}; {_outputs(name)}")
        output = output.lower() if len(outputs) > 1 else None
    operand = Operand(name, args, output)
    if operand.lookback < 0:
        defaults = ", ".join(f"{k}={format_number(v)}" for k, v in info["parameters"].items())
        raise StrategyError(f"TA-Lib refuses {operand.call}: an argument is out of range (defaults: {defaults})")
    return operand


def needs_output(operand: Operand) -> None:
    """Raise StrategyError if OPERAND names a function of several outputs without saying which."""
    if operand.function and operand.output is None and len(_info(operand.function)["output_names"]) > 1:
        first = _info(operand.function)["output_names"][0]
        raise StrategyError(
            f"{operand.label} has several outputs; name one, e.g. {operand.label}.{first} "
            f"({_outputs(operand.function)})"
        )


def _outputs(name: str) -> str:
    """`BBANDS has outputs upperband, middleband, lowerband`."""
    return f"{name} has outputs {', '.join(_info(name)['output_names'])}"


def _arguments(name: str, parameters: dict[str, Any], text: str) -> tuple[float, ...]:
    """The positional arguments of TEXT checked against TA-Lib's PARAMETERS, omitted ones at their defaults."""
    parts = [part.strip() for part in text.split(",")] if text.strip() else []
    wanted = f"{name} takes {len(parameters)} argument{'s' * (len(parameters) != 1)}" + (
        f" ({', '.join(f'{k}={format_number(v)}' for k, v in parameters.items())})" if parameters else ""
    )
    if len(parts) > len(parameters):
        raise StrategyError(f"{wanted}, got {len(parts)}")
    args = []
    for (key, default), raw in zip(parameters.items(), parts + [None] * (len(parameters) - len(parts))):
        if raw is None or raw == "":
            if raw == "":
                raise StrategyError(f"{wanted}; argument {key} is empty")
            args.append(default)
            continue
        if not NUMBER.fullmatch(raw):
            raise StrategyError(f"{name} argument {key}={raw!r} is not a number; {wanted}")
        value = float(raw)
        if isinstance(default, int):
            if not math.isfinite(value) or value != int(value):
                raise StrategyError(f"{name} argument {key} must be a whole number, got {raw}")
            value = int(value)
        args.append(value)
    return tuple(args)
