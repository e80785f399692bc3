"""The interface every market source implements, and its one error type."""

from __future__ import annotations

import abc

from tasks.market.candles import Candles


class MarketDataError(Exception):
    """Market data could not be fetched or was invalid; the message says what, where and how to fix it."""


class MarketSource(abc.ABC):
    """A feed of closed candles for any symbol and timeframe."""

    #: The signal's `source` field: "binance", "simulated", "csv".
    name: str

    @abc.abstractmethod
    def fetch(self, symbol: str, timeframe: str, limit: int, now_ms: int | None = None) -> Candles:
        """Up to `limit` most recent bars closed at `now_ms` (default: now), oldest first.

        Raise MarketDataError rather than return partial or invalid data.
        """

    def close(self) -> None:
        """Release network resources, if any."""


def check_limit(limit: int, maximum: int) -> None:
    """Raise ValueError unless 1 <= limit <= maximum."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ValueError(f"limit must be an integer from 1 to {maximum}, got {limit!r}")
