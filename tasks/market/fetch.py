"""Fetching many symbols at once over a bounded thread pool."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tasks.market.base import MarketDataError, MarketSource
from tasks.market.candles import Candles


def fetch_many(
    source: MarketSource,
    symbols: list[str] | tuple[str, ...],
    timeframe: str,
    limit: int,
    max_workers: int = 32,
    now_ms: int | None = None,
) -> dict[str, Candles | MarketDataError]:
    """Fetch every symbol concurrently; each maps to its Candles or the MarketDataError it raised.

    Other exceptions (bugs, bad arguments) propagate. Keep max_workers at or below the source's
    connection pool size (32 for BinanceSource) so no thread waits for a connection.
    """
    unique = list(dict.fromkeys(symbols))
    if not unique:
        return {}

    def one(symbol: str) -> Candles | MarketDataError:
        try:
            return source.fetch(symbol, timeframe, limit, now_ms)
        except MarketDataError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(max_workers, len(unique)), thread_name_prefix="market-fetch") as pool:
        return dict(zip(unique, pool.map(one, unique)))
