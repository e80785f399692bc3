"""OHLCV CSV files for tests and benches that replay a market: flat, then a wave that makes averages cross."""

from __future__ import annotations

import math
from pathlib import Path

START_S = 1_700_000_000  # open time of the first bar, epoch seconds
STEP_S = 60


def wave_closes(flat: int, waving: int, amplitude: float = 10.0, period: float = 7.0) -> list[float]:
    """FLAT bars at 100 (no average crosses there), then WAVING bars of a sine around 100."""
    return [100.0] * flat + [100.0 + amplitude * math.sin(k / period) for k in range(1, waving + 1)]


def write_bars_csv(path: Path, closes: list[float], start_s: int = START_S) -> Path:
    """A CSV of 1-minute bars with these closes (high/low ±1, volume = bar number) from START_S; return PATH."""
    lines = ["time,open,high,low,close,volume"]
    previous = closes[0]
    for i, close in enumerate(closes):
        lines.append(
            f"{start_s + STEP_S * i},{previous},{max(previous, close) + 1},{min(previous, close) - 1},{close},{i}"
        )
        previous = close
    path.write_text("\n".join(lines) + "\n")
    return path


def replay(path, publisher, client, specs: str, symbols=("BTCUSDT",), max_bars=None, scans=None, horizons=(1, 5, 20)):
    """Scan the CSV bar by bar with the real scanner and keeper until its end (or SCANS times), as a worker on
    MARKET_SOURCE=csv:PATH does; return the scanner."""
    from tasks.chart_keeper import ChartKeeper
    from tasks.market import CsvSource
    from tasks.scanner import MarketScanner
    from tasks.strategies import parse_strategies

    strategies = parse_strategies(specs)
    source = CsvSource(path, replay=True)
    keeper = ChartKeeper(client, strategies, symbols, ["1m"], horizons, "quantum_signals", scan_source=source.name)
    if max_bars is not None:
        keeper.max_bars = max_bars
    scanner = MarketScanner(source, strategies, publisher, "1m", keeper=keeper)
    for _ in range(scans or len(source.all()) - scanner.lookback + 2):
        scan(scanner, symbols)
    return scanner


def scan(scanner, symbols=("BTCUSDT",), now_ms: int | None = None) -> None:
    """One scan (at NOW_MS, the clock's time if None), then its keeper's queued writes made (a worker's keeper
    writes them within milliseconds)."""
    scanner.scan(list(symbols), now_ms)
    scanner.keeper.flush()


def open_ms(index: int, start_s: int = START_S) -> int:
    """Open time in ms of bar INDEX of such a file."""
    return (start_s + STEP_S * index) * 1000


def start_now(index: int) -> int:
    """The START_S of a file whose bar INDEX is the one open now: a signal on it is on time (not hindsight)."""
    import time

    return int(time.time()) // STEP_S * STEP_S - STEP_S * index
