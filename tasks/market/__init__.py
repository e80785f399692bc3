"""Market sources: closed candles from Binance, a simulated feed or a CSV file, behind one interface."""

from __future__ import annotations

from backend.settings import MarketSourceSpec
from tasks.market.base import MarketDataError, MarketSource
from tasks.market.binance import BinanceSource, build_session
from tasks.market.candles import Candles, timeframe_ms
from tasks.market.csv_replay import CsvSource
from tasks.market.fetch import fetch_many
from tasks.market.simulated import SimulatedSource

__all__ = [
    "BinanceSource",
    "Candles",
    "CsvSource",
    "MarketDataError",
    "MarketSource",
    "SimulatedSource",
    "build_session",
    "fetch_many",
    "make_source",
    "timeframe_ms",
]


def make_source(spec: MarketSourceSpec, binance_api_url: str) -> MarketSource:
    """The source MARKET_SOURCE names; a csv file is replayed bar by bar."""
    if spec.kind == "csv":
        return CsvSource(spec.path, replay=True)
    if spec.kind == "simulated":
        return SimulatedSource()
    # Short read timeout: with retries, a hanging exchange must not eat a whole scan interval.
    return BinanceSource(binance_api_url, read_timeout=4)
