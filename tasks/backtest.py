"""`python -m tasks.backtest --csv PATH --strategy SPEC …`: every signal the strategies would have fired."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from backend.outcomes import Tally, stats_entry, stats_of
from backend.settings import TIMEFRAMES, ConfigError, Settings, parse_horizons
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


def outcome_stats(path: str, specs: list[str], symbol: str, signals: list[dict], horizons=None) -> list[dict]:
    """One stats entry per strategy, in the order given, scored as the live scan scores them."""
    horizons = horizons or Settings.from_env().outcome_horizons
    candles = CsvSource(path).all(symbol)
    found = stats_of(signals, candles.open_time.tolist(), candles.close.tolist(), horizons)
    entries = []
    for strategy in parse_strategies(";".join(specs)):
        count, tallies = found.get(strategy.spec, (0, {}))
        entries.append(stats_entry(strategy.spec, count, {h: tallies.get(h) or Tally() for h in horizons}))
    return entries


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, print one JSON object per signal."""
    parser = argparse.ArgumentParser(prog="python -m tasks.backtest", description=__doc__)
    parser.add_argument("--csv", required=True, help="OHLCV CSV file with a header row")
    parser.add_argument(
        "--strategy", action="append", required=True, help="strategy spec, e.g. sma_cross:fast=9,slow=21"
    )
    parser.add_argument("--symbol", default="BTCUSDT", help="symbol to name in the signals (and to pick from the file)")
    parser.add_argument("--stats", action="store_true", help="print each strategy's signal outcomes instead")
    parser.add_argument("--horizons", help="outcome horizons in bars, e.g. 1,5,20 (default: OUTCOME_HORIZONS)")
    args = parser.parse_args(argv)
    try:
        signals = backtest(args.csv, args.strategy, args.symbol.upper())
        if args.stats:
            horizons = parse_horizons(args.horizons, "--horizons") if args.horizons else None
            for line in outcome_stats(args.csv, args.strategy, args.symbol.upper(), signals, horizons):
                print(json.dumps(line))
            return 0
    except (StrategyError, MarketDataError, OSError, ConfigError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    for signal in signals:
        print(json.dumps(signal))
    return 0


if __name__ == "__main__":
    sys.exit(main())
