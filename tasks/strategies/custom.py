"""Your own strategy: a CandleStrategy subclass on the Python path, named in a spec as `py:module.Class:key=value`."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, ClassVar, TypeGuard, cast

import numpy as np

from backend.signal_schema import SignalType
from tasks.market.candles import Candles

from .base import Decision, Strategy, StrategyError, _real, _shown


class CandleStrategy(Strategy):
    """The documented base of your own strategies (docs/strategies.md).

    Set `defaults` (an int default takes whole numbers >= min_period, a float any number), define `min_bars`
    (bars before the first decision is possible), `series(candles)` (lines by name, one value per bar, NaN where
    undefined; the keys of Decision.indicators) and `signals(candles, series)` (boolean masks buy, sell). Bar i
    may only look at bars <= i: the live scan decides on the last closed bar with what it fetched.
    """

    defaults: ClassVar[dict[str, int | float]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = f"py:{cls.__module__}.{cls.__qualname__}"
        clashes = [key for key in cls.defaults if hasattr(CandleStrategy, key)]
        if clashes:
            raise TypeError(
                f"parameter {clashes[0]!r} of {cls.__qualname__} would hide CandleStrategy.{clashes[0]}; "
                "name it differently (e.g. period)"
            )

    def _checked(self, key: str, value: object) -> int | float:
        if isinstance(self.defaults[key], int):
            return super()._checked(key, value)
        number = _real(value)
        if number is None:
            raise StrategyError(f"{key} must be a number, got {_shown(value)}")
        return number

    def _check(self) -> None:
        try:
            self.check()
        except ValueError as exc:
            raise StrategyError(str(exc)) from None

    def check(self) -> None:
        """Raise StrategyError (or ValueError) if the parameters do not fit together; called at start."""

    def series(self, candles: Candles | np.ndarray) -> dict[str, np.ndarray]:
        """The lines of this strategy over CANDLES (tasks.market.Candles), by name."""
        raise NotImplementedError(f"{type(self).__name__} must define series(candles)")

    def signals(self, candles: Candles, series: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Boolean masks (buy, sell), one value per bar of CANDLES."""
        raise NotImplementedError(f"{type(self).__name__} must define signals(candles, series)")

    def reason(self, kind: SignalType) -> str:
        """Human text for a decision of KIND; by default the class name and the type."""
        return f"{type(self).__name__} {kind.value}"

    def decisions(
        self, candles: Candles | np.ndarray, start: int = 0, series: dict[str, np.ndarray] | None = None
    ) -> list[Decision]:
        if not isinstance(candles, Candles):
            raise StrategyError(f"{self.spec} is given Candles, not an array of closes")
        return super().decisions(candles, start, series)

    def _signals(self, candles: Candles | np.ndarray, lines: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        candles = cast(Candles, candles)  # decisions() refused anything else
        buy, sell = (np.asarray(mask, dtype=bool) for mask in self.signals(candles, lines))
        if buy.shape != (len(candles),) or sell.shape != (len(candles),):
            raise StrategyError(f"{self.spec}: signals() must return two masks of {len(candles)} values")
        early = slice(0, max(self.min_bars - 1, 0))  # as for every strategy: no decision before min_bars bars
        buy[early] = sell[early] = False
        return buy, sell

    def _reason(self, kind: SignalType) -> str:
        return self.reason(kind)


def load_class(path: str) -> type[Strategy]:
    """The Strategy subclass at PATH (`package.module.Class`), imported from the Python path."""
    module_name, _, class_name = path.strip().rpartition(".")
    if not module_name or not class_name:
        raise StrategyError(f"expected py:<module path>.<ClassName>, e.g. py:mypkg.breakout.Breakout; got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StrategyError(f"cannot import module {module_name!r} ({exc}); is its folder on PYTHONPATH?") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while loading: say where and why
        raise StrategyError(f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        found = sorted(n for n, v in vars(module).items() if _is_strategy(v) and not inspect.isabstract(v))
        listed = f"; it defines {', '.join(found)}" if found else ""
        raise StrategyError(f"module {module_name!r} has no class {class_name!r}{listed}")
    if not _is_strategy(cls):
        raise StrategyError(
            f"{path} is not a subclass of tasks.strategies.CandleStrategy; derive from it (docs/strategies.md)"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise StrategyError(f"{path} does not define {missing}")
    return cls


def _is_strategy(value: object) -> TypeGuard[type[Strategy]]:
    return isinstance(value, type) and issubclass(value, Strategy)


def load_strategy(path: str, params: dict[str, float]) -> Strategy:
    """An instance of the class at PATH with PARAMS, named `py:PATH` in signals."""
    cls = load_class(path)
    strategy = cls(**params)
    strategy.name = f"py:{path.strip()}"
    return strategy
