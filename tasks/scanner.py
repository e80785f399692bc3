"""The market scan as plain code: fetch closed candles, run the strategies, publish new signals."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import redis

from backend.publisher import Publisher
from backend.signal_schema import (
    FETCHED_PREFIX,
    SCANNED_PREFIX,
    SCANNED_TTL_S,
    SCHEMA_VERSION,
    Signal,
    signal_id,
    utc_iso,
)
from tasks.market import Candles, MarketDataError, MarketSource, fetch_each, timeframe_ms
from tasks.strategies import Decision, Strategy
from tasks.strategies.base import MAX_LOOKBACK

if TYPE_CHECKING:
    from tasks.chart_keeper import ChartKeeper

log = logging.getLogger(__name__)

# Bars closed since the symbol's previous scan are all evaluated (a scan lost with a killed worker is made up
# by the next one); at most this many, so a long outage does not flood clients with old signals.
MAX_CATCH_UP_BARS = 10


def make_signal(
    symbol: str, timeframe: str, strategy: Strategy, decision: Decision, candles: Candles, source: str
) -> Signal:
    """The signal of DECISION on bar decision.index of CANDLES, in the fields of docs/architecture.md."""
    bar_ms = int(candles.open_time[decision.index])
    return {
        "v": SCHEMA_VERSION,
        "id": signal_id(symbol, strategy.spec, timeframe, bar_ms, decision.type),
        "type": decision.type.value,
        "price": float(candles.close[decision.index]),
        "symbol": symbol,
        "timeframe": timeframe,
        "strategy": strategy.spec,
        "bar_time": utc_iso(bar_ms),
        "source": source,
        "reason": decision.reason,
        "indicators": decision.indicators,
    }


@dataclass
class ScanReport:
    """What one scan did."""

    symbols: int = 0
    published: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class MarketScanner:
    """Runs the strategies on the last closed bars of each symbol × timeframe and publishes what fired."""

    def __init__(
        self,
        source: MarketSource,
        strategies: Sequence[Strategy],
        publisher: Publisher,
        timeframes: str | Sequence[str],
        max_workers: int = 32,
        keeper: ChartKeeper | None = None,
    ) -> None:
        """Bind the market source, strategies, publisher, the timeframes (one, or several) to scan and the KEEPER.

        The keeper (tasks.chart_keeper), if any, stores each series' bars and scores earlier signals' outcomes.
        """
        self.source = source
        self.strategies = strategies
        self.publisher = publisher
        self.timeframes = (timeframes,) if isinstance(timeframes, str) else tuple(timeframes)
        self.max_workers = max_workers
        self.keeper = keeper
        self.lookback = min(MAX_LOOKBACK, max(s.fetch_bars for s in strategies) + MAX_CATCH_UP_BARS)

    def scan(self, symbols: list[str] | tuple[str, ...], now_ms: int | None = None) -> ScanReport:
        """Scan every symbol × timeframe whose next bar may have closed; broken data is reported and skipped."""
        started = time.monotonic()
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        report = ScanReport(symbols=len(symbols))
        due = self._due(symbols, now_ms)
        # Cursors are read in one round trip and written in one: a scan of 1,000 series × 4 strategies is not
        # 9,000 sequential Redis calls. Each series is evaluated as it arrives, while the others are fetched.
        cursors = self._read(self._cursor_key(s, t, strategy) for s, t in due for strategy in self.strategies)
        marks: dict[str, int] = {}
        for (symbol, timeframe), candles in fetch_each(self.source, due, self.lookback, self.max_workers, now_ms):
            if isinstance(candles, MarketDataError):
                report.errors[symbol] = "; ".join(filter(None, [report.errors.get(symbol), str(candles)]))
                log.warning("market data for %s %s unusable: %s", symbol, timeframe, candles)
                continue
            if len(candles) < 2:
                continue
            series: dict[Strategy, dict[str, np.ndarray]] = {}
            if self._evaluate(symbol, timeframe, candles, cursors, marks, report, series):
                marks[f"{FETCHED_PREFIX}{timeframe}:{symbol}"] = int(candles.open_time[-1])
            if self.keeper is not None:
                self.keeper.keep(symbol, timeframe, candles, series)
        self._write(marks)
        report.seconds = time.monotonic() - started
        return report

    def _evaluate(
        self,
        symbol: str,
        timeframe: str,
        candles: Candles,
        cursors: dict[str, int | None],
        marks: dict[str, int],
        report: ScanReport,
        series: dict[Strategy, dict[str, np.ndarray]],
    ) -> bool:
        """Run every strategy on the bars not evaluated yet and publish; False when a publish gave up.

        Each strategy's series are computed once, for its decisions and for the keeper's chart (SERIES).
        """
        done = True
        for strategy in self.strategies:
            cursor_key = self._cursor_key(symbol, timeframe, strategy)
            first = _first_unscanned(cursors.get(cursor_key), candles)
            gave_up = False
            series[strategy] = strategy.series(candles)
            for decision in strategy.decisions(candles, start=first, series=series[strategy]):
                signal = make_signal(symbol, timeframe, strategy, decision, candles, self.source.name)
                stale_at = int(candles.close_time[-1]) / 1000 + timeframe_ms(timeframe) / 1000
                try:
                    stored = self.publish_until_stale(signal, stale_at)
                except (redis.ConnectionError, redis.TimeoutError):
                    report.errors[symbol] = f"publish of {signal['id']} gave up: bar stale"
                    gave_up = True
                    continue
                if stored is None:
                    report.duplicates += 1
                else:
                    report.published.append(stored)
            if not gave_up:
                marks[cursor_key] = int(candles.open_time[-1])
            done = done and not gave_up
        return done

    @staticmethod
    def _cursor_key(symbol: str, timeframe: str, strategy: Strategy) -> str:
        return f"{SCANNED_PREFIX}{timeframe}:{strategy.spec}:{symbol}"

    def _due(self, symbols: Sequence[str], now_ms: int) -> list[tuple[str, str]]:
        """The (symbol, timeframe) pairs whose next bar may have closed since they were last fetched.

        A fresh scan (no state in Redis, or Redis unreachable) fetches every pair once; then a 1h series is
        fetched once an hour, not every SCAN_INTERVAL.
        """
        pairs = [(symbol, timeframe) for timeframe in self.timeframes for symbol in dict.fromkeys(symbols)]
        fetched = self._read(f"{FETCHED_PREFIX}{t}:{s}" for s, t in pairs)
        # The newest closed bar seen opened at `last`; the next one closes at last + 2 bars.
        return [
            (s, t)
            for s, t in pairs
            if (last := fetched.get(f"{FETCHED_PREFIX}{t}:{s}")) is None or now_ms >= last + 2 * timeframe_ms(t)
        ]

    def _read(self, keys: Iterable[str]) -> dict[str, int | None]:
        """KEYS' integer values in one MGET; none known when Redis is unreachable."""
        keys = list(keys)
        if not keys:
            return {}
        try:
            values = self.publisher.client.mget(keys)
        except redis.RedisError:
            return {}
        return {key: None if value is None else int(value) for key, value in zip(keys, values)}

    def _write(self, marks: dict[str, int]) -> None:
        """Set every mark in one round trip (a pipeline, not a transaction); lost marks only cost a re-check."""
        if not marks:
            return
        with contextlib.suppress(redis.RedisError):
            pipe = self.publisher.client.pipeline(transaction=False)
            for key, value in marks.items():
                pipe.set(key, value, ex=SCANNED_TTL_S)
            pipe.execute()

    def publish_until_stale(self, signal: Signal, stale_at: float) -> dict[str, Any] | None:
        """publish_if_new, retried while Redis is unreachable until the next bar closes (then its error is raised)."""
        backoff = 0.1
        deadline = max(stale_at, time.time() + 5)
        while True:
            try:
                return self.publisher.publish_if_new(signal)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                if time.time() + backoff > deadline:
                    log.error(
                        "gave up publishing %s: Redis unreachable until the bar went stale (%s)", signal["id"], exc
                    )
                    raise
                log.warning("publish of %s failed (%s); retrying in %.1fs", signal["id"], exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)


def _first_unscanned(scanned: int | None, candles: Candles) -> int:
    """Index of the first bar not evaluated yet: the last bar, or earlier ones a lost scan never got to."""
    last = len(candles) - 1
    if scanned is None:
        return last
    after = int(np.searchsorted(candles.open_time, scanned, side="right"))
    return max(min(after, last), last - MAX_CATCH_UP_BARS + 1, 1)  # the last bar always: dedupe covers it
