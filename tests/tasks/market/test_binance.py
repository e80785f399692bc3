"""BinanceSource against a real Binance-compatible server on loopback."""

import socket
import time

import numpy as np
import pytest

from tasks.market import BinanceSource, Candles, MarketDataError, build_session

CLOSES = [100.0 + i for i in range(30)]  # the server adds an open bar closing at 129 * 1.01


def quick_source(url, read_timeout=2.0):
    """A source with one retry, so failing tests end quickly."""
    return BinanceSource(url, session=build_session(retries=1), read_timeout=read_timeout)


def test_returns_the_last_closed_bars_oldest_first(exchange):
    exchange.set_series("BTCUSDT", CLOSES)

    candles = BinanceSource(exchange.url).fetch("BTCUSDT", "1m", 10, now_ms=exchange.now_ms)

    assert isinstance(candles, Candles) and len(candles) == 10
    assert candles.close.tolist() == CLOSES[-10:]
    assert candles.open.tolist() == CLOSES[-11:-1]
    assert np.all(candles.high >= np.maximum(candles.open, candles.close))
    assert np.all(candles.low <= np.minimum(candles.open, candles.close))
    assert np.all(candles.volume > 0)
    open_bar_time = exchange.now_ms // 60_000 * 60_000
    assert candles.open_time.tolist() == [open_bar_time - 60_000 * (10 - i) for i in range(10)]
    assert candles.close_time.tolist() == (candles.open_time + 59_999).tolist()
    assert candles.open_time.dtype == np.int64 and candles.close.dtype == np.float64


def test_drops_the_open_bar_by_its_close_time(exchange):
    exchange.set_series("BTCUSDT", CLOSES)
    source = BinanceSource(exchange.url)
    open_bar_close_time = exchange.now_ms // 60_000 * 60_000 + 59_999

    at_close_time = source.fetch("BTCUSDT", "1m", 5, now_ms=open_bar_close_time)
    just_after = source.fetch("BTCUSDT", "1m", 5, now_ms=open_bar_close_time + 1)

    assert at_close_time.close.tolist() == CLOSES[-5:]
    assert just_after.close[-1] == pytest.approx(CLOSES[-1] * 1.01)


def test_a_short_history_returns_fewer_bars(exchange):
    exchange.set_series("NEWUSDT", [5.0, 6.0])

    candles = BinanceSource(exchange.url).fetch("NEWUSDT", "1m", 100, now_ms=exchange.now_ms)

    assert candles.close.tolist() == [5.0, 6.0]


def test_a_transient_500_is_retried(exchange):
    exchange.set_series("BTCUSDT", CLOSES)
    exchange.set_fault("http_500", times=2)

    candles = BinanceSource(exchange.url).fetch("BTCUSDT", "1m", 3, now_ms=exchange.now_ms)

    assert candles.close.tolist() == CLOSES[-3:]
    assert exchange.request_count("BTCUSDT") == 3


def test_a_persistent_500_is_an_error(exchange):
    exchange.set_fault("http_500")

    with pytest.raises(MarketDataError, match=r"HTTP 500 .*unknown error") as error:
        quick_source(exchange.url).fetch("BTCUSDT", "1m", 3)

    assert "/api/v3/klines?symbol=BTCUSDT" in str(error.value)
    assert exchange.request_count("BTCUSDT") == 2


@pytest.mark.parametrize(
    "mode, message",
    [
        ("malformed_json", "not JSON"),
        ("empty", "no klines"),
        ("not_a_list", "expected a JSON list"),
        ("short_rows", "kline 0 is not a list"),
        ("string_times", "openTime must be an integer"),
        ("nan_price", "close is not finite"),
        ("negative_price", "non-positive price"),
    ],
)
def test_a_bad_payload_is_an_error(exchange, mode, message):
    exchange.set_fault(mode)

    with pytest.raises(MarketDataError, match=message) as error:
        quick_source(exchange.url).fetch("ETHUSDT", "1m", 3)

    assert "symbol=ETHUSDT" in str(error.value)
    assert exchange.request_count("ETHUSDT") == 1  # a 200 with bad data is not retried


def test_a_429_waits_for_retry_after_then_succeeds(exchange):
    exchange.set_series("BTCUSDT", CLOSES)
    exchange.set_fault("rate_limit_429", retry_after=1, times=1)

    started = time.monotonic()
    candles = BinanceSource(exchange.url).fetch("BTCUSDT", "1m", 3, now_ms=exchange.now_ms)

    assert time.monotonic() - started >= 1.0
    assert candles.close.tolist() == CLOSES[-3:]
    assert exchange.request_count("BTCUSDT") == 2


def test_a_persistent_429_says_rate_limited_and_retry_after(exchange):
    exchange.set_fault("rate_limit_429", retry_after=1)

    started = time.monotonic()
    with pytest.raises(MarketDataError, match=r"rate-limited \(HTTP 429, Retry-After: 1 s\)"):
        quick_source(exchange.url).fetch("BTCUSDT", "1m", 3)

    assert time.monotonic() - started >= 1.0
    assert exchange.request_count("BTCUSDT") == 2


def test_a_long_retry_after_is_reported_at_once_not_slept(exchange):
    exchange.set_fault("ban_418", retry_after=120)

    started = time.monotonic()
    with pytest.raises(MarketDataError, match=r"IP banned \(HTTP 418, Retry-After: 120 s\)"):
        BinanceSource(exchange.url).fetch("BTCUSDT", "1m", 3)

    assert time.monotonic() - started < 2.0
    assert exchange.request_count("BTCUSDT") == 1


def test_a_hanging_server_times_out(exchange):
    exchange.set_fault("hang", hang_s=10)

    started = time.monotonic()
    with pytest.raises(MarketDataError, match="timed out"):
        quick_source(exchange.url, read_timeout=0.3).fetch("BTCUSDT", "1m", 3)

    assert time.monotonic() - started < 3.0
    assert exchange.request_count("BTCUSDT") == 2


def test_a_closed_port_is_an_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(MarketDataError, match=f"127.0.0.1:{port}.*could not connect"):
        quick_source(f"http://127.0.0.1:{port}").fetch("BTCUSDT", "1m", 3)


def test_binance_errors_are_reported_with_their_message(exchange):
    source = quick_source(exchange.url)

    with pytest.raises(MarketDataError, match=r"HTTP 400 \(code -1121: Invalid symbol.\)"):
        source.fetch("not-a-symbol", "1m", 3)
    with pytest.raises(MarketDataError, match=r"HTTP 400 \(code -1120: Invalid interval.\)"):
        source.fetch("BTCUSDT", "7m", 3)


@pytest.mark.parametrize("limit", [0, 1000, -1, 2.5])
def test_a_limit_outside_1_to_999_is_refused(limit):
    with pytest.raises(ValueError, match="limit"):
        BinanceSource("http://127.0.0.1:9").fetch("BTCUSDT", "1m", limit)


def test_the_source_is_named_binance():
    assert BinanceSource("http://127.0.0.1:9").name == "binance"
