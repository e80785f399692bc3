"""The interface every market source implements, and its one error type."""

from __future__ import annotations

import abc
from collections.abc import Iterable

from tasks.market.candles import Candles


class MarketDataError(Exception):
    """Market data could not be fetched or was invalid; the message says what, where and how to fix it."""


class UnknownMarket(MarketDataError):
    """A configured exchange, symbol or timeframe is not offered: a configuration error, not a passing fault."""


class MarketSource(abc.ABC):
    """A feed of closed candles for any symbol and timeframe."""

    #: The signal's `source` field: "binance", "simulated", "csv".
    name: str

    @abc.abstractmethod
    def fetch(self, symbol: str, timeframe: str, limit: int, now_ms: int | None = None) -> Candles:
        """Up to `limit` most recent bars closed at `now_ms` (default: now), oldest first.

        Raise MarketDataError rather than return partial or invalid data.
        """

    def check(self, symbols: Iterable[str], timeframes: Iterable[str]) -> None:
        """Raise MarketDataError naming what the source does not offer; sources that cannot tell accept all."""

    def close(self) -> None:
        """Release network resources, if any."""


def check_limit(limit: int, maximum: int) -> None:
    """Raise ValueError unless 1 <= limit <= maximum."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ValueError(f"limit must be an integer from 1 to {maximum}, got {limit!r}")
