"""Fetching many (symbol, timeframe) series at once over a bounded thread pool."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from tasks.market.base import MarketDataError, MarketSource
from tasks.market.candles import Candles


def fetch_many(
    source: MarketSource,
    series: Iterable[tuple[str, str]],
    limit: int,
    max_workers: int = 32,
    now_ms: int | None = None,
) -> dict[tuple[str, str], Candles | MarketDataError]:
    """Fetch every (symbol, timeframe) concurrently; each maps to its Candles or the MarketDataError it raised.

    Other exceptions (bugs, bad arguments) propagate. Keep max_workers at or below the source's
    connection pool size (32 for BinanceSource) so no thread waits for a connection.
    """
    unique = list(dict.fromkeys(series))
    if not unique:
        return {}

    def one(key: tuple[str, str]) -> Candles | MarketDataError:
        try:
            return source.fetch(key[0], key[1], limit, now_ms)
        except MarketDataError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(max_workers, len(unique)), thread_name_prefix="market-fetch") as pool:
        return dict(zip(unique, pool.map(one, unique)))
