"""Market sources: closed candles from any ccxt exchange, Binance, a simulated feed or a CSV file."""

from __future__ import annotations

from backend.settings import MarketSourceSpec
from tasks.market.base import MarketDataError, MarketSource, UnknownMarket
from tasks.market.binance import BINANCE_API_URL, BinanceSource, build_session
from tasks.market.candles import Candles, timeframe_ms
from tasks.market.csv_replay import CsvSource
from tasks.market.fetch import fetch_each, fetch_many
from tasks.market.simulated import SimulatedSource

__all__ = [
    "BinanceSource",
    "Candles",
    "CsvSource",
    "MarketDataError",
    "MarketSource",
    "SimulatedSource",
    "UnknownMarket",
    "build_session",
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
    # Short timeouts: with retries, a hanging exchange must not eat a whole scan interval.
    if spec.kind == "binance":
        return BinanceSource(exchange_api_url or BINANCE_API_URL, read_timeout=4)
    from tasks.market.exchange import CcxtSource  # ccxt takes ~0.3 s to import: only the processes that scan pay

    return CcxtSource(spec.exchange, exchange_api_url, timeout_s=4)
