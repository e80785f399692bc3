"""The market scan as plain code, against a real loopback exchange (through ccxt's binance) and a real Redis."""

import pytest

from backend import history
from harness.exchange import CROSS_UP, NOW_MS, ExchangeServer
from tasks.market.exchange import CcxtSource
from tasks.scanner import MarketScanner
from tasks.strategies import parse_strategies

LAST_CLOSED_OPEN_MS = 1_764_000_000_000 - 60_000
# SMA(3) a hair below SMA(5) on the last closed bar; only the still-open bar (last * 1.01) would cross.
OPEN_BAR_ONLY = [100.0] * 30 + [99.99] * 3


HOUR_MS = 3_600_000


@pytest.fixture
def make_scanner():
    """A scanner of the loopback exchange through ccxt's binance (MARKET_SOURCE=binance)."""

    def make(exchange, publisher, read_timeout=5.0, timeframes="1m", strategies="sma_cross:fast=3,slow=5"):
        source = CcxtSource("binance", exchange.url, timeout_s=read_timeout)
        return MarketScanner(source, parse_strategies(strategies), publisher, timeframes)

    return make


def test_cross_on_last_closed_bar_is_published_with_the_contract_fields(
    exchange, publisher, redis_client, make_scanner
):
    exchange.set_series("BTCUSDT", CROSS_UP)

    report = make_scanner(exchange, publisher).scan(["BTCUSDT"], now_ms=NOW_MS)

    assert [s["id"] for s in report.published] == [f"BTCUSDT:sma_cross:fast=3,slow=5:1m:{LAST_CLOSED_OPEN_MS}:BUY"]
    signal = history.read_range(redis_client, 0)[0]
    assert signal["type"] == "BUY" and signal["price"] == 200.0 and signal["seq"] == 1
    assert signal["bar_time"] == "2025-11-24T15:59:00Z" and signal["source"] == "binance"
    assert signal["strategy"] == "sma_cross:fast=3,slow=5" and signal["timeframe"] == "1m"
    assert set(signal["indicators"]) == {"sma_fast", "sma_slow"} and "above" in signal["reason"]


def test_still_open_bar_never_fires(exchange, publisher, redis_client, make_scanner):
    exchange.set_series("BTCUSDT", OPEN_BAR_ONLY)

    report = make_scanner(exchange, publisher).scan(["BTCUSDT"], now_ms=NOW_MS)

    assert report.published == [] and report.errors == {}
    assert history.read_range(redis_client, 0) == []


def test_same_bar_never_fires_twice_across_scans(exchange, publisher, redis_client, make_scanner):
    exchange.set_series("BTCUSDT", CROSS_UP)
    scanners = [make_scanner(exchange, publisher), make_scanner(exchange, publisher)]  # a restart between

    reports = [scanners[0].scan(["BTCUSDT"], now_ms=NOW_MS), scanners[1].scan(["BTCUSDT"], now_ms=NOW_MS)]

    assert [len(r.published) for r in reports] == [1, 0]
    assert exchange.request_count("BTCUSDT") == 1  # no new bar can have closed: not fetched again
    assert len(history.read_range(redis_client, 0)) == 1


def test_a_timeframe_is_fetched_again_only_once_its_next_bar_closed(exchange, publisher, make_scanner):
    scanner = make_scanner(exchange, publisher, timeframes=("1m", "1h"))
    counts = []
    for minutes in (0, 0.25, 1, 2, 61):
        exchange.now_ms = NOW_MS + int(minutes * 60_000)
        exchange.reset_counts()
        report = scanner.scan(["BTCUSDT", "ETHUSDT"], now_ms=exchange.now_ms)
        assert report.errors == {}
        counts.append(exchange.request_count("BTCUSDT"))

    # A fresh scan fetches 1m and 1h; 1m each minute after; 1h only once its next bar closed (an hour later).
    assert counts == [2, 0, 1, 1, 2]


