"""fetch_many: many (symbol, timeframe) series at once, each with its own result or error."""

from tasks.market import Candles, MarketDataError, SimulatedSource, fetch_many
from tasks.market.exchange import CcxtSource

SYMBOLS = [f"S{i:03d}USDT" for i in range(200)]


def test_200_symbols_at_50_ms_latency_each_get_their_own_bars(exchange):
    exchange.latency_s = 0.05
    for i, symbol in enumerate(SYMBOLS):
        exchange.set_series(symbol, [float(i + 1 + k) for k in range(30)])

    results = fetch_many(CcxtSource("binance", exchange.url), [(s, "1m") for s in SYMBOLS], 20, now_ms=exchange.now_ms)

    assert list(results) == [(s, "1m") for s in SYMBOLS]
    for i, symbol in enumerate(SYMBOLS):
        candles = results[symbol, "1m"]
        assert isinstance(candles, Candles), candles
        assert candles.close.tolist() == [float(i + 1 + k) for k in range(10, 30)]
    assert exchange.counts() == {symbol: 1 for symbol in SYMBOLS}


def test_a_failing_symbol_does_not_spoil_the_others(exchange):
    exchange.set_listed(SYMBOLS[:10])
    exchange.set_fault("not_a_list", symbols=["S001USDT", "S002USDT"])

    results = fetch_many(
        CcxtSource("binance", exchange.url), [(s, "1m") for s in SYMBOLS[:10]], 5, now_ms=exchange.now_ms
    )

    assert [s for (s, _), r in results.items() if isinstance(r, MarketDataError)] == ["S001USDT", "S002USDT"]
    assert all(len(r) == 5 for s, r in results.items() if isinstance(r, Candles))


def test_works_with_any_source_and_ignores_duplicates():
    series = [("BTCUSDT", "1m"), ("ETHUSDT", "1m"), ("BTCUSDT", "1m"), ("BTCUSDT", "1h")]

    results = fetch_many(SimulatedSource(), series, 10, max_workers=2)

    assert list(results) == [("BTCUSDT", "1m"), ("ETHUSDT", "1m"), ("BTCUSDT", "1h")]
    assert all(len(candles) == 10 for candles in results.values())
    assert results["BTCUSDT", "1h"].open_time[1] - results["BTCUSDT", "1h"].open_time[0] == 3_600_000
    assert fetch_many(SimulatedSource(), [], 10) == {}
