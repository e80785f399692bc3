"""Fetching many (symbol, timeframe) series at once over a bounded thread pool."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed

from tasks.market.base import MarketDataError, MarketSource
from tasks.market.candles import Candles


def fetch_each(
    source: MarketSource,
    series: Iterable[tuple[str, str]],
    limit: int,
    max_workers: int = 32,
    now_ms: int | None = None,
) -> Iterator[tuple[tuple[str, str], Candles | MarketDataError]]:
    """Fetch every (symbol, timeframe) concurrently, yielding each with its Candles or MarketDataError as it arrives.

    The caller works on one series while the others are on the wire. Other exceptions (bugs, bad arguments)
    propagate.
    """
    unique = list(dict.fromkeys(series))
    if not unique:
        return

    def one(key: tuple[str, str]) -> tuple[tuple[str, str], Candles | MarketDataError]:
        try:
            return key, source.fetch(key[0], key[1], limit, now_ms)
        except MarketDataError as exc:
            return key, exc

    with ThreadPoolExecutor(max_workers=min(max_workers, len(unique)), thread_name_prefix="market-fetch") as pool:
        for future in as_completed([pool.submit(one, key) for key in unique]):
            yield future.result()


def fetch_many(
    source: MarketSource,
    series: Iterable[tuple[str, str]],
    limit: int,
    max_workers: int = 32,
    now_ms: int | None = None,
) -> dict[tuple[str, str], Candles | MarketDataError]:
    """fetch_each collected: each (symbol, timeframe), in the order given, to its Candles or MarketDataError."""
    unique = list(dict.fromkeys(series))
    results = dict(fetch_each(source, unique, limit, max_workers, now_ms))
    return {key: results[key] for key in unique}
