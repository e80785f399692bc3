"""Market sources: closed candles from any ccxt exchange (Binance by default), a simulated feed or a CSV file."""

from __future__ import annotations

from backend.settings import MarketSourceSpec
from tasks.market.base import MarketDataError, MarketSource, UnknownMarket
from tasks.market.candles import Candles, timeframe_ms
from tasks.market.csv_replay import CsvSource
from tasks.market.fetch import fetch_each, fetch_many
from tasks.market.simulated import SimulatedSource

__all__ = [
    "Candles",
    "CsvSource",
    "MarketDataError",
    "MarketSource",
    "SimulatedSource",
    "UnknownMarket",
    "fetch_each",
    "fetch_many",
    "make_source",
    "timeframe_ms",
]


def make_source(spec: MarketSourceSpec, exchange_api_url: str = "") -> MarketSource:
    """The source MARKET_SOURCE names (EXCHANGE_API_URL replacing the exchange's host); csv is replayed bar by bar."""
    if spec.kind == "csv":
        return CsvSource(spec.path, replay=True)
    if spec.kind == "simulated":
        return SimulatedSource()
    from tasks.market.exchange import CcxtSource  # ccxt takes ~0.4 s to import: only the processes that scan pay

    # `binance` is ccxt's binance (docs/benchmarks.md: as fast as the hand-written client it replaced).
    # Short timeouts: with retries, a hanging exchange must not eat a whole scan interval.
    return CcxtSource(spec.exchange or "binance", exchange_api_url, timeout_s=4)
