"""`python -m tasks.backtest --csv PATH --strategy SPEC … [--timeframe TF]`: the signals the strategies would fire."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.outcomes import Tally, stats_entry, stats_of
from backend.settings import TIMEFRAMES, ConfigError, Settings, parse_horizons
from backend.signal_schema import Signal
from tasks.market import Candles, CsvSource, MarketDataError, timeframe_ms
from tasks.scanner import make_signal
from tasks.strategies import Strategy, StrategyError, parse_strategies

WEEK_MS = 604_800_000
# Weekly bars open on Monday 00:00 UTC, as exchanges' do; the epoch began on a Thursday.
MONDAY_OFFSET_MS = 4 * 86_400_000


def timeframe_of(open_times: np.ndarray) -> str:
    """The timeframe label of bars spaced like OPEN_TIMES (e.g. "1m"), else "<seconds>s"."""
    if len(open_times) < 2:
        return "1m"
    step = int(np.min(np.diff(open_times)))
    for label in TIMEFRAMES:
        if timeframe_ms(label) == step:
            return label
    return f"{step // 1000}s"


def resample(candles: Candles, step_ms: int, timeframe: str) -> Candles:
    """CANDLES (bars STEP_MS apart) as bars of TIMEFRAME: open first, high max, low min, close last, volume sum.

    Only complete bars are kept: a TIMEFRAME bar missing any of its source bars is dropped.
    """
    bar_ms = timeframe_ms(timeframe)
    if bar_ms % step_ms:
        raise ValueError(
            f"--timeframe {timeframe} is not a whole multiple of the file's {timeframe_of(np.array([0, step_ms]))} "
            "bars; pick a multiple of them"
        )
    offset = MONDAY_OFFSET_MS if bar_ms % WEEK_MS == 0 else 0
    bucket = (candles.open_time - offset) // bar_ms * bar_ms + offset
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    counts = np.diff(np.r_[starts, len(bucket)])
    complete = counts == bar_ms // step_ms
    ends = starts + counts - 1
    return Candles(
        open_time=bucket[starts][complete],
        open=candles.open[starts][complete],
        high=np.maximum.reduceat(candles.high, starts)[complete],
        low=np.minimum.reduceat(candles.low, starts)[complete],
        close=candles.close[ends][complete],
        volume=np.add.reduceat(candles.volume, starts)[complete],
        close_time=bucket[starts][complete] + bar_ms - 1,
    )


@dataclass(frozen=True)
class Backtest:
    """What a backtest ran on and what it found: the bars, their timeframe, the strategies, the signals in bar order."""

    candles: Candles
    timeframe: str
    strategies: list[Strategy]
    signals: list[Signal]


def run_backtest(path: str, specs: list[str], symbol: str, timeframe: str | None = None) -> Backtest:
    """Run SPECS over the file's bars (resampled to TIMEFRAME when given) as the live scan would have."""
    strategies = parse_strategies(";".join(specs))
    candles = CsvSource(path).all(symbol)
    own = timeframe_of(candles.open_time)
    if timeframe and timeframe != own and len(candles) >= 2:
        candles = resample(candles, int(np.min(np.diff(candles.open_time))), timeframe)
    timeframe = timeframe or own
    fired = []
    for order, strategy in enumerate(strategies):
        for decision in strategy.decisions(candles):
            fired.append((decision.index, order, make_signal(symbol, timeframe, strategy, decision, candles, "csv")))
    signals = [signal for _index, _order, signal in sorted(fired, key=lambda item: item[:2])]
    return Backtest(candles, timeframe, strategies, signals)


def backtest(path: str, specs: list[str], symbol: str, timeframe: str | None = None) -> list[Signal]:
    """The signals, in bar order, that the live scan would have published over the file."""
    return run_backtest(path, specs, symbol, timeframe).signals


def outcome_stats(run: Backtest, horizons: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One stats entry per strategy of RUN, in the order given, scored as the live scan scores them."""
    horizons = horizons or Settings.from_env().outcome_horizons
    found = stats_of(run.signals, run.candles.open_time.tolist(), run.candles.close.tolist(), horizons)
    entries = []
    for strategy in run.strategies:
        count, tallies = found.get(strategy.spec, (0, {}))
        entries.append(stats_entry(strategy.spec, count, {h: tallies.get(h) or Tally() for h in horizons}))
    return entries


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, print one JSON object per signal."""
    parser = argparse.ArgumentParser(prog="python -m tasks.backtest", description=__doc__)
    parser.add_argument("--csv", required=True, help="OHLCV CSV file with a header row")
    parser.add_argument(
        "--strategy",
        action="append",
        required=True,
        help="strategy spec, e.g. sma_cross:fast=9,slow=21, cross:fast=EMA(9),slow=SMA(50), py:mymodule.MyClass",
    )
    parser.add_argument("--symbol", default="BTCUSDT", help="symbol to name in the signals (and to pick from the file)")
    parser.add_argument(
        "--timeframe", help="resample the file's bars to this timeframe (a multiple of them), e.g. 15m; default: theirs"
    )
    parser.add_argument("--stats", action="store_true", help="print each strategy's signal outcomes instead")
    parser.add_argument("--horizons", help="outcome horizons in bars, e.g. 1,5,20 (default: OUTCOME_HORIZONS)")
    args = parser.parse_args(argv)
    try:
        if args.timeframe:
            timeframe_ms(args.timeframe)
        run = run_backtest(args.csv, args.strategy, args.symbol.upper(), args.timeframe)
        if args.stats:
            horizons = parse_horizons(args.horizons, "--horizons") if args.horizons else None
            for line in outcome_stats(run, horizons):
                print(json.dumps(line))
            return 0
        signals = run.signals
    except (StrategyError, MarketDataError, OSError, ValueError, ConfigError) as exc:
        print(f"backtest: {exc}", file=sys.stderr)
        return 2
    for signal in signals:
        print(json.dumps(signal))
    return 0


if __name__ == "__main__":
    sys.exit(main())
