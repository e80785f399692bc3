"""Fixtures for the market sources: a real Binance-compatible server on loopback."""

import pytest

from tests.exchange_server import ExchangeServer

NOW_MS = 1_764_000_030_000  # 30 s into the 1m bar that opened at 1_764_000_000_000


@pytest.fixture
def exchange():
    """A running exchange server whose clock is frozen at NOW_MS."""
    with ExchangeServer() as server:
        server.now_ms = NOW_MS
        yield server
