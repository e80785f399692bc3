"""CcxtSource: ccxt's binance against the real Binance-compatible loopback exchange."""

import pytest

from harness.exchange import CROSS_UP, ENDPOINTS, NOW_MS
from tasks.market import Candles, MarketDataError, UnknownMarket, fetch_many
from tasks.market.exchange import CcxtSource, WeightBudget, parse_ohlcv, rebase_urls

LAST_CLOSED_OPEN_MS = 1_764_000_000_000 - 60_000


def source(exchange, **options) -> CcxtSource:
    return CcxtSource("binance", exchange.url, **options)


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTC/USDT"])
def test_market_id_or_unified_symbol_gives_the_closed_bars_without_the_open_one(exchange, symbol):
    exchange.set_series("BTCUSDT", CROSS_UP)

    candles = source(exchange).fetch(symbol, "1m", 5, now_ms=NOW_MS)

    assert candles.close.tolist() == CROSS_UP[-5:]
    assert int(candles.open_time[-1]) == LAST_CLOSED_OPEN_MS and int(candles.close_time[-1]) < NOW_MS


def test_ccxt_binance_calls_only_the_pinned_endpoints_and_loads_markets_once(exchange):
    exchange.set_listed([f"S{i}USDT" for i in range(3)])
    market = source(exchange)

    results = fetch_many(market, [(f"S{i}USDT", tf) for i in range(3) for tf in ("1m", "1h")], 10, now_ms=NOW_MS)
    market.check(["BTCUSDT", "ETH/BTC"], ["1m", "1h"])

    assert all(isinstance(r, Candles) for r in results.values()), results
    assert exchange.paths == {"/api/v3/exchangeInfo": 1, "/api/v3/klines": 6}
    assert market._pool.qsize() == 32  # check() built the fetch threads' instances
    assert set(exchange.paths) <= set(ENDPOINTS)


def test_many_threads_each_get_their_own_symbol(exchange):
    exchange.latency_s = 0.05
    symbols = [f"S{i:03d}USDT" for i in range(100)]
    exchange.set_listed(symbols)
    for i, symbol in enumerate(symbols):
        exchange.set_series(symbol, [float(i + 1 + k) for k in range(30)])

    results = fetch_many(source(exchange), [(s, "1m") for s in symbols], 20, now_ms=NOW_MS)

    for i, symbol in enumerate(symbols):
        assert results[symbol, "1m"].close.tolist() == [float(i + 1 + k) for k in range(10, 30)]
    assert exchange.counts() == {symbol: 1 for symbol in symbols}


def test_unknown_symbols_and_timeframes_are_named_with_close_matches(exchange):
    with pytest.raises(UnknownMarket) as error:
        source(exchange).check(["BTCUSDT", "BTCUSD", "ETH/USDC"], ["1m", "10s"])

    message = str(error.value)
    assert "timeframe '10s' is not offered by binance; it offers 1s, 1m" in message
    assert "binance lists no market 'BTCUSD' (types spot); did you mean 'BTCUSDT'" in message
    assert "binance lists no market 'ETH/USDC'" in message and "'ETH/USDT'" in message


def test_a_short_retry_after_is_waited_for_and_the_fetch_succeeds(exchange):
    exchange.set_series("BTCUSDT", CROSS_UP)
    exchange.set_fault("rate_limit_429", times=1, retry_after=1)

    candles = source(exchange).fetch("BTCUSDT", "1m", 3, now_ms=NOW_MS)

    assert candles.close.tolist() == CROSS_UP[-3:] and exchange.request_count("BTCUSDT") == 2


def test_a_long_retry_after_is_reported_at_once(exchange):
    exchange.set_fault("rate_limit_429", retry_after=60)

    with pytest.raises(MarketDataError, match=r"rate-limited .*Retry-After: 60 s"):
        source(exchange).fetch("BTCUSDT", "1m", 3, now_ms=NOW_MS)

    assert exchange.request_count("BTCUSDT") == 1


@pytest.mark.parametrize("mode", ["malformed_json", "not_a_list", "short_rows", "nan_price", "negative_price", "empty"])
def test_a_malformed_answer_is_a_market_data_error_not_retried(exchange, mode):
    exchange.set_fault(mode)

    with pytest.raises(MarketDataError, match=r"binance fetch_ohlcv\('BTC/USDT', '1m', limit=4\): "):
        source(exchange).fetch("BTCUSDT", "1m", 3, now_ms=NOW_MS)

    assert exchange.request_count("BTCUSDT") == 1


def test_5xx_is_retried_then_reported(exchange):
    exchange.set_fault("http_500")

    with pytest.raises(MarketDataError, match="failed 2 times"):
        source(exchange, retries=1).fetch("BTCUSDT", "1m", 3, now_ms=NOW_MS)

    assert exchange.request_count("BTCUSDT") == 2


def test_an_unreachable_exchange_is_a_market_data_error_naming_it_and_not_retried_by_every_thread(exchange):
    url = exchange.url
    exchange.stop()
    market = CcxtSource("binance", url, retries=1)

    results = fetch_many(market, [(f"S{i}USDT", "1m") for i in range(20)], 3)

    errors = list(results.values())
    assert "binance load_markets failed 2 times" in str(errors[0])
    assert all(error is errors[0] for error in errors)  # one load was tried; the other threads got its error


def test_rebase_urls_keeps_paths_and_templates():
    urls = {"public": "https://api.binance.com/api/v3", "nested": {"x": "https://{hostname}/v1"}, "doc": 3}

    assert rebase_urls(urls, "http://127.0.0.1:8900") == {
        "public": "http://127.0.0.1:8900/api/v3",
        "nested": {"x": "http://127.0.0.1:8900/v1"},
        "doc": 3,
    }


def test_the_weight_budget_is_spent_by_every_pooled_instance(exchange):
    market = source(exchange, weight_per_minute=600)
    market.fetch("BTCUSDT", "1m", 3, now_ms=NOW_MS)

    assert isinstance(market.budget, WeightBudget) and market.budget.capacity == 600
    assert 598 <= market.budget._tokens < 600  # one klines request of weight 1 (plus the refill since)


@pytest.mark.parametrize(
    "rows, words",
    [
        ([[60_000, 1.0, 2.0, 0.5, 1.5, 3.0], [60_000, 1.0, 2.0, 0.5, 1.5, 3.0]], "candle 1 time is not increasing"),
        ([[0, 1.0, 2.0, 0.5, 1.5, 3.0], [60_000, 1.0, 0.9, 0.5, 1.5, 3.0]], "candle 1 has high/low outside"),
        ([[0, 1.0, 2.0, 0.5, None, 3.0]], "candle 0 has a missing or non-finite value"),
        ([[0, 1.0, 2.0, 0.5, 1.5, -3.0]], "candle 0 has a non-positive price or negative volume"),
        ([[0, 1.0, 2.0]], "candle 0 is not [time ms, open, high, low, close, volume]"),
        ({"data": []}, "expected a list of candles, got dict"),
    ],
)
def test_parse_ohlcv_names_the_first_bad_candle(rows, words):
    with pytest.raises(MarketDataError) as error:
        parse_ohlcv(rows, 60_000, "here")

    assert str(error.value).startswith(f"here: {words}")


def test_parse_ohlcv_derives_the_close_time():
    candles = parse_ohlcv([[0, 1.0, 2.0, 0.5, 1.5, 3.0], [60_000, 1.5, 2.0, 1.0, 1.2, 0.0]], 60_000, "here")

    assert candles.close_time.tolist() == [59_999, 119_999] and candles.close.tolist() == [1.5, 1.2]