def test_signals_of_each_timeframe_are_distinct(exchange, publisher, redis_client, make_scanner):
    exchange.set_series("BTCUSDT", CROSS_UP)

    report = make_scanner(exchange, publisher, timeframes=("1m", "1h")).scan(["BTCUSDT"], now_ms=NOW_MS)

    last_hour_open = NOW_MS // HOUR_MS * HOUR_MS - HOUR_MS
    assert sorted(s["id"] for s in report.published) == [
        f"BTCUSDT:sma_cross:fast=3,slow=5:1h:{last_hour_open}:BUY",
        f"BTCUSDT:sma_cross:fast=3,slow=5:1m:{LAST_CLOSED_OPEN_MS}:BUY",
    ]
    assert sorted(s["timeframe"] for s in history.read_range(redis_client, 0)) == ["1h", "1m"]


@pytest.mark.parametrize(
    "mode",
    [
        "http_500",
        "rate_limit_429",
        "ban_418",
        "malformed_json",
        "empty",
        "nan_price",
        "negative_price",
        "short_rows",
        "not_a_list",
    ],
)
def test_broken_exchange_publishes_nothing_then_recovers(exchange, publisher, redis_client, mode, make_scanner):
    exchange.set_series("BTCUSDT", CROSS_UP)
    exchange.set_fault(mode, retry_after=0)
    scanner = make_scanner(exchange, publisher)

    broken = scanner.scan(["BTCUSDT"], now_ms=NOW_MS)
    exchange.clear_fault()
    healthy = scanner.scan(["BTCUSDT"], now_ms=NOW_MS)

    assert broken.published == [] and "BTCUSDT" in broken.errors
    assert len(healthy.published) == 1 and healthy.errors == {}
    assert [s["price"] for s in history.read_range(redis_client, 0)] == [200.0]


def test_transient_500_is_retried_within_the_scan(exchange, publisher, make_scanner):
    exchange.set_series("BTCUSDT", CROSS_UP)
    exchange.set_fault("http_500", times=1)

    report = make_scanner(exchange, publisher).scan(["BTCUSDT"], now_ms=NOW_MS)

    assert len(report.published) == 1 and exchange.request_count("BTCUSDT") == 2


def test_hang_past_the_timeout_is_an_error_not_a_stall(exchange, publisher, make_scanner):
    exchange.set_series("BTCUSDT", CROSS_UP)
    exchange.set_fault("hang", hang_s=5)

    report = make_scanner(exchange, publisher, read_timeout=0.3).scan(["BTCUSDT"], now_ms=NOW_MS)

    assert report.published == [] and "timed out" in report.errors["BTCUSDT"]


def test_closed_port_is_an_error(publisher):
    with ExchangeServer() as server:
        url = server.url
    scanner = MarketScanner(CcxtSource("binance", url), parse_strategies("sma_cross"), publisher, "1m")

    report = scanner.scan(["BTCUSDT"], now_ms=NOW_MS)

    assert report.published == [] and "BTCUSDT" in report.errors


def test_one_broken_symbol_does_not_stop_the_others(exchange, publisher, make_scanner):
    exchange.set_series("BTCUSDT", CROSS_UP)
    exchange.set_series("ETHUSDT", CROSS_UP)
    exchange.set_fault("malformed_json", symbols=["ETHUSDT"])

    report = make_scanner(exchange, publisher).scan(["BTCUSDT", "ETHUSDT"], now_ms=NOW_MS)

    assert [s["symbol"] for s in report.published] == ["BTCUSDT"] and list(report.errors) == ["ETHUSDT"]


def test_stale_exchange_data_is_an_error_not_a_signal(exchange, publisher, make_scanner):
    exchange.set_series("BTCUSDT", CROSS_UP)

    report = make_scanner(exchange, publisher).scan(["BTCUSDT"], now_ms=NOW_MS + 10 * 60_000)

    assert report.published == [] and "stale data" in report.errors["BTCUSDT"]
