"""Market sources: closed candles from Binance, a simulated feed or a CSV file, behind one interface."""

from __future__ import annotations

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


def make_source(settings_market_source: str, binance_api_url: str) -> MarketSource:
    """The source named by MARKET_SOURCE: "binance", "simulated" or "csv:PATH" (replayed bar by bar)."""
    if settings_market_source == "binance":
        # Short read timeout: with retries, a hanging exchange must not eat a whole scan interval.
        return BinanceSource(binance_api_url, read_timeout=4)
    if settings_market_source == "simulated":
        return SimulatedSource()
    if settings_market_source.startswith("csv:") and settings_market_source[4:]:
        return CsvSource(settings_market_source[4:], replay=True)
    raise ValueError(f"market source {settings_market_source!r} is unknown; use binance, simulated or csv:PATH")
