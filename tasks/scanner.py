"""The market scan as plain code: fetch closed candles, run the strategies, publish new signals."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import redis

from backend.publisher import Publisher
from backend.signal_schema import SCANNED_PREFIX, SCANNED_TTL_S, SCHEMA_VERSION, Signal, signal_id, utc_iso
from tasks.market import Candles, MarketDataError, MarketSource, fetch_many, timeframe_ms
from tasks.strategies import Decision, Strategy
from tasks.strategies.base import MAX_LOOKBACK

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
    published: list[dict] = field(default_factory=list)
    duplicates: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class MarketScanner:
    """Runs the strategies on the last closed bar of each symbol and publishes what fired."""

    def __init__(
        self,
        source: MarketSource,
        strategies: Sequence[Strategy],
        publisher: Publisher,
        timeframe: str,
        max_workers: int = 32,
        keeper=None,
    ):
        """Bind the market source, strategies and publisher (and the KEEPER of charts and outcomes, if any)."""
        self.source = source
        self.strategies = strategies
        self.publisher = publisher
        self.timeframe = timeframe
        self.max_workers = max_workers
        self.keeper = keeper
        self.lookback = min(MAX_LOOKBACK, max(s.lookback for s in strategies) + MAX_CATCH_UP_BARS)

    def scan(self, symbols: list[str] | tuple[str, ...], now_ms: int | None = None) -> ScanReport:
        """Scan SYMBOLS once; a symbol whose data is broken is reported and skipped."""
        started = time.monotonic()
        report = ScanReport(symbols=len(symbols))
        results = fetch_many(self.source, symbols, self.timeframe, self.lookback, self.max_workers, now_ms)
        for symbol, candles in results.items():
            if isinstance(candles, MarketDataError):
                report.errors[symbol] = str(candles)
                log.warning("market data for %s unusable: %s", symbol, candles)
                continue
            if len(candles) < 2:
                continue
            for strategy in self.strategies:
                cursor_key = f"{SCANNED_PREFIX}{self.timeframe}:{strategy.spec}:{symbol}"
                first = self._first_unscanned(cursor_key, candles)
                gave_up = False
                for decision in strategy.decisions(candles, start=first):
                    signal = make_signal(symbol, self.timeframe, strategy, decision, candles, self.source.name)
                    stale_at = int(candles.close_time[-1]) / 1000 + timeframe_ms(self.timeframe) / 1000
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
                    self._set_scanned(cursor_key, candles)
            if self.keeper is not None:
                self.keeper.keep(symbol, self.timeframe, candles)
        report.seconds = time.monotonic() - started
        return report

    def _first_unscanned(self, cursor_key: str, candles: Candles) -> int:
        """Index of the first bar not evaluated yet: the last bar, or earlier ones a lost scan never got to."""
        last = len(candles) - 1
        try:
            scanned = self.publisher.client.get(cursor_key)
        except redis.RedisError:
            return last
        if scanned is None:
            return last
        after = int(np.searchsorted(candles.open_time, int(scanned), side="right"))
        return max(min(after, last), last - MAX_CATCH_UP_BARS + 1, 1)  # the last bar always: dedupe covers it

    def _set_scanned(self, cursor_key: str, candles: Candles) -> None:
        with contextlib.suppress(redis.RedisError):
            self.publisher.client.set(cursor_key, int(candles.open_time[-1]), ex=SCANNED_TTL_S)

    def publish_until_stale(self, signal: Signal, stale_at: float) -> dict | None:
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
