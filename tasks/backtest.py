"""`python -m tasks.backtest --csv PATH --strategy SPEC …`: every signal the strategies would have fired."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from backend.settings import TIMEFRAMES
from tasks.market import CsvSource, MarketDataError, timeframe_ms
from tasks.scanner import make_signal
from tasks.strategies import StrategyError, parse_strategies


def timeframe_of(open_times: np.ndarray) -> str:
    """The timeframe label of bars spaced like OPEN_TIMES (e.g. "1m"), else "<seconds>s"."""
    if len(open_times) < 2:
        return "1m"
    step = int(np.min(np.diff(open_times)))
    for label in TIMEFRAMES:
        if timeframe_ms(label) == step:
            return label
    return f"{step // 1000}s"


def backtest(path: str, specs: list[str], symbol: str) -> list[dict]:
    """The signals, in bar order, that the live scan would have published over the file."""
    strategies = parse_strategies(";".join(specs))
    candles = CsvSource(path).all(symbol)
    timeframe = timeframe_of(candles.open_time)
    fired = []
    for order, strategy in enumerate(strategies):
        for decision in strategy.decisions(candles):
            fired.append((decision.index, order, make_signal(symbol, timeframe, strategy, decision, candles, "csv")))
    return [signal for _index, _order, signal in sorted(fired, key=lambda item: item[:2])]


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, print one JSON object per signal."""
    parser = argparse.ArgumentParser(prog="python -m tasks.backtest", description=__doc__)
    parser.add_argument("--csv", required=True, help="OHLCV CSV file with a header row")
    parser.add_argument(
        "--strategy", action="append", required=True, help="strategy spec, e.g. sma_cross:fast=9,slow=21"
    )
    parser.add_argument("--symbol", default="BTCUSDT", help="symbol to name in the signals (and to pick from the file)")
    args = parser.parse_args(argv)
    try:
        signals = backtest(args.csv, args.strategy, args.symbol.upper())
    except (StrategyError, MarketDataError, OSError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    for signal in signals:
        print(json.dumps(signal))
    return 0


if __name__ == "__main__":
    sys.exit(main())
